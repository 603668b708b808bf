"""The contact sheet: written, labelled, and showing the stored targets."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from genima_data.demo import demo_episode, demo_manifest
from genima_data.episode import Episode
from genima_data.render.pipeline import render_targets
from genima_data.render.preview import (
    GAP,
    HEADER_HEIGHT,
    LABEL_HEIGHT,
    MIN_TILE,
    ROW_LABEL_WIDTH,
    contact_sheet,
    write_preview,
)
from genima_data.render.targets import TargetConfig, TargetError, TargetRenderer
from genima_data.store import create_dataset, open_dataset


def tile(sheet, row, column, size=MIN_TILE):
    """Tile `column` (camera-major: 3 per camera) of sampled frame `row`."""
    camera, k = divmod(column, 3)
    x = ROW_LABEL_WIDTH + camera * (3 * (size + GAP) + GAP) + k * (size + GAP)
    y = HEADER_HEIGHT + LABEL_HEIGHT + row * (size + GAP)
    return sheet[y : y + size, x : x + size]


def enlarged(image, size=MIN_TILE):
    return cv2.resize(image, (size, size), interpolation=cv2.INTER_NEAREST)


def test_preview_shows_observation_target_and_random_background_of_sampled_frames(demo_h5):
    render_targets(demo_h5, random_bg="procedural", cameras=["front", "wrist"])
    sheet = contact_sheet(demo_h5, "episode2", frames=3, cameras=["front", "wrist"])
    assert sheet.shape == (
        HEADER_HEIGHT + LABEL_HEIGHT + 3 * (MIN_TILE + GAP),
        ROW_LABEL_WIDTH + 6 * (MIN_TILE + GAP) + GAP,
        3,
    )
    with open_dataset(demo_h5) as ds, ds.episode("episode2") as ep:
        frames = [0, 12, 23]  # three frames evenly over 24
        for row, t in enumerate(frames):
            for c, cam in enumerate(["front", "wrist"]):
                assert np.array_equal(tile(sheet, row, 3 * c), enlarged(ep.frame(f"cameras/{cam}/rgb", t)))
                assert np.array_equal(
                    tile(sheet, row, 3 * c + 1), enlarged(ep.frame(f"targets/{cam}/rgb", t))
                )
                assert np.array_equal(
                    tile(sheet, row, 3 * c + 2), enlarged(ep.frame(f"targets/{cam}/rnd_bg", t))
                )
    assert (sheet[:HEADER_HEIGHT] > 200).any(), "the title is drawn"


def test_preview_renders_targets_on_the_fly_when_none_are_stored(demo_h5, tmp_path):
    out = write_preview(demo_h5, "episode0", tmp_path / "sheet.png", frames=2)
    image = cv2.imread(str(out))
    assert image is not None and image.shape[1] == ROW_LABEL_WIDTH + 12 * (MIN_TILE + GAP) + 3 * GAP
    sheet = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    observation, target = tile(sheet, 1, 0), tile(sheet, 1, 1)
    assert not np.array_equal(observation, target), "spheres are drawn on the target tile"


def test_stored_targets_of_another_config_are_not_shown_under_the_requested_one(demo_h5):
    # rows are labelled with the requested horizon, so the tiles must be drawn with it too
    render_targets(demo_h5, cameras=["front"])  # stored with horizon 20
    config = TargetConfig(horizon=5)
    sheet = contact_sheet(demo_h5, "episode0", frames=2, cameras=["front"], config=config)
    with open_dataset(demo_h5) as ds, ds.episode("episode0") as ep:
        renderer = TargetRenderer(ds.manifest, config, root=ds.path)
        expected = renderer.render(ep, 0, "front").over(ep.frame("cameras/front/rgb", 0))
    assert np.array_equal(tile(sheet, 0, 1), enlarged(expected))


def test_a_camera_that_is_not_in_the_manifest_is_a_one_line_error_naming_the_dataset(demo_h5):
    with pytest.raises(
        TargetError, match=r"sample_h5/episodes/episode0.h5: episode episode0: cameras: cameras \['nosuch'\]"
    ):
        contact_sheet(demo_h5, "episode0", cameras=["nosuch"])


def test_an_episode_without_the_cameras_rgb_is_a_one_line_error_naming_its_file(tmp_path):
    ds = create_dataset(tmp_path / "d_h5", demo_manifest(32))
    full = demo_episode(0, frames=8, size=32)
    ds.write_episode(
        Episode(meta=full.meta, arrays={k: v for k, v in full.arrays.items() if k != "cameras/front/rgb"})
    )
    ds.commit()
    with pytest.raises(
        TargetError, match=r"d_h5/episodes/episode0.h5: episode episode0: cameras/front/rgb: no RGB"
    ):
        contact_sheet(tmp_path / "d_h5", "episode0")

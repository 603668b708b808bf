"""export_genima_png: GENIMA's folder layout, file names, indices and contents."""

from __future__ import annotations

import pickle

import cv2
import numpy as np
import pytest

from genima_data.errors import GenimaDataError
from genima_data.render.compose import tile_2x2
from genima_data.render.export import episode_folders, export_genima_png
from genima_data.render.pipeline import render_targets
from genima_data.render.targets import TargetConfig
from genima_data.store import open_dataset

CAMERAS = ("front", "left_shoulder", "right_shoulder", "wrist")


def read_png(path):
    return cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def pngs(folder):
    return sorted(int(p.stem) for p in folder.glob("*.png"))


def test_export_writes_genimas_folders_with_the_stored_targets(demo_h5, tmp_path):
    config = TargetConfig(horizon=6)
    render_targets(demo_h5, config=config, random_bg="procedural")
    result = export_genima_png(demo_h5, tmp_path / "out")
    rendered, rnd = tmp_path / "out" / "genima-demo_rgb_rendered", tmp_path / "out" / "genima-demo_rnd_bg"
    assert result.roots == [rendered, rnd] and result.untiled == []
    episode = rendered / "reach_target" / "variation0" / "episodes" / "episode1"
    assert sorted(p.name for p in episode.iterdir()) == sorted(
        [f"{c}_rgb" for c in CAMERAS] + ["tiled_rgb", "tiled_rgb_rendered"]
    )
    with open_dataset(demo_h5) as ds, ds.episode("episode1") as ep:
        T = ep.length
        for cam in CAMERAS:
            assert pngs(episode / f"{cam}_rgb") == list(range(T))
            assert np.array_equal(
                read_png(episode / f"{cam}_rgb" / "9.png"), ep.frame(f"targets/{cam}/rgb", 9)
            )
            rnd_png = rnd / "reach_target" / "variation0" / "episodes" / "episode1" / f"{cam}_rgb" / "9.png"
            assert np.array_equal(read_png(rnd_png), ep.frame(f"targets/{cam}/rnd_bg", 9))
        assert pngs(episode / "tiled_rgb") == list(range(T - 1))  # GENIMA tiles frames t < T - 1
        assert pngs(episode / "tiled_rgb_rendered") == list(range(T - 1))
        observations = {c: ep.frame(f"cameras/{c}/rgb", 4) for c in CAMERAS}
        targets = {c: ep.frame(f"targets/{c}/rgb", 4) for c in CAMERAS}
    assert np.array_equal(read_png(episode / "tiled_rgb" / "4.png"), tile_2x2(observations, tile_size=32))
    assert np.array_equal(read_png(episode / "tiled_rgb_rendered" / "4.png"), tile_2x2(targets, tile_size=32))
    assert not (rnd / "reach_target" / "variation0" / "episodes" / "episode1" / "tiled_rgb").exists()
    descriptions = pickle.loads(
        (rendered / "reach_target" / "variation0" / "variation_descriptions.pkl").read_bytes()
    )
    assert descriptions == ["reach the red target", "touch the red ball"]
    assert TargetConfig.from_yaml(rendered / "render_data_config.yaml") == config


def test_export_without_the_four_tile_cameras_skips_tiling(demo_h5, tmp_path):
    render_targets(demo_h5, cameras=["front", "wrist"])
    result = export_genima_png(demo_h5, tmp_path / "out", episodes=["episode0"])
    episode = (
        tmp_path
        / "out"
        / "genima-demo_rgb_rendered"
        / "reach_target"
        / "variation0"
        / "episodes"
        / "episode0"
    )
    assert sorted(p.name for p in episode.iterdir()) == ["front_rgb", "wrist_rgb"]
    assert result.untiled == ["episode0"]


def test_export_without_targets_is_an_error(demo_h5, tmp_path):
    with pytest.raises(
        GenimaDataError, match="episode episode0: no targets to export; run render-targets first"
    ):
        export_genima_png(demo_h5, tmp_path / "out")


def test_episode_folders_keep_genima_names_and_number_the_rest(demo_h5):
    with open_dataset(demo_h5) as ds:
        manifest = ds.manifest
    summaries = [
        e.model_copy(update={"episode_id": name})
        for e, name in zip(manifest.episodes, ["episode0", "take_b", "take_a"], strict=True)
    ]
    renamed = manifest.model_copy(update={"episodes": summaries})
    folders = episode_folders(renamed, ["episode0", "take_a", "take_b"])
    assert folders["episode0"] == ("reach_target", 0, "episode0")
    assert {folders["take_a"][2], folders["take_b"][2]} == {"episode1", "episode2"}

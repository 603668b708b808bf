"""DATASHEET.md: the facts come from the data, the gaps are marked, the figures are real PNGs."""

from __future__ import annotations

import numpy as np
import pytest

from genima_data.datasheet import (
    MISSING,
    DatasheetInputs,
    camera_sample_sheet,
    plot_episode_lengths,
    plot_joint_coverage,
    render_datasheet,
)
from genima_data.stats import compute_stats
from genima_data.store import open_dataset
from genima_data.validate import validate_dataset


@pytest.fixture(scope="module")
def inputs(demo_store_dir) -> DatasheetInputs:
    path = demo_store_dir / "sample.zarr"
    with open_dataset(path) as ds:
        metas = [ds.episode(e).meta for e in ds.episode_ids]
        manifest = ds.manifest
    return DatasheetInputs(
        manifest=manifest,
        metas=metas,
        stats=compute_stats(path),
        validation=validate_dataset(path).to_dict(),
        dataset_dir="sample.zarr",
    )


def with_changes(inputs: DatasheetInputs, **changes) -> DatasheetInputs:
    return DatasheetInputs(**{**inputs.__dict__, **changes})


def test_robot_section_lists_every_joint_limit_in_radians_and_degrees(inputs):
    text = render_datasheet(inputs)
    assert "| panda_joint4 | -3.072 | -0.0698 | -176 | -3.999 | 2.175 |" in text


def test_camera_section_summarises_the_calibration(inputs):
    text = render_datasheet(inputs)
    x, y, z = inputs.manifest.camera("front").T_world_camera_array()[:3, 3]
    pose = f"at ({x:.3f}, {y:.3f}, {z:.3f}) m"
    assert f"| front | 32x32 | 27.71, 27.71 | 15.50, 15.50 | 60.0° | none | world | {pose}" in text
    assert "| wrist | 32x32 |" in text and "| panda_hand |" in text


def test_questions_the_data_cannot_answer_are_marked_until_the_provider_answers(inputs):
    assert render_datasheet(inputs).count(MISSING) == 5  # motivation, collection, uses, maintenance, contact
    answered = render_datasheet(
        with_changes(inputs, info={"motivation": "Benchmark reaching.", "contact": "x@y.z"})
    )
    assert "Benchmark reaching." in answered and "Contact: x@y.z" in answered
    assert answered.count(MISSING) == 3


def test_a_missing_licence_is_called_out(inputs):
    unlicensed = inputs.manifest.model_copy(update={"license": None})
    text = render_datasheet(with_changes(inputs, manifest=unlicensed))
    assert "| licence | **not specified** |" in text
    assert "- no licence is specified: the data cannot be redistributed until one is" in text


def test_frames_left_out_at_raw_import_are_reported(inputs):
    metas = [
        m.model_copy(
            update={
                "extras": {
                    "raw_import": {"reference_camera": "front", "source_frames": 26, "kept_frames": 24}
                }
            }
        )
        for m in inputs.metas
    ]
    text = render_datasheet(with_changes(inputs, metas=metas))
    assert "aligned to the `front` camera clock; 6 of 78 camera frames were left out" in text


def test_statistics_tables_show_the_exact_values(inputs):
    text = render_datasheet(inputs)
    joints = inputs.stats.field("robot/joint_positions")
    assert f"| panda_joint1 | 72 | {joints.min[0]:.4g} | {joints.max[0]:.4g} |" in text


def test_figures_are_png_files(inputs, demo_store_dir, tmp_path):
    stats, robot = inputs.stats, inputs.manifest.robot
    paths = [
        plot_episode_lengths(stats, 10.0, tmp_path / "lengths.png"),
        plot_joint_coverage(
            stats.field("robot/joint_positions"), robot.joint_lower, robot.joint_upper, tmp_path / "j.png"
        ),
    ]
    with open_dataset(demo_store_dir / "sample_h5") as ds:
        paths.append(camera_sample_sheet(ds, "front", tmp_path / "front.png", episodes=2, frames=3))
    import cv2

    for path in paths:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    sheet = cv2.imread(str(paths[-1]))
    assert sheet.shape == (2 * 96, 3 * 96, 3)  # 32 px frames enlarged 3x: 2 episodes x 3 times
    assert np.std(sheet) > 5

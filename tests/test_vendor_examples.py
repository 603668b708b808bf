"""The vendor layouts in examples/vendor import end to end, validate clean and stay geometrically right."""

from __future__ import annotations

import numpy as np
import pytest

from genima_data.geometry.camera import CameraModel
from genima_data.geometry.kinematics import load_kinematics
from genima_data.geometry.transforms import invert_transform
from genima_data.store import open_dataset
from genima_data.validate import validate_dataset
from tests.conftest import VENDOR_EXAMPLES, vendor_generator

GRIPPER_OPEN_RGB = np.array([60, 200, 235])  # the stick figure's tool colour in make_vendor_data.py
GRIPPER_CLOSED_RGB = np.array([240, 200, 40])


@pytest.fixture(scope="module")
def vendor_b_dir(tmp_path_factory):
    return vendor_generator()["write_vendor_b"](tmp_path_factory.mktemp("raw") / "vendor_b")


@pytest.mark.parametrize("vendor", ["vendor_a", "vendor_b"])
def test_vendor_example_imports_end_to_end_and_validates(
    vendor, vendor_a_dir, vendor_b_dir, tmp_path, run_cli
):
    raw = {"vendor_a": vendor_a_dir, "vendor_b": vendor_b_dir}[vendor]
    out = tmp_path / f"{vendor}.zarr"
    mapping = VENDOR_EXAMPLES / f"{vendor}.yaml"
    result = run_cli("convert", raw, out, "--from", "raw", "--mapping", mapping)
    assert result.exit_code == 0, result.stderr
    report = validate_dataset(out)
    assert report.exit_code == 0 and not report.warnings, [f.one_line() for f in report.findings]
    with open_dataset(out) as ds:
        assert len(ds) == 2 and all(e.length == 30 for e in ds.manifest.episodes)
        assert ds.manifest.robot.model == {"vendor_a": "franka_panda", "vendor_b": "ur5e"}[vendor]


def test_vendor_b_calibration_chain_puts_the_tool_where_the_video_shows_it(vendor_b_dir, tmp_path, run_cli):
    out = tmp_path / "b.zarr"
    result = run_cli(
        "convert", vendor_b_dir, out, "--from", "raw", "--mapping", VENDOR_EXAMPLES / "vendor_b.yaml"
    )
    assert result.exit_code == 0, result.stderr
    with open_dataset(out) as ds, ds.episode("run_0001") as episode:
        kinematics = load_kinematics(ds.manifest.robot)
        q = episode.load("robot/joint_positions").astype(np.float64)
        gripper = episode.load("robot/gripper_open")
        tool = kinematics.ee_pose(q)[:, :3, 3]
        hits = 0
        for (
            cam
        ) in ds.manifest.cameras:  # the side camera is placed through Kalibr's T_cn_cnm1, with distortion
            T = invert_transform(cam.T_world_camera_array())
            uv, _ = CameraModel.from_calibration(cam).project_points(tool @ T[:3, :3].T + T[:3, 3])
            for t in range(0, episode.length, 3):
                u, v = np.round(uv[t]).astype(int)
                pixel = episode.frame(f"cameras/{cam.name}/rgb", t)[v, u].astype(int)
                expected = GRIPPER_OPEN_RGB if gripper[t] > 0.5 else GRIPPER_CLOSED_RGB
                hits += int(np.abs(pixel - expected).max() < 40)  # H.264 shifts colours a little
        assert hits == 2 * len(range(0, episode.length, 3))
        assert gripper.min() == 0.0 and gripper.max() == 1.0

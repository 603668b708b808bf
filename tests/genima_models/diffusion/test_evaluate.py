import numpy as np
import pytest

pytest.importorskip("torch")

from genima_data.render.targets import TargetConfig
from genima_models.diffusion.evaluate import DiffusionEvalReport, measure_frame
from tests.render.sphere_drawing import draw_striped_sphere

COLOURS = TargetConfig().sphere_colours()


def _frame(spheres):
    """A 64x64 observation and a target with `spheres` {colour name: (u, v)} drawn, radius 6."""
    observation = np.full((64, 64, 3), 110, np.uint8)
    target = observation.copy()
    for name, centre in spheres.items():
        draw_striped_sphere(target, centre, 6, COLOURS[name], np.eye(3))
    return observation, target


def test_measurements_compare_detected_and_true_centres_per_sphere():
    observation, drawn = _frame({"gripper_closed": (20.0, 20.0), "joint1": (44.0, 40.0)})
    truth = {
        "front": {"gripper": (21.0, 20.0), "joint1": (44.0, 40.0), "joint3": (10.0, 50.0), "joint5": None}
    }
    rows = measure_frame("e0", 3, {"front": drawn}, truth, True, TargetConfig(), {"front": observation})
    by_name = {r.sphere: r for r in rows}
    assert by_name["gripper"].error_px == pytest.approx(1.0, abs=0.3)
    assert by_name["gripper"].detected_open is False and by_name["gripper"].gripper_open is True
    assert by_name["joint1"].error_px < 0.3
    assert by_name["joint3"].visible and not by_name["joint3"].detected and by_name["joint3"].error_px is None
    assert not by_name["joint5"].visible and not by_name["joint5"].detected


def test_report_summarises_errors_detection_rate_spurious_spheres_and_gripper_state():
    observation, drawn = _frame(
        {"gripper_open": (20.0, 20.0), "joint3": (40.0, 40.0), "joint5": (50.0, 12.0)}
    )
    truth = {
        "wrist": {"gripper": (20.0, 20.0), "joint1": (30.0, 30.0), "joint3": (40.0, 42.0), "joint5": None}
    }
    report = DiffusionEvalReport("generated", "d.zarr", "run", 10, ["e0"])
    report.measurements += measure_frame(
        "e0", 0, {"wrist": drawn}, truth, True, TargetConfig(), {"wrist": observation}
    )
    report.measurements += measure_frame(
        "e0", 5, {"wrist": drawn}, truth, False, TargetConfig(), {"wrist": observation}
    )
    summary = report.to_dict()
    assert summary["frames"] == 2
    assert summary["gripper_state_accuracy"] == 0.5  # drawn open; true at frame 0 only
    overall = summary["overall"]
    assert (
        overall["visible"] == 6
        and overall["detected"] == 4
        and overall["detection_rate"] == pytest.approx(4 / 6)
    )
    assert overall["spurious"] == 2  # joint5 drawn where the truth has none, twice
    assert summary["spheres"]["joint3"]["mean_px"] == pytest.approx(2.0, abs=0.3)
    assert summary["spheres"]["joint1"]["detection_rate"] == 0
    assert summary["cameras"]["wrist"]["visible"] == 6


def test_detector_finds_ground_truth_spheres_where_they_project(tmp_path):
    from genima_data.demo import build_demo
    from genima_models.diffusion.evaluate import evaluate_diffusion

    path = tmp_path / "gt.zarr"
    build_demo(path, episodes=1, frames=24, size=64).close()
    report = evaluate_diffusion(path, ground_truth=True, frame_stride=2, progress=False).to_dict()
    assert report["frames"] == 12 and report["gripper_state_accuracy"] == 1.0
    assert report["overall"]["median_px"] < 0.5
    for camera in ("front", "left_shoulder", "right_shoulder"):  # far cameras: spheres project to discs
        stats = report["cameras"][camera]
        assert stats["mean_px"] < 1.0 and stats["detection_rate"] > 0.9 and stats["spurious"] == 0, camera

"""Generate two small raw recordings in plausible vendor layouts, for the raw-import walk-through and tests.

    python examples/vendor/make_vendor_data.py OUT      # writes OUT/vendor_a and OUT/vendor_b

vendor_a (Franka Panda; a ROS-bag extraction): per episode a PNG folder per camera with a CSV of frame
stamps in nanoseconds (10 Hz, the cameras a few milliseconds apart), a CSV joint log in degrees at 100 Hz
with the finger width in metres, and a meta.json; per camera a ROS camera_info file (intrinsics) and a
pose file (extrinsics).

vendor_b (UR5e; a custom recorder): per episode an MP4 per camera (15 Hz, presentation timestamps on the
recorder's clock), an NPZ joint log in radians at 125 Hz with timestamps in microseconds, a JSON-lines
gripper log of open/closed events, and an info.yaml; one Kalibr camchain for both cameras.

Both are geometrically consistent: joint trajectories go through forward kinematics, and the cameras, with
the calibration written next to the data, see the arm where it is.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
import numpy as np
import yaml

from genima_data.demo import demo_episode, demo_manifest

VENDOR_A_CAMERAS = {"front": 0.0, "right_shoulder": 0.004}  # camera -> clock offset, seconds
VENDOR_A_LOG_HZ = 100.0
VENDOR_A_EPOCH_S = 1_700_000_000.0  # ROS stamps are wall-clock times
FRANKA_MAX_WIDTH_M = 0.08


def _dump_yaml(path: Path, data: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False, default_flow_style=None))


def ros_camera_info(camera) -> dict:
    """A sensor_msgs/CameraInfo YAML document for a schema.Camera (no distortion)."""
    K = np.asarray(camera.K)
    P = np.concatenate([K, np.zeros((3, 1))], axis=1)
    return {
        "image_width": camera.width,
        "image_height": camera.height,
        "camera_name": camera.name,
        "camera_matrix": {"rows": 3, "cols": 3, "data": K.reshape(-1).tolist()},
        "distortion_model": "plumb_bob",
        "distortion_coefficients": {"rows": 1, "cols": 5, "data": [0.0] * 5},
        "rectification_matrix": {"rows": 3, "cols": 3, "data": np.eye(3).reshape(-1).tolist()},
        "projection_matrix": {"rows": 3, "cols": 4, "data": P.reshape(-1).tolist()},
    }


def _resample(times: np.ndarray, values: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Piecewise-linear resampling per column (held constant beyond the ends)."""
    return np.stack([np.interp(at, times, values[:, j]) for j in range(values.shape[1])], axis=1)


def write_vendor_a(root: str | Path, *, episodes: int = 2, frames: int = 30, size: int = 48) -> Path:
    """The Franka layout (see the module docstring); returns the recording's root folder."""
    root = Path(root)
    manifest = demo_manifest(size)
    for name in VENDOR_A_CAMERAS:
        camera = manifest.camera(name)
        _dump_yaml(root / "calibration" / f"{name}.yaml", ros_camera_info(camera))
        _dump_yaml(root / "calibration" / f"{name}_pose.yaml", {"T_world_camera": camera.T_world_camera})
    for index in range(episodes):
        episode = demo_episode(index, frames=frames, size=size)
        folder = root / f"episode_{index:03d}"
        frame_times = VENDOR_A_EPOCH_S + 100.0 * index + episode.load("timestamps")
        for name, offset in VENDOR_A_CAMERAS.items():
            images = folder / f"rgb_{name}"
            images.mkdir(parents=True, exist_ok=True)
            rgb = episode.load(f"cameras/{name}/rgb")
            stamps = np.round((frame_times + offset) * 1e9).astype(np.int64)
            for t in range(frames):
                cv2.imwrite(str(images / f"frame_{t:06d}.png"), cv2.cvtColor(rgb[t], cv2.COLOR_RGB2BGR))
            rows = "".join(f"{t},{stamp}\n" for t, stamp in enumerate(stamps))
            (images / "stamps.csv").write_text("frame,stamp_ns\n" + rows)
        log_times = np.arange(frame_times[0] - 0.05, frame_times[-1] + 0.05, 1 / VENDOR_A_LOG_HZ)
        state = np.concatenate(
            [episode.load("robot/joint_positions"), episode.load("robot/gripper_open")[:, None]], 1
        )
        log = _resample(frame_times, state.astype(np.float64), log_times)
        header = "time_s," + ",".join(f"panda_joint{j}_deg" for j in range(1, 8)) + ",finger_width_m\n"
        lines = [
            f"{t:.6f},"
            + ",".join(f"{np.rad2deg(q):.6f}" for q in row[:7])
            + f",{row[7] * FRANKA_MAX_WIDTH_M:.6f}\n"
            for t, row in zip(log_times, log, strict=True)
        ]
        (folder / "joint_states.csv").write_text(header + "".join(lines))
        meta = {"task": episode.meta.task, "instruction": episode.meta.instruction, "success": True}
        (folder / "meta.json").write_text(json.dumps(meta, indent=2))
    return root


def main(out: Path) -> None:
    a = write_vendor_a(out / "vendor_a")
    print(f"wrote {a}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "vendor_raw"))

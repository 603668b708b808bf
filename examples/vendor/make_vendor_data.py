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

import itertools
import json
import sys
from pathlib import Path

import cv2
import numpy as np
import yaml

from genima_data.demo import demo_episode, demo_manifest, look_at
from genima_data.formats.video import VideoSettings, VideoWriter
from genima_data.geometry.camera import CameraModel
from genima_data.geometry.kinematics import load_kinematics
from genima_data.geometry.transforms import invert_transform
from genima_data.robots import ur5e
from genima_data.schema import Camera, Distortion

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


# ------------------------------------------------------------------------------------------- vendor B
VENDOR_B_FPS = 15.0
VENDOR_B_LOG_HZ = 125.0  # UR RTDE
VENDOR_B_GRIPPER_HZ = 30.0
VENDOR_B_VIDEO = VideoSettings(vcodec="libx264", crf=18, gop=5)  # H.264, as recorders write it
UR5E_HOME = np.array([np.pi, -1.2, 1.8, -2.2, -1.57, 0.0])  # tool above the table, pointing down
VENDOR_B_TASK = ("press_button", ["press the green button", "push the button down"])


def vendor_b_cameras(width: int = 64, height: int = 48) -> list[Camera]:
    """A front camera (Kalibr cam0) and a side camera with mild radial-tangential distortion (cam1)."""
    f = width / (2 * np.tan(np.deg2rad(70) / 2))
    K = [[f, 0.0, (width - 1) / 2], [0.0, f, (height - 1) / 2], [0.0, 0.0, 1.0]]
    poses = {"front": ((1.3, 0.3, 0.8), (0.3, 0.05, 0.3)), "side": ((0.4, 1.1, 0.7), (0.3, 0.05, 0.3))}
    lenses = {
        "front": Distortion(model="none"),
        "side": Distortion(model="opencv", coeffs=[-0.05, 0.01, 0.0, 0.0]),
    }
    return [
        Camera(
            name=n, width=width, height=height, K=K, distortion=lenses[n], T_world_camera=look_at(*p).tolist()
        )
        for n, p in poses.items()
    ]


def kalibr_camchain(cameras: list[Camera]) -> dict:
    """Kalibr camchain YAML: cam0 is the first camera; T_cn_cnm1 maps camera n-1's points into camera n's."""
    chain = {}
    for n, cam in enumerate(cameras):
        K = np.asarray(cam.K)
        coeffs = list(cam.distortion.coeffs) or [0.0] * 4
        entry = {
            "camera_model": "pinhole",
            "intrinsics": [float(K[0, 0]), float(K[1, 1]), float(K[0, 2]), float(K[1, 2])],
            "distortion_model": "radtan",
            "distortion_coeffs": coeffs,
            "resolution": [cam.width, cam.height],
            "rostopic": f"/{cam.name}/image_raw",
        }
        if n:
            T_prev, T_this = cameras[n - 1].T_world_camera_array(), cam.T_world_camera_array()
            entry["T_cn_cnm1"] = (invert_transform(T_this) @ T_prev).tolist()
        chain[f"cam{n}"] = entry
    return chain


def ur5e_trajectory(rng: np.random.Generator, duration: float):
    """q(t) radians: minimum-jerk from home to a random reach and back halfway through."""
    goal = UR5E_HOME + rng.uniform([-0.4, -0.1, -0.3, -0.2, -0.2, -0.5], [0.4, 0.1, 0.2, 0.2, 0.2, 0.5])

    def q(t: np.ndarray) -> np.ndarray:
        s = np.clip(np.asarray(t) / (0.5 * duration), 0, 2)
        s = np.where(s > 1, 2 - s, s)
        s = 10 * s**3 - 15 * s**4 + 6 * s**5
        return UR5E_HOME + s[:, None] * (goal - UR5E_HOME)

    return q


def render_arm(camera: Camera, points_world: np.ndarray, gripper_closed: bool) -> np.ndarray:
    """The arm as a stick figure through its joint origins, drawn where the calibrated camera sees them."""
    model = CameraModel.from_calibration(camera)
    T_camera_world = invert_transform(camera.T_world_camera_array())
    points_camera = points_world @ T_camera_world[:3, :3].T + T_camera_world[:3, 3]
    uv, in_front = model.project_points(points_camera)
    rows = np.linspace(0.0, 1.0, camera.height)[:, None, None]
    image = np.broadcast_to(
        np.array([70, 80, 95]) + rows * np.array([90, 85, 70]), (camera.height, camera.width, 3)
    )
    image = np.ascontiguousarray(image, dtype=np.uint8)
    scale = 16  # draw with sub-pixel precision
    pixels = [
        tuple(round(float(c) * scale) for c in p) if ok else None for p, ok in zip(uv, in_front, strict=True)
    ]
    for a, b in itertools.pairwise(pixels):
        if a is not None and b is not None:
            cv2.line(image, a, b, (225, 225, 220), 2, cv2.LINE_AA, shift=4)
    colour = (240, 200, 40) if gripper_closed else (60, 200, 235)
    if pixels[-1] is not None:
        cv2.circle(image, pixels[-1], 3 * scale, colour, -1, cv2.LINE_AA, shift=4)
    return image


def write_vendor_b(root: str | Path, *, episodes: int = 2, frames: int = 30, seed: int = 0) -> Path:
    """The UR5e layout (see the module docstring); returns the recording's root folder."""
    root = Path(root)
    cameras = vendor_b_cameras()
    _dump_yaml(root / "calib" / "camchain.yaml", kalibr_camchain(cameras))
    kinematics = load_kinematics(ur5e())
    for index in range(episodes):
        rng = np.random.default_rng([seed, index])
        folder = root / "recordings" / f"run_{index + 1:04d}"
        folder.mkdir(parents=True, exist_ok=True)
        duration = frames / VENDOR_B_FPS
        q_of = ur5e_trajectory(rng, duration)
        grasp = (0.35 * duration, 0.7 * duration)  # the gripper closes on the button, then opens

        def closed(t: np.ndarray, grasp: tuple = grasp) -> np.ndarray:
            return (t >= grasp[0]) & (t < grasp[1])

        frame_times = np.arange(frames) / VENDOR_B_FPS
        q = q_of(frame_times)
        chain = np.concatenate(
            [kinematics.joint_frames(q)[..., :3, 3], kinematics.ee_pose(q)[:, None, :3, 3]], 1
        )
        for cam in cameras:
            video = VideoWriter(
                folder / f"{cam.name}.mp4", VENDOR_B_FPS, cam.width, cam.height, VENDOR_B_VIDEO
            )
            for t in range(frames):
                video.write(render_arm(cam, chain[t], bool(closed(frame_times[t]))))
            video.close()
        log_times = np.arange(-0.024, duration + 0.024, 1 / VENDOR_B_LOG_HZ)
        np.savez(folder / "robot.npz", t_us=np.round(log_times * 1e6).astype(np.int64), q=q_of(log_times))
        gripper_times = np.arange(-0.02, duration + 0.02, 1 / VENDOR_B_GRIPPER_HZ)
        lines = [json.dumps({"t": round(float(t), 6), "closed": bool(closed(t))}) for t in gripper_times]
        (folder / "gripper.jsonl").write_text("\n".join(lines) + "\n")
        task, instructions = VENDOR_B_TASK
        info = {
            "task": task,
            "instruction": instructions[index % 2],
            "success": index % 3 != 2,
            "variation": 0,
        }
        _dump_yaml(folder / "info.yaml", info)
    return root


def main(out: Path) -> None:
    for path in (write_vendor_a(out / "vendor_a"), write_vendor_b(out / "vendor_b")):
        print(f"wrote {path}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "vendor_raw"))

"""A small bundled sample dataset: what `make demo` builds and the tests use as a fixture.

Synthetic but schema-complete: a Franka Panda moving along smooth joint trajectories with the gripper
closing and reopening, four RLBench-like cameras (three static, one wrist camera on the hand with
per-frame extrinsics), timestamps, actions and success labels.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from genima_data.episode import Episode
from genima_data.geometry.kinematics import franka_panda_kinematics
from genima_data.robots import PANDA_JOINT_LOWER, PANDA_JOINT_UPPER, franka_panda
from genima_data.schema import Camera, EpisodeMeta, EpisodeSource, Manifest, Task
from genima_data.store import Dataset, create_dataset

DEMO_TASK = Task(name="reach_target", instructions=["reach the red target", "touch the red ball"])
STATIC_CAMERAS = {  # camera centre and a point it looks at, world frame, metres
    "front": ((1.35, 0.0, 1.58), (0.3, 0.0, 1.0)),
    "left_shoulder": ((0.3, 0.55, 1.5), (0.2, 0.0, 0.9)),
    "right_shoulder": ((0.3, -0.55, 1.5), (0.2, 0.0, 0.9)),
}
WRIST_MOUNT = "panda_hand"


def look_at(eye: np.ndarray, target: np.ndarray, up: tuple[float, float, float] = (0, 0, 1)) -> np.ndarray:
    """T_world_camera of an OpenCV camera at `eye` looking at `target` (image up ≈ world `up`)."""
    z = np.asarray(target, float) - np.asarray(eye, float)
    z /= np.linalg.norm(z)
    x = np.cross(z, up)
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    T = np.eye(4)
    T[:3, :3] = np.stack([x, y, z], axis=1)
    T[:3, 3] = eye
    return T


# the wrist camera on the hand: above the fingers, looking along the approach axis (hand z) past them
T_HAND_WRIST_CAMERA = look_at((0.06, 0.0, 0.02), (0.0, 0.0, 0.25), up=(1, 0, 0))


def demo_cameras(size: int) -> list[Camera]:
    f = size / (2 * np.tan(np.deg2rad(60) / 2))  # 60° field of view, like RLBench's cameras
    K = [[f, 0.0, (size - 1) / 2], [0.0, f, (size - 1) / 2], [0.0, 0.0, 1.0]]
    cams = [
        Camera(name=name, width=size, height=size, K=K, T_world_camera=look_at(*pose).tolist())
        for name, pose in STATIC_CAMERAS.items()
    ]
    cams.append(Camera(name="wrist", width=size, height=size, K=K, mount=WRIST_MOUNT))
    return cams


def demo_manifest(size: int = 128, fps: float = 10.0) -> Manifest:
    return Manifest(
        name="genima-demo",
        description="Synthetic Franka Panda reach demonstrations bundled with genima-data.",
        fps=fps,
        robot=franka_panda(),
        cameras=demo_cameras(size),
        tasks=[DEMO_TASK],
        license="CC0-1.0",
        provenance="genima_data.demo (synthetic)",
    )


def _joint_trajectory(rng: np.random.Generator, frames: int) -> np.ndarray:
    lower, upper = np.array(PANDA_JOINT_LOWER), np.array(PANDA_JOINT_UPPER)
    home = np.array([0.0, 0.175, 0.0, -0.873, 0.0, 1.222, 0.785])
    goal = np.clip(home + rng.uniform(-0.4, 0.4, 7), lower + 0.1, upper - 0.1)
    s = 0.5 - 0.5 * np.cos(np.linspace(0, np.pi, frames))  # smooth start and stop
    return (home + s[:, None] * (goal - home)).astype(np.float32)


def _frames(rng: np.random.Generator, joints: np.ndarray, size: int, phase: float) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size] / size
    base = np.stack([0.4 + 0.3 * xx, 0.35 + 0.2 * yy, 0.3 + 0.1 * xx * yy], axis=-1)
    out = np.empty((len(joints), size, size, 3), dtype=np.uint8)
    for t, q in enumerate(joints):
        cx, cy = 0.5 + 0.3 * np.sin(q[0] * 2 + phase), 0.5 + 0.3 * np.cos(q[1] * 2 + phase)
        blob = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / 0.01)[..., None]
        img = base * (1 - blob) + blob * np.array([0.8, 0.1, 0.1])
        out[t] = np.clip(img * 255 + rng.normal(0, 2, img.shape), 0, 255).astype(np.uint8)
    return out


def demo_episode(
    index: int, *, frames: int = 48, size: int = 128, fps: float = 10.0, seed: int = 0
) -> Episode:
    rng = np.random.default_rng([seed, index])
    joints = _joint_trajectory(rng, frames)
    gripper = np.ones(frames, np.float32)
    gripper[frames // 2 : frames // 2 + frames // 4] = 0.0
    action = np.concatenate([np.roll(joints, -1, axis=0), np.roll(gripper, -1)[:, None]], axis=1)
    action[-1] = action[-2]
    wrist = franka_panda_kinematics().link_pose(joints, WRIST_MOUNT) @ T_HAND_WRIST_CAMERA
    arrays = {
        "timestamps": np.arange(frames, dtype=np.float64) / fps,
        "robot/joint_positions": joints,
        "robot/gripper_open": gripper,
        "action/joint_positions": action.astype(np.float32),
        "cameras/wrist/extrinsics": wrist,
    }
    for c, name in enumerate([*STATIC_CAMERAS, "wrist"]):
        arrays[f"cameras/{name}/rgb"] = _frames(rng, joints, size, phase=c)
    meta = EpisodeMeta(
        episode_id=f"episode{index}",
        task=DEMO_TASK.name,
        instruction=DEMO_TASK.instructions[index % len(DEMO_TASK.instructions)],
        success=True,
        length=frames,
        variation=0,
        seed=seed,
        source=EpisodeSource(format="demo", path="genima_data.demo", index=index),
    )
    return Episode(meta=meta, arrays=arrays)


def build_demo(
    path: str | Path, *, episodes: int = 4, frames: int = 48, size: int = 128, seed: int = 0
) -> Dataset:
    """Write the demo dataset to `path` (``.zarr`` → zarr, otherwise HDF5) and return it, committed."""
    ds = create_dataset(path, demo_manifest(size))
    for i in range(episodes):
        if not ds.has_episode(f"episode{i}"):
            ds.write_episode(demo_episode(i, frames=frames, size=size, seed=seed))
    ds.commit()
    return ds

"""A small bundled sample dataset: what `make demo` builds and the tests use as a fixture.

Synthetic but geometrically consistent: a Franka Panda (base at the world origin, on a table) moves along
smooth joint trajectories, closing its gripper on a red ball and lifting it; forward kinematics places
every link. Four RLBench-like cameras (front, left_shoulder and right_shoulder static; wrist on the hand,
with per-frame extrinsics: the hand pose times the fixed ``T_HAND_WRIST_CAMERA``) see images that
ray-cast the arm as shaded capsules, the ball, the table and a backdrop, so GENIMA's sphere targets
visibly land on the arm's joints.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from genima_data.episode import Episode
from genima_data.geometry.camera import CameraModel
from genima_data.geometry.kinematics import Kinematics, load_kinematics
from genima_data.robots import PANDA_JOINT_LOWER, PANDA_JOINT_UPPER, franka_panda
from genima_data.schema import Camera, EpisodeMeta, EpisodeSource, Manifest, Task
from genima_data.store import Dataset, create_dataset

DEMO_TASK = Task(name="reach_target", instructions=["reach the red target", "touch the red ball"])
STATIC_CAMERAS = {  # camera centre and a point it looks at, world frame, metres
    "front": ((1.3, 0.0, 1.2), (0.25, 0.0, 0.25)),
    "left_shoulder": ((-0.3, 0.7, 1.3), (0.45, 0.0, 0.15)),
    "right_shoulder": ((-0.3, -0.7, 1.3), (0.45, 0.0, 0.15)),
}
WRIST_MOUNT = "panda_hand"
PANDA_READY = np.array([0.0, -0.3, 0.0, -2.2, 0.0, 2.0, 0.785])
TABLE_HALF_EXTENT = (0.9, 0.9)  # table top around the robot base, metres (x, y)
BALL_RADIUS = 0.03
BALL_COLOUR = np.array([225, 60, 50.0])  # red like RLBench's target, yet far from joint 1's (154, 0, 0)
LINK_COLOUR = np.array([232, 232, 228.0])
HAND_COLOUR = np.array([70, 70, 76.0])
OPTICS_BLUR_PX = 1.0  # Gaussian sigma, pixels
SENSOR_NOISE = 0.8  # grey levels
LIGHT_DIRECTION = np.array([0.3, 0.2, 1.0]) / np.linalg.norm([0.3, 0.2, 1.0])  # towards the light, world


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


# the wrist camera sits behind and above the fingers on the hand, looking past them along the approach axis
T_HAND_WRIST_CAMERA = look_at((-0.07, 0.0, 0.02), (0.0, 0.0, 0.25), up=(-1.0, 0.0, 0.0))


def demo_cameras(size: int) -> list[Camera]:
    f = size / (2 * np.tan(np.deg2rad(60) / 2))  # 60° field of view, like RLBench's cameras
    K = [[f, 0.0, (size - 1) / 2], [0.0, f, (size - 1) / 2], [0.0, 0.0, 1.0]]
    cams = [
        Camera(name=name, width=size, height=size, K=K, T_world_camera=look_at(*pose).tolist())
        for name, pose in STATIC_CAMERAS.items()
    ]
    cams.append(Camera(name="wrist", width=size, height=size, K=K, mount=WRIST_MOUNT))  # per-frame extrinsics
    return cams


def demo_manifest(size: int = 128, fps: float = 10.0) -> Manifest:
    return Manifest(
        name="genima-demo",
        description="Synthetic Franka Panda pick-and-lift demonstrations bundled with genima-data.",
        fps=fps,
        robot=franka_panda(),
        cameras=demo_cameras(size),
        tasks=[DEMO_TASK],
        license="CC0-1.0",
        provenance="genima_data.demo (synthetic)",
    )


# ------------------------------------------------------------------------------ trajectories
def _minimum_jerk(s: np.ndarray) -> np.ndarray:
    return 10 * s**3 - 15 * s**4 + 6 * s**5


def _reach(kinematics: Kinematics, q: np.ndarray, target: np.ndarray, iterations: int = 40) -> np.ndarray:
    """Joints that put the tool centre at `target` pointing straight down (damped Gauss-Newton from q)."""
    lower, upper = np.array(PANDA_JOINT_LOWER) + 0.05, np.array(PANDA_JOINT_UPPER) - 0.05

    def residual(qs: np.ndarray) -> np.ndarray:
        pose = kinematics.ee_pose(qs)
        return np.concatenate([pose[:, :3, 3] - target, 0.3 * (pose[:, :3, 2] - (0, 0, -1))], axis=1)

    q = np.asarray(q, np.float64).copy()
    eps = 1e-6
    for _ in range(iterations):
        r = residual(np.vstack([q, q + eps * np.eye(7)]))
        J = (r[1:] - r[0]).T / eps
        q = np.clip(q - np.linalg.solve(J.T @ J + 1e-4 * np.eye(7), J.T @ r[0]), lower, upper)
    return q


def _joint_trajectory(
    rng: np.random.Generator, kinematics: Kinematics, ball: np.ndarray, frames: int
) -> tuple[np.ndarray, int, int]:
    """Ready → above the ball → down → grasp → lift → let go; joints (T, 7), grasp and release frames."""
    above = _reach(kinematics, PANDA_READY, ball + np.array([0, 0, 0.18]))
    down = _reach(kinematics, above, ball)
    lift = _reach(kinematics, above, ball + np.array([rng.uniform(-0.1, 0.1), rng.uniform(-0.1, 0.1), 0.25]))
    waypoints = np.stack([PANDA_READY, above, down, down, lift, lift])
    bounds = np.round(np.array([0, 0.3, 0.45, 0.55, 0.85, 1.0]) * (frames - 1)).astype(int)
    q = np.empty((frames, 7))
    for k in range(len(bounds) - 1):
        t0, t1 = bounds[k], bounds[k + 1]
        s = _minimum_jerk(np.linspace(0, 1, t1 - t0 + 1))
        q[t0 : t1 + 1] = waypoints[k] + s[:, None] * (waypoints[k + 1] - waypoints[k])
    return q.astype(np.float32), round(0.5 * (frames - 1)), round(0.9 * (frames - 1))


# ------------------------------------------------------------------------------ ray casting
@dataclass(frozen=True)
class _Part:
    """A shaded capsule from a to b (a sphere when a == b), world frame, metres."""

    a: np.ndarray
    b: np.ndarray
    radius: float
    colour: np.ndarray


def _arm_parts(
    joint_frames: np.ndarray, hand: np.ndarray, gripper_open: float, ball: np.ndarray
) -> list[_Part]:
    """The arm as capsules between consecutive joint origins, the hand, two fingers, and the ball."""
    chain = [np.zeros(3), *joint_frames[:, :3, 3], hand[:3, 3]]
    radii = [0.07, 0.065, 0.065, 0.06, 0.06, 0.055, 0.05, 0.045]  # base, then joint to joint, to the hand
    parts = [_Part(a, b, r, LINK_COLOUR) for a, b, r in zip(chain[:-1], chain[1:], radii, strict=True)]
    y, z, o = hand[:3, 1], hand[:3, 2], hand[:3, 3]
    parts.append(_Part(o + 0.04 * z - 0.09 * y, o + 0.04 * z + 0.09 * y, 0.03, HAND_COLOUR))
    spread = 0.006 + 0.035 * float(np.clip(gripper_open, 0, 1))
    for side in (-1, 1):
        tip = o + side * spread * y
        parts.append(_Part(tip + 0.065 * z, tip + 0.105 * z, 0.009, HAND_COLOUR))
    parts.append(_Part(ball, ball, BALL_RADIUS, BALL_COLOUR))
    return parts


def _capsule_distance(
    rays: np.ndarray, a: np.ndarray, b: np.ndarray, radius: float
) -> tuple[np.ndarray, np.ndarray]:
    """Distance along unit rays from the origin to a capsule (inf on a miss) and the hit normals."""
    ba, oa = b - a, -a
    baba, baoa, oaoa = ba @ ba, ba @ oa, oa @ oa
    bard, rdoa = rays @ ba, rays @ oa
    k2 = baba - bard**2
    k1 = baba * rdoa - baoa * bard
    k0 = baba * oaoa - baoa**2 - radius**2 * baba
    h = k1 * k1 - k2 * k0
    with np.errstate(invalid="ignore", divide="ignore"):
        t = np.where(k2 > 1e-12, (-k1 - np.sqrt(h)) / k2, np.inf)
        y = baoa + t * bard  # position of the hit along the axis, times |ba|²
        body = (h >= 0) & (y > 0) & (y < baba) & (t > 0)
        cap = np.where(y <= 0, 0.0, 1.0)[:, None] * ba + a  # the end sphere the ray may hit instead
        along = np.einsum("ij,ij->i", rays, -cap)
        disc = along**2 - (np.einsum("ij,ij->i", cap, cap) - radius**2)
        t_cap = -along - np.sqrt(disc)
    t = np.where(body, t, np.where((disc >= 0) & (t_cap > 0), t_cap, np.inf))
    point = rays * np.where(np.isfinite(t), t, 0)[:, None]
    s = np.clip((point - a) @ ba / max(baba, 1e-12), 0, 1)
    return t, (point - a - s[:, None] * ba) / radius


def _pixel_box(camera: CameraModel, part: _Part) -> tuple[slice, slice]:
    """Rows and columns that can show a part (camera frame): its end points' projections, padded."""
    ends = np.stack([part.a, part.b])
    if ends[:, 2].min() <= part.radius:  # reaches behind the image plane: test every pixel
        return slice(None), slice(None)
    uv, _ = camera.project_points(ends)
    pad = float(camera.K[0, 0]) * part.radius / (ends[:, 2].min() - part.radius) + 2
    u0, v0 = np.floor(uv.min(0) - pad).astype(int)
    u1, v1 = np.ceil(uv.max(0) + pad).astype(int)
    return slice(max(v0, 0), max(v1 + 1, 0)), slice(max(u0, 0), max(u1 + 1, 0))


def _render_frame(camera: CameraModel, T_world_camera: np.ndarray, parts: list[_Part]) -> np.ndarray:
    """One RGB image (H, W, 3) float: backdrop, table, then every part, nearest surface wins."""
    rays = camera.pixel_rays()
    R, origin = T_world_camera[:3, :3], T_world_camera[:3, 3]
    rays_world = rays @ R.T
    colour = np.array([160, 162, 166.0]) + 30 * rays_world[..., 2:3]  # backdrop, lighter upwards
    with np.errstate(divide="ignore", invalid="ignore"):
        depth = -origin[2] / rays_world[..., 2]  # table plane z = 0
    point = origin + rays_world * np.where(np.isfinite(depth), depth, 0)[..., None]
    on_table = (depth > 0) & (np.abs(point[..., 0]) < TABLE_HALF_EXTENT[0])
    on_table &= np.abs(point[..., 1]) < TABLE_HALF_EXTENT[1]
    checker = (np.floor(point[..., 0] / 0.1) + np.floor(point[..., 1] / 0.1)) % 2
    colour[on_table] = (np.array([160, 132, 104.0]) + 8 * checker[..., None])[on_table]
    depth = np.where(on_table, depth, np.inf)
    light = R.T @ LIGHT_DIRECTION
    for part in parts:
        local = _Part(R.T @ (part.a - origin), R.T @ (part.b - origin), part.radius, part.colour)
        rows, cols = _pixel_box(camera, local)
        box = rays[rows, cols]
        t, normal = _capsule_distance(box.reshape(-1, 3), local.a, local.b, local.radius)
        t = t.reshape(box.shape[:2])
        nearer = t < depth[rows, cols]
        shade = 0.45 + 0.55 * np.clip(normal @ light, 0, 1).reshape(t.shape)
        colour[rows, cols][nearer] = (part.colour * shade[..., None])[nearer]
        depth[rows, cols][nearer] = t[nearer]
    return colour


def _render_camera(
    rng: np.random.Generator, camera: CameraModel, T_world_camera: np.ndarray, scenes: list[list[_Part]]
) -> np.ndarray:
    out = np.empty((len(scenes), camera.height, camera.width, 3), np.uint8)
    for t, parts in enumerate(scenes):
        image = _render_frame(camera, T_world_camera[t], parts)
        image = cv2.GaussianBlur(image, (0, 0), OPTICS_BLUR_PX)  # a real lens is not infinitely sharp
        out[t] = np.clip(image + rng.normal(0, SENSOR_NOISE, image.shape), 0, 255).astype(np.uint8)
    return out


# ------------------------------------------------------------------------------ episodes
def demo_episode(
    index: int, *, frames: int = 48, size: int = 128, fps: float = 10.0, seed: int = 0
) -> Episode:
    """Demo episode `index`: the arm picks up the ball and sets it down, seen by every demo camera."""
    rng = np.random.default_rng([seed, index])
    manifest = demo_manifest(size, fps)
    kinematics = load_kinematics(manifest.robot)
    ball_start = np.array([rng.uniform(0.42, 0.6), rng.uniform(-0.2, 0.2), BALL_RADIUS])
    joints, grasp, release = _joint_trajectory(rng, kinematics, ball_start, frames)
    gripper = np.ones(frames, np.float32)
    gripper[grasp:release] = 0.0
    q = joints.astype(np.float64)
    joint_frames, hand = kinematics.joint_frames(q), kinematics.link_pose(q, WRIST_MOUNT)
    tcp = kinematics.ee_pose(q)[:, :3, 3]
    ball = np.repeat(ball_start[None], frames, axis=0)
    ball[grasp:release] = tcp[grasp:release]  # held between the fingers while the gripper is closed
    ball[release:] = tcp[release] * (1, 1, 0) + (0, 0, BALL_RADIUS)  # let go: it drops onto the table
    scenes = [_arm_parts(joint_frames[t], hand[t], gripper[t], ball[t]) for t in range(frames)]
    action = np.concatenate([np.roll(joints, -1, axis=0), np.roll(gripper, -1)[:, None]], axis=1)
    action[-1] = action[max(frames - 2, 0)]
    wrist = hand @ T_HAND_WRIST_CAMERA
    arrays = {
        "timestamps": np.arange(frames, dtype=np.float64) / fps,
        "robot/joint_positions": joints,
        "robot/gripper_open": gripper,
        "action/joint_positions": action.astype(np.float32),
        "cameras/wrist/extrinsics": wrist,
    }
    for cam in manifest.cameras:
        poses = (
            wrist if cam.name == "wrist" else np.repeat(np.asarray(cam.T_world_camera)[None], frames, axis=0)
        )
        arrays[f"cameras/{cam.name}/rgb"] = _render_camera(
            rng, CameraModel.from_calibration(cam), poses, scenes
        )
    return Episode(meta=demo_meta(index, frames=frames, seed=seed), arrays=arrays)


def demo_meta(index: int, *, frames: int = 48, seed: int = 0) -> EpisodeMeta:
    """The metadata `demo_episode` records for episode `index`."""
    return EpisodeMeta(
        episode_id=f"episode{index}",
        task=DEMO_TASK.name,
        instruction=DEMO_TASK.instructions[index % len(DEMO_TASK.instructions)],
        success=True,
        length=frames,
        variation=0,
        seed=seed,
        source=EpisodeSource(format="demo", path="genima_data.demo", index=index),
    )


def build_demo(
    path: str | Path, *, episodes: int = 4, frames: int = 48, size: int = 128, seed: int = 0
) -> Dataset:
    """Write the demo dataset to `path` (``.zarr`` → zarr, otherwise HDF5) and return it, committed."""
    ds = create_dataset(path, demo_manifest(size))
    for i in range(episodes):
        if ds.has_episode(f"episode{i}"):  # resumed: kept only if it is the episode asked for
            ds.require_same_episode(demo_meta(i, frames=frames, seed=seed))
        else:
            ds.write_episode(demo_episode(i, frames=frames, size=size, seed=seed))
    ds.commit()
    return ds

"""TEMPORARY test-only stand-in for the geometry branch's contract API (contracts.md sections 1-2).

Installed by tests/conftest.py only while genima_data.geometry lacks CameraModel / kinematics; delete
this file (and the conftest block) once branch `geometry` lands on main. Pinhole cameras without
distortion and the Panda's modified-DH forward kinematics are all the render tests need.
"""

from __future__ import annotations

import sys
import types
from dataclasses import dataclass, field

import numpy as np

from genima_data.errors import GenimaDataError
from genima_data.schema import Distortion


class GeometryError(GenimaDataError):
    pass


@dataclass(frozen=True, eq=False)
class CameraModel:
    K: np.ndarray
    distortion: Distortion
    width: int
    height: int
    _cache: dict = field(default_factory=dict, repr=False)

    @classmethod
    def from_calibration(cls, cal) -> CameraModel:
        return cls(np.asarray(cal.K, np.float64), cal.distortion, cal.width, cal.height)

    def project_points(self, points_camera):
        p = np.asarray(points_camera, np.float64).reshape(-1, 3)
        front = p[:, 2] > 0
        uv = np.full((len(p), 2), np.nan)
        x = p[front, :2] / p[front, 2:3]
        uv[front, 0] = self.K[0, 0] * x[:, 0] + self.K[0, 1] * x[:, 1] + self.K[0, 2]
        uv[front, 1] = self.K[1, 1] * x[:, 1] + self.K[1, 2]
        return uv, front

    def unproject(self, uv, depth=None):
        uv = np.asarray(uv, np.float64).reshape(-1, 2)
        y = (uv[:, 1] - self.K[1, 2]) / self.K[1, 1]
        x = (uv[:, 0] - self.K[0, 2] - self.K[0, 1] * y) / self.K[0, 0]
        rays = np.stack([x, y, np.ones_like(x)], axis=1)
        if depth is not None:
            return rays * np.asarray(depth, np.float64)[:, None]
        return rays / np.linalg.norm(rays, axis=1, keepdims=True)

    def pixel_rays(self):
        if "rays" not in self._cache:
            vv, uu = np.mgrid[0 : self.height, 0 : self.width].astype(np.float64)
            uv = np.stack([uu, vv], -1).reshape(-1, 2)
            self._cache["rays"] = self.unproject(uv).reshape(self.height, self.width, 3)
        return self._cache["rays"]


def invert_transform(T):
    T = np.asarray(T, np.float64)
    out = np.zeros_like(T)
    R = np.swapaxes(T[..., :3, :3], -1, -2)
    out[..., :3, :3] = R
    out[..., :3, 3] = -(R @ T[..., :3, 3, None])[..., 0]
    out[..., 3, 3] = 1
    return out


def transform_points(T, points):
    T, points = np.asarray(T), np.asarray(points)
    return points @ np.swapaxes(T[..., :3, :3], -1, -2) + T[..., None, :3, 3]


PANDA_A = [0, 0, 0, 0.0825, -0.0825, 0, 0.088]
PANDA_D = [0.333, 0, 0.316, 0, 0.384, 0, 0]
PANDA_ALPHA = [0, -np.pi / 2, np.pi / 2, np.pi / 2, -np.pi / 2, np.pi / 2, np.pi / 2]


def _rot_x(a):
    c, s = np.cos(a), np.sin(a)
    return np.array([[1, 0, 0, 0], [0, c, -s, 0], [0, s, c, 0], [0, 0, 0, 1.0]])


def _trans(x=0.0, z=0.0):
    T = np.eye(4)
    T[0, 3], T[2, 3] = x, z
    return T


def _rot_z(q):
    q = np.asarray(q, np.float64)
    c, s = np.cos(q), np.sin(q)
    T = np.zeros((*q.shape, 4, 4))
    T[..., 0, 0], T[..., 0, 1], T[..., 1, 0], T[..., 1, 1] = c, -s, s, c
    T[..., 2, 2] = T[..., 3, 3] = 1
    return T


class Kinematics:
    dof = 7

    def __init__(self, T_world_base):
        self.link_names = [*(f"panda_link{i}" for i in range(1, 8)), "panda_hand", "panda_grasptarget"]
        self.T_world_base = np.asarray(T_world_base, np.float64)

    def _chain(self, q):
        q = np.asarray(q, np.float64)
        T = np.broadcast_to(self.T_world_base, (len(q), 4, 4)).copy()
        frames = []
        for j in range(7):
            T = T @ (_rot_x(PANDA_ALPHA[j]) @ _trans(x=PANDA_A[j])) @ _rot_z(q[:, j]) @ _trans(z=PANDA_D[j])
            frames.append(T)
        hand = T @ _trans(z=0.107) @ _rot_z(-np.pi / 4)
        return np.stack(frames, axis=1), hand, hand @ _trans(z=0.1034)

    def joint_frames(self, q):
        return self._chain(q)[0]

    def ee_pose(self, q):
        return self._chain(q)[2]

    def link_pose(self, q, link):
        frames, hand, tcp = self._chain(q)
        if link == "panda_hand":
            return hand
        if link == "panda_grasptarget":
            return tcp
        return frames[:, self.link_names.index(link)]


def load_kinematics(robot, root=None):
    if robot.model != "franka_panda":
        raise GeometryError(f"unknown robot model '{robot.model}'", field="robot.model")
    return Kinematics(robot.T_world_base)


def link_poses_or_fk(manifest, episode, kinematics=None):
    if "robot/link_poses" in episode and "robot/ee_pose" in episode:
        return episode.load("robot/link_poses"), episode.load("robot/ee_pose")
    if kinematics is None:
        raise GeometryError("no recorded link poses and no kinematics", episode=episode.episode_id)
    q = episode.load("robot/joint_positions")
    return kinematics.joint_frames(q), kinematics.ee_pose(q)


def camera_poses(manifest, episode, camera, kinematics=None):
    cal = manifest.camera(camera)
    if cal.T_world_camera is not None:
        return np.repeat(np.asarray(cal.T_world_camera, np.float64)[None], episode.length, axis=0)
    if f"cameras/{camera}/extrinsics" in episode:
        return episode.load(f"cameras/{camera}/extrinsics")
    if kinematics is not None and cal.T_link_camera is not None:
        q = episode.load("robot/joint_positions")
        return kinematics.link_pose(q, cal.mount) @ np.asarray(cal.T_link_camera)
    raise GeometryError(f"no pose for camera '{camera}'", episode=episode.episode_id)


def install() -> None:
    """Add the contract names to genima_data.geometry.camera and create geometry.kinematics."""
    import genima_data.geometry as geometry
    import genima_data.geometry.camera as camera

    for name in ("CameraModel", "camera_poses", "transform_points", "invert_transform"):
        setattr(camera, name, globals()[name])
    kin = types.ModuleType("genima_data.geometry.kinematics")
    for name in ("Kinematics", "load_kinematics", "link_poses_or_fk", "GeometryError"):
        setattr(kin, name, globals()[name])
    sys.modules["genima_data.geometry.kinematics"] = kin
    geometry.kinematics = kin

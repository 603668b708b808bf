"""Rigid transforms, batched: 4x4 matrices, point transforms, quaternions (x, y, z, w) and 7-vector poses.

Every function takes leading batch dimensions (``(..., 4, 4)``) and works in float64. Quaternions are
scalar-last ``[qx, qy, qz, qw]`` and 7-vector poses are ``[x, y, z, qx, qy, qz, qw]`` (DESIGN.md).
"""

from __future__ import annotations

import numpy as np

from genima_data.errors import GeometryError

QUATERNION_NORM_MIN = 1e-9  # below this a quaternion has no direction to normalise to


def make_transform(R: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Homogeneous transforms ``(..., 4, 4)`` from rotations ``(..., 3, 3)`` and translations ``(..., 3)``."""
    R = np.asarray(R, dtype=np.float64)
    t = np.asarray(t, dtype=np.float64)
    batch = np.broadcast_shapes(R.shape[:-2], t.shape[:-1])
    T = np.zeros((*batch, 4, 4))
    T[..., :3, :3] = R
    T[..., :3, 3] = t
    T[..., 3, 3] = 1.0
    return T


def transform_points(T: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply transforms ``T (..., 4, 4)`` to points ``(..., N, 3)``; batch dimensions broadcast."""
    T = np.asarray(T, dtype=np.float64)
    points = np.asarray(points, dtype=np.float64)
    return points @ np.swapaxes(T[..., :3, :3], -1, -2) + T[..., None, :3, 3]


def invert_transform(T: np.ndarray) -> np.ndarray:
    """Inverse of rigid transforms ``(..., 4, 4)`` (camera-to-world ↔ world-to-camera)."""
    T = np.asarray(T, dtype=np.float64)
    R_inv = np.swapaxes(T[..., :3, :3], -1, -2)
    return make_transform(R_inv, -(R_inv @ T[..., :3, 3:4])[..., 0])


def rotation_about_axis(axis: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """Rotations ``(..., 3, 3)`` by ``angle (...)`` radians about a unit ``axis (3,)`` (Rodrigues)."""
    x, y, z = np.asarray(axis, dtype=np.float64) / np.linalg.norm(axis)
    angle = np.asarray(angle, dtype=np.float64)
    c, s = np.cos(angle), np.sin(angle)
    C = 1.0 - c
    R = np.empty((*angle.shape, 3, 3))
    R[..., 0, 0] = c + x * x * C
    R[..., 0, 1] = x * y * C - z * s
    R[..., 0, 2] = x * z * C + y * s
    R[..., 1, 0] = y * x * C + z * s
    R[..., 1, 1] = c + y * y * C
    R[..., 1, 2] = y * z * C - x * s
    R[..., 2, 0] = z * x * C - y * s
    R[..., 2, 1] = z * y * C + x * s
    R[..., 2, 2] = c + z * z * C
    return R


def quaternion_to_rotation(quaternion: np.ndarray) -> np.ndarray:
    """Rotations ``(..., 3, 3)`` from quaternions ``(..., 4)`` x, y, z, w (normalised first)."""
    q = np.asarray(quaternion, dtype=np.float64)
    norm = np.linalg.norm(q, axis=-1, keepdims=True)
    if np.any(~(norm > QUATERNION_NORM_MIN)):
        raise GeometryError("quaternion has zero or non-finite norm", field="quaternion")
    x, y, z, w = np.moveaxis(q / norm, -1, 0)
    R = np.empty((*q.shape[:-1], 3, 3))
    R[..., 0, 0] = 1 - 2 * (y * y + z * z)
    R[..., 0, 1] = 2 * (x * y - z * w)
    R[..., 0, 2] = 2 * (x * z + y * w)
    R[..., 1, 0] = 2 * (x * y + z * w)
    R[..., 1, 1] = 1 - 2 * (x * x + z * z)
    R[..., 1, 2] = 2 * (y * z - x * w)
    R[..., 2, 0] = 2 * (x * z - y * w)
    R[..., 2, 1] = 2 * (y * z + x * w)
    R[..., 2, 2] = 1 - 2 * (x * x + y * y)
    return R


def rotation_to_quaternion(R: np.ndarray) -> np.ndarray:
    """Unit quaternions ``(..., 4)`` x, y, z, w with w >= 0 from rotations ``(..., 3, 3)``.

    Each row of the symmetric matrix below is proportional to (w, x, y, z); taking the row with the
    largest diagonal entry (Shepperd's method) keeps every rotation accurate, 180° turns included.
    """
    R = np.asarray(R, dtype=np.float64)
    r = {(i, j): R[..., i, j] for i in range(3) for j in range(3)}
    rows = [
        [1 + r[0, 0] + r[1, 1] + r[2, 2], r[2, 1] - r[1, 2], r[0, 2] - r[2, 0], r[1, 0] - r[0, 1]],
        [r[2, 1] - r[1, 2], 1 + r[0, 0] - r[1, 1] - r[2, 2], r[0, 1] + r[1, 0], r[0, 2] + r[2, 0]],
        [r[0, 2] - r[2, 0], r[0, 1] + r[1, 0], 1 - r[0, 0] + r[1, 1] - r[2, 2], r[1, 2] + r[2, 1]],
        [r[1, 0] - r[0, 1], r[0, 2] + r[2, 0], r[1, 2] + r[2, 1], 1 - r[0, 0] - r[1, 1] + r[2, 2]],
    ]
    M = np.stack([np.stack(row, axis=-1) for row in rows], axis=-2)  # (..., 4, 4)
    best = np.argmax(np.diagonal(M, axis1=-2, axis2=-1), axis=-1)
    wxyz = np.take_along_axis(M, best[..., None, None], axis=-2)[..., 0, :]
    wxyz /= np.linalg.norm(wxyz, axis=-1, keepdims=True)
    wxyz *= np.where(wxyz[..., :1] < 0, -1.0, 1.0)  # one of the two equivalent signs: round trips are exact
    return np.concatenate([wxyz[..., 1:], wxyz[..., :1]], axis=-1)


def pose_to_matrix(pose: np.ndarray) -> np.ndarray:
    """4x4 transforms ``(..., 4, 4)`` from 7-vector poses ``(..., 7)`` [x, y, z, qx, qy, qz, qw]."""
    pose = np.asarray(pose, dtype=np.float64)
    if pose.shape[-1:] != (7,):
        raise GeometryError(f"a pose is [x, y, z, qx, qy, qz, qw], got shape {pose.shape}", field="pose")
    return make_transform(quaternion_to_rotation(pose[..., 3:]), pose[..., :3])


def matrix_to_pose(T: np.ndarray) -> np.ndarray:
    """7-vector poses ``(..., 7)`` [x, y, z, qx, qy, qz, qw] (qw >= 0) from transforms ``(..., 4, 4)``."""
    T = np.asarray(T, dtype=np.float64)
    return np.concatenate([T[..., :3, 3], rotation_to_quaternion(T[..., :3, :3])], axis=-1)


def rotation_angle(R: np.ndarray) -> np.ndarray:
    """Rotation angle in radians ``(...)`` of rotations ``(..., 3, 3)``, in [0, π]."""
    R = np.asarray(R, dtype=np.float64)
    cos = (np.trace(R, axis1=-2, axis2=-1) - 1.0) / 2.0
    return np.arccos(np.clip(cos, -1.0, 1.0))

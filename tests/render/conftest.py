"""Fixtures for the render tests: pinhole cameras built from K directly."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest

from genima_data.schema import Distortion


@dataclass(frozen=True, eq=False)
class PinholeCamera:
    """Temporary stand-in for geometry.camera.CameraModel (distortion-free) until it lands on main."""

    K: np.ndarray
    width: int
    height: int
    distortion: Distortion = field(default_factory=lambda: Distortion(model="none"))

    def pixel_rays(self) -> np.ndarray:
        vv, uu = np.mgrid[0 : self.height, 0 : self.width].astype(np.float64)
        return self.unproject(np.stack([uu, vv], -1).reshape(-1, 2)).reshape(self.height, self.width, 3)

    def unproject(self, uv, depth=None):
        uv = np.asarray(uv, np.float64)
        xy = (uv - self.K[:2, 2]) / np.diag(self.K)[:2]
        rays = np.concatenate([xy, np.ones((len(uv), 1))], axis=1)
        if depth is not None:
            return rays * np.asarray(depth)[:, None]
        return rays / np.linalg.norm(rays, axis=1, keepdims=True)

    def project_points(self, points):
        p = np.asarray(points, np.float64)
        front = p[:, 2] > 0
        uv = np.full((len(p), 2), np.nan)
        uv[front] = (p[front, :2] / p[front, 2:3]) * np.diag(self.K)[:2] + self.K[:2, 2]
        return uv, front


def pinhole(size: int = 64, fov_deg: float = 60.0, width: int | None = None) -> PinholeCamera:
    width = width or size
    f = width / (2 * np.tan(np.deg2rad(fov_deg) / 2))
    K = np.array([[f, 0, (width - 1) / 2], [0, f, (size - 1) / 2], [0, 0, 1.0]])
    return PinholeCamera(K=K, width=width, height=size)


@pytest.fixture
def camera() -> PinholeCamera:
    return pinhole(64)

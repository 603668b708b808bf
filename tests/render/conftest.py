"""Fixtures for the render tests: cameras built from K (and a lens) directly."""

from __future__ import annotations

import numpy as np
import pytest

from genima_data.geometry.camera import CameraModel
from genima_data.schema import Distortion


def pinhole(size: int = 64, fov_deg: float = 60.0, width: int | None = None, distortion=None) -> CameraModel:
    """A camera of `width` x `size` pixels with a horizontal field of view of `fov_deg`."""
    width = width or size
    f = width / (2 * np.tan(np.deg2rad(fov_deg) / 2))
    K = np.array([[f, 0, (width - 1) / 2], [0, f, (size - 1) / 2], [0, 0, 1.0]])
    return CameraModel(K=K, distortion=distortion or Distortion(model="none"), width=width, height=size)


@pytest.fixture
def camera() -> CameraModel:
    return pinhole(64)

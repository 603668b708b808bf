"""Camera models and conventions.

Internally every camera is OpenCV: x right, y down, z forward, pixel centres at integer coordinates,
positive focal lengths, pose stored as ``T_world_camera`` (camera-to-world).
"""

from __future__ import annotations

import numpy as np

# RLBench/CoppeliaSim camera axes (x to the image's left, y up, z forward) -> OpenCV axes
RLBENCH_TO_OPENCV_AXES = np.diag([-1.0, -1.0, 1.0, 1.0])
RLBENCH_PIXEL_CENTRE_OFFSET = 0.5  # CoppeliaSim puts pixel centres at +0.5, OpenCV at integers


def rlbench_camera_to_opencv(
    K_rlbench: np.ndarray, T_world_camera_rlbench: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Convert RLBench's ``<cam>_camera_intrinsics`` / ``_extrinsics`` to OpenCV ``K`` and ``T_world_camera``.

    RLBench stores negative focal lengths and a camera frame with +x to the image's left and +y up;
    flipping x and y of the camera frame makes the focal lengths positive, and the principal point moves
    by -0.5 px for OpenCV's pixel-centre convention.
    """
    K_rlbench = np.asarray(K_rlbench, dtype=np.float64)
    K = np.array(
        [
            [-K_rlbench[0, 0], K_rlbench[0, 1], K_rlbench[0, 2] - RLBENCH_PIXEL_CENTRE_OFFSET],
            [0.0, -K_rlbench[1, 1], K_rlbench[1, 2] - RLBENCH_PIXEL_CENTRE_OFFSET],
            [0.0, 0.0, 1.0],
        ]
    )
    T_world_camera = np.asarray(T_world_camera_rlbench, dtype=np.float64) @ RLBENCH_TO_OPENCV_AXES
    return K, T_world_camera


def opencv_camera_to_rlbench(K: np.ndarray, T_world_camera: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of `rlbench_camera_to_opencv` (for writing RLBench-layout datasets)."""
    K = np.asarray(K, dtype=np.float64)
    K_rlbench = np.array(
        [
            [-K[0, 0], K[0, 1], K[0, 2] + RLBENCH_PIXEL_CENTRE_OFFSET],
            [0.0, -K[1, 1], K[1, 2] + RLBENCH_PIXEL_CENTRE_OFFSET],
            [0.0, 0.0, 1.0],
        ]
    )
    return K_rlbench, np.asarray(T_world_camera, dtype=np.float64) @ RLBENCH_TO_OPENCV_AXES

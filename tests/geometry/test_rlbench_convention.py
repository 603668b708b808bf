import numpy as np

from genima_data.geometry.camera import opencv_camera_to_rlbench, rlbench_camera_to_opencv

# front camera of RLBench's reach_target (shared sample, variation0/episode0), as RLBench stores it
K_RLBENCH = np.array([[-175.8385604, 0.0, 64.0], [0.0, -175.8385604, 64.0], [0.0, 0.0, 1.0]])
T_RLBENCH = np.array(
    [
        [1.19209290e-07, -4.22617942e-01, -9.06307936e-01, 1.34999919e00],
        [-1.00000000e00, -5.96046448e-07, 1.49011612e-07, 3.71546562e-08],
        [-5.66244125e-07, 9.06307936e-01, -4.22617912e-01, 1.57999933e00],
        [0.0, 0.0, 0.0, 1.0],
    ]
)


def rlbench_project(points, K, T):
    """RLBench's own projection: camera-to-world extrinsics, negative focal lengths, centres at +0.5."""
    pc = (points - T[:3, 3]) @ T[:3, :3]
    return np.stack(
        [K[0, 0] * pc[:, 0] / pc[:, 2] + K[0, 2], K[1, 1] * pc[:, 1] / pc[:, 2] + K[1, 2]], axis=1
    )


def test_rlbench_calibration_becomes_opencv_with_identical_pixels_minus_half():
    K, T = rlbench_camera_to_opencv(K_RLBENCH, T_RLBENCH)
    assert K[0, 0] > 0 and K[1, 1] > 0
    assert np.isclose(np.linalg.det(T[:3, :3]), 1.0)
    points = np.array([[0.3, 0.0, 0.9], [0.1, 0.2, 0.8], [0.5, -0.2, 1.1]])
    pc = (points - T[:3, 3]) @ T[:3, :3]
    assert (pc[:, 2] > 0).all()  # OpenCV z points forward, into the scene
    uv = (pc[:, :2] / pc[:, 2:]) @ K[:2, :2].T + K[:2, 2]
    assert np.allclose(uv, rlbench_project(points, K_RLBENCH, T_RLBENCH) - 0.5)


def test_conversion_round_trips():
    K, T = rlbench_camera_to_opencv(K_RLBENCH, T_RLBENCH)
    K_back, T_back = opencv_camera_to_rlbench(K, T)
    assert np.allclose(K_back, K_RLBENCH) and np.allclose(T_back, T_RLBENCH)

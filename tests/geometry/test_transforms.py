import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from genima_data.errors import GeometryError
from genima_data.geometry.transforms import (
    invert_transform,
    make_transform,
    matrix_to_pose,
    pose_to_matrix,
    quaternion_to_rotation,
    rotation_about_axis,
    rotation_angle,
    rotation_to_quaternion,
    transform_points,
)

finite = st.floats(-10, 10, allow_nan=False, allow_infinity=False)
quaternions = arrays(np.float64, 4, elements=st.floats(-1, 1)).filter(lambda q: np.linalg.norm(q) > 0.1)
translations = arrays(np.float64, 3, elements=finite)


@st.composite
def rigid_transforms(draw) -> np.ndarray:
    return make_transform(quaternion_to_rotation(draw(quaternions)), draw(translations))


@settings(max_examples=200, deadline=None)
@given(rigid_transforms())
def test_transform_composed_with_its_inverse_is_identity(T):
    assert np.allclose(T @ invert_transform(T), np.eye(4), atol=1e-12)
    assert np.allclose(invert_transform(T) @ T, np.eye(4), atol=1e-12)


@settings(max_examples=200, deadline=None)
@given(quaternions, translations)
def test_pose_vector_round_trips_through_matrix(q, t):
    pose = np.concatenate([t, q / np.linalg.norm(q)])
    back = matrix_to_pose(pose_to_matrix(pose))
    assert np.allclose(back[:3], t, atol=1e-12)
    # q and -q are the same rotation; the canonical form has qw >= 0
    assert np.allclose(back[3:], pose[3:], atol=1e-9) or np.allclose(back[3:], -pose[3:], atol=1e-9)
    assert back[6] >= 0


@settings(max_examples=200, deadline=None)
@given(rigid_transforms())
def test_matrix_round_trips_through_pose_vector(T):
    assert np.allclose(pose_to_matrix(matrix_to_pose(T)), T, atol=1e-12)


def test_half_turns_keep_their_rotation_axis():
    # the trace-based formula divides by ~0 here; Shepperd's method must not
    for axis in np.eye(3):
        R = rotation_about_axis(axis, np.pi)
        q = rotation_to_quaternion(R)
        assert np.allclose(np.abs(q[:3]), axis) and abs(q[3]) < 1e-12
        assert np.allclose(quaternion_to_rotation(q), R, atol=1e-12)


def test_quaternions_are_scalar_last():
    q_90_about_z = np.array([0.0, 0.0, np.sin(np.pi / 4), np.cos(np.pi / 4)])
    assert np.allclose(quaternion_to_rotation(q_90_about_z), [[0, -1, 0], [1, 0, 0], [0, 0, 1]], atol=1e-12)


def test_transform_points_broadcasts_over_frames():
    rng = np.random.default_rng(0)
    T = make_transform(quaternion_to_rotation(rng.normal(size=(5, 4))), rng.normal(size=(5, 3)))
    points = rng.normal(size=(5, 7, 3))
    out = transform_points(T, points)
    assert out.shape == (5, 7, 3)
    for i in range(5):
        expected = (T[i] @ np.c_[points[i], np.ones(7)].T).T[:, :3]
        assert np.allclose(out[i], expected)
    # one transform for many points
    assert np.allclose(transform_points(T[0], points[0]), out[0])


def test_zero_quaternion_is_a_geometry_error_not_nan():
    with pytest.raises(GeometryError, match="zero or non-finite norm"):
        pose_to_matrix([0.1, 0.2, 0.3, 0.0, 0.0, 0.0, 0.0])


def test_pose_with_wrong_length_is_rejected():
    with pytest.raises(GeometryError, match=r"\[x, y, z, qx, qy, qz, qw\]"):
        pose_to_matrix(np.zeros(6))


def test_rotation_angle_of_known_rotations():
    angles = np.array([0.0, 0.3, np.pi / 2, np.pi])
    assert np.allclose(rotation_angle(rotation_about_axis([1.0, 2.0, 3.0], angles)), angles)

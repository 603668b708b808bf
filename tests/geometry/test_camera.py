import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from genima_data.demo import look_at
from genima_data.episode import Episode
from genima_data.errors import GeometryError
from genima_data.geometry.camera import (
    CameraModel,
    camera_poses,
    depth_to_point_cloud,
    opencv_camera_to_opengl,
    opengl_camera_to_opencv,
    opengl_projection_matrix,
)
from genima_data.geometry.kinematics import franka_panda_kinematics
from genima_data.geometry.transforms import invert_transform, transform_points
from genima_data.schema import Camera, Distortion

K = np.array([[110.0, 0.0, 63.5], [0.0, 115.0, 60.0], [0.0, 0.0, 1.0]])
WIDTH, HEIGHT = 128, 120
LENSES = {
    "none": Distortion(model="none"),
    "plumb_bob_4": Distortion(model="opencv", coeffs=[-0.28, 0.09, 0.001, -0.0015]),
    "plumb_bob_5": Distortion(model="opencv", coeffs=[-0.3, 0.1, 0.001, -0.002, -0.02]),
    "rational_8": Distortion(model="opencv", coeffs=[0.1, 0.05, 0.001, 0.001, 0.0, 0.2, 0.01, 0.001]),
    "thin_prism_12": Distortion(
        model="opencv", coeffs=[-0.2, 0.05, 0.001, 0.001, 0, 0, 0, 0, 0.001, 0.002, 0.001, 0.001]
    ),
    "tilted_14": Distortion(
        model="opencv",
        coeffs=[-0.2, 0.05, 0.001, 0.001, 0, 0, 0, 0, 0.001, 0.002, 0.001, 0.001, 0.01, -0.02],
    ),
    "fisheye": Distortion(model="fisheye", coeffs=[0.1, -0.05, 0.01, -0.002]),
    "fisheye_zero": Distortion(model="fisheye", coeffs=[0.0, 0.0, 0.0, 0.0]),  # still equidistant
}
EXTREME = Distortion(model="opencv", coeffs=[-0.9, 0.0, 0.0, 0.0, 0.0])  # barrel that folds at ~31°


def camera(lens: str | Distortion = "none", K_=K) -> CameraModel:
    d = LENSES[lens] if isinstance(lens, str) else lens
    return CameraModel(K=K_, distortion=d, width=WIDTH, height=HEIGHT)


def opencv_project(points: np.ndarray, d: Distortion) -> np.ndarray:
    coeffs = np.asarray(d.coeffs, dtype=np.float64)
    if d.model == "fisheye":
        uv, _ = cv2.fisheye.projectPoints(points.reshape(-1, 1, 3), np.zeros(3), np.zeros(3), K, coeffs)
    else:
        uv, _ = cv2.projectPoints(points, np.zeros(3), np.zeros(3), K, coeffs)
    return uv.reshape(-1, 2)


def points_in_view(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    z = rng.uniform(0.3, 3.0, n)
    return np.stack([rng.uniform(-0.5, 0.5, n) * z, rng.uniform(-0.5, 0.5, n) * z, z], axis=1)


# ---------------------------------------------------------------------- projection against OpenCV
@pytest.mark.parametrize("lens", LENSES)
def test_projection_matches_opencv(lens):
    points = points_in_view(500)
    uv, in_front = camera(lens).project_points(points)
    assert in_front.all()
    assert np.allclose(uv, opencv_project(points, LENSES[lens]), atol=1e-9)


@pytest.mark.parametrize("lens", LENSES)
def test_unprojection_matches_opencv_undistort_points(lens):
    d = LENSES[lens]
    uv = np.stack(np.meshgrid(np.arange(0, WIDTH, 7.0), np.arange(0, HEIGHT, 7.0)), -1).reshape(-1, 2)
    rays = camera(lens).unproject(uv)
    criteria = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 200, 1e-15)
    undistort = cv2.fisheye.undistortPoints if d.model == "fisheye" else cv2.undistortPoints
    xy = undistort(uv.reshape(-1, 1, 2), K, np.asarray(d.coeffs, float), criteria=criteria).reshape(-1, 2)
    assert np.allclose(rays[:, :2] / rays[:, 2:], xy, atol=1e-9)
    assert np.allclose(np.linalg.norm(rays, axis=1), 1.0)


@pytest.mark.parametrize("lens", [name for name in LENSES if name != "none"])
def test_projection_agrees_with_opencv_undistortion_maps(lens):
    # initUndistortRectifyMap gives, for each pinhole pixel, where that ray lands in the distorted image
    d = LENSES[lens]
    coeffs = np.asarray(d.coeffs, dtype=np.float64)
    init = cv2.fisheye.initUndistortRectifyMap if d.model == "fisheye" else cv2.initUndistortRectifyMap
    map_x, map_y = init(K, coeffs, np.eye(3), K, (WIDTH, HEIGHT), cv2.CV_32FC1)
    v, u = np.mgrid[0:HEIGHT, 0:WIDTH]
    rays = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones(u.shape)], -1).reshape(-1, 3)
    uv, _ = camera(lens).project_points(rays)
    assert np.allclose(uv, np.stack([map_x.ravel(), map_y.ravel()], 1), atol=2e-3)  # maps are float32


def test_fisheye_with_zero_coefficients_is_not_projected_as_a_pinhole():
    # Kalibr's `equidistant` with zero coefficients: r = θ, ~70 px away from the pinhole at 45° here
    K_wide = np.array([[300.0, 0.0, 320.0], [0.0, 300.0, 240.0], [0.0, 0.0, 1.0]])
    cam = CameraModel(K=K_wide, distortion=LENSES["fisheye_zero"], width=640, height=480)
    points = np.array([[0.5, 0.3, 1.0], [1.0, 0.0, 1.0]])
    expected, _ = cv2.fisheye.projectPoints(
        points.reshape(-1, 1, 3), np.zeros(3), np.zeros(3), K_wide, np.zeros(4)
    )
    uv, _ = cam.project_points(points)
    assert cam.has_distortion
    assert np.allclose(uv, expected.reshape(-1, 2), atol=1e-9)
    rays = cam.unproject(expected.reshape(-1, 2))
    assert np.allclose(rays, points / np.linalg.norm(points, axis=1, keepdims=True), atol=1e-9)


def test_skew_is_applied_although_opencv_ignores_it():
    K_skew = K.copy()
    K_skew[0, 1] = 4.0
    points = points_in_view(50)
    uv, _ = camera("none", K_skew).project_points(points)
    expected = (points @ K_skew.T)[:, :2] / points[:, 2:]
    assert np.allclose(uv, expected)
    assert np.allclose(camera("none", K_skew).unproject(uv, points[:, 2]), points)


# ---------------------------------------------------------------------- round trips (hypothesis)
@st.composite
def points_inside_valid_region(draw, cam: CameraModel):
    # directions up to 95% of the valid off-axis angle, any depth
    angle = draw(st.floats(0.0, 0.95 * min(cam.valid_angle, np.deg2rad(80))))
    azimuth = draw(st.floats(0.0, 2 * np.pi))
    depth = draw(st.floats(0.05, 20.0))
    r = np.tan(angle)
    return np.array([r * np.cos(azimuth), r * np.sin(azimuth), 1.0]) * depth


@pytest.mark.parametrize("lens", [*LENSES, "extreme"])
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_unprojecting_a_projection_returns_the_point(lens, data):
    cam = camera(EXTREME if lens == "extreme" else lens)
    point = data.draw(points_inside_valid_region(cam))
    uv, in_front = cam.project_points(point[None])
    assert in_front[0] and np.isfinite(uv).all()
    back = cam.unproject(uv, depth=point[2:])
    assert np.allclose(back[0], point, rtol=1e-8, atol=1e-9)


@pytest.mark.parametrize("lens", LENSES)
@settings(max_examples=60, deadline=None)
@given(u=st.floats(-0.5, WIDTH - 0.5), v=st.floats(-0.5, HEIGHT - 0.5))
def test_projecting_an_unprojected_pixel_returns_the_pixel(lens, u, v):
    cam = camera(lens)
    ray = cam.unproject(np.array([[u, v]]))
    uv, in_front = cam.project_points(ray)
    assert in_front[0]
    assert np.allclose(uv[0], [u, v], atol=1e-6)


# ---------------------------------------------------------------------- bad input and extreme lenses
def test_points_behind_the_camera_are_not_in_front_and_have_no_pixel():
    uv, in_front = camera("plumb_bob_5").project_points([[0.1, 0.1, -1.0], [0.0, 0.0, 0.0], [0.1, 0.0, 1.0]])
    assert in_front.tolist() == [False, False, True]
    assert np.isnan(uv[:2]).all() and np.isfinite(uv[2]).all()


def test_extreme_distortion_reports_points_beyond_the_fold_instead_of_wrapping_them_into_the_image():
    cam = camera(EXTREME)
    assert np.deg2rad(30) < cam.valid_angle < np.deg2rad(32)  # r_d = r(1 - 0.9 r²) peaks at r = 1/sqrt(2.7)
    beyond = np.array([[np.tan(np.deg2rad(50)), 0.0, 1.0]])
    wrapped = opencv_project(beyond, EXTREME)
    assert cam.in_image(wrapped).all()  # OpenCV's polynomial folds this 50° point back onto the image
    uv, in_front = cam.project_points(beyond)
    assert in_front[0] and np.isnan(uv).all()
    assert not cam.visible(beyond)[0]


def test_extreme_distortion_pixels_without_a_valid_preimage_get_nan_rays():
    cam = camera(EXTREME)
    rays = cam.pixel_rays()
    corner, centre = rays[0, 0], rays[HEIGHT // 2, WIDTH // 2]
    assert np.isnan(corner).all()  # the image corner lies beyond the largest radius the lens reaches
    assert np.isfinite(centre).all()
    depth = np.ones((HEIGHT, WIDTH), np.float32)
    cloud = depth_to_point_cloud(cam, depth, organised=False)
    assert len(cloud) == np.isfinite(rays[..., 0]).sum() < HEIGHT * WIDTH


def test_fisheye_beyond_opencvs_clamped_range_still_unprojects():
    # cv2.fisheye.undistortPoints clamps theta_d to pi/2; strong positive coefficients go beyond it
    cam = CameraModel(
        K=K, distortion=Distortion(model="fisheye", coeffs=[0.3, 0.2, 0.1, 0.05]), width=WIDTH, height=HEIGHT
    )
    point = np.array([[np.tan(1.3), 0.4, 1.0]])  # 1.3 rad off-axis: theta_d > pi/2
    uv, _ = cam.project_points(point)
    assert np.allclose(cam.unproject(uv, depth=[1.0]), point, atol=1e-9)


def test_invalid_intrinsics_are_a_geometry_error():
    with pytest.raises(GeometryError, match="positive focal lengths"):
        CameraModel(K=np.diag([-100.0, 100.0, 1.0]), width=10, height=10)
    with pytest.raises(GeometryError, match="image size"):
        CameraModel(K=K, width=0, height=10)


# ---------------------------------------------------------------------- rays, images, point clouds
@pytest.mark.parametrize("lens", ["none", "plumb_bob_5", "fisheye"])
def test_pixel_rays_are_unit_rays_through_each_pixel_centre(lens):
    cam = camera(lens)
    rays = cam.pixel_rays()
    assert rays.shape == (HEIGHT, WIDTH, 3) and rays.dtype == np.float64
    assert np.allclose(np.linalg.norm(rays, axis=-1), 1.0)
    uv, _ = cam.project_points(rays.reshape(-1, 3))
    v, u = np.mgrid[0:HEIGHT, 0:WIDTH]
    assert np.allclose(uv, np.stack([u.ravel(), v.ravel()], 1), atol=1e-6)


def test_pixel_rays_are_cached_per_model_and_read_only():
    a, b = camera("plumb_bob_5"), camera("plumb_bob_5")
    assert a == b and hash(a) == hash(b)
    assert a.pixel_rays() is b.pixel_rays()
    assert camera("fisheye").pixel_rays() is not a.pixel_rays()
    with pytest.raises(ValueError):
        a.pixel_rays()[0, 0, 0] = 1.0


def test_undistort_image_moves_a_dot_to_its_pinhole_projection():
    cam = camera("plumb_bob_5")
    point = np.array([[0.35, -0.3, 1.0]])
    uv, _ = cam.project_points(point)
    image = np.zeros((HEIGHT, WIDTH), np.uint8)
    cv2.circle(image, (round(uv[0, 0]), round(uv[0, 1])), 2, 255, -1)
    undistorted = cam.undistort_image(image)
    ys, xs = np.nonzero(undistorted > 64)
    pinhole = (point @ K.T)[0, :2] / point[0, 2]
    assert abs(xs.mean() - pinhole[0]) < 1.0 and abs(ys.mean() - pinhole[1]) < 1.0


def test_resized_camera_projects_to_scaled_pixel_centres():
    cam = camera("plumb_bob_5")
    half = cam.resized(WIDTH // 2, HEIGHT // 2)
    points = points_in_view(100)
    uv, _ = cam.project_points(points)
    uv_half, _ = half.project_points(points)
    assert np.allclose(uv_half, (uv + 0.5) / 2 - 0.5)


def test_depth_image_becomes_points_on_the_imaged_plane():
    cam = camera("plumb_bob_5")
    depth = np.full((HEIGHT, WIDTH), 2.0, np.float32)
    depth[0, :5] = 0.0  # missing depth
    depth[1, 0] = np.nan
    cloud = depth_to_point_cloud(cam, depth)
    assert cloud.shape == (HEIGHT, WIDTH, 3)
    assert np.isnan(cloud[0, :5]).all() and np.isnan(cloud[1, 0]).all()
    valid = np.isfinite(cloud[..., 0])
    assert np.allclose(cloud[valid][:, 2], 2.0)
    uv, _ = cam.project_points(cloud[valid])
    v, u = np.nonzero(valid)
    assert np.allclose(uv, np.stack([u, v], 1), atol=1e-6)
    flat = depth_to_point_cloud(cam, depth, organised=False)
    assert flat.shape == (valid.sum(), 3) and np.allclose(flat, cloud[valid])


def test_point_cloud_in_the_world_frame_uses_the_camera_pose():
    cam = camera("none")
    T_world_camera = look_at((1.0, 0.5, 1.5), (0.0, 0.0, 0.5))
    depth = np.full((HEIGHT, WIDTH), 1.5)
    world = depth_to_point_cloud(cam, depth, T_world_camera, organised=False)
    camera_frame = depth_to_point_cloud(cam, depth, organised=False)
    assert np.allclose(transform_points(invert_transform(T_world_camera), world), camera_frame)


def test_depth_image_of_the_wrong_size_is_rejected():
    with pytest.raises(GeometryError, match="depth image is"):
        depth_to_point_cloud(camera(), np.ones((10, 10)))


# ---------------------------------------------------------------------- OpenGL / pyrender convention
def test_opengl_projection_of_converted_camera_lands_half_a_pixel_from_opencv():
    T_world_camera = look_at((1.2, -0.4, 1.4), (0.2, 0.1, 0.8))
    K_gl, T_world_camera_gl = opencv_camera_to_opengl(K, T_world_camera)
    P = opengl_projection_matrix(K_gl, WIDTH, HEIGHT)
    world = transform_points(T_world_camera, points_in_view(100))
    clip = np.c_[transform_points(invert_transform(T_world_camera_gl), world), np.ones(100)] @ P.T
    ndc = clip[:, :3] / clip[:, 3:]
    window = np.stack([(ndc[:, 0] + 1) / 2 * WIDTH, (1 - ndc[:, 1]) / 2 * HEIGHT], 1)  # rows from the top
    uv, _ = camera().project_points(transform_points(invert_transform(T_world_camera), world))
    assert np.allclose(window - 0.5, uv)
    assert (np.abs(ndc[:, 2]) < 1).all()  # inside the depth range: the GL camera looks along -z


def test_opengl_conversion_round_trips():
    T = look_at((1.0, 1.0, 1.0), (0.0, 0.0, 0.0))
    K_back, T_back = opengl_camera_to_opencv(*opencv_camera_to_opengl(K, T))
    assert np.allclose(K_back, K) and np.allclose(T_back, T)


# ---------------------------------------------------------------------- camera poses of an episode
def _episode(make_episode, **extra) -> Episode:
    episode = make_episode(0, frames=6)
    return episode.with_arrays(extra) if extra else episode


def test_static_camera_pose_repeats_the_manifest_pose(manifest, make_episode):
    poses = camera_poses(manifest, _episode(make_episode), "front")
    assert poses.shape == (6, 4, 4)
    assert np.allclose(poses, manifest.camera("front").T_world_camera_array())


def test_moving_camera_uses_its_recorded_extrinsics(manifest, make_episode):
    episode = _episode(make_episode)
    assert np.array_equal(camera_poses(manifest, episode, "wrist"), episode.load("cameras/wrist/extrinsics"))


def test_link_mounted_camera_follows_forward_kinematics(manifest, make_episode):
    T_link_camera = look_at((0.05, 0.0, 0.05), (0.0, 0.0, 0.2), up=(1, 0, 0))
    wrist = manifest.camera("wrist").model_copy(update={"T_link_camera": T_link_camera.tolist()})
    manifest = manifest.model_copy(update={"cameras": [*manifest.cameras[:3], wrist]})
    episode = _episode(make_episode)
    del episode.arrays["cameras/wrist/extrinsics"]
    poses = camera_poses(manifest, episode, "wrist")
    hand = franka_panda_kinematics().link_pose(episode.load("robot/joint_positions"), "panda_hand")
    assert np.allclose(poses, hand @ T_link_camera)


def test_camera_without_any_pose_is_a_geometry_error_naming_camera_and_episode(manifest, make_episode):
    episode = _episode(make_episode)
    del episode.arrays["cameras/wrist/extrinsics"]
    with pytest.raises(GeometryError) as err:
        camera_poses(manifest, episode, "wrist")
    message = str(err.value)
    assert "episode episode0" in message and "cameras/wrist/extrinsics" in message and "'wrist'" in message
    assert "\n" not in message


def test_unknown_camera_is_a_geometry_error(manifest, make_episode):
    with pytest.raises(GeometryError, match="no camera 'side'"):
        camera_poses(manifest, _episode(make_episode), "side")


def test_from_calibration_reads_the_manifest_camera():
    cal = Camera(name="c", width=64, height=48, K=K.tolist(), distortion=LENSES["fisheye"])
    cam = CameraModel.from_calibration(cal)
    assert (cam.width, cam.height) == (64, 48) and np.array_equal(cam.K, K)
    assert cam.distortion.model == "fisheye"

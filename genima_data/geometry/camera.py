"""Camera models and conventions.

Internally every camera is OpenCV: x right, y down, z forward, pixel centres at integer coordinates,
positive focal lengths, pose stored as ``T_world_camera`` (camera-to-world).

`CameraModel` projects camera-frame points to pixels and unprojects pixels to rays, with lens distortion
(none, OpenCV plumb-bob / rational / thin-prism / tilted, fisheye). Distortion is done by OpenCV in
normalised coordinates (``cv2.projectPoints`` / ``cv2.fisheye.projectPoints`` and their iterative
``undistortPoints``); the pinhole ``K`` (skew included, which OpenCV ignores) is applied here.

**Valid region.** A distortion polynomial fitted to a lens is only meaningful, and only invertible, out to
the angle where the distorted radius stops growing; beyond it, points far outside the field of view would
wrap back into the image. `CameraModel` scans the distortion map once (its Jacobian determinant on a
polar grid out to 89.9° off-axis) and treats the cone inside the first fold as the valid region: points
outside it project to NaN and pixels without a preimage inside it unproject to NaN. No silent wrapping.

Conventions converted here: RLBench/CoppeliaSim (negative focal lengths, +x to the image's left, +y up,
pixel centres at +0.5) and OpenGL/pyrender (camera looks along -z, +y up, pixel centres at +0.5).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import cv2
import numpy as np

from genima_data.errors import GeometryError
from genima_data.geometry.transforms import invert_transform, transform_points
from genima_data.schema import CameraCalibration, Distortion

if TYPE_CHECKING:
    from pathlib import Path

    from genima_data.episode import Episode
    from genima_data.geometry.kinematics import Kinematics
    from genima_data.schema import Manifest

__all__ = [
    "OPENCV_TO_OPENGL_AXES",
    "RLBENCH_PIXEL_CENTRE_OFFSET",
    "RLBENCH_TO_OPENCV_AXES",
    "CameraModel",
    "GeometryError",
    "camera_poses",
    "depth_to_point_cloud",
    "invert_transform",
    "opencv_camera_to_opengl",
    "opencv_camera_to_rlbench",
    "opengl_camera_to_opencv",
    "opengl_projection_matrix",
    "rlbench_camera_to_opencv",
    "transform_points",
]

# RLBench/CoppeliaSim camera axes (x to the image's left, y up, z forward) -> OpenCV axes
RLBENCH_TO_OPENCV_AXES = np.diag([-1.0, -1.0, 1.0, 1.0])
RLBENCH_PIXEL_CENTRE_OFFSET = 0.5  # CoppeliaSim puts pixel centres at +0.5, OpenCV at integers
# OpenCV camera axes (x right, y down, z forward) -> OpenGL/pyrender axes (x right, y up, looking along -z)
OPENCV_TO_OPENGL_AXES = np.diag([1.0, -1.0, -1.0, 1.0])
OPENGL_PIXEL_CENTRE_OFFSET = 0.5  # OpenGL window coordinates put pixel centres at +0.5

# Iterative undistortion: OpenCV's fixed-point iteration reaches ~1e-14 in normalised units on
# ordinary lenses within 100 steps; the round trip below catches the cases where it does not.
UNDISTORT_CRITERIA = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 200, 1e-15)
NEWTON_STEPS = 20  # refinement for pixels OpenCV leaves unconverged (e.g. fisheye beyond θ_d = π/2)
NEWTON_TOLERANCE = 1e-13  # normalised units
ROUND_TRIP_TOLERANCE_PX = 1e-6  # an unprojected ray must reproject to its pixel this closely
VALID_SCAN_MAX_ANGLE = np.deg2rad(89.9)  # off-axis angle the valid-region scan reaches
VALID_SCAN_ANGLES, VALID_SCAN_DIRECTIONS = 256, 32  # polar grid of each valid-region scan stage
RAY_CACHE_SIZE = 16  # distinct camera models whose pixel rays (and lenses whose valid regions) are kept


@dataclass(frozen=True, eq=False)
class CameraModel:
    """A calibrated pinhole camera with lens distortion, in OpenCV conventions.

    ``K`` is the 3x3 intrinsic matrix (skew allowed), ``distortion`` a `schema.Distortion`, and ``width``,
    ``height`` the image size the calibration belongs to. Instances are immutable; derived data (valid
    region, pixel rays) is cached per distinct model.
    """

    K: np.ndarray
    distortion: Distortion = field(default_factory=lambda: Distortion(model="none"))
    width: int = 0
    height: int = 0

    def __post_init__(self) -> None:
        K = np.array(self.K, dtype=np.float64)
        if K.shape != (3, 3) or not np.all(np.isfinite(K)) or K[0, 0] <= 0 or K[1, 1] <= 0:
            raise GeometryError(
                f"K must be a finite 3x3 matrix with positive focal lengths, got {K.tolist()}"
            )
        if int(self.width) <= 0 or int(self.height) <= 0:
            raise GeometryError(f"image size must be positive, got {self.width}x{self.height}")
        K.setflags(write=False)
        object.__setattr__(self, "K", K)
        object.__setattr__(self, "width", int(self.width))
        object.__setattr__(self, "height", int(self.height))

    @classmethod
    def from_calibration(cls, cal: CameraCalibration) -> CameraModel:
        """The model of a manifest camera (or any `schema.CameraCalibration`)."""
        return cls(K=cal.K_array, distortion=cal.distortion, width=cal.width, height=cal.height)

    # ------------------------------------------------------------------ identity and caching
    @property
    def _lens(self) -> tuple[str, tuple[float, ...]]:
        """Distortion model and coefficients: all the OpenCV helpers below need."""
        return str(self.distortion.model), tuple(self.distortion.coeffs)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CameraModel):
            return NotImplemented
        return self._identity() == other._identity()

    def __hash__(self) -> int:
        return hash(self._identity())

    def _identity(self) -> tuple:
        return (self.K.tobytes(), self._lens, self.width, self.height)

    @property
    def has_distortion(self) -> bool:
        return not self.distortion.is_identity

    @property
    def valid_angle(self) -> float:
        """Largest off-axis angle (radians) inside the distortion model's valid (invertible) region."""
        return _valid_angle(self._lens) if self.has_distortion else np.pi / 2

    def resized(self, width: int, height: int) -> CameraModel:
        """The same camera for an image resized to ``width`` x ``height`` (pixel-centre aware)."""
        sx, sy = width / self.width, height / self.height
        S = np.array([[sx, 0.0, (sx - 1) / 2], [0.0, sy, (sy - 1) / 2], [0.0, 0.0, 1.0]])
        return CameraModel(K=S @ self.K, distortion=self.distortion, width=width, height=height)

    # ------------------------------------------------------------------ projection
    def project_points(self, points_camera: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pixels ``uv (N, 2)`` of camera-frame points ``(N, 3)``, distortion applied, and ``in_front (N,)``.

        ``uv`` is NaN where a point is behind the camera (z <= 0, ``in_front`` False) or outside the
        distortion model's valid region (``in_front`` True: the point is in front but its distorted
        projection would not be meaningful).
        """
        points = np.asarray(points_camera, dtype=np.float64).reshape(-1, 3)
        z = points[:, 2]
        in_front = z > 0
        uv = np.full((len(points), 2), np.nan)
        with np.errstate(divide="ignore", invalid="ignore"):
            xy = points[in_front, :2] / z[in_front, None]
        ok = self._inside_valid_region(xy)
        uv[np.flatnonzero(in_front)[ok]] = self._normalised_to_pixels(_distort(self._lens, xy[ok]))
        return uv, in_front

    def in_image(self, uv: np.ndarray) -> np.ndarray:
        """Whether pixel coordinates ``(N, 2)`` fall on the image (pixel centres at integers)."""
        uv = np.asarray(uv, dtype=np.float64).reshape(-1, 2)
        with np.errstate(invalid="ignore"):
            return (
                (uv[:, 0] >= -0.5)
                & (uv[:, 0] < self.width - 0.5)
                & (uv[:, 1] >= -0.5)
                & (uv[:, 1] < self.height - 0.5)
            )

    def visible(self, points_camera: np.ndarray) -> np.ndarray:
        """Whether camera-frame points ``(N, 3)`` are in front of the camera and project onto the image."""
        uv, in_front = self.project_points(points_camera)
        return in_front & self.in_image(uv)

    def unproject(self, uv: np.ndarray, depth: np.ndarray | None = None) -> np.ndarray:
        """Unit rays ``(N, 3)`` through pixels ``uv (N, 2)``, or camera-frame points at z = ``depth (N,)``.

        Lens distortion is undone. Rows are NaN for pixels with no preimage inside the valid region.
        """
        uv = np.asarray(uv, dtype=np.float64).reshape(-1, 2)
        xy = self._undistort(self._pixels_to_normalised(uv))
        rays = np.concatenate([xy, np.ones((len(xy), 1))], axis=1)
        if depth is not None:
            return rays * np.asarray(depth, dtype=np.float64).reshape(-1, 1)
        return rays / np.linalg.norm(rays, axis=1, keepdims=True)

    def pixel_rays(self) -> np.ndarray:
        """Unit ray directions ``(H, W, 3)`` in the camera frame through every pixel centre (read-only).

        Distortion is undone; rays of pixels outside the valid region's image are NaN. Cached per model.
        """
        return _pixel_rays(self)

    def undistort_image(self, image: np.ndarray, K_new: np.ndarray | None = None) -> np.ndarray:
        """The image as an undistorted pinhole camera with intrinsics ``K_new`` (default ``K``) sees it.

        ``cv2.initUndistortRectifyMap`` + ``cv2.remap`` (bilinear); pixels with no source are black.
        """
        K_new = self.K if K_new is None else np.asarray(K_new, dtype=np.float64)
        size = (self.width, self.height)
        coeffs = np.asarray(self.distortion.coeffs, dtype=np.float64)
        if self.distortion.model == "fisheye":
            maps = cv2.fisheye.initUndistortRectifyMap(self.K, coeffs, np.eye(3), K_new, size, cv2.CV_32FC1)
        else:
            maps = cv2.initUndistortRectifyMap(self.K, coeffs, np.eye(3), K_new, size, cv2.CV_32FC1)
        return cv2.remap(image, *maps, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)

    # ------------------------------------------------------------------ internals
    def _normalised_to_pixels(self, xy: np.ndarray) -> np.ndarray:
        return xy @ self.K[:2, :2].T + self.K[:2, 2]

    def _pixels_to_normalised(self, uv: np.ndarray) -> np.ndarray:
        return np.linalg.solve(self.K[:2, :2], (uv - self.K[:2, 2]).T).T

    def _inside_valid_region(self, xy: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore"):
            return np.hypot(xy[:, 0], xy[:, 1]) < np.tan(self.valid_angle)

    def _undistort(self, xy_distorted: np.ndarray) -> np.ndarray:
        """Normalised undistorted coordinates of distorted ones; NaN where none lies in the valid region."""
        if not self.has_distortion:
            return xy_distorted
        xy = _opencv_undistort(self._lens, xy_distorted)
        unconverged = ~self._round_trips(xy, xy_distorted)
        if unconverged.any():
            xy[unconverged] = _newton_undistort(self._lens, xy[unconverged], xy_distorted[unconverged])
        xy[~(self._round_trips(xy, xy_distorted) & self._inside_valid_region(xy))] = np.nan
        return xy

    def _round_trips(self, xy: np.ndarray, xy_distorted: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore"):
            error_px = np.abs((_distort(self._lens, xy) - xy_distorted) @ self.K[:2, :2].T).max(axis=1)
            return error_px < ROUND_TRIP_TOLERANCE_PX


# ---------------------------------------------------------------------- conventions
def _shift_intrinsics(K: np.ndarray, focal_sign: float, offset: float) -> np.ndarray:
    """K with focal lengths times ``focal_sign`` and the principal point moved by ``offset`` pixels."""
    K = np.array(K, dtype=np.float64)
    return np.array(
        [
            [focal_sign * K[0, 0], K[0, 1], K[0, 2] + offset],
            [0.0, focal_sign * K[1, 1], K[1, 2] + offset],
            [0.0, 0.0, 1.0],
        ]
    )


def rlbench_camera_to_opencv(
    K_rlbench: np.ndarray, T_world_camera_rlbench: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Convert RLBench's ``<cam>_camera_intrinsics`` / ``_extrinsics`` to OpenCV ``K`` and ``T_world_camera``.

    RLBench stores negative focal lengths and a camera frame with +x to the image's left and +y up;
    flipping x and y of the camera frame makes the focal lengths positive, and the principal point moves
    by -0.5 px for OpenCV's pixel-centre convention.
    """
    K = _shift_intrinsics(K_rlbench, -1.0, -RLBENCH_PIXEL_CENTRE_OFFSET)
    return K, np.asarray(T_world_camera_rlbench, dtype=np.float64) @ RLBENCH_TO_OPENCV_AXES


def opencv_camera_to_rlbench(K: np.ndarray, T_world_camera: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of `rlbench_camera_to_opencv` (for writing RLBench-layout datasets)."""
    K_rlbench = _shift_intrinsics(K, -1.0, RLBENCH_PIXEL_CENTRE_OFFSET)
    return K_rlbench, np.asarray(T_world_camera, dtype=np.float64) @ RLBENCH_TO_OPENCV_AXES


def opencv_camera_to_opengl(K: np.ndarray, T_world_camera: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """OpenGL/pyrender intrinsics (``fx, fy, cx, cy`` for ``pyrender.IntrinsicsCamera``) and camera pose.

    The OpenGL camera looks along its -z with +y up, so its pose is the OpenCV pose with y and z flipped;
    pyrender's principal point is in window coordinates, whose pixel centres sit at +0.5.
    """
    K_gl = _shift_intrinsics(K, 1.0, OPENGL_PIXEL_CENTRE_OFFSET)
    return K_gl, np.asarray(T_world_camera, dtype=np.float64) @ OPENCV_TO_OPENGL_AXES


def opengl_camera_to_opencv(K_gl: np.ndarray, T_world_camera_gl: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of `opencv_camera_to_opengl`."""
    K = _shift_intrinsics(K_gl, 1.0, -OPENGL_PIXEL_CENTRE_OFFSET)
    return K, np.asarray(T_world_camera_gl, dtype=np.float64) @ OPENCV_TO_OPENGL_AXES


def opengl_projection_matrix(
    K_gl: np.ndarray, width: int, height: int, znear: float = 0.05, zfar: float | None = 100.0
) -> np.ndarray:
    """The 4x4 OpenGL projection matrix pyrender's ``IntrinsicsCamera`` builds from ``K_gl``."""
    fx, fy, cx, cy = K_gl[0, 0], K_gl[1, 1], K_gl[0, 2], K_gl[1, 2]
    P = np.zeros((4, 4))
    P[0, 0], P[1, 1] = 2.0 * fx / width, 2.0 * fy / height
    P[0, 2], P[1, 2] = 1.0 - 2.0 * cx / width, 2.0 * cy / height - 1.0
    P[3, 2] = -1.0
    if zfar is None:
        P[2, 2], P[2, 3] = -1.0, -2.0 * znear
    else:
        P[2, 2], P[2, 3] = (zfar + znear) / (znear - zfar), 2.0 * zfar * znear / (znear - zfar)
    return P


# ---------------------------------------------------------------------- poses and point clouds
def camera_poses(
    manifest: Manifest,
    episode: Episode,
    camera: str,
    kinematics: Kinematics | None = None,
    *,
    root: Path | None = None,
) -> np.ndarray:
    """``T_world_camera`` per frame ``(T, 4, 4)`` of one camera in one episode.

    A static camera repeats its manifest pose; a moving one uses ``cameras/<cam>/extrinsics`` when the
    episode has them, otherwise FK of its mount link times ``T_link_camera`` (``kinematics`` defaults to
    the manifest robot's, a URDF relative to ``root``). Anything else is a GeometryError naming the camera
    and episode.
    """
    eid, T = episode.episode_id, episode.length
    field_name = f"cameras/{camera}/extrinsics"
    try:
        cal = manifest.camera(camera)
    except KeyError as exc:
        raise GeometryError(str(exc.args[0]), episode=eid, field=f"cameras/{camera}") from None
    static = cal.T_world_camera_array()
    if static is not None:
        return np.repeat(static[None], T, axis=0)
    if field_name in episode:
        return np.asarray(episode.load(field_name), dtype=np.float64)
    T_link_camera = cal.T_link_camera_array()
    if cal.is_static or T_link_camera is None:
        raise GeometryError(
            f"camera '{camera}' has no pose: no manifest T_world_camera, no per-frame extrinsics in the "
            "episode, and no mount link with T_link_camera",
            episode=eid,
            field=field_name,
        )
    from genima_data.geometry.kinematics import load_kinematics

    kin = kinematics if kinematics is not None else load_kinematics(manifest.robot, root)
    q = np.asarray(episode.load("robot/joint_positions"), dtype=np.float64)
    try:
        return kin.link_pose(q, cal.mount) @ T_link_camera
    except GeometryError as exc:
        raise exc.located(episode=eid, field=f"cameras/{camera}/mount") from None


def depth_to_point_cloud(
    camera: CameraModel,
    depth: np.ndarray,
    T_world_camera: np.ndarray | None = None,
    *,
    organised: bool = True,
) -> np.ndarray:
    """Points seen in a depth image ``(H, W)`` of z-depth in metres.

    ``organised=True`` returns ``(H, W, 3)`` with NaN where depth is missing (<= 0 or not finite) or the
    pixel has no valid ray; ``organised=False`` returns only the valid points, ``(N, 3)`` in row-major
    pixel order. Points are in the camera frame, or the world frame when ``T_world_camera`` is given.
    """
    depth = np.asarray(depth, dtype=np.float64)
    if depth.shape != (camera.height, camera.width):
        raise GeometryError(
            f"depth image is {depth.shape}, the camera's image is {(camera.height, camera.width)}",
            field="depth",
        )
    rays = camera.pixel_rays()
    with np.errstate(invalid="ignore"):
        points = rays * (np.where(depth > 0, depth, np.nan) / rays[..., 2])[..., None]
    if T_world_camera is not None:
        points = transform_points(T_world_camera, points.reshape(-1, 3)).reshape(points.shape)
    if organised:
        return points
    flat = points.reshape(-1, 3)
    return flat[np.isfinite(flat).all(axis=1)]


# ---------------------------------------------------------------------- distortion through OpenCV
def _coeffs(lens: tuple) -> np.ndarray:
    return np.asarray(lens[1], dtype=np.float64)


def _distort(lens: tuple, xy: np.ndarray) -> np.ndarray:
    """Distorted normalised coordinates ``(N, 2)`` of undistorted ones (OpenCV, identity K)."""
    model, coeffs = lens
    if model == "none" or len(xy) == 0 or (model == "opencv" and not any(coeffs)):
        return np.array(xy, dtype=np.float64).reshape(-1, 2)
    points = np.concatenate([xy, np.ones((len(xy), 1))], axis=1).reshape(-1, 1, 3)
    zero = np.zeros(3)
    if model == "fisheye":
        out, _ = cv2.fisheye.projectPoints(points, zero, zero, np.eye(3), _coeffs(lens))
    else:
        out, _ = cv2.projectPoints(points, zero, zero, np.eye(3), _coeffs(lens))
    return out.reshape(-1, 2)


def _opencv_undistort(lens: tuple, xy_distorted: np.ndarray) -> np.ndarray:
    if len(xy_distorted) == 0:
        return np.zeros((0, 2))
    src = np.ascontiguousarray(xy_distorted, dtype=np.float64).reshape(-1, 1, 2)
    if lens[0] == "fisheye":
        out = cv2.fisheye.undistortPoints(src, np.eye(3), _coeffs(lens), criteria=UNDISTORT_CRITERIA)
    else:
        out = cv2.undistortPoints(src, np.eye(3), _coeffs(lens), criteria=UNDISTORT_CRITERIA)
    return out.reshape(-1, 2).astype(np.float64)


def _distortion_jacobian(lens: tuple, xy: np.ndarray) -> np.ndarray:
    """``(N, 2, 2)`` Jacobian of `_distort` by central differences (step relative to the radius)."""
    h = 1e-6 * (1.0 + np.hypot(xy[:, 0], xy[:, 1]))[:, None]
    J = np.empty((len(xy), 2, 2))
    for axis in range(2):
        step = np.zeros_like(xy)
        step[:, axis : axis + 1] = h
        J[:, :, axis] = (_distort(lens, xy + step) - _distort(lens, xy - step)) / (2 * h)
    return J


def _newton_undistort(lens: tuple, xy: np.ndarray, xy_distorted: np.ndarray) -> np.ndarray:
    """Newton iterations on distort(xy) = xy_distorted from ``xy``; points stop once they have converged."""
    xy = np.where(np.isfinite(xy), xy, xy_distorted)
    active = np.arange(len(xy))
    with np.errstate(invalid="ignore", over="ignore"):
        for _ in range(NEWTON_STEPS):
            residual = xy_distorted[active] - _distort(lens, xy[active])
            still = ~(np.abs(residual).max(axis=1) < NEWTON_TOLERANCE)
            active, residual = active[still], residual[still]
            if not len(active):
                break
            J = _distortion_jacobian(lens, xy[active])
            det = J[:, 0, 0] * J[:, 1, 1] - J[:, 0, 1] * J[:, 1, 0]
            J[~(np.abs(det) > 1e-12)] = np.eye(2)  # singular: a plain residual step instead
            xy[active] += np.linalg.solve(J, residual[..., None])[..., 0]
    return xy


def _first_fold(lens: tuple, theta: np.ndarray) -> int | None:
    """Index of the first off-axis angle in ``theta`` where the distortion map folds in some direction."""
    phi = np.linspace(0.0, 2 * np.pi, VALID_SCAN_DIRECTIONS, endpoint=False)
    r = np.tan(theta)[:, None]
    xy = np.stack([r * np.cos(phi), r * np.sin(phi)], axis=-1).reshape(-1, 2)
    J = _distortion_jacobian(lens, xy)
    det = (J[:, 0, 0] * J[:, 1, 1] - J[:, 0, 1] * J[:, 1, 0]).reshape(len(theta), len(phi))
    folded = ~(det > 0).all(axis=1)
    return int(np.argmax(folded)) if folded.any() else None


@functools.lru_cache(maxsize=RAY_CACHE_SIZE)
def _valid_angle(lens: tuple) -> float:
    """Largest off-axis angle before the distortion map first folds (Jacobian determinant <= 0).

    A coarse scan out to VALID_SCAN_MAX_ANGLE brackets the first fold, a fine scan inside the bracket
    places it; the last unfolded angle is returned (conservative by at most one fine step, ~0.001°).
    """
    coarse = np.linspace(0.0, VALID_SCAN_MAX_ANGLE, VALID_SCAN_ANGLES)
    i = _first_fold(lens, coarse)
    if i is None:
        return float(VALID_SCAN_MAX_ANGLE)
    if i == 0:
        return 0.0
    fine = np.linspace(coarse[i - 1], coarse[i], VALID_SCAN_ANGLES)
    j = _first_fold(lens, fine)
    return float(fine[j - 1] if j else fine[-2])


@functools.lru_cache(maxsize=RAY_CACHE_SIZE)
def _pixel_rays(camera: CameraModel) -> np.ndarray:
    v, u = np.mgrid[0 : camera.height, 0 : camera.width]
    uv = np.stack([u.ravel(), v.ravel()], axis=1).astype(np.float64)
    rays = camera.unproject(uv).reshape(camera.height, camera.width, 3)
    rays.setflags(write=False)
    return rays

"""Camera calibration: import it from ROS, OpenCV, Kalibr or our own files, and attach it to datasets.

Every importer returns `schema.Camera`s validated by the pydantic schema (positive focal lengths, rigid
poses, coefficient counts that match the model); a bad value is a one-line `SchemaError` naming the file
and the field *as the source file spells it* (``camera_matrix``, ``cam1.T_cn_cnm1``), a file that cannot
be read is a `FormatError`. The formats (``format=``, detected from the content when omitted):

``ros``
    ``sensor_msgs/CameraInfo`` YAML as written by ROS camera_calibration / camera_info_manager:
    ``camera_matrix`` (K), ``distortion_model`` + ``distortion_coefficients``, ``image_width/height``,
    ``camera_name``. ``rectification_matrix`` (R) must be a rotation; R and ``projection_matrix`` (P)
    describe the *rectified* image, whereas stores record raw frames, so the camera gets K and D.
``opencv``
    ``cv2.FileStorage`` YAML/XML/JSON (``%YAML:1.0``, ``!!opencv-matrix``), node names of OpenCV's
    calibration samples: ``camera_matrix`` (or ``cameraMatrix``/``K``), ``distortion_coefficients`` (or
    ``distCoeffs``/``D``), ``image_width``/``image_height`` (or ``image_size: [w, h]``), ``fisheye_model: 1``
    or ``distortion_model: fisheye`` for cv2.fisheye's k1..k4, optional ``camera_name``. Extrinsics, when
    present: ``T_world_camera`` (4x4, camera-to-reference, our convention), ``T_camera_world`` (4x4, its
    inverse), or ``rvec`` + ``tvec`` in the convention of ``cv2.solvePnP``/``calibrateCamera`` (a point X
    in the reference frame maps to ``R(rvec) X + tvec`` in the camera frame, i.e. T_camera_reference; it is
    inverted). Per-view board poses (``extrinsic_parameters``) are not camera poses and are ignored.
``kalibr``
    Kalibr camchain YAML (``cam0:``, ``cam1:``, ...): ``camera_model: pinhole``, ``intrinsics: [fu, fv, pu,
    pv]``, ``distortion_model: radtan|equidistant|none``, ``distortion_coeffs``, ``resolution: [w, h]``.
    ``T_cn_cnm1`` maps points from camera n-1's frame to camera n's (p_cn = T_cn_cnm1 p_cnm1) and
    ``T_cam_imu`` maps IMU points to the camera (p_cam = T_cam_imu p_imu), so the pose of camera n in
    cam0's frame is ``T_cam0_cn = T_cam0_cnm1 @ inv(T_cn_cnm1)`` and the IMU's is
    ``T_cam0_imu = T_cam0_ck @ T_ck_imu`` (k = the first camera that has ``T_cam_imu``). Kalibr's camera
    frame is OpenCV's (x right, y down, z forward).
``genima``
    Our own JSON/YAML: ``{format: genima-calibration, cameras: [<schema.Camera>, ...]}`` (a bare list of
    cameras is accepted too), written by `save_calibration`; it round-trips exactly.

Poses. Each file's poses are relative to its *reference frame*: cam0 or the IMU (``reference=``) for Kalibr,
the frame rvec/tvec or T_world_camera are expressed in for OpenCV, the world for our format. The
``T_world_reference`` argument (the reference frame's pose in the world / robot-base frame; identity by
default) places them in the world: ``T_world_camera = T_world_reference @ T_reference_camera``. ROS
camera_info carries no pose; such cameras get ``T_world_camera = None`` and keep a dataset's existing pose
when attached (or take one from `load_pose`).

Distortion maps exactly: plumb_bob/radtan → ``opencv`` k1 k2 p1 p2 [k3]; rational_polynomial → ``opencv``
k1 k2 p1 p2 k3 k4 k5 k6; equidistant → ``fisheye`` k1 k2 k3 k4 (cv2.fisheye's Kannala-Brandt model).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from genima_data.atomic import atomic_write_text
from genima_data.episode import spec_for
from genima_data.errors import FormatError, GenimaDataError, SchemaError
from genima_data.geometry.transforms import invert_transform
from genima_data.schema import FORMAT_VERSION, Camera, Manifest, check_rigid_transform, parse_model
from genima_data.store import open_dataset

CALIBRATION_FORMATS: tuple[str, ...] = ("ros", "opencv", "kalibr", "genima")
GENIMA_FORMAT_TAG = "genima-calibration"
KALIBR_CAMERA_KEY = re.compile(r"^cam(\d+)$")

Pose = np.ndarray  # 4x4 float64 rigid transform


@dataclass(frozen=True)
class DistortionMapping:
    """How a source format's distortion model maps to ours."""

    model: Literal["none", "opencv", "fisheye"]
    counts: tuple[int, ...]
    order: str  # the coefficient order, for messages


NO_DISTORTION = DistortionMapping("none", (0,), "no coefficients")
ROS_DISTORTION: dict[str, DistortionMapping] = {
    "plumb_bob": DistortionMapping("opencv", (4, 5), "k1 k2 p1 p2 [k3]"),
    "rational_polynomial": DistortionMapping("opencv", (8,), "k1 k2 p1 p2 k3 k4 k5 k6"),
    "equidistant": DistortionMapping("fisheye", (4,), "k1 k2 k3 k4"),
    "": NO_DISTORTION,
    "none": NO_DISTORTION,
}
KALIBR_DISTORTION: dict[str, DistortionMapping] = {
    "radtan": DistortionMapping("opencv", (4,), "k1 k2 r1 r2"),
    "equidistant": DistortionMapping("fisheye", (4,), "k1 k2 k3 k4"),
    "none": NO_DISTORTION,
}
OPENCV_DISTORTION: dict[str, DistortionMapping] = {
    "opencv": DistortionMapping("opencv", (4, 5, 8, 12, 14), "k1 k2 p1 p2 [k3 [k4 k5 k6 [s1..s4 [tx ty]]]]"),
    "fisheye": DistortionMapping("fisheye", (4,), "k1 k2 k3 k4"),
}
OPENCV_NODE_NAMES: dict[str, tuple[str, ...]] = {
    "K": ("camera_matrix", "cameraMatrix", "K"),
    "distortion": ("distortion_coefficients", "distCoeffs", "dist_coeffs", "D"),
}


class CalibrationFile(BaseModel):
    """Our own calibration file: a list of cameras (`save_calibration` writes it)."""

    model_config = ConfigDict(extra="forbid")

    format: Literal["genima-calibration"] = Field(GENIMA_FORMAT_TAG, description="Marks the file's format.")
    format_version: str = Field(FORMAT_VERSION, description="Schema version the cameras follow.")
    cameras: list[Camera] = Field(description="Calibrated cameras.", min_length=1)

    @model_validator(mode="after")
    def _unique_names(self) -> CalibrationFile:
        names = [c.name for c in self.cameras]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate camera names: {dupes}")
        return self


# ------------------------------------------------------------------------------------------- helpers
def _has_bool(value: Any) -> bool:
    """Whether `value` (a number, or nested sequences of them) holds a boolean, which is not a number here."""
    if isinstance(value, bool | np.bool_):
        return True
    if isinstance(value, np.ndarray):
        return value.dtype == np.bool_ or (value.dtype == object and any(map(_has_bool, value.flat)))
    return isinstance(value, list | tuple) and any(map(_has_bool, value))


def _numbers(value: Any, *, file: Path, field: str, shape: tuple[int, ...] | None = None) -> np.ndarray:
    """`value` as a float64 array (optionally of `shape`), or a SchemaError naming the field."""
    if _has_bool(value):
        raise SchemaError(f"expected numbers, got {value!r}", file=file, field=field)
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise SchemaError(f"expected numbers, got {value!r}", file=file, field=field) from None
    if shape is not None:
        if arr.size != int(np.prod(shape)):
            raise SchemaError(
                f"has {arr.size} values, expected {'x'.join(map(str, shape))}", file=file, field=field
            )
        arr = arr.reshape(shape)
    return arr


def _finite(values: np.ndarray, *, file: Path, field: str) -> np.ndarray:
    if not np.all(np.isfinite(values)):
        raise SchemaError("has non-finite entries", file=file, field=field)
    return values


def _number(value: Any, *, file: Path, field: str) -> float:
    """One number (an image size, say); booleans and non-numbers are a SchemaError naming the field."""
    arr = _numbers(value, file=file, field=field)
    if arr.ndim != 0:
        raise SchemaError(f"expected a number, got {value!r}", file=file, field=field)
    return float(arr)


def _required(doc: Mapping[str, Any], key: str, *, file: Path, prefix: str = "") -> Any:
    if key not in doc or doc[key] is None:
        raise FormatError("required entry is missing", file=file, field=f"{prefix}{key}")
    return doc[key]


def _rigid(T: np.ndarray, *, file: Path, field: str) -> Pose:
    try:
        check_rigid_transform(T.tolist(), field)
    except ValueError as exc:
        raise SchemaError(str(exc), file=file, field=field) from None
    return T


def _distortion(
    source_model: str,
    coeffs: Sequence[float],
    table: Mapping[str, DistortionMapping],
    *,
    file: Path,
    field: str,
    model_field: str,
) -> dict[str, Any]:
    mapping = table.get(source_model)
    if mapping is None:
        raise FormatError(
            f"unsupported distortion model '{source_model}' (supported: {', '.join(repr(m) for m in table)})",
            file=file,
            field=model_field,
        )
    if len(coeffs) not in mapping.counts:
        raise SchemaError(
            f"distortion model '{source_model}' takes {' or '.join(map(str, mapping.counts))} coefficients "
            f"({mapping.order}), got {len(coeffs)}",
            file=file,
            field=field,
        )
    return {"model": mapping.model, "coeffs": [float(c) for c in coeffs]}


def _camera(data: dict[str, Any], *, file: Path, fields: Mapping[str, str]) -> Camera:
    """Validate `data` as a Camera; errors name the source file's field (`fields`: schema → source name)."""
    try:
        return parse_model(Camera, data, file=file)
    except SchemaError as exc:
        head, _, rest = (exc.field or "").partition(".")
        field = fields.get(head, head) + (f".{rest}" if rest else "")
        raise SchemaError(exc.message, file=file, field=field) from None


def _pinhole_K(fx: float, fy: float, cx: float, cy: float, skew: float = 0.0) -> list[list[float]]:
    return [[fx, skew, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]]


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FormatError("no such calibration file", file=path) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise FormatError(f"cannot read calibration file ({exc})", file=path) from None


def _parse_document(path: Path, text: str) -> Any:
    """YAML or JSON (by suffix), as plain data."""
    try:
        return json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except json.JSONDecodeError as exc:
        raise FormatError(f"invalid JSON at line {exc.lineno}: {exc.msg}", file=path) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise FormatError(f"invalid YAML{where}: {problem}", file=path) from None


def _looks_like_opencv(text: str) -> bool:
    head = text.lstrip()[:64]
    return head.startswith("%YAML:") or "opencv-matrix" in text or "<opencv_storage>" in head


def detect_calibration_format(path: str | Path, text: str | None = None) -> str:
    """'ros', 'opencv', 'kalibr' or 'genima' from the file's content; FormatError when it is none of them."""
    path = Path(path)
    text = _read_text(path) if text is None else text
    if _looks_like_opencv(text):
        return "opencv"
    doc = _parse_document(path, text)
    if isinstance(doc, list) or (isinstance(doc, dict) and "cameras" in doc):
        return "genima"
    if isinstance(doc, dict):
        if "camera_matrix" in doc and ("distortion_model" in doc or "image_width" in doc):
            return "ros"
        if doc and all(KALIBR_CAMERA_KEY.match(str(k)) for k in doc):
            return "kalibr"
    raise FormatError(
        f"cannot tell the calibration format; name it (--format): {', '.join(CALIBRATION_FORMATS)}",
        file=path,
    )


# ------------------------------------------------------------------------------------------- ROS
def _ros_values(
    doc: Mapping[str, Any], key: str, *, file: Path, shape: tuple[int, int] | None = None
) -> np.ndarray:
    """A ROS matrix entry ({rows, cols, data} or a bare list) as an array of `shape` (None: a 1xN vector).

    Declared ``rows``/``cols`` must match the expected shape and the number of values in ``data``.
    """
    node = _required(doc, key, file=file)
    data = node.get("data") if isinstance(node, Mapping) else node
    values = _numbers(data if data is not None else [], file=file, field=key).reshape(-1)
    # a vector may be declared as a row (what ROS writes) or as a column
    allowed = [shape] if shape else [(1, values.size), (values.size, 1)]
    if isinstance(node, Mapping):
        declared = (node.get("rows"), node.get("cols"))
        mismatches = [_declared_mismatch(declared, dims) for dims in allowed]
        if all(mismatches):
            dim, size, given = mismatches[0]
            what = f"a {shape[0]}x{shape[1]} matrix" if shape else f"{values.size} values in data"
            raise SchemaError(
                f"declares {given!r}, expected {size} for {what}", file=file, field=f"{key}.{dim}"
            )
    return values if shape is None else _numbers(values, file=file, field=key, shape=shape)


def _declared_mismatch(declared: tuple[Any, Any], dims: tuple[int, int]) -> tuple[str, int, Any] | None:
    """(rows or cols, expected, declared) of the first declared dimension off `dims`; None when all fit."""
    for dim, size, given in zip(("rows", "cols"), dims, declared, strict=True):
        if given is not None and (isinstance(given, bool) or given != size):
            return dim, size, given
    return None


def _check_ros_projection(P: np.ndarray, *, file: Path) -> None:
    """P (3x4) as ROS defines it: finite, with positive focal lengths fx' = P[0, 0], fy' = P[1, 1]."""
    _finite(P, file=file, field="projection_matrix")
    if P[0, 0] <= 0 or P[1, 1] <= 0:
        raise SchemaError(
            f"focal lengths must be positive, got fx={P[0, 0]:g}, fy={P[1, 1]:g}",
            file=file,
            field="projection_matrix",
        )


def read_ros_camera_info(path: Path, doc: Mapping[str, Any], *, name: str | None = None) -> list[Camera]:
    """The camera of a ROS ``sensor_msgs/CameraInfo`` YAML file (see the module docstring)."""
    K = _ros_values(doc, "camera_matrix", file=path, shape=(3, 3))
    if "rectification_matrix" in doc:
        T = np.eye(4)
        T[:3, :3] = _ros_values(doc, "rectification_matrix", file=path, shape=(3, 3))
        _rigid(T, file=path, field="rectification_matrix")
    if "projection_matrix" in doc:
        _check_ros_projection(_ros_values(doc, "projection_matrix", file=path, shape=(3, 4)), file=path)
    coeffs = (
        _ros_values(doc, "distortion_coefficients", file=path) if "distortion_coefficients" in doc else []
    )
    distortion = _distortion(
        str(doc.get("distortion_model") or ""),
        list(coeffs),
        ROS_DISTORTION,
        file=path,
        field="distortion_coefficients",
        model_field="distortion_model",
    )
    data = {
        "name": name or doc.get("camera_name") or path.stem,
        "width": _number(_required(doc, "image_width", file=path), file=path, field="image_width"),
        "height": _number(_required(doc, "image_height", file=path), file=path, field="image_height"),
        "K": K.tolist(),
        "distortion": distortion,
    }
    fields = {"K": "camera_matrix", "distortion": "distortion_coefficients", "name": "camera_name"}
    fields |= {"width": "image_width", "height": "image_height"}
    return [_camera(data, file=path, fields=fields)]


# ------------------------------------------------------------------------------------------- OpenCV
def _cv_error_detail(exc: BaseException) -> str:
    """The last line of an OpenCV error (the assertion or message), without its source location."""
    cause = exc.__cause__ or exc
    return str(cause).strip().splitlines()[-1] if str(cause).strip() else type(cause).__name__


def _fs_matrix(node: Any) -> np.ndarray:
    """An ``!!opencv-matrix`` node as an array; a SchemaError (to be located) when OpenCV cannot read it."""
    try:
        return node.mat()
    except cv2.error as exc:
        rows, cols = (node.getNode(dim).real() for dim in ("rows", "cols"))
        count = node.getNode("data").size()
        detail = (
            f"data has {count} values, rows x cols is {rows:g}x{cols:g}"
            if count != rows * cols
            else f"OpenCV cannot read the matrix: {_cv_error_detail(exc)}"
        )
        raise SchemaError(detail) from None


def _fs_value(node: Any) -> Any:
    """A cv2.FileNode as a Python value: None, str, float, ndarray (matrices and sequences)."""
    if node.empty() or node.isNone():
        return None
    if node.isString():
        return node.string()
    if node.isInt() or node.isReal():
        return node.real()
    if node.isSeq():
        return np.array([_fs_value(node.at(i)) for i in range(node.size())], dtype=object)
    if node.isMap() and {"rows", "cols", "data"} <= set(node.keys()):
        return _fs_matrix(node)
    return None


class _FileStorage:
    """The nodes of a cv2.FileStorage document, read once."""

    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        try:
            fs = cv2.FileStorage(text, cv2.FILE_STORAGE_READ | cv2.FILE_STORAGE_MEMORY)
        except (cv2.error, SystemError) as exc:
            raise FormatError(
                f"OpenCV FileStorage cannot parse it: {_cv_error_detail(exc)}", file=path
            ) from None
        if not fs.isOpened():
            raise FormatError("OpenCV FileStorage cannot open it", file=path)
        root = fs.root()
        names: list[str] = root.keys()  # a FileNode is not iterable by name
        self.nodes: dict[str, Any] = {}
        try:
            for key in names:
                try:
                    self.nodes[key] = _fs_value(root.getNode(key))
                except SchemaError as exc:
                    raise exc.located(file=path, field=key) from None
        finally:
            fs.release()

    def first(self, names: Sequence[str]) -> tuple[str, Any] | None:
        """(name, value) of the first of `names` present, else None."""
        return next(((n, self.nodes[n]) for n in names if self.nodes.get(n) is not None), None)

    def numbers(self, name: str, shape: tuple[int, ...] | None = None) -> np.ndarray:
        return _numbers(self.nodes[name], file=self.path, field=name, shape=shape)

    def image_size(self) -> tuple[Any, Any]:
        if self.first(["image_width"]) and self.first(["image_height"]):
            return self.nodes["image_width"], self.nodes["image_height"]
        found = self.first(["image_size", "imageSize"])
        if found is None:
            raise FormatError(
                "image size is missing (expected image_width and image_height, or image_size: [w, h])",
                file=self.path,
                field="image_width",
            )
        width, height = self.numbers(found[0], shape=(2,))
        return width, height

    def pose(self) -> tuple[str, Pose] | None:
        """(node names, T_reference_camera) from T_world_camera, T_camera_world or rvec + tvec."""
        if self.first(["T_world_camera"]):
            return "T_world_camera", _rigid(
                self.numbers("T_world_camera", (4, 4)), file=self.path, field="T_world_camera"
            )
        if self.first(["T_camera_world"]):
            T = _rigid(self.numbers("T_camera_world", (4, 4)), file=self.path, field="T_camera_world")
            return "T_camera_world", invert_transform(T)
        present = [name for name in ("rvec", "tvec") if self.first([name])]
        if not present:
            return None
        if len(present) == 1:
            missing = "tvec" if present == ["rvec"] else "rvec"
            raise FormatError(
                f"required with {present[0]} (a pose needs both rvec and tvec)", file=self.path, field=missing
            )
        rvec, tvec = (
            _finite(self.numbers(name, (3,)), file=self.path, field=name) for name in ("rvec", "tvec")
        )
        T_camera_reference = np.eye(4)
        T_camera_reference[:3, :3] = cv2.Rodrigues(rvec.reshape(3, 1))[0]
        T_camera_reference[:3, 3] = tvec
        return "rvec", invert_transform(T_camera_reference)


def _opencv_distortion_model(fs: _FileStorage) -> str:
    model = fs.nodes.get("distortion_model")
    if isinstance(model, str):
        return "fisheye" if model.lower() in ("fisheye", "equidistant") else model.lower()
    return "fisheye" if fs.nodes.get("fisheye_model") else "opencv"


def read_opencv_file_storage(path: Path, text: str, *, name: str | None = None) -> list[Camera]:
    """The camera of an OpenCV FileStorage calibration file (see the module docstring)."""
    fs = _FileStorage(path, text)
    found_K = fs.first(OPENCV_NODE_NAMES["K"])
    if found_K is None:
        raise FormatError(
            f"no camera matrix (expected one of {', '.join(OPENCV_NODE_NAMES['K'])})", file=path
        )
    k_name = found_K[0]
    found_D = fs.first(OPENCV_NODE_NAMES["distortion"])
    d_name = found_D[0] if found_D else OPENCV_NODE_NAMES["distortion"][0]
    coeffs = fs.numbers(d_name).reshape(-1) if found_D else np.zeros(0)
    model = _opencv_distortion_model(fs)
    distortion = (
        {"model": "none", "coeffs": []}
        if coeffs.size == 0
        else _distortion(
            model, list(coeffs), OPENCV_DISTORTION, file=path, field=d_name, model_field="distortion_model"
        )
    )
    width, height = fs.image_size()
    camera_name = fs.nodes.get("camera_name")
    data = {
        "name": name or (camera_name if isinstance(camera_name, str) else path.stem),
        "width": width,
        "height": height,
        "K": fs.numbers(k_name, (3, 3)).tolist(),
        "distortion": distortion,
    }
    fields = {"K": k_name, "distortion": d_name, "width": "image_width", "height": "image_height"}
    pose = fs.pose()
    if pose is not None:
        data["T_world_camera"] = pose[1].tolist()
        fields["T_world_camera"] = pose[0]
    return [_camera(data, file=path, fields=fields | {"name": "camera_name"})]


# ------------------------------------------------------------------------------------------- Kalibr
def _kalibr_cameras(doc: Mapping[str, Any], *, file: Path) -> dict[str, Mapping[str, Any]]:
    """The ``camN`` entries of a camchain, in order (cam0, cam1, ...); other top-level keys are ignored."""
    numbers = {str(k): int(m.group(1)) for k in doc if (m := KALIBR_CAMERA_KEY.match(str(k)))}
    keys = sorted(numbers, key=numbers.__getitem__)
    if not keys:
        raise FormatError("no cameras (expected cam0, cam1, ...)", file=file)
    if keys != [f"cam{i}" for i in range(len(keys))]:
        raise FormatError(f"cameras must be cam0..cam{len(keys) - 1} without gaps, got {keys}", file=file)
    for cam in keys:
        if not isinstance(doc[cam], Mapping):
            raise FormatError(
                f"expected a camera mapping (camera_model, intrinsics, ...), got {doc[cam]!r}",
                file=file,
                field=cam,
            )
    return {cam: doc[cam] for cam in keys}


def _kalibr_transform(entry: Mapping[str, Any], key: str, *, file: Path, cam: str) -> Pose:
    return _rigid(
        _numbers(
            _required(entry, key, file=file, prefix=f"{cam}."), file=file, field=f"{cam}.{key}", shape=(4, 4)
        ),
        file=file,
        field=f"{cam}.{key}",
    )


def _kalibr_camera(cam: str, entry: Mapping[str, Any], *, file: Path) -> dict[str, Any]:
    prefix = f"{cam}."
    model = _required(entry, "camera_model", file=file, prefix=prefix)
    if model != "pinhole":
        raise FormatError(
            f"camera model '{model}' is not supported (only 'pinhole': OpenCV's camera model)",
            file=file,
            field=f"{cam}.camera_model",
        )
    fu, fv, pu, pv = _numbers(
        _required(entry, "intrinsics", file=file, prefix=prefix),
        file=file,
        field=f"{cam}.intrinsics",
        shape=(4,),
    )
    width, height = _numbers(
        _required(entry, "resolution", file=file, prefix=prefix),
        file=file,
        field=f"{cam}.resolution",
        shape=(2,),
    )
    coeffs = _numbers(entry.get("distortion_coeffs") or [], file=file, field=f"{cam}.distortion_coeffs")
    distortion = _distortion(
        str(entry.get("distortion_model", "none")),
        list(coeffs.reshape(-1)),
        KALIBR_DISTORTION,
        file=file,
        field=f"{cam}.distortion_coeffs",
        model_field=f"{cam}.distortion_model",
    )
    return {
        "name": cam,
        "width": width,
        "height": height,
        "K": _pinhole_K(fu, fv, pu, pv),
        "distortion": distortion,
    }


def kalibr_poses_in_cam0(doc: Mapping[str, Any], *, file: Path) -> tuple[dict[str, Pose], Pose | None]:
    """T_cam0_camN for every camera by chaining T_cn_cnm1, and T_cam0_imu (None without T_cam_imu)."""
    T_cam0: dict[str, Pose] = {}
    T_cam0_imu: Pose | None = None
    for i, (cam, entry) in enumerate(_kalibr_cameras(doc, file=file).items()):
        if i == 0:
            T_cam0[cam] = np.eye(4)
        else:  # T_cn_cnm1 maps cam n-1 points into cam n: cam n's pose in cam n-1 is its inverse
            T_cn_cnm1 = _kalibr_transform(entry, "T_cn_cnm1", file=file, cam=cam)
            T_cam0[cam] = T_cam0[f"cam{i - 1}"] @ invert_transform(T_cn_cnm1)
        if T_cam0_imu is None and entry.get("T_cam_imu") is not None:
            T_cam0_imu = T_cam0[cam] @ _kalibr_transform(entry, "T_cam_imu", file=file, cam=cam)
    return T_cam0, T_cam0_imu


def read_kalibr_camchain(path: Path, doc: Mapping[str, Any], *, reference: str = "cam0") -> list[Camera]:
    """The cameras of a Kalibr camchain, posed relative to `reference` ('camN' or 'imu')."""
    if not isinstance(doc, Mapping):
        raise FormatError("a Kalibr camchain is a mapping cam0: ..., cam1: ...", file=path)
    T_cam0, T_cam0_imu = kalibr_poses_in_cam0(doc, file=path)
    if reference == "imu":
        if T_cam0_imu is None:
            raise FormatError(
                "reference 'imu' needs T_cam_imu, which no camera has", file=path, field="cam0.T_cam_imu"
            )
        T_cam0_reference = T_cam0_imu
    elif reference in T_cam0:
        T_cam0_reference = T_cam0[reference]
    else:
        raise FormatError(
            f"unknown reference '{reference}'; choose imu or one of {sorted(T_cam0)}", file=path
        )
    T_reference_cam0 = invert_transform(T_cam0_reference)
    entries = _kalibr_cameras(doc, file=path)
    cameras = []
    for cam, T in T_cam0.items():
        data = _kalibr_camera(cam, entries[cam], file=path) | {
            "T_world_camera": (T_reference_cam0 @ T).tolist()
        }
        fields = {"K": f"{cam}.intrinsics", "distortion": f"{cam}.distortion_coeffs", "name": cam}
        fields |= {"width": f"{cam}.resolution", "height": f"{cam}.resolution"}
        cameras.append(_camera(data, file=path, fields=fields))
    return cameras


# ------------------------------------------------------------------------------------------- ours
def read_genima_calibration(path: Path, doc: Any) -> list[Camera]:
    """The cameras of our own calibration file (a `CalibrationFile`, or a bare list of cameras)."""
    data = {"cameras": doc} if isinstance(doc, list) else doc
    return parse_model(CalibrationFile, data, file=path).cameras


def calibration_document(cameras: Sequence[Camera]) -> dict[str, Any]:
    """Our calibration file's content for `cameras`, as plain JSON-compatible data."""
    doc = CalibrationFile(cameras=list(cameras)).model_dump(mode="json", exclude_none=True)
    doc["cameras"] = [{"name": cam.pop("name"), **cam} for cam in doc["cameras"]]  # name first, for people
    return doc


class _CalibrationDumper(yaml.SafeDumper):
    """YAML with each list of numbers (a matrix row, coefficients) on one line."""


def _represent_list(dumper: yaml.SafeDumper, data: list) -> yaml.Node:
    flow = all(isinstance(v, int | float) and not isinstance(v, bool) for v in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow or None)


_CalibrationDumper.add_representer(list, _represent_list)


def save_calibration(cameras: Sequence[Camera], path: str | Path) -> Path:
    """Write `cameras` in our format (JSON for ``*.json``, YAML otherwise), atomically."""
    path = Path(path)
    doc = calibration_document(cameras)
    text = (
        json.dumps(doc, indent=2) + "\n"
        if path.suffix.lower() == ".json"
        else yaml.dump(doc, Dumper=_CalibrationDumper, sort_keys=False)
    )
    atomic_write_text(path, text)
    return path


# ------------------------------------------------------------------------------------------- public API
def _place_in_world(cameras: list[Camera], T_world_reference: Pose | None) -> list[Camera]:
    if T_world_reference is None:
        return cameras
    T = np.asarray(T_world_reference, dtype=np.float64)
    return [
        c
        if c.T_world_camera is None
        else parse_model(Camera, c.model_dump() | {"T_world_camera": (T @ c.T_world_camera_array()).tolist()})
        for c in cameras
    ]


def _select(cameras: list[Camera], camera: str, *, file: Path) -> list[Camera]:
    chosen = [c for c in cameras if c.name == camera]
    if not chosen:
        raise FormatError(
            f"no camera '{camera}' in the file (cameras: {[c.name for c in cameras]})", file=file
        )
    return chosen


def load_calibration(
    path: str | Path,
    *,
    format: str | None = None,
    camera: str | None = None,
    reference: str = "cam0",
    T_world_reference: np.ndarray | None = None,
) -> list[Camera]:
    """Cameras from a calibration file in any supported format (detected when `format` is None).

    `camera` names the camera of single-camera formats (ros, opencv; default: the file's camera_name, else
    the file name) and selects one camera of multi-camera files (kalibr, genima). `reference` is Kalibr's
    reference frame ('cam0'..'camN' or 'imu'); `T_world_reference` is the reference frame's pose in the world
    (identity when None), applied to every camera that has a pose. See the module docstring.
    """
    path = Path(path)
    text = _read_text(path)
    fmt = format or detect_calibration_format(path, text)
    if fmt not in CALIBRATION_FORMATS:
        raise FormatError(
            f"unknown calibration format '{fmt}'; choose from {', '.join(CALIBRATION_FORMATS)}", file=path
        )
    if fmt == "opencv":
        cameras = read_opencv_file_storage(path, text, name=camera)
    else:
        doc = _parse_document(path, text)
        if fmt == "genima":
            cameras = read_genima_calibration(path, doc)
        elif not isinstance(doc, Mapping):
            raise FormatError(f"a {fmt} calibration file is a YAML mapping", file=path)
        elif fmt == "ros":
            cameras = read_ros_camera_info(path, doc, name=camera)
        else:
            cameras = read_kalibr_camchain(path, doc, reference=reference)
        if camera is not None and fmt in ("kalibr", "genima"):
            cameras = _select(cameras, camera, file=path)
    return _place_in_world(cameras, T_world_reference)


def rename_cameras(cameras: Sequence[Camera], names: Mapping[str, str]) -> list[Camera]:
    """`cameras` with names changed per `names` (old → new); every old name must exist."""
    missing = sorted(set(names) - {c.name for c in cameras})
    if missing:
        raise GenimaDataError(
            f"cannot rename {missing}: no such camera (cameras: {[c.name for c in cameras]})"
        )
    return [parse_model(Camera, c.model_dump() | {"name": names.get(c.name, c.name)}) for c in cameras]


def load_calibrations(
    paths: Sequence[str | Path],
    *,
    format: str | None = None,
    camera: str | None = None,
    rename: Mapping[str, str] | None = None,
    reference: str = "cam0",
    T_world_reference: np.ndarray | None = None,
) -> list[Camera]:
    """Cameras of several calibration files (see `load_calibration`), renamed, with unique names."""
    cameras = [
        cam
        for path in paths
        for cam in load_calibration(
            path, format=format, camera=camera, reference=reference, T_world_reference=T_world_reference
        )
    ]
    cameras = rename_cameras(cameras, rename or {})
    names = [c.name for c in cameras]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise GenimaDataError(
            f"several files describe camera(s) {dupes}; use --rename or --camera to tell them apart"
        )
    return cameras


def load_pose(path: str | Path) -> Pose:
    """A 4x4 rigid transform T_world_<frame> (a frame's pose in the world) from a file.

    Accepted: OpenCV FileStorage with ``T_world_camera``, ``T_camera_world`` or ``rvec``/``tvec`` (see the
    module docstring); YAML/JSON holding a bare 4x4 list or a mapping with one ``T_world_<frame>`` entry.
    """
    path = Path(path)
    text = _read_text(path)
    if _looks_like_opencv(text):
        found = _FileStorage(path, text).pose()
        if found is None:
            raise FormatError("no pose (expected T_world_camera, T_camera_world or rvec and tvec)", file=path)
        return found[1]
    doc = _parse_document(path, text)
    if isinstance(doc, Mapping):
        keys = [k for k in doc if str(k).startswith("T_world_")]
        if len(keys) != 1:
            raise FormatError(
                f"expected exactly one T_world_<frame> entry, found {keys or 'none'}", file=path
            )
        field, value = str(keys[0]), doc[keys[0]]
    else:
        field, value = "pose", doc
    return _rigid(_numbers(value, file=path, field=field, shape=(4, 4)), file=path, field=field)


# ------------------------------------------------------------------------------------------- attach
def _has_pose(camera: Camera) -> bool:
    return camera.T_world_camera is not None or camera.T_link_camera is not None


def merge_camera(
    existing: Camera, new: Camera, *, pose: Pose | None = None, intrinsics_only: bool = False
) -> Camera:
    """`existing` with `new`'s intrinsics and, unless told otherwise, `new`'s pose.

    The pose comes from `pose` (a static T_world_camera) when given, else from `new` when it has one and
    `intrinsics_only` is False, else it stays as it was. A link-mounted camera cannot receive a static pose.
    """
    update: dict[str, Any] = {
        "width": new.width,
        "height": new.height,
        "K": new.K,
        "distortion": new.distortion,
    }
    if new.depth_range is not None:
        update["depth_range"] = new.depth_range
    if pose is not None:
        update |= {"mount": "world", "T_world_camera": np.asarray(pose).tolist(), "T_link_camera": None}
    elif _has_pose(new) and not intrinsics_only:
        update |= {
            "mount": new.mount,
            "T_world_camera": new.T_world_camera,
            "T_link_camera": new.T_link_camera,
        }
    if existing.mount != "world" and update.get("mount", existing.mount) == "world":
        raise SchemaError(
            f"camera '{existing.name}' moves with link '{existing.mount}' but the calibration gives it a "
            "static T_world_camera; attach its intrinsics only, or give mount and T_link_camera in "
            "genima format",
            field=f"cameras.{existing.name}.T_world_camera",
        )
    return parse_model(Camera, existing.model_dump() | update)


def check_image_sizes(dataset: Any, cameras: Sequence[Camera]) -> None:
    """SchemaError naming camera, episode and stream when a camera's size differs from its recorded frames."""
    sizes = {c.name: (c.width, c.height) for c in cameras}
    for episode_id in dataset.episode_ids:
        with dataset.episode(episode_id) as episode:
            for path in episode.paths():
                spec = spec_for(path)
                match = spec.regex().match(path) if spec is not None and spec.image else None
                cam = match.groupdict().get("cam") if match else None
                if cam not in sizes:
                    continue
                height, width = episode[path].shape[1:3]
                if (width, height) != sizes[cam]:
                    raise SchemaError(
                        f"camera '{cam}' is calibrated for {sizes[cam][0]}x{sizes[cam][1]} but the frames "
                        f"are {width}x{height}",
                        file=dataset.path,
                        episode=episode_id,
                        field=path,
                    )


def attach_calibration(
    dataset_path: str | Path,
    cameras: Sequence[Camera],
    *,
    poses: Mapping[str, Pose] | None = None,
    intrinsics_only: bool = False,
) -> Manifest:
    """Replace the calibration of the dataset's cameras and rewrite its manifest atomically.

    Each camera in `cameras` must exist in the dataset (rename first) and match the size of its recorded
    frames in every episode. Its intrinsics replace the manifest's; its pose too when it has one (unless
    `intrinsics_only`), otherwise the manifest's pose stays. `poses` (camera name → T_world_camera, e.g.
    from `load_pose`) override the pose of any dataset camera, attached or not. Returns the new manifest.
    """
    poses = dict(poses or {})
    with open_dataset(dataset_path) as ds:  # read-only first: refuses an uncommitted dataset
        manifest = ds.manifest
        known = {c.name: c for c in manifest.cameras}
        unknown = sorted({c.name for c in cameras} - set(known)) + sorted(set(poses) - set(known))
        if unknown:
            raise SchemaError(
                f"no camera {unknown} in the dataset (cameras: {sorted(known)}); rename them "
                "(--rename OLD=NEW)",
                file=ds.path,
                field="cameras",
            )
        incoming = {c.name: c for c in cameras}
        if len(incoming) != len(cameras):
            raise SchemaError("several calibrations for the same camera", file=ds.path, field="cameras")
        merged = []
        for cam in manifest.cameras:
            new = incoming.get(cam.name, cam)
            try:
                merged.append(
                    merge_camera(cam, new, pose=poses.get(cam.name), intrinsics_only=intrinsics_only)
                )
            except SchemaError as exc:
                raise exc.located(file=ds.path) from None
        check_image_sizes(ds, list(incoming.values()))
    with open_dataset(dataset_path, "a") as ds:
        return ds.update_manifest(cameras=[c.model_dump(mode="json") for c in merged])


# ------------------------------------------------------------------------------------------- display
def calibration_table(cameras: Sequence[Camera], title: str = "cameras") -> Any:
    """A rich table with one column per camera: size, intrinsics, distortion, mount and pose."""
    from rich.table import Table

    def vector(v: np.ndarray, fmt: str) -> str:
        return "[" + ", ".join(format(float(x), fmt) for x in v) + "]"

    table = Table(title=title)
    table.add_column("", style="bold")
    for cam in cameras:
        table.add_column(cam.name)
    rows: dict[str, list[str]] = {}
    for cam in cameras:
        K = cam.K_array
        T = cam.T_world_camera_array()
        T = cam.T_link_camera_array() if T is None else T
        values = {
            "size (px)": f"{cam.width}x{cam.height}",
            "fx, fy (px)": f"{K[0, 0]:.2f}, {K[1, 1]:.2f}",
            "cx, cy (px)": f"{K[0, 2]:.2f}, {K[1, 2]:.2f}",
            "distortion": f"{cam.distortion.model} ({len(cam.distortion.coeffs)})",
            "coefficients": vector(np.asarray(cam.distortion.coeffs), ".4g"),
            "mount": cam.mount,
            "position in mount (m)": "-" if T is None else vector(T[:3, 3], "+.3f"),
            "optical axis in mount": "-" if T is None else vector(T[:3, 2], "+.3f"),
        }
        for key, value in values.items():
            rows.setdefault(key, []).append(value)
    for key, values in rows.items():
        table.add_row(key, *values)
    return table

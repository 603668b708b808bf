"""The calibrated demonstration schema: manifest, robot, cameras with calibration, tasks, episode metadata.

Every field carries a description, its unit (``json_schema_extra["unit"]``) and its range. Models validate
what a wrong calibration breaks downstream: K with positive focal lengths, rotations orthonormal with
det +1, distortion coefficient counts that match the model, fps > 0. Matrices are nested lists in JSON and
numpy arrays through the ``*_array`` helpers. Conventions are fixed in DESIGN.md: metres, radians, seconds,
OpenCV camera frame, ``T_world_camera`` is the camera's pose in the world (robot-base) frame.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from genima_data.errors import SchemaError

FORMAT_VERSION = "1.0"
ROTATION_TOLERANCE = 1e-4  # |R^T R - I| and |det R - 1|; RLBench float32 poses are within ~1e-6
EPISODE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$"
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$"

Row3 = Annotated[list[float], Field(min_length=3, max_length=3)]
Row4 = Annotated[list[float], Field(min_length=4, max_length=4)]
Matrix3x3 = Annotated[list[Row3], Field(min_length=3, max_length=3)]
Matrix4x4 = Annotated[list[Row4], Field(min_length=4, max_length=4)]

IDENTITY_4X4: list[list[float]] = np.eye(4).tolist()


def _field(description: str, unit: str | None = None, **kwargs: Any) -> Any:
    """A pydantic Field whose JSON Schema states the unit next to the description."""
    extra = {"unit": unit} if unit else None
    return Field(description=description, json_schema_extra=extra, **kwargs)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, use_enum_values=True)


def check_rigid_transform(matrix: list[list[float]], what: str) -> list[list[float]]:
    """Raise ValueError unless `matrix` is a 4x4 rigid transform (orthonormal rotation, det +1)."""
    T = np.asarray(matrix, dtype=np.float64)
    if not np.all(np.isfinite(T)):
        raise ValueError(f"{what} has non-finite entries")
    if not np.allclose(T[3], [0, 0, 0, 1], atol=1e-6):
        raise ValueError(f"{what} bottom row is {T[3].tolist()}, expected [0, 0, 0, 1]")
    R = T[:3, :3]
    orth_err = float(np.abs(R.T @ R - np.eye(3)).max())
    if orth_err > ROTATION_TOLERANCE:
        raise ValueError(f"{what} rotation is not orthonormal (max |R^T R - I| = {orth_err:.2e})")
    det = float(np.linalg.det(R))
    if abs(det - 1.0) > ROTATION_TOLERANCE:
        raise ValueError(f"{what} rotation has determinant {det:+.4f}, expected +1 (a reflection?)")
    return matrix


class DistortionModel(str, Enum):
    """Lens distortion models, in OpenCV's parameterisation."""

    none = "none"
    opencv = "opencv"  # plumb-bob / rational / thin-prism: k1 k2 p1 p2 [k3 [k4 k5 k6 [s1 s2 s3 s4 [tx ty]]]]
    fisheye = "fisheye"  # Kannala-Brandt as in cv2.fisheye: k1 k2 k3 k4


DISTORTION_COEFF_COUNTS: dict[str, tuple[int, ...]] = {
    "none": (0,),
    "opencv": (4, 5, 8, 12, 14),
    "fisheye": (4,),
}


class Distortion(_Model):
    """Lens distortion model and coefficients (dimensionless, OpenCV order)."""

    model: DistortionModel = _field("Distortion model: none, opencv (plumb-bob/rational) or fisheye.")
    coeffs: list[float] = _field(
        "Coefficients in OpenCV order. opencv: 4, 5, 8, 12 or 14 values (k1 k2 p1 p2 [k3 ...]); "
        "fisheye: k1 k2 k3 k4; none: empty.",
        unit="dimensionless",
        default_factory=list,
    )

    @model_validator(mode="after")
    def _coeff_count_matches_model(self) -> Distortion:
        allowed = DISTORTION_COEFF_COUNTS[str(self.model)]
        if len(self.coeffs) not in allowed:
            raise ValueError(
                f"distortion model '{self.model}' takes {' or '.join(map(str, allowed))} coefficients, "
                f"got {len(self.coeffs)}"
            )
        if not all(math.isfinite(c) for c in self.coeffs):
            raise ValueError("distortion coefficients must be finite")
        return self

    @property
    def is_identity(self) -> bool:
        # fisheye with zero coefficients is still equidistant (r = θ), not a pinhole
        return self.model == "none" or (self.model == "opencv" and not any(self.coeffs))


class CameraCalibration(_Model):
    """Intrinsic and extrinsic calibration of one camera, for the image size it was made at."""

    width: int = _field("Image width the calibration belongs to.", unit="px", gt=0, le=16384)
    height: int = _field("Image height the calibration belongs to.", unit="px", gt=0, le=16384)
    K: Matrix3x3 = _field(
        "3x3 pinhole intrinsics in OpenCV convention [[fx, s, cx], [0, fy, cy], [0, 0, 1]]; fx, fy > 0; "
        "pixel centres at integer coordinates.",
        unit="px",
    )
    distortion: Distortion = _field(
        "Lens distortion applied after the pinhole projection.",
        default_factory=lambda: Distortion(model="none"),
    )
    mount: str = _field(
        "'world' for a static camera, otherwise the name of the robot link the camera is fixed to.",
        default="world",
        min_length=1,
    )
    T_world_camera: Matrix4x4 | None = _field(
        "Static camera pose: 4x4 transform from the OpenCV camera frame (x right, y down, z forward) to "
        "the world/robot-base frame. Null for a moving camera, whose per-frame poses live in "
        "cameras/<cam>/extrinsics or follow from mount + T_link_camera.",
        unit="m",
        default=None,
    )
    T_link_camera: Matrix4x4 | None = _field(
        "Fixed pose of the camera in its mount link's frame (hand-eye calibration), for link-mounted "
        "cameras.",
        unit="m",
        default=None,
    )
    depth_range: tuple[float, float] | None = _field(
        "Near and far clipping planes the depth images were normalised with, if any.",
        unit="m",
        default=None,
    )

    @field_validator("K")
    @classmethod
    def _k_is_pinhole(cls, K: list[list[float]]) -> list[list[float]]:
        k = np.asarray(K, dtype=np.float64)
        if not np.all(np.isfinite(k)):
            raise ValueError("K has non-finite entries")
        if k[0, 0] <= 0 or k[1, 1] <= 0:
            raise ValueError(
                f"K focal lengths must be positive (OpenCV convention), got fx={k[0, 0]:g}, fy={k[1, 1]:g}"
                " (RLBench stores negative ones: convert with geometry.camera)"
            )
        if k[1, 0] != 0 or list(k[2]) != [0.0, 0.0, 1.0]:
            raise ValueError(f"K must have the form [[fx, s, cx], [0, fy, cy], [0, 0, 1]], got {k.tolist()}")
        return K

    @field_validator("T_world_camera", "T_link_camera")
    @classmethod
    def _pose_is_rigid(cls, T: list[list[float]] | None, info: Any) -> list[list[float]] | None:
        return None if T is None else check_rigid_transform(T, info.field_name)

    @field_validator("depth_range")
    @classmethod
    def _depth_range_ordered(cls, r: tuple[float, float] | None) -> tuple[float, float] | None:
        if r is not None and not (0 <= r[0] < r[1]):
            raise ValueError(f"depth_range must satisfy 0 <= near < far, got {r}")
        return r

    @model_validator(mode="after")
    def _mount_matches_pose(self) -> CameraCalibration:
        if self.mount == "world":
            if self.T_link_camera is not None:
                raise ValueError("a camera mounted on 'world' cannot have T_link_camera")
        elif self.T_world_camera is not None:
            raise ValueError(
                f"camera mounted on link '{self.mount}' moves with it: T_world_camera must be null"
            )
        return self

    @property
    def K_array(self) -> np.ndarray:
        return np.asarray(self.K, dtype=np.float64)

    @property
    def is_static(self) -> bool:
        return self.mount == "world"

    def T_world_camera_array(self) -> np.ndarray | None:
        return None if self.T_world_camera is None else np.asarray(self.T_world_camera, dtype=np.float64)

    def T_link_camera_array(self) -> np.ndarray | None:
        return None if self.T_link_camera is None else np.asarray(self.T_link_camera, dtype=np.float64)


class Camera(CameraCalibration):
    """A named camera of the dataset with its calibration."""

    name: str = _field(
        "Camera name, used in the store paths cameras/<name>/... (GENIMA's: wrist, front, left_shoulder, "
        "right_shoulder, overhead).",
        pattern=NAME_PATTERN,
    )

    def calibration(self) -> CameraCalibration:
        return CameraCalibration(**self.model_dump(exclude={"name"}))


class Robot(_Model):
    """The arm: kinematic model, joints and their limits, and where its base stands in the world."""

    name: str = _field("Human-readable robot name, e.g. 'Franka Emika Panda'.", min_length=1)
    model: str = _field(
        "Kinematic model: 'franka_panda' and 'ur5e' are built in; 'urdf' reads `urdf`.",
        min_length=1,
    )
    joint_names: list[str] = _field("Names of the arm joints, in the order of joint_positions.", min_length=1)
    joint_lower: list[float] = _field("Lower joint position limits.", unit="rad")
    joint_upper: list[float] = _field("Upper joint position limits.", unit="rad")
    joint_velocity_limits: list[float] | None = _field(
        "Maximum joint speeds, used to flag trajectory jumps.", unit="rad/s", default=None
    )
    T_world_base: Matrix4x4 = _field(
        "Pose of the robot base in the world frame.", unit="m", default_factory=lambda: IDENTITY_4X4
    )
    urdf: str | None = _field("URDF path relative to the dataset root, for model 'urdf'.", default=None)
    ee_link: str | None = _field(
        "Link whose pose robot/ee_pose records (the gripper tip GENIMA's gripper sphere marks).", default=None
    )
    gripper: str | None = _field("Gripper description, e.g. 'Franka Hand'.", default=None)
    joint_offsets: list[float] | None = _field(
        "Added to joint_positions before forward kinematics, where the recording's joint zero differs from "
        "the kinematic model's (RLBench's Panda: joint 4 by 4.0°). None: no offsets.",
        unit="rad",
        default=None,
    )

    @property
    def dof(self) -> int:
        return len(self.joint_names)

    @field_validator("T_world_base")
    @classmethod
    def _base_is_rigid(cls, T: list[list[float]]) -> list[list[float]]:
        return check_rigid_transform(T, "T_world_base")

    @model_validator(mode="after")
    def _limits_match_joints(self) -> Robot:
        dof = len(self.joint_names)
        for name in ("joint_lower", "joint_upper", "joint_velocity_limits", "joint_offsets"):
            values = getattr(self, name)
            if values is not None and len(values) != dof:
                raise ValueError(f"{name} has {len(values)} entries for {dof} joints")
        bad = [
            n
            for n, lo, hi in zip(self.joint_names, self.joint_lower, self.joint_upper, strict=False)
            if not lo < hi
        ]
        if bad:
            raise ValueError(f"joint_lower must be below joint_upper for joints {bad}")
        if self.joint_velocity_limits is not None and min(self.joint_velocity_limits) <= 0:
            raise ValueError("joint_velocity_limits must be positive")
        if self.model == "urdf" and not self.urdf:
            raise ValueError("robot model 'urdf' needs the `urdf` path")
        return self


class Task(_Model):
    """A task the demonstrations perform, with its natural-language instructions."""

    name: str = _field("Task name, e.g. RLBench's 'reach_target'.", min_length=1)
    instructions: list[str] = _field(
        "Instruction strings (e.g. RLBench variation descriptions).", default_factory=list
    )
    description: str | None = _field("Free-text task description.", default=None)


class EpisodeSource(_Model):
    """Where an episode came from, for provenance."""

    format: str = _field("Reader that produced the episode, e.g. 'rlbench', 'aloha', 'zarr'.")
    path: str = _field("Source path relative to the conversion's source root.")
    index: int | None = _field("Episode index in the source, if it has one.", default=None, ge=0)


class EpisodeMeta(_Model):
    """Per-episode metadata, stored as the episode group's attributes."""

    episode_id: str = _field(
        "Unique episode id within the dataset; used as file/group name.", pattern=EPISODE_ID_PATTERN
    )
    task: str = _field("Task name; matches one of the manifest's tasks.", min_length=1)
    instruction: str = _field("Natural-language instruction for this episode.", default="")
    success: bool | None = _field("Whether the demonstration succeeded; null if unknown.", default=None)
    length: int = _field("Number of frames T.", unit="frames", ge=1)
    variation: int | None = _field("Task variation index (RLBench).", default=None, ge=0)
    seed: int | None = _field("Random seed the episode was generated with, if any.", default=None)
    source: EpisodeSource | None = _field("Provenance.", default=None)
    extras: dict[str, Any] = _field("Free-form, JSON-serialisable extra metadata.", default_factory=dict)


class EpisodeSummary(_Model):
    """One line of the manifest's episode index."""

    episode_id: str = _field("Episode id.", pattern=EPISODE_ID_PATTERN)
    task: str = _field("Task name.")
    length: int = _field("Number of frames.", unit="frames", ge=1)
    variation: int | None = _field("Task variation index.", default=None, ge=0)
    success: bool | None = _field("Success label.", default=None)

    @classmethod
    def of(cls, meta: EpisodeMeta) -> EpisodeSummary:
        return cls(
            episode_id=meta.episode_id,
            task=meta.task,
            length=meta.length,
            variation=meta.variation,
            success=meta.success,
        )


class StorageInfo(_Model):
    """How the store is encoded, so a reader can tell what it needs before touching arrays."""

    backend: Literal["hdf5", "zarr"] = _field("Store back-end.")
    codecs: dict[str, str] = _field(
        "Codec name per array kind ('image', 'array'); see genima_data.store.codecs.", default_factory=dict
    )
    requires: list[str] = _field("Python packages needed to decode the store.", default_factory=list)
    writer: str = _field("Software that wrote the store, with version.", default="")


class Manifest(_Model):
    """Dataset-level description: robot, calibrated cameras, tasks, frame rate, and the episode index."""

    format_version: str = _field("Version of this schema the dataset follows.", default=FORMAT_VERSION)
    name: str = _field("Dataset name.", min_length=1)
    description: str = _field("Free-text description.", default="")
    fps: float = _field("Nominal frame rate of the episodes.", unit="Hz", gt=0, le=1000)
    robot: Robot = _field("The robot arm.")
    cameras: list[Camera] = _field("Calibrated cameras.", default_factory=list)
    tasks: list[Task] = _field("Tasks demonstrated.", default_factory=list)
    license: str | None = _field("Licence of the data (SPDX id or text).", default=None)
    provenance: str = _field("Where the data came from (source format and path, vendor).", default="")
    episodes: list[EpisodeSummary] = _field(
        "Index of complete episodes, maintained by the store and written last.", default_factory=list
    )
    splits: dict[str, list[str]] = _field("Named lists of episode ids, e.g. train/val.", default_factory=dict)
    storage: StorageInfo | None = _field("Encoding of the store, maintained by the store.", default=None)
    extras: dict[str, Any] = _field("Free-form, JSON-serialisable extra metadata.", default_factory=dict)

    @model_validator(mode="after")
    def _unique_names(self) -> Manifest:
        for what, names in (
            ("camera", [c.name for c in self.cameras]),
            ("task", [t.name for t in self.tasks]),
            ("episode", [e.episode_id for e in self.episodes]),
        ):
            dupes = sorted({n for n in names if names.count(n) > 1})
            if dupes:
                raise ValueError(f"duplicate {what} names: {dupes}")
        return self

    def camera(self, name: str) -> Camera:
        for cam in self.cameras:
            if cam.name == name:
                return cam
        raise KeyError(f"no camera '{name}' in the manifest (cameras: {[c.name for c in self.cameras]})")

    def task(self, name: str) -> Task | None:
        return next((t for t in self.tasks if t.name == name), None)

    def identity(self) -> dict[str, Any]:
        """What makes two manifests describe the same dataset (everything but the store's bookkeeping)."""
        return self.model_dump(mode="json", exclude={"episodes", "storage", "splits"})

    def with_episodes(self, summaries: Iterable[EpisodeSummary]) -> Manifest:
        return self.model_copy(
            update={"episodes": sorted(summaries, key=lambda s: natural_key(s.episode_id))}
        )

    def to_json(self) -> str:
        return self.model_dump_json(indent=2)


def natural_key(text: str) -> tuple:
    """Sort key that orders 'episode2' before 'episode10'."""
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", text))


def parse_model(
    model: type[_Model], data: Any, *, file: str | Path | None = None, episode: str | None = None
):
    """Validate `data` as `model`, turning pydantic's report into a one-line SchemaError naming the field."""
    try:
        if isinstance(data, str | bytes):
            return model.model_validate_json(data)
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or model.__name__
        more = f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise SchemaError(f"{err['msg']}{more}", file=file, episode=episode, field=field) from None
    except json.JSONDecodeError as exc:  # pragma: no cover - pydantic wraps JSON errors itself
        raise SchemaError(f"invalid JSON: {exc}", file=file, episode=episode) from None


JSON_SCHEMA_MODELS: dict[str, type[_Model]] = {
    "manifest": Manifest,
    "episode_meta": EpisodeMeta,
    "camera_calibration": CameraCalibration,
}


def json_schemas() -> dict[str, dict[str, Any]]:
    """JSON Schema documents for the public models, keyed by file stem."""
    from genima_data.formats.raw_mapping import RawMapping  # imports this module, so imported late

    out = {}
    for stem, model in {**JSON_SCHEMA_MODELS, "raw_mapping": RawMapping}.items():
        schema = model.model_json_schema()
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schema["$id"] = f"https://genima-data.dev/schemas/{FORMAT_VERSION}/{stem}.schema.json"
        out[stem] = schema
    return out


def write_json_schemas(directory: str | Path) -> list[Path]:
    """Write `<stem>.schema.json` files into `directory`; returns the paths written."""
    from genima_data.atomic import atomic_write_text

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for stem, schema in json_schemas().items():
        path = directory / f"{stem}.schema.json"
        atomic_write_text(path, json.dumps(schema, indent=2, sort_keys=True) + "\n")
        paths.append(path)
    return paths

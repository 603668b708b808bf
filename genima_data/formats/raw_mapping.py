"""The mapping file of the raw-recording importer: where a vendor's episode folders keep each stream.

A small YAML document (validated here, JSON Schema ``schemas/raw_mapping.schema.json``) says, for every
episode folder: the image folder (PNG/JPEG sequence) or video file of each camera and its timestamps,
the joint and gripper logs (CSV, JSON lines, NPZ or HDF5) with column names and units, the calibration
file of each camera, the robot, the task, and how streams recorded at different rates are aligned to the
camera clock. Paths of streams are relative to the episode folder; calibration and pose files are relative
to the recording's root folder (they hold for every episode). See ``examples/vendor/`` for two layouts.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from genima_data.errors import SchemaError
from genima_data.schema import Matrix4x4, Robot, Task, check_rigid_transform, parse_model

MAPPING_TAG = "genima-raw-mapping"
DEFAULT_MAPPING_FILE = "raw_mapping.yaml"  # looked for in the recording's root when no mapping is given


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TimeUnit(str, Enum):
    """Unit of a timestamp column."""

    s = "s"
    ms = "ms"
    us = "us"
    ns = "ns"


TIME_UNIT_SECONDS = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}


class Timestamps(_Strict):
    """Where a stream's timestamps are: a column of a log file, or a number in each image file name."""

    file: str | None = Field(
        None, description="Log file with the timestamp column (episode-relative); default: the stream's file."
    )
    column: str | None = Field(None, description="Column (CSV/JSON lines key, NPZ array, HDF5 dataset).")
    filename_pattern: str | None = Field(
        None, description="Regular expression with a group named t, matched against image file names."
    )
    unit: TimeUnit = Field(TimeUnit.s, description="Unit of the values: s, ms, us or ns.")

    @model_validator(mode="after")
    def _one_source(self) -> Timestamps:
        if (self.column is None) == (self.filename_pattern is None):
            raise ValueError("give exactly one of column and filename_pattern")
        if self.filename_pattern is not None and "(?P<t>" not in self.filename_pattern:
            raise ValueError("filename_pattern needs a group named t, e.g. '(?P<t>[0-9.]+)\\.png'")
        return self


class CameraMapping(_Strict):
    """One camera: its frames, their timestamps, its calibration and pose."""

    images: str | None = Field(None, description="Glob of the frame files (PNG/JPEG), episode-relative.")
    video: str | None = Field(None, description="Video file (MP4 and anything PyAV reads), episode-relative.")
    timestamps: Timestamps | None = Field(
        None, description="Frame timestamps; video files default to their presentation timestamps."
    )
    calibration: str | None = Field(
        None,
        description="Calibration file (ROS camera_info, OpenCV, Kalibr camchain or genima), relative to the "
        "recording's root; default: the --calibration file.",
    )
    calibration_format: Literal["ros", "opencv", "kalibr", "genima"] | None = Field(
        None, description="Format of the calibration file; detected when omitted."
    )
    calibration_camera: str | None = Field(
        None,
        description="Camera name inside a multi-camera file (Kalibr 'cam0'); default: this camera's name.",
    )
    T_world_reference: Matrix4x4 | None = Field(
        None,
        description="Pose of the calibration file's reference frame (Kalibr cam0) in the robot base frame.",
    )
    T_world_camera: Matrix4x4 | None = Field(
        None, description="Static camera pose (OpenCV camera frame to robot base), if the file has none."
    )
    pose: str | None = Field(None, description="File holding T_world_camera (see calibration.load_pose).")
    mount: str = Field("world", description="'world', or the robot link the camera is fixed to.")
    T_link_camera: Matrix4x4 | None = Field(None, description="Hand-eye pose for a link-mounted camera.")

    @model_validator(mode="after")
    def _one_source(self) -> CameraMapping:
        if (self.images is None) == (self.video is None):
            raise ValueError("give exactly one of images and video")
        if self.images is not None and self.timestamps is None:
            raise ValueError("image sequences need timestamps (a log column or filename_pattern)")
        if (
            self.timestamps is not None
            and self.timestamps.column is not None
            and self.timestamps.file is None
        ):
            raise ValueError("camera timestamps from a column need the log file (timestamps.file)")
        for name in ("T_world_reference", "T_world_camera", "T_link_camera"):
            value = getattr(self, name)
            if value is not None:
                check_rigid_transform(value, name)
        if self.mount != "world" and self.T_link_camera is None:
            raise ValueError(f"a camera mounted on '{self.mount}' needs T_link_camera")
        return self


class JointsMapping(_Strict):
    """The arm's joint positions log."""

    file: str = Field(description="Log file (CSV, JSON lines, NPZ, HDF5), episode-relative.")
    columns: list[str] | str = Field(
        description="One column per joint, in the robot's joint order, or one column holding (N, dof) rows."
    )
    unit: Literal["rad", "deg"] = Field(description="Unit of the joint positions.")
    timestamps: Timestamps = Field(description="Timestamp of each row.")


class GripperMapping(_Strict):
    """The gripper log and how its values become gripper_open in [0, 1] (1 = open)."""

    file: str = Field(description="Log file (CSV, JSON lines, NPZ, HDF5), episode-relative.")
    column: str = Field(description="Column with the gripper state.")
    kind: Literal["width", "open_closed", "open_fraction"] = Field(
        description="width: finger opening in metres (needs max_width_m); open_closed: booleans or 0/1; "
        "open_fraction: already in [0, 1]."
    )
    max_width_m: float | None = Field(
        None, gt=0, le=1, description="Width of the fully open gripper, metres."
    )
    true_means: Literal["open", "closed"] = Field("open", description="For open_closed: what true (1) means.")
    timestamps: Timestamps = Field(description="Timestamp of each row.")

    @model_validator(mode="after")
    def _width_needs_max(self) -> GripperMapping:
        if self.kind == "width" and self.max_width_m is None:
            raise ValueError("kind 'width' needs max_width_m (the fully open width in metres)")
        return self


class AlignMapping(_Strict):
    """How streams recorded at different rates are put on the reference camera's clock."""

    reference_camera: str | None = Field(None, description="Camera whose frames are the episode's frames.")
    method: Literal["linear", "nearest"] = Field(
        "linear", description="Joint (and gripper width) samples: linear interpolation or nearest sample."
    )
    tolerance_s: float = Field(
        0.02, gt=0, description="A frame needs robot samples this close (both neighbours for linear)."
    )
    camera_tolerance_s: float | None = Field(
        None, gt=0, description="Other cameras' frames must be this close; default half a frame period."
    )
    missing: Literal["drop", "error"] = Field(
        "drop", description="Frames without a sample within tolerance: drop them (reported) or stop."
    )
    dropped_frames: Literal["error", "allow"] = Field(
        "error", description="Gaps in a camera's timestamps (dropped frames): stop, or keep the gaps."
    )
    dropped_frame_factor: float = Field(
        1.5, gt=1, description="A gap is an interval above this × the median."
    )


class EpisodesMapping(_Strict):
    """Which folders are episodes and what they show."""

    folders: str = Field("*", description="Glob of episode folders in the recording's root.")
    metadata: str | None = Field(
        None, description="JSON/YAML file in each folder with task, instruction, success, variation."
    )
    task: str | None = Field(None, description="Task of every episode (unless its metadata file says).")
    instruction: str = Field("", description="Instruction of every episode (unless its metadata file says).")
    success: bool | None = Field(None, description="Success label of every episode (unless ...).")


class RawMapping(_Strict):
    """The mapping file: see the module docstring."""

    format: Literal["genima-raw-mapping"] = Field(MAPPING_TAG, description="Marks the file's format.")
    name: str = Field(description="Dataset name.", min_length=1)
    description: str = Field("", description="Free-text description.")
    license: str | None = Field(None, description="Licence of the data (SPDX id or text).")
    provenance: str = Field("", description="Vendor, site, recording setup.")
    robot: str | Robot = Field(description="Built-in robot model (franka_panda, ur5e) or a full robot.")
    T_world_base: Matrix4x4 | None = Field(
        None, description="Robot base pose in the world (built-in robots)."
    )
    fps: float | None = Field(None, gt=0, description="Nominal frame rate; default: the reference camera's.")
    tasks: list[Task] = Field(default_factory=list, description="Tasks with instructions (else collected).")
    episodes: EpisodesMapping = Field(default_factory=EpisodesMapping, description="Episode folders.")
    cameras: dict[str, CameraMapping] = Field(description="Cameras by name.", min_length=1)
    joints: JointsMapping = Field(description="Joint positions log.")
    gripper: GripperMapping = Field(description="Gripper log.")
    align: AlignMapping = Field(default_factory=AlignMapping, description="Stream alignment.")
    check_units: bool = Field(True, description="Refuse joint values that look like the other unit.")

    @model_validator(mode="after")
    def _reference_is_a_camera(self) -> RawMapping:
        ref = self.align.reference_camera
        if ref is not None and ref not in self.cameras:
            raise ValueError(
                f"align.reference_camera '{ref}' is not one of the cameras {sorted(self.cameras)}"
            )
        return self

    @property
    def reference_camera(self) -> str:
        return self.align.reference_camera or next(iter(self.cameras))


def load_mapping(path: str | Path) -> RawMapping:
    """Read and validate a mapping file; one-line SchemaError naming the file and field."""
    path = Path(path)
    if not path.is_file():
        raise SchemaError("mapping file not found", file=path)
    try:
        data: Any = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise SchemaError(f"not valid YAML: {' '.join(str(exc).split())}", file=path) from None
    return parse_model(RawMapping, data, file=path)

"""RLBench dataset folders, both ways (what RLBench's dataset generator writes; GENIMA trains on this).

Reading needs neither rlbench nor trust: pickles go through `rlbench_pickle.load_pickle`, which refuses
every global but rlbench's Demo/Observation and numpy's arrays. Images stay on disk: every
``<cam>_{rgb,depth,mask}`` folder becomes a `LazyFrames` over its PNGs.

Field map (RLBench → logical tree):

* ``joint_positions`` / ``joint_velocities`` / ``joint_forces`` → ``robot/…`` (float32); ``gripper_open`` →
  ``robot/gripper_open``; ``gripper_matrix`` (world) → ``robot/ee_pose`` (robot base frame, DESIGN.md);
  ``misc['joint_poses']`` (7-vectors [x, y, z, qx, qy, qz, qw], world) → ``robot/link_poses`` (4x4, world).
* ``misc['joint_position_action']`` → ``action/joint_positions``. RLBench records at observation t the
  command that produced it, so frame 0 has none: it is filled with the frame-0 state (joint positions and
  gripper_open, "hold") and ``extras/rlbench/missing/misc/joint_position_action`` marks it (2 = absent key).
* ``misc['<cam>_camera_{intrinsics,extrinsics,near,far}']`` → OpenCV K and T_world_camera
  (`rlbench_camera_to_opencv`). Cameras whose pose is constant over the first episode go into the manifest;
  moving ones get ``cameras/<cam>/extrinsics`` per frame (what `geometry.camera.camera_poses`, and so
  rendering, uses). The wrist camera is mounted on the robot's ``ee_link``, the link ``robot/ee_pose``
  records, with ``T_link_camera`` = ``inv(gripper_matrix) @ T_world_camera`` of the first frame (RLBench's
  wrist camera is rigid on the hand to 1e-6).
* Depth PNGs → float32 metres with each frame's near/far; mask PNGs → int32 handles.
* Everything else an Observation or Demo carries lands in ``extras/rlbench/<attribute>`` or
  ``extras/rlbench/misc/<key>`` (per-frame arrays) or in ``EpisodeMeta.extras["rlbench"]`` (types, key
  order, values without an array shape), and so does the source value of any field whose conversion is not
  bit-exactly invertible (float64 actions, quaternions). The writer uses such a copy only while it still
  agrees with the logical arrays, so edits to the dataset win and RLBench → store → RLBench reproduces
  ``low_dim_obs.pkl`` byte for byte.
* Variation descriptions → ``instruction`` (the first) and the manifest's ``Task.instructions`` (all);
  task, variation and episode index → ``EpisodeMeta`` and ``source``; ids ``<task>_v<V>_e<E>`` (or
  ``<task>_all_e<E>`` under ``all_variations/``).

Writing produces the same layout with pickles rlbench itself loads, images encoded as RLBench encodes them,
and, for episodes with rendered targets, the ``<root>_rgb_rendered`` / ``<root>_rnd_bg`` folders GENIMA's
training scripts read (see `rlbench_layout`). Each exported episode folder carries a hidden
``.genima-episode.json`` (instruction, success, seed: no slot in the layout) that the reader restores.
"""

from __future__ import annotations

import functools
import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from genima_data.atomic import atomic_output, atomic_write_text, remove_path
from genima_data.episode import ArraySource, Episode, LazyFrames
from genima_data.errors import FormatError, GenimaDataError
from genima_data.formats import Format
from genima_data.formats import rlbench_layout as layout
from genima_data.formats.rlbench_images import (
    STREAM_FRAMES,
    encode_png_rgb,
    frame_to_pixels,
    png_size,
    read_png_frame,
)
from genima_data.formats.rlbench_pickle import (
    Demo,
    Observation,
    dump_pickle,
    dumps_pickle,
    from_tagged_json,
    load_pickle,
    to_tagged_json,
)
from genima_data.geometry.camera import (
    RLBENCH_TO_OPENCV_AXES,
    opencv_camera_to_rlbench,
    rlbench_camera_to_opencv,
)
from genima_data.geometry.transforms import invert_transform
from genima_data.robots import franka_panda
from genima_data.schema import (
    Camera,
    EpisodeMeta,
    EpisodeSource,
    Manifest,
    Robot,
    Task,
    natural_key,
    parse_model,
)

DEFAULT_FPS = 20.0  # RLBench records one observation per 0.05 s simulation step (CoppeliaSim's default)
PANDA_JOINT1_HEIGHT = 0.333  # m: joint 1 above the Panda's base (Franka's d1)
RLBENCH_PANDA_BASE = (-0.26796156, -0.00639182, 0.75003237)  # m, measured from joint_poses (notes)
# CoppeliaSim's Panda has joint 4's zero 4.0° from Franka's DH zero: with it FK meets the recorded joint
# positions to 1.4 mm on the shared sample, without it 3.4 cm (docs/geometry.md)
RLBENCH_PANDA_JOINT_OFFSETS = (0.0, 0.0, 0.0, float(np.deg2rad(4.0)), 0.0, 0.0, 0.0)  # rad
STATIC_TOLERANCE = 1e-6  # m / rotation entries: a camera this still over an episode is static
INTRINSICS_TOLERANCE = 1e-9  # relative
WRIST_CAMERA = "wrist"  # mounted on the robot's ee_link unless the camera_mounts option says otherwise

EXTRAS = "extras/rlbench"
MISSING = "extras/rlbench/missing"  # uint8 per frame: 0 present, 1 None, 2 key absent
NONE, ABSENT = 1, 2
_ABSENT = object()  # a misc key missing from a frame

COMMITTED_MARKER = ".genima-rlbench.json"  # the manifest of a finished export (the layout has no slot)
PENDING_MARKER = ".genima-rlbench-incomplete.json"  # an export in progress
TEMP_FOLDER = ".genima-tmp"  # episode folders are assembled here, then renamed into place
TARGET_MARKER = ".genima-rlbench-targets.json"  # in <root>_rgb_rendered etc.: written by this export
EPISODE_RECORD = ".genima-episode.json"  # per exported episode folder: EpisodeMeta fields the layout lacks
RECORDED_META = ("instruction", "success", "seed")
TARGET_ROOT_HINT = (
    "; GENIMA's rendered targets go here: remove it, choose another destination or pass "
    "--writer-opt targets=false"
)
REQUIRED_COLUMNS = ("joint_positions", "gripper_open")

CAMERA_ATTRIBUTES = [
    f"{cam}_{kind}" for cam in layout.RLBENCH_CAMERAS for kind in (*layout.STREAM_KINDS, "point_cloud")
]
# Observation.__init__'s attribute order in RLBench master (what low_dim_obs.pkl holds)
DEFAULT_ATTRIBUTES = [
    *CAMERA_ATTRIBUTES,
    "joint_velocities",
    "joint_positions",
    "joint_forces",
    "gripper_open",
    "gripper_pose",
    "gripper_matrix",
    "gripper_joint_positions",
    "gripper_touch_forces",
    "task_low_dim_state",
    "misc",
]
DEFAULT_DEMO_ATTRIBUTES = {"random_seed": None, "num_reset_attempts": None}
ID_PATTERN = re.compile(r"^(?P<task>.+)_(?:v(?P<variation>\d+)|all)_e(?P<episode>\d+)$")


# ----------------------------------------------------------------------------------------------- columns
ARRAY_KINDS = ("ndarray", "ndarray_list", "float", "int", "bool", "np_scalar")


@dataclass
class Column:
    """One Observation attribute (or ``misc/<key>``) over all frames.

    `kind` says what Python type each frame held: ``ndarray``, ``ndarray_list`` (a list of equal arrays),
    ``float``, ``int``, ``bool``, ``np_scalar``, ``none`` (None everywhere) or ``json`` (anything else, kept
    as tagged JSON per frame). Array kinds are stacked into `values` (T, ...); `missing` marks frames that
    held None (1) or lacked the key (2).
    """

    name: str
    kind: str
    values: np.ndarray | None = None
    missing: np.ndarray | None = None
    json: list | None = None

    def present(self) -> np.ndarray | None:
        return None if self.missing is None else self.missing == 0

    def frame_value(self, t: int) -> Any:
        """The Python object frame `t` held (`_ABSENT` for a missing key)."""
        if self.missing is not None and self.missing[t]:
            return _ABSENT if self.missing[t] == ABSENT else None
        if self.kind == "none":
            return None
        if self.kind == "json":
            return from_tagged_json(self.json[t])
        value = self.values[t]
        if self.kind == "ndarray":
            return value.copy()
        if self.kind == "ndarray_list":
            return [row.copy() for row in value]
        if self.kind == "np_scalar":
            return value.dtype.type(value)
        return {"float": float, "int": int, "bool": bool}[self.kind](value)


def _value_kind(value: Any) -> tuple[str, Any] | None:
    """(kind, signature) of one frame's value if it can be stacked, else None."""
    if isinstance(value, bool):
        return "bool", None
    if isinstance(value, int):
        return ("int", None) if -(2**63) <= value < 2**63 else None
    if isinstance(value, float):
        return "float", None
    if isinstance(value, np.ndarray) and value.dtype != object:
        return "ndarray", (value.shape, value.dtype.str)
    if isinstance(value, np.generic) and not isinstance(value, np.object_):
        return "np_scalar", value.dtype.str
    if isinstance(value, list) and value and all(isinstance(v, np.ndarray) for v in value):
        signatures = {(v.shape, v.dtype.str) for v in value}
        return ("ndarray_list", (len(value), *signatures)) if len(signatures) == 1 else None
    return None


def column_from_frames(name: str, frames: list[Any]) -> Column:
    """Stack one attribute's per-frame values (see `Column`)."""
    missing = np.array([ABSENT if v is _ABSENT else NONE if v is None else 0 for v in frames], np.uint8)
    present = [v for v in frames if v is not None and v is not _ABSENT]
    mask = missing if missing.any() else None
    if not present:
        return Column(name, "none", missing=mask if (missing == ABSENT).any() else None)
    kinds = {_value_kind(v) for v in present}
    if len(kinds) != 1 or None in kinds:
        return Column(
            name,
            "json",
            json=[{"absent": True} if v is _ABSENT else to_tagged_json(v, where=name) for v in frames],
        )
    ((kind, _),) = kinds
    template = np.asarray(present[0])
    values = np.zeros((len(frames), *template.shape), dtype=template.dtype)
    for t, v in enumerate(frames):
        if not missing[t]:
            values[t] = np.asarray(v)
    return Column(name, kind, values=values, missing=mask)


def _identical(a: Any, b: Any, present: np.ndarray | None = None) -> bool:
    """Same dtype, shape and bits (on the present frames)."""
    if a is None or b is None:
        return False
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if present is not None:
        a, b = a[present], b[present]
    return a.tobytes() == b.tobytes()


# ----------------------------------------------------------------------------------------------- poses
def pose7_to_matrix(poses: np.ndarray) -> np.ndarray:
    """[..., 7] [x, y, z, qx, qy, qz, qw] to [..., 4, 4] homogeneous matrices."""
    poses = np.asarray(poses, dtype=np.float64)
    x, y, z, w = np.moveaxis(poses[..., 3:] / np.linalg.norm(poses[..., 3:], axis=-1, keepdims=True), -1, 0)
    T = np.zeros((*poses.shape[:-1], 4, 4))
    T[..., 0, :3] = np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], -1)
    T[..., 1, :3] = np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], -1)
    T[..., 2, :3] = np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1)
    T[..., :3, 3] = poses[..., :3]
    T[..., 3, 3] = 1.0
    return T


def matrix_to_pose7(T: np.ndarray) -> np.ndarray:
    """[..., 4, 4] to [..., 7] [x, y, z, qx, qy, qz, qw] with qw >= 0."""
    T = np.asarray(T, dtype=np.float64)
    R = T[..., :3, :3]
    # the largest of 4w², 4x², 4y², 4z² gives the best-conditioned square root
    m = np.stack(
        [
            1 + R[..., 0, 0] + R[..., 1, 1] + R[..., 2, 2],
            1 + R[..., 0, 0] - R[..., 1, 1] - R[..., 2, 2],
            1 - R[..., 0, 0] + R[..., 1, 1] - R[..., 2, 2],
            1 - R[..., 0, 0] - R[..., 1, 1] + R[..., 2, 2],
        ],
        -1,
    )
    off = {
        "w": (R[..., 2, 1] - R[..., 1, 2], R[..., 0, 2] - R[..., 2, 0], R[..., 1, 0] - R[..., 0, 1]),
        "x": (R[..., 2, 1] - R[..., 1, 2], R[..., 0, 1] + R[..., 1, 0], R[..., 0, 2] + R[..., 2, 0]),
        "y": (R[..., 0, 2] - R[..., 2, 0], R[..., 0, 1] + R[..., 1, 0], R[..., 1, 2] + R[..., 2, 1]),
        "z": (R[..., 1, 0] - R[..., 0, 1], R[..., 0, 2] + R[..., 2, 0], R[..., 1, 2] + R[..., 2, 1]),
    }
    best = np.argmax(m, axis=-1)
    s = 2 * np.sqrt(np.maximum(np.take_along_axis(m, best[..., None], -1)[..., 0], 1e-300))
    candidates = np.stack(
        [
            np.stack([off["w"][0] / s, off["w"][1] / s, off["w"][2] / s, s / 4], -1),
            np.stack([s / 4, off["x"][1] / s, off["x"][2] / s, off["x"][0] / s], -1),
            np.stack([off["y"][1] / s, s / 4, off["y"][2] / s, off["y"][0] / s], -1),
            np.stack([off["z"][1] / s, off["z"][2] / s, s / 4, off["z"][0] / s], -1),
        ],
        -2,
    )
    q = np.take_along_axis(candidates, best[..., None, None], -2)[..., 0, :]
    q = np.where(q[..., 3:] < 0, -q, q)
    return np.concatenate([T[..., :3, 3], q], axis=-1)


def rlbench_base_pose(joint1_pose7: np.ndarray | None) -> np.ndarray:
    """T_world_base of RLBench's Panda: joint 1's recorded frame moved d1 down its z axis.

    RLBench's ``joint_poses[j]`` is joint j's frame before its own rotation (CoppeliaSim reports a revolute
    joint's pose without its angle: joint 1's orientation stays fixed while q1 moves), so joint 1's frame is
    the base frame lifted by d1.
    """
    if joint1_pose7 is None:
        T = np.eye(4)
        T[:3, 3] = RLBENCH_PANDA_BASE
        return T
    T = pose7_to_matrix(joint1_pose7)
    T[:3, 3] -= T[:3, :3] @ [0, 0, PANDA_JOINT1_HEIGHT]
    return T


# ----------------------------------------------------------------------------------------------- field maps
@dataclass
class _Context:
    """What a field map needs besides the column: manifest, episode length and variation, other columns."""

    manifest: Manifest
    length: int
    variation: int | None
    values: dict[str, np.ndarray] = field(default_factory=dict)
    missing: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass(frozen=True)
class FieldMap:
    """How one RLBench column lives in the store: `to_store` (may check it against the manifest and raise)
    and `from_store` (None when the store cannot reproduce it). `kind` is its RLBench type; `gaps` says
    whether `to_store` copes with frames that hold None or lack the key (else they are refused)."""

    to_store: Callable[[np.ndarray, _Context], dict[str, np.ndarray]]
    from_store: Callable[[Mapping[str, ArraySource], _Context], np.ndarray | None]
    kind: str = "ndarray"
    gaps: bool = False


def _load(arrays: Mapping[str, ArraySource], path: str, dtype: Any = np.float64) -> np.ndarray | None:
    return np.asarray(arrays[path][...]).astype(dtype) if path in arrays else None


def _cast_map(path: str, dtype: Any, kind: str = "ndarray") -> FieldMap:
    return FieldMap(lambda v, ctx: {path: v.astype(dtype)}, lambda a, ctx: _load(a, path), kind)


def _joint_map(path: str) -> FieldMap:
    """A per-joint column (positions, velocities, forces): one value per joint of the manifest's robot."""

    def to_store(values: np.ndarray, ctx: _Context) -> dict[str, np.ndarray]:
        robot = ctx.manifest.robot
        if values.shape[1:] != (robot.dof,):
            held = f"{values.shape[1]} values" if values.ndim == 2 else f"shape {values.shape[1:]}"
            raise FormatError(f"has {held} per frame, the robot ({robot.name}) has {robot.dof} joints")
        return {path: values.astype(np.float32)}

    return FieldMap(to_store, lambda a, ctx: _load(a, path))


def _constant_map(value: Callable[[_Context], Any], kind: str, dtype: Any = np.float64) -> FieldMap:
    """A column whose value lives once in the manifest or the episode metadata."""

    def from_store(arrays: Mapping[str, ArraySource], ctx: _Context) -> np.ndarray | None:
        v = value(ctx)
        return None if v is None else np.repeat(np.asarray(v, dtype=dtype)[None], ctx.length, axis=0)

    return FieldMap(lambda v, ctx: {}, from_store, kind, gaps=True)


def _base_frame_map(manifest: Manifest) -> FieldMap:
    """RLBench's world-frame gripper_matrix as ``robot/ee_pose`` in the robot's base frame (DESIGN.md)."""
    T_world_base = np.asarray(manifest.robot.T_world_base, dtype=np.float64)
    T_base_world = invert_transform(T_world_base)

    def from_store(arrays: Mapping[str, ArraySource], ctx: _Context) -> np.ndarray | None:
        ee_pose = _load(arrays, "robot/ee_pose")
        return None if ee_pose is None else T_world_base @ ee_pose

    return FieldMap(lambda v, ctx: {"robot/ee_pose": T_base_world @ v}, from_store)


def _action_to_store(values: np.ndarray, ctx: _Context) -> dict[str, np.ndarray]:
    filled = values.astype(np.float64)
    missing = ctx.missing.get("misc/joint_position_action")
    if missing is not None and missing.any():
        hold = np.concatenate([ctx.values["joint_positions"], ctx.values["gripper_open"][:, None]], axis=1)
        if hold.shape[1] != filled.shape[1]:
            raise FormatError(
                f"has {filled.shape[1]} values per frame, expected {hold.shape[1]} (joints + gripper)"
            )
        filled[missing > 0] = hold[missing > 0]
    return {"action/joint_positions": filled.astype(np.float32)}


def _static_extrinsics_map(cam: Camera) -> FieldMap:
    T_world_camera = cam.T_world_camera_array()

    def to_store(values: np.ndarray, ctx: _Context) -> dict[str, np.ndarray]:
        moved = float(np.abs(values @ RLBENCH_TO_OPENCV_AXES - T_world_camera).max())
        if moved > STATIC_TOLERANCE:
            raise FormatError(
                f"camera '{cam.name}' is static in the manifest but here its pose differs by {moved:.3g}; "
                f"pass --reader-opt 'moving_cameras=[\"{cam.name}\"]' to keep per-frame poses"
            )
        return {}

    rlbench_pose = opencv_camera_to_rlbench(cam.K_array, T_world_camera)[1]
    return FieldMap(to_store, _constant_map(lambda ctx: rlbench_pose, "ndarray").from_store)


def _moving_extrinsics_map(cam: Camera) -> FieldMap:
    path = f"cameras/{cam.name}/extrinsics"

    def from_store(arrays: Mapping[str, ArraySource], ctx: _Context) -> np.ndarray | None:
        T = _load(arrays, path)
        return None if T is None else opencv_camera_to_rlbench(cam.K_array, T)[1]

    return FieldMap(lambda v, ctx: {path: rlbench_camera_to_opencv(cam.K_array, v)[1]}, from_store)


def _intrinsics_map(cam: Camera) -> FieldMap:
    def to_store(values: np.ndarray, ctx: _Context) -> dict[str, np.ndarray]:
        distinct = np.unique(np.asarray(values, dtype=np.float64).reshape(len(values), 9), axis=0)
        K = np.stack([rlbench_camera_to_opencv(k.reshape(3, 3), np.eye(4))[0] for k in distinct])
        if not np.allclose(K, cam.K_array, rtol=INTRINSICS_TOLERANCE, atol=0):
            raise FormatError(f"camera '{cam.name}' intrinsics differ from the manifest's K {cam.K}")
        return {}

    K_rlbench = opencv_camera_to_rlbench(cam.K_array, np.eye(4))[0]
    return FieldMap(to_store, _constant_map(lambda ctx: K_rlbench, "ndarray").from_store)


def field_maps(manifest: Manifest) -> dict[str, FieldMap]:
    """Column name → how the store holds it, for the cameras of `manifest`."""
    maps: dict[str, FieldMap] = {}
    for cam in manifest.cameras:
        prefix = f"misc/{cam.name}_camera"
        maps[f"{prefix}_extrinsics"] = (
            _static_extrinsics_map(cam) if cam.T_world_camera is not None else _moving_extrinsics_map(cam)
        )
        maps[f"{prefix}_intrinsics"] = _intrinsics_map(cam)
        for i, plane in enumerate(("near", "far")):
            maps[f"{prefix}_{plane}"] = _constant_map(
                lambda ctx, cam=cam, i=i: None if cam.depth_range is None else cam.depth_range[i], "float"
            )
    return {
        **maps,
        "misc/variation_index": _constant_map(lambda ctx: ctx.variation, "int", np.int64),
        "misc/joint_position_action": FieldMap(  # frames without one hold the state (see _action_to_store)
            _action_to_store, lambda a, ctx: _load(a, "action/joint_positions"), gaps=True
        ),
        "misc/joint_poses": FieldMap(
            lambda v, ctx: {"robot/link_poses": pose7_to_matrix(v)},
            lambda a, ctx: (
                None if "robot/link_poses" not in a else matrix_to_pose7(a["robot/link_poses"][...])
            ),
            "ndarray_list",
        ),
        "joint_positions": _joint_map("robot/joint_positions"),
        "joint_velocities": _joint_map("robot/joint_velocities"),
        "joint_forces": _joint_map("robot/joint_forces"),
        "gripper_open": _cast_map("robot/gripper_open", np.float32, kind="float"),
        "gripper_matrix": _base_frame_map(manifest),
    }


def store_column(column: Column, maps: Mapping[str, FieldMap], ctx: _Context) -> dict[str, np.ndarray]:
    """The arrays one column becomes: its logical arrays, plus its source values where those cannot be
    reproduced from them bit for bit, plus its missing-frame mask."""
    arrays: dict[str, np.ndarray] = {}
    if column.missing is not None:
        arrays[f"{MISSING}/{column.name}"] = column.missing
    if column.kind not in ARRAY_KINDS:
        return arrays
    fmap = maps.get(column.name)
    if fmap is None:
        return {**arrays, f"{EXTRAS}/{column.name}": column.values}
    try:
        stored = fmap.to_store(column.values, ctx)
    except FormatError as exc:
        raise exc.located(field=column.name.replace("/", ".")) from None
    if not _identical(fmap.from_store(stored, ctx), column.values, column.present()):
        arrays[f"{EXTRAS}/{column.name}"] = column.values
    return {**arrays, **stored}


def restore_column(
    name: str, kind: str, episode: Episode, maps: Mapping[str, FieldMap], ctx: _Context
) -> np.ndarray | None:
    """A column's per-frame values from the store: its kept source values while they still agree with the
    logical arrays, otherwise what the logical arrays give (None if neither exists)."""
    source = episode.get(f"{EXTRAS}/{name}")
    source = None if source is None else np.asarray(source[...])
    fmap = maps.get(name)
    if fmap is None:
        return source
    if source is not None:
        try:
            stored = fmap.to_store(source, ctx)
        except FormatError:
            stored = None
        if stored is not None and all(_identical(v, episode[p][...]) for p, v in stored.items()):
            return source
    return fmap.from_store(episode.arrays, ctx)


# ----------------------------------------------------------------------------------------------- layout
@dataclass(frozen=True)
class EpisodeLocation:
    """Where an episode lives: task, variation (None under all_variations) and episode index."""

    task: str
    variation: int | None
    index: int

    @property
    def episode_id(self) -> str:
        var = "all" if self.variation is None else f"v{self.variation}"
        return f"{self.task}_{var}_e{self.index}"

    def folder(self, root: Path) -> Path:
        return layout.episode_folder(root, self.task, self.variation, self.index)

    @classmethod
    def parse(cls, episode_id: str) -> EpisodeLocation | None:
        match = ID_PATTERN.match(episode_id)
        if match is None:
            return None
        variation = match["variation"]
        return cls(match["task"], None if variation is None else int(variation), int(match["episode"]))


def discover_episodes(root: Path) -> dict[str, EpisodeLocation]:
    """Every ``<task>/variation<V>|all_variations/episodes/episode<E>`` folder under `root`, natural order."""
    found = []
    for task_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for var_dir in task_dir.iterdir():
            match = layout.VARIATION_PATTERN.match(var_dir.name)
            if not (match or var_dir.name == layout.ALL_VARIATIONS_FOLDER):
                continue
            episodes_dir = var_dir / layout.EPISODES_FOLDER
            if not episodes_dir.is_dir():
                continue
            for ep_dir in episodes_dir.iterdir():
                ep_match = layout.EPISODE_PATTERN.match(ep_dir.name)
                if ep_match and ep_dir.is_dir():
                    found.append(EpisodeLocation(task_dir.name, match and int(match[1]), int(ep_match[1])))
    return {loc.episode_id: loc for loc in sorted(found, key=lambda loc: natural_key(loc.episode_id))}


def variation_numbers(task_dir: Path) -> list[int]:
    """V of every ``variation<V>`` folder with a descriptions file (it may have no episodes yet)."""
    return sorted(
        int(match[1])
        for p in task_dir.iterdir()
        if (match := layout.VARIATION_PATTERN.match(p.name)) and (p / layout.VARIATION_DESCRIPTIONS).exists()
    )


def looks_like_rlbench(path: Path) -> bool:
    """Whether `path` is an RLBench dataset root (or one of our exports, finished or not)."""
    if not path.is_dir():
        return False
    if (path / COMMITTED_MARKER).exists() or (path / PENDING_MARKER).exists():
        return True
    for task_dir in path.iterdir():
        if task_dir.name.startswith(".") or not task_dir.is_dir():
            continue
        for var_dir in task_dir.iterdir():
            named = (
                layout.VARIATION_PATTERN.match(var_dir.name) or var_dir.name == layout.ALL_VARIATIONS_FOLDER
            )
            if named and (var_dir / layout.EPISODES_FOLDER).is_dir():
                return True
    return False


def load_descriptions(path: Path) -> list[str]:
    """A ``variation_descriptions.pkl``: a list of instruction strings."""
    descriptions = load_pickle(path)
    if not isinstance(descriptions, list) or not all(isinstance(d, str) for d in descriptions):
        what = type(descriptions).__name__ if not isinstance(descriptions, list) else "list with non-strings"
        raise FormatError(
            f"holds a {what}, expected a list of strings", file=path, field="variation_descriptions"
        )
    return descriptions


def load_demo(path: Path) -> Demo:
    demo = load_pickle(path)
    if not isinstance(demo, Demo):
        raise FormatError(f"holds a {type(demo).__name__}, expected rlbench.demo.Demo", file=path)
    observations = demo.__dict__.get("_observations")
    if not isinstance(observations, list) or not observations:
        raise FormatError("the demo has no observations", file=path, field="_observations")
    bad = next((t for t, o in enumerate(observations) if not isinstance(o, Observation)), None)
    if bad is not None:
        raise FormatError(f"item {bad} is not an rlbench Observation", file=path, field="_observations")
    if any(not isinstance(o.__dict__.get("misc", {}), dict) for o in observations):
        raise FormatError("misc must be a dict in every observation", file=path, field="misc")
    return demo


def merged_key_order(sequences: list[list[str]]) -> list[str]:
    """One key order consistent with every sequence's (a key first seen goes right after its predecessor)."""
    order: list[str] = []
    for keys in sequences:
        previous = None
        for key in keys:
            if key not in order:
                order.insert(0 if previous is None else order.index(previous) + 1, key)
            previous = key
    return order


def demo_attribute_order(demo: Demo) -> tuple[list[str], list[str]]:
    """Observation attribute names and misc keys in the order the frames hold them."""
    observations = demo._observations
    attributes = merged_key_order([list(o.__dict__) for o in observations])
    return attributes, merged_key_order([list(o.__dict__.get("misc", {})) for o in observations])


def fresh_misc_keys(demo: Demo) -> list[str]:
    """Misc keys held as a separate string object in each frame (RLBench builds camera keys with %-format);
    pickle writes those once per frame and shared ones once per file, so this keeps exports byte-identical."""
    objects: dict[str, set[int]] = {}
    for o in demo._observations:
        for key in o.__dict__.get("misc", {}):
            objects.setdefault(key, set()).add(id(key))
    return [key for key, ids in objects.items() if len(ids) > 1]


def column_frames(demo: Demo, name: str) -> list[Any]:
    """Each frame's value of attribute `name` (or ``misc/<key>``), `_ABSENT` where a frame lacks it."""
    if name.startswith("misc/"):
        return [o.__dict__.get("misc", {}).get(name[len("misc/") :], _ABSENT) for o in demo._observations]
    return [o.__dict__.get(name, _ABSENT) for o in demo._observations]


def demo_columns(demo: Demo) -> dict[str, Column]:
    """Every Observation attribute and misc key of a demo as a `Column` (attribute order, then misc)."""
    attributes, misc_keys = demo_attribute_order(demo)
    names = [a for a in attributes if a != "misc"] + [f"misc/{key}" for key in misc_keys]
    return {name: column_from_frames(name, column_frames(demo, name)) for name in names}


def _describe(value: Any) -> str:
    """One frame's value in words, for error messages."""
    if value is _ABSENT:
        return "no value (the key is absent)"
    if isinstance(value, np.ndarray):
        return f"a {value.dtype} array of shape {value.shape}"
    return "None" if value is None else f"a {type(value).__name__}"


def frame_problem(frames: list[Any], gaps: bool) -> str | None:
    """Why a column the store maps cannot become one logical array: a frame without a value (unless `gaps`)
    or frames of different types, shapes or dtypes; None when it can."""
    present = [(t, v) for t, v in enumerate(frames) if v is not None and v is not _ABSENT]
    gap = next((t for t, v in enumerate(frames) if v is None or v is _ABSENT), None)
    if gap is not None and not gaps:
        return f"frame {gap} holds {_describe(frames[gap])}; a value is needed in every frame"
    first, kind = (present[0], _value_kind(present[0][1])) if present else (None, None)
    odd = next(((t, v) for t, v in present if _value_kind(v) != kind), None)
    if odd is not None:
        return (
            f"frame {odd[0]} holds {_describe(odd[1])} but frame {first[0]} {_describe(first[1])}; "
            "every frame needs the same type, shape and dtype"
        )
    return None


def camera_names(columns: Mapping[str, Column]) -> list[str]:
    return [n[len("misc/") : -len("_camera_extrinsics")] for n in columns if n.endswith("_camera_extrinsics")]


def _first_value(columns: Mapping[str, Column], name: str) -> Any:
    """The first frame's value that is there (None if no frame has one)."""
    column = columns.get(name)
    if column is None or column.kind not in ARRAY_KINDS:
        return None
    present = column.present()
    return column.values[0 if present is None else int(np.argmax(present))]


# ----------------------------------------------------------------------------------------------- reader
class RLBenchReader:
    """Reads an RLBench dataset root; see the module docstring.

    Options: `fps` (RLBench records none; 20 Hz is its 0.05 s step), `moving_cameras` (camera names to keep
    per-frame poses for even when they look static), `camera_mounts` (camera → robot link for moving
    cameras; default wrist → the robot's ee_link, with T_link_camera from gripper_matrix).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        fps: float = DEFAULT_FPS,
        moving_cameras: list[str] | tuple[str, ...] = (),
        camera_mounts: Mapping[str, str] | None = None,
    ) -> None:
        self.root = Path(path)
        if (self.root / PENDING_MARKER).exists():
            raise FormatError(
                "this RLBench export was interrupted and never finished; re-run the command that wrote it",
                file=self.root,
            )
        self._locations = discover_episodes(self.root) if self.root.is_dir() else {}
        if not self._locations:
            raise FormatError(
                "no <task>/variation<V>/episodes/episode<E>/ folders here (pass the dataset root, the "
                "folder that holds the task folders)",
                file=self.root,
            )
        self._fps = fps
        self._moving = set(moving_cameras)
        self._mounts = dict(camera_mounts or {})
        self._descriptions: dict[tuple[str, int], list[str] | FormatError] = {}
        self._manifest = self._build_manifest()
        self._maps = field_maps(self._manifest)

    # ------------------------------------------------------------ manifest
    @property
    def manifest(self) -> Manifest:
        return self._manifest

    @property
    def episode_ids(self) -> list[str]:
        return list(self._locations)

    def _variation_descriptions(self, task: str, variation: int) -> list[str] | FormatError:
        key = (task, variation)
        if key not in self._descriptions:
            path = self.root / task / layout.variation_folder(variation) / layout.VARIATION_DESCRIPTIONS
            try:
                self._descriptions[key] = load_descriptions(path)
            except FormatError as exc:  # reported with each episode of the variation
                self._descriptions[key] = exc
        return self._descriptions[key]

    def _first_demo(self) -> tuple[EpisodeLocation, dict[str, Column]]:
        first_error = None
        for loc in self._locations.values():
            try:
                return loc, demo_columns(load_demo(loc.folder(self.root) / layout.LOW_DIM_PICKLE))
            except FormatError as exc:
                first_error = first_error or exc
        raise first_error  # type: ignore[misc]

    def _camera(self, name: str, columns: Mapping[str, Column], episode_dir: Path, robot: Robot) -> Camera:
        K_rlbench = _first_value(columns, f"misc/{name}_camera_intrinsics")
        extrinsics = columns[f"misc/{name}_camera_extrinsics"]
        if K_rlbench is None or extrinsics.kind != "ndarray":
            raise FormatError(
                f"camera '{name}' needs 3x3 intrinsics and 4x4 extrinsics in every frame",
                file=episode_dir / layout.LOW_DIM_PICKLE,
                field=f"misc.{name}_camera_intrinsics",
            )
        K, T_frames = rlbench_camera_to_opencv(K_rlbench, extrinsics.values)
        posed = extrinsics.present()
        if posed is not None:  # frames without a pose are the episode's error, not a motion
            T_frames = T_frames[posed]
        static = name not in self._moving and np.abs(T_frames - T_frames[0]).max() <= STATIC_TOLERANCE
        near, far = (_first_value(columns, f"misc/{name}_camera_{p}") for p in ("near", "far"))
        width, height = round(2 * K_rlbench[0, 2]), round(2 * K_rlbench[1, 2])  # RLBench: c = size / 2
        first_png = next(
            (
                f
                for kind in layout.STREAM_KINDS
                if (f := layout.frame_file(layout.stream_folder(episode_dir, name, kind), 0)).exists()
            ),
            None,
        )
        if first_png is not None:
            width, height = png_size(first_png)
        default_mount = robot.ee_link if name == WRIST_CAMERA else None
        mount = "world" if static else self._mounts.get(name, default_mount or "world")
        gripper_world = _first_value(columns, "gripper_matrix")
        T_link_camera = None
        if mount == robot.ee_link and gripper_world is not None:  # gripper_matrix is the ee link's world pose
            T_link_camera = (invert_transform(gripper_world) @ T_frames[0]).tolist()
        return Camera(
            name=name,
            width=width,
            height=height,
            K=K.tolist(),
            mount=mount,
            T_world_camera=T_frames[0].tolist() if static else None,
            T_link_camera=T_link_camera,
            depth_range=None if near is None or far is None else (float(near), float(far)),
        )

    def _build_manifest(self) -> Manifest:
        loc, columns = self._first_demo()
        episode_dir = loc.folder(self.root)
        joint_poses = _first_value(columns, "misc/joint_poses")
        robot = franka_panda(rlbench_base_pose(None if joint_poses is None else joint_poses[0])).model_copy(
            update={"joint_offsets": list(RLBENCH_PANDA_JOINT_OFFSETS)}
        )
        cameras = [self._camera(name, columns, episode_dir, robot) for name in camera_names(columns)]
        tasks: dict[str, list[str]] = {}
        by_variation: dict[str, dict[str, list[str]]] = {}
        for task in dict.fromkeys(loc.task for loc in self._locations.values()):
            instructions = tasks.setdefault(task, [])
            for variation in variation_numbers(self.root / task):
                descriptions = self._variation_descriptions(task, variation)
                if isinstance(descriptions, list):
                    by_variation.setdefault(task, {})[str(variation)] = descriptions
                    instructions.extend(d for d in descriptions if d not in instructions)
        derived = Manifest(
            name=self.root.resolve().name or "rlbench",
            description="RLBench demonstrations",
            fps=self._fps,
            robot=robot,
            cameras=cameras,
            tasks=[Task(name=name, instructions=instructions) for name, instructions in tasks.items()],
            provenance=f"rlbench:{self.root.resolve().name}",
            extras={"rlbench": {"variation_descriptions": by_variation}},
        )
        return self._with_exported_manifest(derived)

    def _with_exported_manifest(self, derived: Manifest) -> Manifest:
        """Keep what a genima-data export recorded and the layout cannot hold (name, fps, robot, mounts)."""
        marker = self.root / COMMITTED_MARKER
        if not marker.exists():
            return derived
        exported = parse_model(Manifest, marker.read_text(), file=marker)
        recorded = {c.name: c for c in exported.cameras}
        cameras = [recorded[c.name] if _same_camera(recorded.get(c.name), c) else c for c in derived.cameras]
        descriptions = {t.name: t.description for t in exported.tasks}
        tasks = [t.model_copy(update={"description": descriptions.get(t.name)}) for t in derived.tasks]
        return exported.model_copy(
            update={
                "cameras": cameras,
                "tasks": tasks,
                "episodes": [],
                "splits": {},
                "storage": None,
                "extras": {**exported.extras, "rlbench": derived.extras["rlbench"]},
            }
        )

    # ------------------------------------------------------------ episodes
    def episode(self, episode_id: str) -> Episode:
        """One episode; images stay lazy (decoded frame by frame when read)."""
        loc = self._locations.get(episode_id)
        if loc is None:
            raise FormatError(f"no episode '{episode_id}' in the RLBench dataset", file=self.root)
        try:
            return self._read_episode(loc)
        except GenimaDataError as exc:
            raise exc.located(file=loc.folder(self.root), episode=episode_id) from None

    def _read_episode(self, loc: EpisodeLocation) -> Episode:
        folder = loc.folder(self.root)
        pickle_path = folder / layout.LOW_DIM_PICKLE
        demo = load_demo(pickle_path)
        files = self._episode_files(folder)
        variation = loc.variation
        if variation is None:
            number = files.get(layout.VARIATION_NUMBER)
            variation = int(number) if isinstance(number, int | np.integer) and number >= 0 else None
        descriptions = files.get(layout.VARIATION_DESCRIPTIONS)
        if descriptions is None and loc.variation is not None:
            descriptions = self._variation_descriptions(loc.task, loc.variation)
            if isinstance(descriptions, FormatError):
                raise descriptions
        columns = demo_columns(demo)
        T = len(demo._observations)
        unknown = sorted(set(camera_names(columns)) - {c.name for c in self._manifest.cameras})
        if unknown:
            raise FormatError(
                f"cameras {unknown} are not in the manifest (built from the first episode; cameras: "
                f"{[c.name for c in self._manifest.cameras]})",
                file=pickle_path,
                field="misc",
            )
        ctx = _Context(self._manifest, T, variation)
        ctx.values = {n: c.values for n, c in columns.items() if c.kind in ARRAY_KINDS}
        ctx.missing = {n: c.missing for n, c in columns.items() if c.missing is not None}
        arrays: dict[str, Any] = {"timestamps": np.arange(T, dtype=np.float64) / self._manifest.fps}
        try:
            for name in REQUIRED_COLUMNS:
                check_required(demo, name, columns.get(name))
            # required columns first: the action's frame-0 fill checks itself against them
            for column in sorted(columns.values(), key=lambda c: c.name not in REQUIRED_COLUMNS):
                self._check_mapped(demo, column)
                arrays.update(store_column(column, self._maps, ctx))
        except FormatError as exc:
            raise exc.located(file=pickle_path) from None
        arrays.update(self._image_streams(folder, T, columns))
        attributes, misc_keys = demo_attribute_order(demo)
        record = {
            "attributes": attributes,
            "misc_keys": misc_keys,
            "fresh_misc_keys": fresh_misc_keys(demo),
            "kinds": {n: c.kind for n, c in columns.items()},
            "json": {n: c.json for n, c in columns.items() if c.kind == "json"},
            "demo": {k: to_tagged_json(v, where=k) for k, v in demo.__dict__.items() if k != "_observations"},
            "episode_files": {name: to_tagged_json(value) for name, value in files.items()},
        }
        meta = {
            "episode_id": loc.episode_id,
            "task": loc.task,
            "instruction": (descriptions or [""])[0],
            "success": True,  # RLBench's generator only saves demos that met the task's success condition
            "length": T,
            "variation": variation,
            "source": EpisodeSource(
                format="rlbench", path=folder.relative_to(self.root).as_posix(), index=loc.index
            ),
            "extras": {"rlbench": record},
        }
        record_path = folder / EPISODE_RECORD
        exported = load_episode_record(record_path)  # our export's per-episode metadata wins
        where = record_path if exported else folder
        return Episode(meta=parse_model(EpisodeMeta, {**meta, **exported}, file=where), arrays=arrays)

    def _check_mapped(self, demo: Demo, column: Column) -> None:
        """Refuse a column the store maps whose frames cannot form one logical array (see `frame_problem`)."""
        fmap = self._maps.get(column.name)
        if fmap is None or column.kind == "none" or (column.missing is None and column.kind != "json"):
            return
        problem = frame_problem(column_frames(demo, column.name), fmap.gaps)
        if problem is not None:
            raise FormatError(problem, field=column.name.replace("/", "."))

    @staticmethod
    def _episode_files(folder: Path) -> dict[str, Any]:
        """Per-episode variation files some forks write (PerAct's all_variations layout)."""
        files: dict[str, Any] = {}
        if (folder / layout.VARIATION_DESCRIPTIONS).exists():
            files[layout.VARIATION_DESCRIPTIONS] = load_descriptions(folder / layout.VARIATION_DESCRIPTIONS)
        if (folder / layout.VARIATION_NUMBER).exists():
            files[layout.VARIATION_NUMBER] = load_pickle(folder / layout.VARIATION_NUMBER)
        return files

    @functools.cached_property
    def _stream_folders(self) -> set[str]:
        """Every ``<cam>_<kind>`` folder of a manifest camera that some episode has: all must have them."""
        cameras = {c.name for c in self._manifest.cameras}
        return {
            name
            for loc in self._locations.values()
            for name, cam, _ in stream_folders(loc.folder(self.root))
            if cam in cameras
        }

    def _image_streams(self, folder: Path, T: int, columns: Mapping[str, Column]) -> dict[str, LazyFrames]:
        cameras = {c.name: c for c in self._manifest.cameras}
        missing = sorted(self._stream_folders - {name for name, _, _ in stream_folders(folder)})
        if missing:
            cam, kind = layout.STREAM_PATTERN.match(missing[0]).group("cam", "kind")
            raise FormatError(
                f"folder {missing[0]}/ is missing (other episodes of this dataset have it)",
                file=folder,
                field=f"cameras/{cam}/{kind}",
            )
        streams = {}
        for stream_name, name, kind in sorted(stream_folders(folder)):
            stream = folder / stream_name
            where = f"cameras/{name}/{kind}"
            if name not in cameras:
                raise FormatError(
                    f"unknown camera '{name}': low_dim_obs.pkl has no {name}_camera_* calibration "
                    f"(cameras: {sorted(cameras)})",
                    file=stream,
                    field=where,
                )
            check_frame_files(stream, T, where)
            cam = cameras[name]
            size = png_size(layout.frame_file(stream, 0))
            if size != (cam.width, cam.height):
                raise FormatError(
                    f"images are {size[0]}x{size[1]}, the manifest says {cam.width}x{cam.height}",
                    file=layout.frame_file(stream, 0),
                    field=where,
                )
            streams[where] = self._frames(stream, kind, T, (cam.height, cam.width), columns, where)
        return streams

    @staticmethod
    def _frames(
        stream: Path, kind: str, T: int, hw: tuple[int, int], columns: Mapping[str, Column], where: str
    ) -> LazyFrames:
        near = far = np.full(T, None)
        if kind == "depth":
            cam = where.split("/")[1]
            planes = [columns.get(f"misc/{cam}_camera_{p}") for p in ("near", "far")]
            if any(p is None or p.kind not in ARRAY_KINDS or p.missing is not None for p in planes):
                raise FormatError(
                    f"depth PNGs need {cam}_camera_near and {cam}_camera_far in every frame of "
                    "low_dim_obs.pkl",
                    file=stream,
                    field=where,
                )
            near, far = (p.values.astype(np.float64) for p in planes)

        folder = os.fspath(stream)

        def frame_path(t: int) -> str:  # a plain string: pathlib costs as much as a mask's unpacking
            return os.path.join(folder, layout.IMAGE_FILE.format(t))

        def load(t: int) -> np.ndarray:
            try:
                return read_png_frame(frame_path(t), kind, near[t], far[t])
            except FormatError as exc:
                raise exc.located(field=where) from None

        pixel_shape, dtype = STREAM_FRAMES[kind]
        return LazyFrames(load, T, (*hw, *pixel_shape), dtype, describe=frame_path)


def stream_folders(folder: Path) -> list[tuple[str, str, str]]:
    """(folder name, camera, kind) of each ``<cam>_{rgb,depth,mask}`` folder of an episode folder."""
    found = []
    for entry in os.scandir(folder) if folder.is_dir() else []:
        match = layout.STREAM_PATTERN.match(entry.name)
        if match and entry.name != layout.TILED_RGB and entry.is_dir():
            found.append((entry.name, match["cam"], match["kind"]))
    return found


def check_required(demo: Demo, name: str, column: Column | None) -> None:
    """Raise unless a required column (`REQUIRED_COLUMNS`) holds numbers in every frame."""
    if column is None:
        raise FormatError("missing from every observation", field=name)
    frames = column_frames(demo, name)
    problem = frame_problem(frames, gaps=False)
    if problem is None and column.kind not in ("ndarray", "float", "np_scalar"):
        problem = f"holds {_describe(frames[0])} in every frame; expected numbers"
    if problem is not None:
        raise FormatError(problem, field=name)


def load_episode_record(path: Path) -> dict[str, Any]:
    """What our export kept of an episode's metadata (`EPISODE_RECORD`); {} when the file is not there."""
    if not path.exists():
        return {}
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise FormatError(f"unreadable episode record ({exc})", file=path) from None
    if not isinstance(record, dict) or not set(record) <= set(RECORDED_META):
        raise FormatError(f"expected a JSON object with keys {list(RECORDED_META)}", file=path)
    return record


def check_frame_files(stream: Path, T: int, where: str) -> None:
    """Raise unless `stream` holds exactly ``0.png`` … ``<T-1>.png``."""
    names = [n for n in os.listdir(stream) if not n.startswith(".")]
    odd = sorted(n for n in names if not layout.FRAME_PATTERN.match(n))
    if odd:
        raise FormatError(
            f"unexpected file '{odd[0]}' (RLBench names frames <t>.png, no zero padding)",
            file=stream,
            field=where,
        )
    indices = {int(n[: -len(".png")]) for n in names}
    missing = sorted(set(range(T)) - indices)
    extra = sorted(indices - set(range(T)), key=int)
    if missing or extra:
        problems = [f"{len(indices)} PNG frames for {T} observations in low_dim_obs.pkl"]
        if missing:
            problems.append(
                "missing " + ", ".join(f"{t}.png" for t in missing[:5]) + (" …" if len(missing) > 5 else "")
            )
        if extra:
            problems.append(
                "unexpected " + ", ".join(f"{t}.png" for t in extra[:5]) + (" …" if len(extra) > 5 else "")
            )
        raise FormatError("; ".join(problems), file=stream, field=where)


def _same_camera(recorded: Camera | None, derived: Camera) -> bool:
    """Whether a camera read back from RLBench files is the recorded one up to float round-off."""
    if recorded is None or (recorded.width, recorded.height) != (derived.width, derived.height):
        return False
    if (recorded.T_world_camera is None) != (derived.T_world_camera is None):
        return False
    close = np.allclose(recorded.K_array, derived.K_array, rtol=1e-9, atol=1e-9)
    if recorded.T_world_camera is not None:
        close &= np.allclose(recorded.T_world_camera_array(), derived.T_world_camera_array(), atol=1e-9)
    if (recorded.depth_range is None) != (derived.depth_range is None):
        return False
    if recorded.depth_range is not None:
        close &= np.allclose(recorded.depth_range, derived.depth_range, rtol=1e-9)
    return bool(close)


# ----------------------------------------------------------------------------------------------- writer
class RLBenchWriter:
    """Writes episodes as an RLBench dataset root (and GENIMA's target folders); see the module docstring.

    Crash-safe like the stores: each episode folder is assembled under ``.genima-tmp/`` and renamed into
    place when complete; a marker file says the export is unfinished until `commit` writes the variation
    descriptions and the manifest. Episodes go to the folder their id names (``<task>_v<V>_e<E>``) or, for
    other ids, to ``<task>/variation<V>/episodes/episode<k>`` numbered in the source's index order.
    """

    def __init__(self, path: str | Path, manifest: Manifest | None, *, targets: bool = True) -> None:
        self.root = Path(path)
        self._targets = targets
        self._manifest = self._attach() if manifest is None else self._start(manifest)
        self._maps = field_maps(self._manifest)
        self._index = self._locations_from_index(self._manifest)

    def _target_roots(self) -> dict[str, Path]:
        return layout.target_roots(self.root) if self._targets else {}

    def _start(self, manifest: Manifest) -> Manifest:
        _refuse_shared_folders(self.root, self._locations_from_index(manifest))
        _require_own_destination(self.root, (PENDING_MARKER, COMMITTED_MARKER), manifest)
        for root in self._target_roots().values():  # checked before anything is written
            _require_own_destination(
                root,
                (TARGET_MARKER,),
                manifest,
                TARGET_ROOT_HINT,
            )
        self.root.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.root / PENDING_MARKER, manifest.to_json())
        remove_path(self.root / TEMP_FOLDER)
        return manifest

    def _attach(self) -> Manifest:
        for marker in (PENDING_MARKER, COMMITTED_MARKER):
            if (self.root / marker).exists():
                return parse_model(Manifest, (self.root / marker).read_text(), file=self.root / marker)
        raise FormatError("no RLBench export in progress here", file=self.root)

    @staticmethod
    def _locations_from_index(manifest: Manifest) -> dict[str, EpisodeLocation]:
        """Every indexed episode's folder: the one its id names, or for other ids ``episode<k>`` numbered per
        task and variation in index order."""
        counters: dict[tuple[str, int], int] = {}
        index = {}
        for summary in manifest.episodes:
            loc = EpisodeLocation.parse(summary.episode_id)
            if loc is None:
                key = (summary.task, summary.variation or 0)
                loc = EpisodeLocation(key[0], key[1], counters.get(key, 0))
                counters[key] = loc.index + 1
            index[summary.episode_id] = loc
        return index

    def location(self, episode_id: str) -> EpisodeLocation:
        loc = self._index.get(episode_id) or EpisodeLocation.parse(episode_id)
        if loc is None:
            raise FormatError(
                "cannot place this episode in the RLBench layout: its id is not <task>_v<V>_e<E> and the "
                "source has no episode index",
                episode=episode_id,
            )
        return loc

    def has_episode(self, episode_id: str) -> bool:
        return (self.location(episode_id).folder(self.root) / layout.LOW_DIM_PICKLE).exists()

    # ------------------------------------------------------------ one episode
    def write_episode(self, episode: Episode) -> None:
        """Write one episode folder (and its target folders) atomically."""
        loc = self.location(episode.episode_id)
        try:
            columns, demo = self._demo(episode)
            low_dim = dumps_pickle(demo)
            for stream, root in self._target_roots().items():
                if any(p.startswith("targets/") and p.endswith(f"/{stream}") for p in episode.paths()):
                    if not (root / TARGET_MARKER).exists():  # claims the folder for this export's commit
                        atomic_write_text(root / TARGET_MARKER, self._manifest.to_json())
                    self._write_folder(loc.folder(root), episode, low_dim, columns, stream)
            self._write_folder(loc.folder(self.root), episode, low_dim, columns, None)
        except GenimaDataError as exc:
            raise exc.located(episode=episode.episode_id) from None

    def _demo(self, episode: Episode) -> tuple[dict[str, np.ndarray | None], Demo]:
        record = episode.meta.extras.get("rlbench", {})
        kinds = record.get("kinds") or self._default_kinds(episode)
        attributes = record.get("attributes") or DEFAULT_ATTRIBUTES
        misc_keys = record.get("misc_keys") or [n[len("misc/") :] for n in kinds if n.startswith("misc/")]
        ctx = _Context(self._manifest, episode.length, episode.meta.variation or 0)
        columns: dict[str, Column] = {}
        for name in [a for a in attributes if a != "misc"] + [f"misc/{k}" for k in misc_keys]:
            columns[name] = self._column(name, kinds.get(name, "none"), episode, record, ctx)
            ctx.values[name] = columns[name].values
        fresh = set(record.get("fresh_misc_keys", []))
        observations = []
        for t in range(episode.length):
            misc = {
                key.encode().decode()
                if key in fresh
                else key: value  # a new string object (see fresh_misc_keys)
                for key in misc_keys
                if (value := columns[f"misc/{key}"].frame_value(t)) is not _ABSENT
            }
            values = {a: misc if a == "misc" else columns[a].frame_value(t) for a in attributes}
            observations.append(Observation(**{a: v for a, v in values.items() if v is not _ABSENT}))
        demo_values = {k: from_tagged_json(v) for k, v in record.get("demo", DEFAULT_DEMO_ATTRIBUTES).items()}
        return {n: c.values for n, c in columns.items()}, Demo(observations, **demo_values)

    def _default_kinds(self, episode: Episode) -> dict[str, str]:
        """Kinds of the columns the store can give, for episodes that did not come from RLBench."""
        kinds = {name: fmap.kind for name, fmap in self._maps.items()}
        ctx = _Context(self._manifest, episode.length, episode.meta.variation or 0)
        return {n: k for n, k in kinds.items() if self._maps[n].from_store(episode.arrays, ctx) is not None}

    def _column(
        self, name: str, kind: str, episode: Episode, record: Mapping[str, Any], ctx: _Context
    ) -> Column:
        missing = episode.get(f"{MISSING}/{name}")
        if missing is not None:
            missing = ctx.missing[name] = np.asarray(missing[...])
        if kind == "json":
            return Column(name, kind, json=record["json"][name], missing=missing)
        values = restore_column(name, kind, episode, self._maps, ctx) if kind in ARRAY_KINDS else None
        if values is None:
            return Column(name, "none", missing=missing)
        values = np.asarray(values)
        # numpy's shared dtype object, as in arrays RLBench made (pickle writes a dtype once per object)
        return Column(name, kind, values=values.view(np.dtype(values.dtype.str)), missing=missing)

    def _write_folder(
        self,
        folder: Path,
        episode: Episode,
        low_dim: bytes,
        columns: Mapping[str, np.ndarray | None],
        target: str | None,
    ) -> None:
        """One episode folder: pickles and PNGs; with `target`, GENIMA's rendered variant of it."""
        files = episode.meta.extras.get("rlbench", {}).get("episode_files", {})
        with atomic_output(folder, temp_dir=self.root / TEMP_FOLDER) as tmp:
            tmp.mkdir(parents=True)
            (tmp / layout.LOW_DIM_PICKLE).write_bytes(low_dim)
            # success, instruction and seed have no slot in the layout; hidden, RLBench and GENIMA skip it
            (tmp / EPISODE_RECORD).write_text(episode.meta.model_dump_json(include=set(RECORDED_META)))
            for name, value in files.items():
                (tmp / name).write_bytes(dumps_pickle(from_tagged_json(value)))
            for cam in self._manifest.cameras:
                self._write_streams(tmp, episode, cam, columns, target)
            if target == "rgb":
                self._write_tiles(tmp, episode)

    def _write_streams(
        self,
        folder: Path,
        episode: Episode,
        cam: Camera,
        columns: Mapping[str, np.ndarray | None],
        target: str | None,
    ) -> None:
        T = episode.length
        kinds = ("rgb",) if target else layout.STREAM_KINDS
        for kind in kinds:
            path = f"cameras/{cam.name}/{kind}"
            if target and f"targets/{cam.name}/{target}" in episode:
                path = f"targets/{cam.name}/{target}"
            if path not in episode:
                continue
            near = far = np.full(T, None)
            if kind == "depth":
                near, far = (columns.get(f"misc/{cam.name}_camera_{p}") for p in ("near", "far"))
                if near is None or far is None:
                    raise FormatError(
                        f"depth needs the camera's near/far planes: set depth_range of camera '{cam.name}'",
                        field=path,
                    )
            out = layout.stream_folder(folder, cam.name, kind)
            out.mkdir()
            source = episode[path]
            for t in range(T):
                try:
                    pixels = frame_to_pixels(kind, np.asarray(source[t]), near[t], far[t])
                except FormatError as exc:
                    raise exc.located(field=path) from None
                layout.frame_file(out, t).write_bytes(encode_png_rgb(pixels))

    @staticmethod
    def _write_tiles(folder: Path, episode: Episode) -> None:
        """GENIMA's 2x2 tiles of observations and targets, for t < T-1 (what its diffusion loader reads)."""
        cams = layout.tile_cameras()
        if not all(f"cameras/{c}/rgb" in episode and f"targets/{c}/rgb" in episode for c in cams):
            return
        for name, prefix in ((layout.TILED_RGB, "cameras"), (layout.TILED_RGB_RENDERED, "targets")):
            out = folder / name
            out.mkdir()
            for t in range(episode.length - 1):
                tiles = layout.tile_2x2({c: np.asarray(episode[f"{prefix}/{c}/rgb"][t]) for c in cams})
                layout.frame_file(out, t).write_bytes(encode_png_rgb(tiles))

    # ------------------------------------------------------------ finish
    def commit(self) -> Manifest:
        """Write each variation's descriptions and the manifest; the export is then complete."""
        recorded = self._manifest.extras.get("rlbench", {}).get("variation_descriptions", {})
        instructions = {t.name: t.instructions for t in self._manifest.tasks}
        # a target root only once this export wrote into it (its marker), so nothing else is touched
        owned = [r for r in self._target_roots().values() if (r / TARGET_MARKER).exists()]
        for root in (r for r in [self.root, *owned] if r.is_dir()):
            folders = {(t, int(v)) for t, variations in recorded.items() for v in variations}
            folders |= written_variations(root)
            for task, variation in sorted(folders):
                descriptions = recorded.get(task, {}).get(str(variation), instructions.get(task, []))
                path = root / task / layout.variation_folder(variation) / layout.VARIATION_DESCRIPTIONS
                path.parent.mkdir(parents=True, exist_ok=True)
                dump_pickle(list(descriptions), path)
        remove_path(self.root / TEMP_FOLDER)
        atomic_write_text(self.root / COMMITTED_MARKER, self._manifest.to_json())
        remove_path(self.root / PENDING_MARKER)
        return self._manifest


def _require_own_destination(
    root: Path, markers: tuple[str, ...], manifest: Manifest, hint: str = ""
) -> None:
    """Refuse `root` unless it is absent, empty, or an export of this same dataset (one of `markers`)."""
    for marker in markers:
        if (root / marker).exists():
            existing = parse_model(Manifest, (root / marker).read_text(), file=root / marker)
            if existing.identity() != manifest.identity():
                raise FormatError(
                    f"destination already holds a different dataset ('{existing.name}'); choose another "
                    "destination or remove it",
                    file=root,
                )
            return
    if root.exists() and (root.is_file() or any(root.iterdir())):
        raise FormatError(f"destination exists and is not an RLBench export of genima-data{hint}", file=root)


def written_variations(root: Path) -> set[tuple[str, int]]:
    """(task, V) of every ``<task>/variation<V>`` under `root` holding an episode folder with a pickle."""
    return {
        (loc.task, loc.variation)
        for loc in discover_episodes(root).values()
        if loc.variation is not None and (loc.folder(root) / layout.LOW_DIM_PICKLE).exists()
    }


def _refuse_shared_folders(root: Path, index: Mapping[str, EpisodeLocation]) -> None:
    """Refuse an export in which two episodes would be written to the same folder (one would replace the
    other), before anything is written."""
    placed: dict[EpisodeLocation, str] = {}
    for episode_id, loc in index.items():
        if loc in placed:
            raise FormatError(
                f"goes to the same folder as episode '{placed[loc]}' ({loc.folder(Path()).as_posix()}); "
                "RLBench episode folders must be unique, so rename one of the two episodes",
                file=root,
                episode=episode_id,
            )
        placed[loc] = episode_id


RLBENCH = Format(
    name="rlbench",
    description="RLBench dataset folders (<task>/variation<V>/episodes/episode<E>/, PNGs + low_dim_obs.pkl)",
    detect=looks_like_rlbench,
    reader=RLBenchReader,
    writer=RLBenchWriter,
)

__all__ = ["RLBENCH", "EpisodeLocation", "RLBenchReader", "RLBenchWriter"]

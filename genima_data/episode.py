"""`Episode`: the in-memory unit every reader yields and every writer consumes.

An episode is its metadata plus a flat mapping from logical array paths (``robot/joint_positions``,
``cameras/front/rgb``) to *array sources*: anything with ``shape``, ``dtype`` and numpy-style indexing.
A numpy array, an h5py dataset, a zarr array and `LazyFrames` (frames decoded on demand from PNGs or video)
all qualify, so a 2,000-frame four-camera episode is never loaded whole: writers copy it frame by frame.

`ARRAY_SPECS` is the single description of the logical tree (DESIGN.md); stores, validators and readers
use it for dtypes, shapes and chunking.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from genima_data.errors import FormatError
from genima_data.schema import EpisodeMeta


@runtime_checkable
class ArraySource(Protocol):
    """Anything array-like: numpy arrays, h5py datasets, zarr arrays, `LazyFrames`."""

    @property
    def shape(self) -> tuple[int, ...]: ...

    @property
    def dtype(self) -> Any: ...

    def __getitem__(self, index: Any) -> Any: ...


def frame_number(index: int | np.integer, length: int) -> int:
    """An int index into `length` frames, negative counting from the end; IndexError outside."""
    t = int(index) + (length if index < 0 else 0)
    if not 0 <= t < length:
        raise IndexError(f"frame {index} out of range for {length} frames")
    return t


def frame_indices(index: Any, length: int) -> np.ndarray | None:
    """The frame numbers a list or 1-D array index selects over `length` frames, in its order (booleans as a
    mask, negatives from the end); None for any other index. Back-ends read these the same way."""
    if not isinstance(index, list | np.ndarray):
        return None
    selection = np.asarray(index)
    if selection.ndim != 1:
        return None
    if selection.dtype == bool:
        if len(selection) != length:
            raise IndexError(f"boolean index of {len(selection)} values for {length} frames")
        return np.flatnonzero(selection)
    return np.array([frame_number(t, length) for t in selection], dtype=np.int64)


def contiguous_frames(index: Any, length: int) -> tuple[int, int] | None:
    """(start, stop) of an Ellipsis or step-1 slice over `length` frames; None for any other index."""
    if index is Ellipsis:
        return 0, length
    if isinstance(index, slice) and index.step in (None, 1):
        start, stop, _ = index.indices(length)
        return start, stop
    return None


class LazyFrames:
    """A (T, ...) array whose frames are produced on demand by ``load_frame(t)``.

    Readers of foreign formats wrap their per-frame decoders in it (PNG files, video frames). Indexing with
    an int returns one frame; a slice or index list returns a stacked array. Every frame is checked against
    the declared shape and dtype, so a corrupt or resized frame fails loudly where it is read.
    """

    def __init__(
        self,
        load_frame: Callable[[int], np.ndarray],
        length: int,
        frame_shape: tuple[int, ...],
        dtype: Any,
        *,
        describe: Callable[[int], str] | None = None,
    ) -> None:
        self._load_frame = load_frame
        self._describe = describe
        self.shape = (int(length), *map(int, frame_shape))
        self.dtype = np.dtype(dtype)

    def __len__(self) -> int:
        return self.shape[0]

    def _frame(self, t: int) -> np.ndarray:
        frame = np.asarray(self._load_frame(t))
        if frame.shape != self.shape[1:] or frame.dtype != self.dtype:
            raise FormatError(
                f"frame {t} has shape {frame.shape} {frame.dtype}, expected {self.shape[1:]} {self.dtype}",
                file=self._describe(t) if self._describe else None,
            )
        return frame

    def __getitem__(self, index: Any) -> np.ndarray:
        if index is Ellipsis or (isinstance(index, tuple) and not index):
            return self[:]
        if isinstance(index, tuple):
            head, rest = index[0], index[1:]
            frames = self[head]
            return frames[rest] if isinstance(head, int | np.integer) else frames[(slice(None), *rest)]
        if isinstance(index, int | np.integer):
            return self._frame(frame_number(index, len(self)))
        if isinstance(index, slice):
            ts: Any = range(*index.indices(len(self)))
        else:
            ts = frame_indices(index, len(self))
            if ts is None:
                raise IndexError(
                    f"unsupported frame index {index!r}: an int, a slice or a 1-D list of frames"
                )
        out = np.empty((len(ts), *self.shape[1:]), dtype=self.dtype)
        for i, t in enumerate(ts):
            out[i] = self._frame(t)
        return out

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        full = self[:]
        return full if dtype is None else full.astype(dtype)


@dataclass(frozen=True)
class ArraySpec:
    """One node of the logical tree: its path pattern, dtype, shape (symbolic) and role."""

    pattern: str  # `{cam}` stands for a camera name, `{name}` for any extra's name
    dtype: str | None  # None: any dtype (extras)
    shape: tuple[str | int, ...]  # symbols: T frames, dof joints, L links, H/W image size; "..." any
    required: bool
    image: bool
    description: str

    def regex(self) -> re.Pattern:
        return _path_regex(self.pattern)


@functools.cache  # one per spec; building it cost more than matching
def _path_regex(pattern: str) -> re.Pattern:
    escaped = re.escape(pattern).replace(r"\{cam\}", r"(?P<cam>[^/]+)").replace(r"\{name\}", r".+")
    return re.compile(f"^{escaped}$")


ARRAY_SPECS: tuple[ArraySpec, ...] = (
    ArraySpec(
        "timestamps", "float64", ("T",), True, False, "seconds from episode start, strictly increasing"
    ),
    ArraySpec("robot/joint_positions", "float32", ("T", "dof"), True, False, "arm joint positions, rad"),
    ArraySpec("robot/gripper_open", "float32", ("T",), True, False, "gripper opening in [0, 1], 1 = open"),
    ArraySpec("robot/joint_velocities", "float32", ("T", "dof"), False, False, "joint velocities, rad/s"),
    ArraySpec("robot/joint_forces", "float32", ("T", "dof"), False, False, "joint torques, N m"),
    ArraySpec("robot/ee_pose", "float64", ("T", 4, 4), False, False, "gripper-tip pose in the base frame"),
    ArraySpec("robot/link_poses", "float64", ("T", "L", 4, 4), False, False, "arm joint frames, world"),
    ArraySpec(
        "action/joint_positions", "float32", ("T", "dof+1"), False, False, "commanded joints + gripper"
    ),
    ArraySpec("cameras/{cam}/rgb", "uint8", ("T", "H", "W", 3), False, True, "RGB observation"),
    ArraySpec("cameras/{cam}/depth", "float32", ("T", "H", "W"), False, True, "depth, metres"),
    ArraySpec("cameras/{cam}/mask", "int32", ("T", "H", "W"), False, True, "segmentation handles"),
    ArraySpec("cameras/{cam}/extrinsics", "float64", ("T", 4, 4), False, False, "per-frame T_world_camera"),
    ArraySpec("targets/{cam}/rgb", "uint8", ("T", "H", "W", 3), False, True, "spheres on the observation"),
    ArraySpec("targets/{cam}/rnd_bg", "uint8", ("T", "H", "W", 3), False, True, "spheres on random texture"),
    ArraySpec("extras/{name}", None, ("T", "..."), False, False, "source-specific per-frame data"),
)

REQUIRED_PATHS: tuple[str, ...] = tuple(s.pattern for s in ARRAY_SPECS if s.required)


@functools.lru_cache(maxsize=4096)  # a store sees the same few dozen paths in every episode
def spec_for(path: str) -> ArraySpec | None:
    """The spec a logical path falls under, or None for paths outside the tree."""
    for spec in ARRAY_SPECS:
        if spec.regex().match(path):
            return spec
    return None


def is_image_path(path: str) -> bool:
    spec = spec_for(path)
    return bool(spec and spec.image)


@dataclass
class Episode:
    """Metadata plus named array sources; see the module docstring.

    ``arrays`` keys are logical paths relative to the episode group. ``close`` releases file handles a
    store may hold for lazy arrays; an Episode is also a context manager.
    """

    meta: EpisodeMeta
    arrays: dict[str, ArraySource] = field(default_factory=dict)
    _on_close: list[Callable[[], None]] = field(default_factory=list, repr=False)

    @property
    def episode_id(self) -> str:
        return self.meta.episode_id

    @property
    def length(self) -> int:
        return self.meta.length

    def __getitem__(self, path: str) -> ArraySource:
        try:
            return self.arrays[path]
        except KeyError:
            raise KeyError(f"episode {self.episode_id} has no array '{path}'") from None

    def __contains__(self, path: object) -> bool:
        return path in self.arrays

    def paths(self) -> list[str]:
        """Logical array paths, sorted."""
        return sorted(self.arrays)

    def get(self, path: str, default: Any = None) -> ArraySource | Any:
        return self.arrays.get(path, default)

    def load(self, path: str) -> np.ndarray:
        """The whole array at `path` as numpy (fine for robot arrays; avoid for image streams)."""
        return np.asarray(self[path][...])

    def frame(self, path: str, t: int) -> np.ndarray:
        """Frame `t` of the array at `path`."""
        return np.asarray(self[path][t])

    def _names_under(self, prefix: str) -> list[str]:
        return sorted({k.split("/")[1] for k in self.arrays if k.startswith(prefix) and k.count("/") == 2})

    @property
    def camera_names(self) -> list[str]:
        """Cameras that have at least one stream (rgb, depth, mask or extrinsics) in this episode."""
        return self._names_under("cameras/")

    @property
    def target_names(self) -> list[str]:
        return self._names_under("targets/")

    def with_arrays(self, arrays: Mapping[str, ArraySource], meta: EpisodeMeta | None = None) -> Episode:
        """A new Episode sharing this one's sources, with `arrays` added or replaced."""
        return Episode(meta=meta or self.meta, arrays={**self.arrays, **arrays}, _on_close=self._on_close)

    def iter_frames(self, path: str) -> Iterator[np.ndarray]:
        source = self[path]
        for t in range(source.shape[0]):
            yield np.asarray(source[t])

    def close(self) -> None:
        while self._on_close:
            self._on_close.pop()()

    def __enter__(self) -> Episode:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

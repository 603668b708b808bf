"""What both store back-ends share: lifecycle, crash safety, structural checks and the copy loop.

Lifecycle of a dataset on disk::

    create ──> pending (marker holds the intended manifest) ──> episodes land one by one, each renamed
               into place when complete ──> commit: the manifest with the episode index is written last

* A reader (`mode="r"`) sees only the committed manifest and the episodes it indexes; a dataset that was
  never committed is reported as incomplete, never read as if it were whole.
* A writer re-attaching to the same path with the same manifest identity resumes: complete episodes are
  kept (`has_episode`) and leftovers of interrupted writes (``.tmp-*``) are removed.
* A different dataset at the destination is refused.
"""

from __future__ import annotations

import dataclasses
import itertools
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np

from genima_data import __version__
from genima_data.atomic import TMP_PREFIX, remove_temporaries
from genima_data.episode import REQUIRED_PATHS, ArraySource, Episode, spec_for
from genima_data.errors import CodecUnavailableError, GenimaDataError, StoreError
from genima_data.schema import (
    EpisodeMeta,
    EpisodeSummary,
    Manifest,
    StorageInfo,
    natural_key,
    parse_model,
)
from genima_data.store.codecs import DEFAULT_CODECS, Codec, get_codec, required_packages
from genima_data.store.gradient import has_colour, prefers_subtract_green

Mode = Literal["r", "a"]
ArrayMap = Mapping[str, ArraySource]  # logical path -> array source
ArrayAttrs = Mapping[str, Mapping[str, str]]  # logical path -> string attributes stored with the array
Block = tuple[int, int, np.ndarray]  # (start, stop, rows [start, stop)) of an array being copied
COPY_BLOCK_BYTES = 8 << 20  # frames copied per block: bounded memory whatever the episode length
# episodes kept ready for random frame access: an HDF5 file handle, or parsed zarr array metadata each
FRAME_HANDLE_CACHE = 64


class FrameHandle(ABC):
    """One episode opened for single-frame reads only: no metadata parse, arrays resolved on first use."""

    def __init__(self, location: Path, episode_id: str) -> None:
        self.location = location
        self.episode_id = episode_id
        self._sources: dict[str, ArraySource] = {}

    def source(self, path: str) -> ArraySource:
        """The array at logical `path` (StoreError naming the field when the episode has none)."""
        if path not in self._sources:
            self._sources[path] = self._resolve(path)
        return self._sources[path]

    def missing(self, path: str) -> StoreError:
        return StoreError(
            "no such array in the episode", file=self.location, episode=self.episode_id, field=path
        )

    @abstractmethod
    def _resolve(self, path: str) -> ArraySource: ...

    def close(self) -> None:
        """Release what the handle holds (back-ends with open files close them too)."""
        self._sources.clear()


STORABLE_KINDS = "biuf"  # numpy dtype kinds both back-ends store and the zarr chunk writer encodes
StructureKind = Literal["missing", "unknown", "camera", "dtype", "frames", "shape"]


def structure_problems(episode: Episode, manifest: Manifest) -> Iterator[tuple[StructureKind, StoreError]]:
    """Every way the arrays miss the logical tree, as (kind, error naming episode and field).

    Structural only: presence of required arrays, paths inside the tree, camera names, dtype, frame count
    and the shape of one frame. Value checks (NaN, limits, timestamps) belong to `genima_data.validate`.
    """
    eid = episode.episode_id
    T = episode.length
    dof = manifest.robot.dof
    cameras = {c.name for c in manifest.cameras}
    for required in REQUIRED_PATHS:
        if required not in episode:
            yield "missing", StoreError("required array is missing", episode=eid, field=required)
    for path, source in episode.arrays.items():
        spec = spec_for(path)
        if spec is None:
            yield (
                "unknown",
                StoreError(
                    "array is outside the logical tree (use extras/<name> for source-specific data)",
                    episode=eid,
                    field=path,
                ),
            )
            continue
        match = spec.regex().match(path)
        cam = match.groupdict().get("cam") if match else None
        if cam is not None and cam not in cameras:
            yield (
                "camera",
                StoreError(
                    f"camera '{cam}' is not in the manifest (cameras: {sorted(cameras)})",
                    episode=eid,
                    field=path,
                ),
            )
        dtype = np.dtype(source.dtype)
        if spec.dtype is not None and dtype != np.dtype(spec.dtype):
            yield "dtype", StoreError(f"dtype is {dtype}, expected {spec.dtype}", episode=eid, field=path)
        elif dtype.kind not in STORABLE_KINDS:
            message = f"dtype {dtype} cannot be stored: arrays hold numbers or booleans (text: meta.extras)"
            yield "dtype", StoreError(message, episode=eid, field=path)
        shape = tuple(source.shape)
        if 0 in shape[1:]:  # nothing to store per frame, and a chunk cannot have a zero-length axis
            yield "shape", StoreError(f"shape {shape} has an axis of length 0", episode=eid, field=path)
            continue
        if not shape or shape[0] != T:
            yield (
                "frames",
                StoreError(
                    f"has {shape[0] if shape else 0} frames, expected {T} (episode length)",
                    episode=eid,
                    field=path,
                ),
            )
        expected = [
            {"T": T, "dof": dof, "dof+1": dof + 1}.get(d, d) if isinstance(d, str) else d for d in spec.shape
        ]
        if (
            shape
            and "..." not in expected
            and (
                len(shape) != len(expected)
                or any(isinstance(e, int) and s != e for s, e in zip(shape[1:], expected[1:], strict=False))
            )
        ):
            yield (
                "shape",
                StoreError(f"shape is {shape}, expected {tuple(spec.shape)}", episode=eid, field=path),
            )


def check_episode_structure(episode: Episode, manifest: Manifest) -> None:
    """Raise the first of `structure_problems` (StoreError naming episode and field), if any."""
    for _kind, error in structure_problems(episode, manifest):
        raise error


def chunk_shape(path: str, shape: tuple[int, ...], itemsize: int) -> tuple[int, ...]:
    """One frame per chunk for image streams; about 1 MiB along T for everything else."""
    spec = spec_for(path)
    if spec is not None and spec.image:
        return (1, *shape[1:])
    row_bytes = max(1, int(np.prod(shape[1:], dtype=np.int64)) * itemsize)
    return (max(1, min(shape[0], (1 << 20) // row_bytes)), *shape[1:])


def iter_blocks(source: ArraySource, align: int = 1) -> Iterator[Block]:
    """Yield (start, stop, block) over the first axis, each block at most COPY_BLOCK_BYTES.

    Blocks start at multiples of `align` rows (a chunk's rows), at least `align` rows per block.
    """
    shape = tuple(source.shape)
    frame_bytes = max(1, int(np.prod(shape[1:], dtype=np.int64)) * np.dtype(source.dtype).itemsize)
    step = max(1, COPY_BLOCK_BYTES // frame_bytes // align) * align
    for start in range(0, shape[0], step):
        stop = min(shape[0], start + step)
        yield start, stop, np.asarray(source[start:stop])


def fit_codec(codec: Codec, blocks: Iterator[Block]) -> tuple[Codec, Iterator[Block]]:
    """`codec` fitted to the array whose `blocks` are about to be written, and the same blocks: RGB frames
    get the gradient colour transform that compresses their first block smaller."""
    if not codec.gradient:
        return codec, blocks
    first = next(blocks, None)
    if first is None:
        return codec, blocks
    rest = itertools.chain([first], blocks)
    if not has_colour(first[2].shape):
        return codec, rest
    return dataclasses.replace(codec, subtract_green=prefers_subtract_green(first[2], codec.zstd_level)), rest


def carried_attrs(source: ArraySource) -> dict[str, str]:
    """String attributes a stored array carries (e.g. how targets were rendered), so copies keep them.

    The codec attribute is left out: the destination records its own.
    """
    attrs = getattr(source, "attrs", None) or {}
    return {str(k): v for k, v in attrs.items() if k != "codec" and isinstance(v, str)}


def array_kind(path: str) -> Literal["image", "array"]:
    spec = spec_for(path)
    return "image" if spec is not None and spec.image and spec.dtype == "uint8" else "array"


class Dataset(ABC):
    """A canonical GENIMA dataset on disk (HDF5 directory or zarr store), read-only or writable.

    Open one with `genima_data.store.open_dataset` / `create_dataset`. Reading is lazy: `episode(id)`
    returns an `Episode` whose arrays are file-backed; `read_frame` fetches one frame of one stream.
    """

    backend: ClassVar[Literal["hdf5", "zarr"]]
    reserved_names: ClassVar[frozenset[str]] = frozenset()  # names the layout itself uses on disk

    def __init__(self, path: Path, manifest: Manifest, mode: Mode) -> None:
        self.path = Path(path)
        self._manifest = manifest
        self.mode: Mode = mode
        self._open: OrderedDict[str, FrameHandle] = OrderedDict()
        self._written: dict[str, EpisodeSummary] = {}

    # ---------------------------------------------------------------- back-end specifics
    @abstractmethod
    def _frame_handle(self, episode_id: str) -> FrameHandle:
        """The episode opened for single-frame reads (see `read_frame`)."""

    @classmethod
    @abstractmethod
    def _read_committed(cls, path: Path) -> str | None:
        """Committed manifest JSON of the dataset at `path`, or None."""

    @classmethod
    @abstractmethod
    def _read_pending(cls, path: Path) -> str | None:
        """Manifest JSON of a write in progress at `path`, or None."""

    @abstractmethod
    def _write_committed(self, manifest_json: str) -> None: ...

    @abstractmethod
    def _write_pending(self, manifest_json: str | None) -> None:
        """Write the in-progress marker, or remove it (None)."""

    @abstractmethod
    def _init_layout(self) -> None:
        """Create the empty directory structure of a new dataset."""

    @abstractmethod
    def _episode_location(self, episode_id: str) -> Path: ...

    @abstractmethod
    def _complete_on_disk(self) -> list[str]:
        """Ids of episodes whose files/groups were completely written (committed or not)."""

    @abstractmethod
    def _cleanup_temporaries(self) -> int: ...

    @abstractmethod
    def _open_episode(self, episode_id: str) -> Episode: ...

    @abstractmethod
    def _write_episode(self, episode: Episode) -> None:
        """Write all arrays and metadata atomically (temporary name, then rename)."""

    @abstractmethod
    def _add_arrays(
        self, episode_id: str, arrays: ArrayMap, replace: bool, attrs: ArrayAttrs, codec: str | None
    ) -> None: ...

    def _codec_spec(self, path: str, shape: tuple[int, ...], dtype: np.dtype, codec: str | None) -> Codec:
        """The codec to write the array at `path` with: `codec`, else the store's for its kind.

        Checked against the array's shape and dtype; errors name the field.
        """
        storage = self._manifest.storage
        kind = array_kind(path)
        name = codec or (storage.codecs[kind] if storage else DEFAULT_CODECS[self.backend][kind])
        try:
            spec = get_codec(name, self.backend)
            spec.check_shape(shape, dtype)
        except CodecUnavailableError as exc:
            raise exc.located(field=path) from None
        return spec

    @abstractmethod
    def _read_meta(self, episode_id: str) -> EpisodeMeta: ...

    @abstractmethod
    def missing_chunks(self, episode_id: str) -> dict[str, tuple[int, int]]:
        """Array path → (chunks not on disk, chunks it has) for the arrays of an episode that lack some.

        genima-data writes every chunk, so a missing one is lost data (an incomplete copy), though the
        formats read it as the fill value."""

    @abstractmethod
    def _array_codec_names(self, episode_id: str) -> dict[str, str]:
        """Codec name per array path of one episode, as recorded in the store."""

    @classmethod
    @abstractmethod
    def looks_like(cls, path: Path) -> bool:
        """Whether `path` holds (or is being written as) a dataset of this back-end."""

    # ---------------------------------------------------------------- opening
    @classmethod
    def open(cls, path: str | Path, mode: Mode = "r") -> Dataset:
        """Open an existing dataset. `mode="a"` attaches a writer to a committed or in-progress one."""
        path = Path(path)
        committed = cls._read_committed(path)
        source = committed if mode == "r" else (cls._read_pending(path) or committed)
        if source is None:
            if mode == "r" and cls._read_pending(path) is not None:
                raise StoreError(
                    "dataset is incomplete: an interrupted write never committed it; re-run the command "
                    "that wrote it to resume",
                    file=path,
                )
            raise StoreError(f"not a {cls.backend} dataset (no manifest)", file=path)
        manifest = parse_model(Manifest, source, file=cls._manifest_file(path))
        return cls(path, manifest, mode)

    @classmethod
    def create(
        cls,
        path: str | Path,
        manifest: Manifest,
        *,
        append: bool = False,
        image_codec: str | None = None,
        array_codec: str | None = None,
    ) -> Dataset:
        """Start writing a dataset, or resume one: see the module docstring for the rules."""
        path = Path(path)
        storage = StorageInfo(
            backend=cls.backend,
            codecs={
                "image": get_codec(image_codec or DEFAULT_CODECS[cls.backend]["image"], cls.backend).name,
                "array": get_codec(array_codec or DEFAULT_CODECS[cls.backend]["array"], cls.backend).name,
            },
            writer=f"genima-data {__version__}",
        )
        if path.exists() and not cls.looks_like(path) and not _nothing_written(path):
            raise StoreError(f"destination exists and is not a {cls.backend} dataset", file=path)
        if path.exists() and cls.looks_like(path):
            ds = cls.open(path, mode="a")
            ds._check_same_dataset(manifest, append=append)
            if append:
                manifest = ds._merged_for_append(manifest)
            if ds.manifest.storage is not None:  # keep the codecs the dataset was started with
                asked = {"image": image_codec, "array": array_codec}
                _require_same_codecs(ds.manifest.storage, storage, [k for k, v in asked.items() if v], path)
                storage = ds.manifest.storage
        else:
            ds = cls(path, manifest, "a")
        storage = storage.model_copy(
            update={"requires": required_packages(cls.backend, list(storage.codecs.values()))}
        )
        existing = ds._manifest.episodes
        ds._manifest = manifest.model_copy(update={"storage": storage, "episodes": existing})
        ds._write_pending(ds._manifest.to_json())  # first: a run killed after it is recognised and resumes
        ds._init_layout()
        ds.remove_leftovers()
        return ds

    @staticmethod
    def _manifest_file(path: Path) -> Path:
        return path

    def _check_same_dataset(self, manifest: Manifest, *, append: bool) -> None:
        mine, theirs = self._manifest.identity(), manifest.identity()
        keys = ("robot", "cameras", "fps") if append else tuple(mine)
        differing = [k for k in keys if mine.get(k) != theirs.get(k)]
        if differing:
            raise StoreError(
                f"destination already holds a different dataset ('{self._manifest.name}'; differs in "
                f"{', '.join(differing)}); choose another destination or remove it",
                file=self.path,
            )

    def _merged_for_append(self, manifest: Manifest) -> Manifest:
        tasks = {t.name: t for t in self._manifest.tasks}
        for task in manifest.tasks:
            if task.name in tasks:
                merged = list(dict.fromkeys([*tasks[task.name].instructions, *task.instructions]))
                tasks[task.name] = tasks[task.name].model_copy(update={"instructions": merged})
            else:
                tasks[task.name] = task
        return self._manifest.model_copy(update={"tasks": list(tasks.values())})

    # ---------------------------------------------------------------- reading
    @property
    def manifest(self) -> Manifest:
        return self._manifest

    @property
    def episode_ids(self) -> list[str]:
        """Ids of the committed episodes, in index (natural) order."""
        return [e.episode_id for e in self._manifest.episodes]

    def __len__(self) -> int:
        return len(self._manifest.episodes)

    def __contains__(self, episode_id: object) -> bool:
        return episode_id in set(self.episode_ids)

    def __iter__(self) -> Iterator[Episode]:
        for eid in self.episode_ids:
            with self.episode(eid) as ep:
                yield ep

    def episode(self, episode_id: str) -> Episode:
        """A lazily backed Episode; close it (or use `with`) to release its file handles."""
        self._require_indexed(episode_id)
        return self._open_episode(episode_id)

    def _require_indexed(self, episode_id: str) -> None:
        """Readers see only indexed episodes; writers may open ones written but not yet committed."""
        if self.mode == "r" and episode_id not in self:
            raise StoreError(f"no episode '{episode_id}' in the dataset", file=self.path)

    def read_frame(self, episode_id: str, path: str, t: int) -> np.ndarray:
        """Frame `t` of stream `path` of one episode; recent episodes stay ready (FRAME_HANDLE_CACHE)."""
        handle = self._open.pop(episode_id, None)
        if handle is None:
            self._require_indexed(episode_id)
            handle = self._frame_handle(episode_id)
        self._open[episode_id] = handle
        while len(self._open) > FRAME_HANDLE_CACHE:
            self._open.popitem(last=False)[1].close()
        return np.asarray(handle.source(path)[t])

    def codecs(self) -> dict[str, str]:
        """Codec name per array path of the first episode (all episodes share the store's codecs)."""
        return self._array_codec_names(self.episode_ids[0]) if self.episode_ids else {}

    def size_on_disk(self) -> int:
        return sum(p.stat().st_size for p in self.path.rglob("*") if p.is_file())

    # ---------------------------------------------------------------- writing
    def _require_writable(self) -> None:
        if self.mode != "a":
            raise StoreError("dataset is open read-only", file=self.path)

    def has_episode(self, episode_id: str) -> bool:
        """Whether the episode is completely on disk (committed or written by an unfinished run)."""
        return self._episode_location(episode_id).exists()

    def remove_leftovers(self) -> int:
        """Delete what interrupted writes left (``.tmp-*`` in the dataset and its episodes); returns how many.
        Only while no other process writes to the dataset: a coordinator does it before starting workers."""
        return remove_temporaries(self.path) + self._cleanup_temporaries()

    def episode_path(self, episode_id: str) -> Path:
        """Where an episode lives on disk: its ``.h5`` file or zarr group directory."""
        return self._episode_location(episode_id)

    def episodes_on_disk(self) -> list[str]:
        """Ids of every completely written episode, indexed or not (an uncommitted append leaves some)."""
        return self._complete_on_disk()

    def episode_meta(self, episode_id: str) -> EpisodeMeta:
        """The metadata of a complete episode (indexed or written by an unfinished run)."""
        self._require_indexed(episode_id)
        return self._read_meta(episode_id)

    def require_same_episode(self, meta: EpisodeMeta) -> None:
        """Raise unless the episode on disk with `meta`'s id has the same metadata: a resumed run must
        not keep an episode of another dataset that shares the manifest (another seed, a re-recording)."""
        require_same_meta(
            self._read_meta(meta.episode_id), meta, file=self._episode_location(meta.episode_id)
        )

    def write_episode(self, episode: Episode, *, replace: bool = False) -> None:
        """Write one episode atomically: it appears complete or not at all. An episode already on disk is
        refused unless `replace`."""
        self._require_writable()
        eid = episode.episode_id
        self._check_names(eid, episode.arrays)
        if self.has_episode(eid) and not replace:
            raise StoreError(
                "episode already exists (pass replace=True to overwrite it)",
                file=self._episode_location(eid),
                episode=eid,
            )
        parse_model(EpisodeMeta, episode.meta.model_dump(mode="json"), episode=eid)  # model_copy skips checks
        check_episode_structure(episode, self._manifest)
        try:
            self._write_episode(episode)
        except GenimaDataError as exc:
            raise exc.located(episode=episode.episode_id) from None
        self._written[episode.episode_id] = EpisodeSummary.of(episode.meta)

    def add_arrays(
        self,
        episode_id: str,
        arrays: Mapping[str, ArraySource],
        *,
        replace: bool = False,
        attrs: ArrayAttrs | None = None,
        codec: str | None = None,
    ) -> None:
        """Add streams (e.g. rendered targets) to a complete episode, atomically.

        `attrs` maps array paths to string attributes stored with the array (e.g. how targets were
        rendered); read them back as ``episode[path].attrs``. An array and its attributes land together.
        `codec` overrides the store's codec for these arrays (recorded per array like every codec), e.g.
        a fast one for derived data that is cheap to re-create.
        """
        self._require_writable()
        if not self.has_episode(episode_id):
            raise StoreError("cannot add arrays to a missing episode", file=self.path, episode=episode_id)
        self._check_names(episode_id, arrays)
        with self._open_episode(episode_id) as current:
            check_episode_structure(current.with_arrays(arrays), self._manifest)
        self._drop_open(episode_id)
        if codec is not None:
            get_codec(codec, self.backend)  # unknown or unavailable: fail before writing anything
        self._add_arrays(episode_id, arrays, replace, attrs or {}, codec)

    def _check_names(self, episode_id: str, paths: Iterable[str]) -> None:
        """Refuse an episode id or array path segment that the back-end's layout uses for itself."""
        for path in (None, *paths):
            for name in [episode_id] if path is None else path.split("/"):
                if name in self.reserved_names:
                    raise StoreError(
                        f"'{name}' is reserved by the {self.backend} layout; rename the "
                        f"{'episode' if path is None else 'array'}",
                        episode=episode_id,
                        field=path,
                    )

    def _drop_open(self, episode_id: str) -> None:
        ep = self._open.pop(episode_id, None)
        if ep is not None:
            ep.close()

    def commit(self, manifest: Manifest | None = None) -> Manifest:
        """Index every complete episode and write the manifest last; the dataset becomes readable."""
        self._require_writable()
        if manifest is not None:
            self._manifest = manifest.model_copy(update={"storage": self._manifest.storage})
        known = {e.episode_id: e for e in self._manifest.episodes}
        known.update(self._written)
        summaries = [
            known[eid] if eid in known else self._summary_on_disk(eid) for eid in self._complete_on_disk()
        ]
        self._manifest = self._manifest.with_episodes(summaries)
        self._write_committed(self._manifest.to_json())
        self._write_pending(None)
        return self._manifest

    def _summary_on_disk(self, episode_id: str) -> EpisodeSummary:
        """The index line of an episode found on disk; its metadata must carry the id it is stored under."""
        meta = self._read_meta(episode_id)
        if meta.episode_id != episode_id:
            raise StoreError(
                f"holds episode '{meta.episode_id}' under the name '{episode_id}' (a copy or a rename?); "
                "remove it or restore its name, then re-run",
                file=self._episode_location(episode_id),
                episode=episode_id,
            )
        return EpisodeSummary.of(meta)

    def update_manifest(self, **fields: Any) -> Manifest:
        """Change committed manifest fields (calibration, splits, ...) atomically."""
        self._require_writable()
        if self._read_pending(self.path) is not None:  # resuming that write would undo the change
            raise StoreError(
                "a write to this dataset is in progress or was interrupted; finish it first (re-run the "
                "command that started it, or commit), then change the manifest",
                file=self.path,
            )
        updated = parse_model(
            Manifest,
            {**self._manifest.model_dump(mode="json"), **fields},
            file=self._manifest_file(self.path),
        )
        self._manifest = updated
        self._write_committed(updated.to_json())
        return updated

    def close(self) -> None:
        while self._open:
            self._open.popitem()[1].close()

    def __enter__(self) -> Dataset:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r}, episodes={len(self)}, mode={self.mode!r})"


def require_same_meta(stored: EpisodeMeta, given: EpisodeMeta, *, file: str | Path) -> None:
    """Raise unless an episode kept at a destination (`stored`, in `file`) has the metadata of the one a
    resumed run would have written there (`given`)."""
    kept, asked = stored.model_dump(mode="json"), given.model_dump(mode="json")
    differing = [key for key in asked if kept.get(key) != asked[key]]
    if differing:
        raise StoreError(
            f"destination already holds a different episode with this id (differs in "
            f"{', '.join(differing)}); choose another destination or remove it",
            file=file,
            episode=given.episode_id,
        )


def _nothing_written(path: Path) -> bool:
    """Whether `path` is a folder holding only empty folders and leftovers of interrupted writes (``.tmp-*``),
    as a run killed before its first marker leaves it: such a destination is started afresh."""
    return path.is_dir() and all(
        p.name.startswith(TMP_PREFIX) or (p.is_dir() and _nothing_written(p)) for p in path.iterdir()
    )


def _require_same_codecs(started: StorageInfo, asked: StorageInfo, kinds: list[str], path: Path) -> None:
    """Refuse codecs asked for explicitly that differ from those a dataset was started with."""
    for kind in kinds:
        if started.codecs.get(kind) != asked.codecs[kind]:
            raise StoreError(
                f"the dataset was started with {kind} codec '{started.codecs.get(kind)}', not "
                f"'{asked.codecs[kind]}'; resume without the codec option or choose another destination",
                file=path,
            )


def meta_to_json(meta: EpisodeMeta) -> str:
    return meta.model_dump_json()


def meta_from_json(text: str | bytes, *, file: Path, episode: str | None = None) -> EpisodeMeta:
    return parse_model(EpisodeMeta, text, file=file, episode=episode)


def sorted_ids(ids: list[str]) -> list[str]:
    return sorted(ids, key=natural_key)

"""HDF5 back-end: a directory with ``manifest.json`` and one ``episodes/<episode_id>.h5`` per episode.

One file per episode means no concurrent-writer problem and one bad file never spoils the rest. Each file
is written under a temporary name and renamed when complete; adding arrays (targets) rewrites the file the
same way, copying the existing datasets chunk by chunk (HDF5 offers no safe in-place append under a
crash). Episode metadata is the root attribute ``meta`` (JSON); each dataset records its ``codec``.
Datasets with codec ``gradient-zstd`` hold gradient residuals (`genima_data.store.gradient`): HDF5 filters
cannot be written in Python, so the store encodes on write and `H5Array` decodes on read; on RGB
frames the attribute ``subtract_green`` says whether red and blue are relative to green.

Files are written in the HDF5 1.10 file format (readable by HDF5 1.10 and later, h5py 2.10 and later):
its object headers and chunk indexes take about 13.5 KiB less per file than the 1.8 format's: 6.5 % of a
10-frame episode of one 128² camera (bench/store_io.py's episodes).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import zstandard

from genima_data.atomic import TMP_PREFIX, atomic_output, atomic_write_text, remove_path, remove_temporaries
from genima_data.episode import ArraySource, Episode, frame_indices, frame_number
from genima_data.errors import StoreError
from genima_data.schema import FORMAT_VERSION, EpisodeMeta
from genima_data.store import zstd_frames
from genima_data.store.base import (
    ArrayAttrs,
    ArrayMap,
    Dataset,
    FrameHandle,
    carried_attrs,
    chunk_shape,
    fit_codec,
    iter_blocks,
    meta_from_json,
    sorted_ids,
)
from genima_data.store.codecs import ZSTD_FILTER, check_hdf5_filters
from genima_data.store.gradient import decode_gradient, encode_gradient, has_colour

MANIFEST = "manifest.json"
SUBTRACT_GREEN = "subtract_green"  # dataset attribute of gradient residuals: red and blue relative to green
PENDING = ".genima-incomplete.json"
EPISODES = "episodes"
SUFFIX = ".h5"
FILE_FORMAT = ("v110", "latest")  # h5py libver bounds of the episode files written (module docstring)

with contextlib.suppress(ImportError):  # registers Blosc/Zstd filters; files without them still open
    import hdf5plugin  # noqa: F401


def _open_h5(path: Path, episode_id: str, **options: Any) -> h5py.File:
    if not path.exists():
        raise StoreError("episode file is missing", file=path, episode=episode_id)
    try:
        return h5py.File(path, "r", **options)
    except OSError as exc:
        raise StoreError(
            f"episode file is truncated or corrupt ({exc})", file=path, episode=episode_id
        ) from None


def _file_meta(f: h5py.File, path: Path, episode_id: str) -> EpisodeMeta:
    if "meta" not in f.attrs:
        raise StoreError("episode file has no 'meta' attribute", file=path, episode=episode_id)
    return meta_from_json(f.attrs["meta"], file=path, episode=episode_id)


class H5Array:
    """An episode's HDF5 dataset read as the array it stores: gradient residuals come back as frames (any
    index), and a chunk that cannot be read (truncated or corrupt file) is a StoreError naming file, episode
    and field instead of HDF5's or zstd's own exception."""

    def __init__(self, dataset: h5py.Dataset, *, file: str | None = None, episode: str | None = None) -> None:
        self.dataset = dataset
        self.shape: tuple[int, ...] = dataset.shape
        self.dtype = dataset.dtype
        self.attrs = dataset.attrs
        self._where = {"file": file or dataset.file.filename, "episode": episode, "field": dataset.name[1:]}
        self._gradient = get_codec_name(dataset) == "gradient-zstd"
        self._colour = has_colour(dataset.shape)
        self._subtract_green = bool(dataset.attrs.get(SUBTRACT_GREEN, True))  # files from before the choice
        self._frame_chunks = self._gradient and _zstd_frame_chunks(dataset)
        self._frame_nbytes = int(np.prod(self.shape[1:]))

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index: Any) -> np.ndarray:
        try:
            return self._read(index)
        except (OSError, RuntimeError, zstandard.ZstdError) as exc:
            raise StoreError(
                f"cannot read the data ({type(exc).__name__}: {exc}); the file is truncated or corrupt",
                **self._where,
            ) from None

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        data = self[...]
        return data if dtype is None else data.astype(dtype)

    def _read(self, index: Any) -> np.ndarray:
        if self._frame_chunks and isinstance(index, int | np.integer):
            return self._frame(frame_number(index, self.shape[0]))
        head, *rest = index if isinstance(index, tuple) else (index,)
        frames = frame_indices(head, self.shape[0])
        if frames is not None:  # h5py takes increasing, distinct frame lists only: read those, then reorder
            unique, order = np.unique(frames, return_inverse=True)
            head, index = unique.tolist(), (unique.tolist(), *rest)
        if not self._gradient:
            data = self.dataset[index]
        elif head is Ellipsis:  # the index may address any axis: decode everything, then apply it
            return self._decode(self.dataset[()])[index]
        else:  # the decoded array itself (not a view) when nothing follows: callers may own and write it
            data = self._decode(self.dataset[head])
            if rest:
                data = data[tuple(rest)] if isinstance(head, int | np.integer) else data[(slice(None), *rest)]
        return data if frames is None else data[order]

    def _frame(self, t: int) -> np.ndarray:
        """Frame t from its raw chunk: HDF5's filter would create a zstd context per chunk."""
        try:
            skipped, data = self.dataset.id.read_direct_chunk((t,) + (0,) * (len(self.shape) - 1))
        except RuntimeError:  # a chunk never written holds the fill value; HDF5 itself says what else
            return self._decode(self.dataset[t])
        if not skipped & 1:  # bit 0 set: HDF5 stored this chunk without its zstd filter
            data = zstd_frames.decompress(data, self._frame_nbytes)
        return self._decode(np.frombuffer(data, np.uint8).reshape(self.shape[1:]))

    def _decode(self, residuals: np.ndarray) -> np.ndarray:
        return decode_gradient(residuals, self._colour, subtract_green=self._subtract_green)


def _zstd_frame_chunks(dataset: h5py.Dataset) -> bool:
    """Whether each frame is one chunk behind HDF5's zstd filter alone (chunks H5Array reads raw)."""
    plist = dataset.id.get_create_plist()
    filters = [plist.get_filter(i)[0] for i in range(plist.get_nfilters())]
    return dataset.chunks == (1, *dataset.shape[1:]) and filters == [ZSTD_FILTER]


def _write_residual_frames(dataset: h5py.Dataset, start: int, frames: np.ndarray, level: int) -> None:
    """Residual frames as raw chunks from `start` on: zstd frames HDF5's filter reads, compressed here with a
    reused context and the match finder tuned for residuals."""
    zeros = (0,) * (frames.ndim - 1)
    for t, frame in enumerate(frames, start):
        dataset.id.write_direct_chunk((t, *zeros), zstd_frames.compress(frame.data, level, residuals=True))


def get_codec_name(dataset: h5py.Dataset) -> str:
    return str(dataset.attrs.get("codec", "unknown"))


class _H5Frames(FrameHandle):
    """Keeps the episode file open; skips the metadata parse, checks each array's filter on first use."""

    def __init__(self, location: Path, episode_id: str) -> None:
        super().__init__(location, episode_id)
        # no chunk cache: random single frames never reuse a decompressed chunk, and HDF5's default (1 MiB
        # per dataset) grew a loader by ~600 MiB over 64 open episodes of four 256² cameras
        self._file = _open_h5(location, episode_id, rdcc_nbytes=0)

    def _resolve(self, path: str) -> ArraySource:
        dataset = self._file.get(path)
        if not isinstance(dataset, h5py.Dataset):
            raise self.missing(path)
        check_hdf5_filters(dataset, file=str(self.location), episode=self.episode_id, field=path)
        return H5Array(dataset, file=str(self.location), episode=self.episode_id)

    def close(self) -> None:
        super().close()
        self._file.close()


def _read_json_text(path: Path) -> str | None:
    """The text of a manifest file, None when there is none; one-line error when it cannot be read."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise StoreError(f"cannot read the manifest ({reason})", file=path) from None


def _dataset_paths(f: h5py.File) -> list[str]:
    paths: list[str] = []
    f.visititems(lambda name, obj: paths.append(name) if isinstance(obj, h5py.Dataset) else None)
    return paths


class HDF5Dataset(Dataset):
    backend = "hdf5"

    # ------------------------------------------------------------ layout and bookkeeping
    @classmethod
    def looks_like(cls, path: Path) -> bool:
        return path.is_dir() and ((path / MANIFEST).exists() or (path / PENDING).exists())

    @staticmethod
    def _manifest_file(path: Path) -> Path:
        return path / MANIFEST

    @classmethod
    def _read_committed(cls, path: Path) -> str | None:
        return _read_json_text(path / MANIFEST)

    @classmethod
    def _read_pending(cls, path: Path) -> str | None:
        return _read_json_text(path / PENDING)

    def _write_committed(self, manifest_json: str) -> None:
        atomic_write_text(self.path / MANIFEST, manifest_json)

    def _write_pending(self, manifest_json: str | None) -> None:
        if manifest_json is None:
            remove_path(self.path / PENDING)
        else:
            atomic_write_text(self.path / PENDING, manifest_json)

    def _init_layout(self) -> None:
        (self.path / EPISODES).mkdir(parents=True, exist_ok=True)

    def _episode_location(self, episode_id: str) -> Path:
        return self.path / EPISODES / f"{episode_id}{SUFFIX}"

    def _complete_on_disk(self) -> list[str]:
        d = self.path / EPISODES
        if not d.is_dir():
            return []
        return sorted_ids(
            [
                p.name[: -len(SUFFIX)]
                for p in d.iterdir()
                if p.name.endswith(SUFFIX) and not p.name.startswith(TMP_PREFIX)
            ]
        )

    def _cleanup_temporaries(self) -> int:
        return remove_temporaries(self.path / EPISODES)

    # ------------------------------------------------------------ reading
    def _read_meta(self, episode_id: str) -> EpisodeMeta:
        path = self._episode_location(episode_id)
        with _open_h5(path, episode_id) as f:
            return _file_meta(f, path, episode_id)

    def _frame_handle(self, episode_id: str) -> FrameHandle:
        return _H5Frames(self._episode_location(episode_id), episode_id)

    def _open_episode(self, episode_id: str) -> Episode:
        path = self._episode_location(episode_id)
        f = _open_h5(path, episode_id)
        try:
            meta = _file_meta(f, path, episode_id)
            arrays = {}
            for name in _dataset_paths(f):
                check_hdf5_filters(f[name], file=str(path), episode=episode_id, field=name)
                arrays[name] = H5Array(f[name], file=str(path), episode=episode_id)
        except BaseException:
            f.close()
            raise
        return Episode(meta=meta, arrays=arrays, _on_close=[f.close])

    def missing_chunks(self, episode_id: str) -> dict[str, tuple[int, int]]:
        path = self._episode_location(episode_id)
        counts = {}
        with _open_h5(path, episode_id) as f:
            for name in _dataset_paths(f):
                dataset = f[name]
                if dataset.chunks is None or "codec" not in dataset.attrs:  # contiguous, or not written by us
                    continue
                expected = math.prod(-(-n // c) for n, c in zip(dataset.shape, dataset.chunks, strict=True))
                missing = expected - dataset.id.get_num_chunks()
                if missing:
                    counts[name] = (missing, expected)
        return counts

    def _array_codec_names(self, episode_id: str) -> dict[str, str]:
        path = self._episode_location(episode_id)
        with _open_h5(path, episode_id) as f:
            return {name: get_codec_name(f[name]) for name in _dataset_paths(f)}

    # ------------------------------------------------------------ writing
    def _create_and_fill(
        self,
        f: h5py.File,
        path: str,
        source: ArraySource,
        attrs: Mapping[str, str] | None = None,
        codec: str | None = None,
    ) -> None:
        shape = tuple(int(s) for s in source.shape)
        dtype = np.dtype(source.dtype)
        spec, blocks = fit_codec(self._codec_spec(path, shape, dtype, codec), iter_blocks(source))
        ds = f.create_dataset(
            path,
            shape=shape,
            dtype=dtype,
            chunks=chunk_shape(path, shape, dtype.itemsize),
            **spec.hdf5_kwargs(),
        )
        ds.attrs.update(attrs or {})
        ds.attrs["codec"] = spec.name
        if spec.gradient:
            ds.attrs[SUBTRACT_GREEN] = spec.subtract_green
        colour = has_colour(shape)
        direct = spec.gradient and _zstd_frame_chunks(ds)
        for start, stop, block in blocks:
            residuals = encode_gradient(block, colour, spec.subtract_green) if spec.gradient else block
            if direct:
                _write_residual_frames(ds, start, residuals, spec.zstd_level)
            else:
                ds[start:stop] = residuals

    def _write_episode(self, episode: Episode) -> None:
        location = self._episode_location(episode.episode_id)
        with atomic_output(location) as tmp, h5py.File(tmp, "w", libver=FILE_FORMAT) as f:
            f.attrs["format_version"] = FORMAT_VERSION
            f.attrs["meta"] = episode.meta.model_dump_json()
            for path, source in sorted(episode.arrays.items()):
                self._create_and_fill(f, path, source, carried_attrs(source))

    def _add_arrays(
        self, episode_id: str, arrays: ArrayMap, replace: bool, attrs: ArrayAttrs, codec: str | None
    ) -> None:
        final = self._episode_location(episode_id)
        with _open_h5(final, episode_id) as old:
            existing = set(_dataset_paths(old))
            clash = sorted(existing & set(arrays))
            if clash and not replace:
                raise StoreError(
                    f"arrays already exist: {clash} (pass replace=True to overwrite)",
                    file=final,
                    episode=episode_id,
                )
            with atomic_output(final) as tmp, h5py.File(tmp, "w", libver=FILE_FORMAT) as new:
                for key, value in old.attrs.items():
                    new.attrs[key] = value
                for name in sorted(existing - set(arrays)):
                    parent = name.rsplit("/", 1)[0] if "/" in name else "/"
                    old.copy(old[name], new.require_group(parent), name=name.rsplit("/", 1)[-1])
                for path, source in sorted(arrays.items()):
                    self._create_and_fill(new, path, source, attrs.get(path), codec)

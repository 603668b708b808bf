"""Direct chunk I/O for the zarr store: array metadata, chunk files and shards without zarr-python's
per-chunk async tasks (about 20x its overhead on one frame).

Every array the store writes is chunked along its first axis only. Arrays of one row per chunk (image,
depth and mask streams: one frame per chunk) are gathered into one shard file per array, zarr v3's
``sharding_indexed`` codec with the index at the end and a crc32c over it: a camera stream of an episode is
one file instead of one per frame, and one frame is still one read. Other arrays are chunked by about
1 MiB of rows. Older stores with a chunk file per frame read the same way.

zarr-python stays the authority on the format: each metadata document is zarr-python's own for the same
codecs (generated once per codec, dtype and row shape, then given the array's shape and attributes), and
tests check that zarr-python reads every array exactly and writes byte-identical shards.
"""

from __future__ import annotations

import functools
import json
import os
import weakref
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import google_crc32c
import numcodecs
import numpy as np
import zarr
from zarr.core.buffer import default_buffer_prototype
from zarr.storage import MemoryStore

from genima_data.episode import ArraySource
from genima_data.errors import StoreError
from genima_data.store.base import Block, iter_blocks
from genima_data.store.codecs import Codec
from genima_data.store.gradient import CODEC_NAME as GRADIENT
from genima_data.store.gradient import GradientCodec, decode_gradient, encode_gradient
from genima_data.store.zstd_frames import ZstdFrames

NODE = "zarr.json"
SHARDING = "sharding_indexed"
# flat chunk keys ("c.<t>.0.0.0"): nested "c/<t>/0/0/0" costs a mkdir per key; arrays written with "/"
# (older stores) are read the same way
CHUNK_SEPARATOR = "."
CHUNK_SEPARATORS = (".", "/")
_EMPTY = 2**64 - 1  # shard index entry of a chunk that was never written
_INDEX_CODECS = [{"name": "bytes", "configuration": {"endian": "little"}}, {"name": "crc32c"}]

_BLOSC_SHUFFLE = {"noshuffle": 0, "shuffle": 1, "bitshuffle": 2}
# codec factories from (configuration, bytes of a decoded chunk, whether the bytes are gradient residuals)
_BYTES_CODECS: dict[str, Callable[[dict[str, Any], int, bool], Any]] = {
    "zstd": lambda conf, nbytes, residuals: ZstdFrames(
        conf.get("level", 0), conf.get("checksum", False), nbytes, residuals
    ),
    "gzip": lambda conf, *_: numcodecs.GZip(level=conf.get("level", 1)),
    "blosc": lambda conf, *_: numcodecs.Blosc(
        cname=conf.get("cname", "zstd"),
        clevel=conf.get("clevel", 5),
        shuffle=_BLOSC_SHUFFLE[conf.get("shuffle", "noshuffle")],
        blocksize=conf.get("blocksize", 0),
        typesize=conf.get("typesize"),  # shuffle needs the element size; the chunk arrives as bytes
    ),
}


# ------------------------------------------------------------------------------------------- metadata
@functools.lru_cache(maxsize=256)
def _template(codec: Codec, dtype: str, row_shape: tuple[int, ...], sharded: bool) -> str:
    """zarr-python's metadata document for a one-row array with these codecs (JSON text)."""
    shape = (1, *row_shape)
    array = zarr.create_array(
        MemoryStore(),
        shape=shape,
        dtype=np.dtype(dtype),
        chunks=shape,
        shards=shape if sharded else None,
        chunk_key_encoding={"name": "default", "separator": CHUNK_SEPARATOR},
        **codec.zarr_kwargs(shape, np.dtype(dtype).itemsize),
    )
    return array.metadata.to_buffer_dict(default_buffer_prototype())[NODE].to_bytes().decode()


def array_metadata(
    shape: tuple[int, ...], dtype: np.dtype, chunk_rows: int, codec: Codec, attributes: dict[str, Any]
) -> dict[str, Any]:
    """The zarr.json of a (T, ...) array chunked by `chunk_rows` rows; one-row chunks go into one shard."""
    sharded = chunk_rows == 1
    doc = json.loads(_template(codec, np.dtype(dtype).str, tuple(shape[1:]), sharded))
    doc["shape"] = list(shape)
    outer_rows = max(1, shape[0]) if sharded else chunk_rows
    doc["chunk_grid"]["configuration"]["chunk_shape"] = [outer_rows, *shape[1:]]
    doc["attributes"] = attributes
    return doc


# ------------------------------------------------------------------------------------------- chunks
class DirectArray:
    """Reads and writes the chunks of a (T, ...) array chunked along T only, straight from/to its files."""

    def __init__(self, directory: Path, meta: dict[str, Any], keep_open: bool = False) -> None:
        self.shape = tuple(meta["shape"])
        self.fill_value = meta.get("fill_value", 0)
        separator = meta["chunk_key_encoding"].get("configuration", {}).get("separator", "/")
        outer_rows = meta["chunk_grid"]["configuration"]["chunk_shape"][0]
        codecs = meta["codecs"]
        self.shard_rows: int | None = None
        if codecs[0]["name"] == SHARDING:
            self.shard_rows, codecs = outer_rows, codecs[0]["configuration"]["codecs"]
        self.chunk_rows = 1 if self.shard_rows else outer_rows
        self.gradient: GradientCodec | None = None
        self.bytes_codecs: list[Any] = []
        byteorder = "<"
        self.dtype = np.dtype(meta["data_type"])
        chunk_nbytes = self.chunk_rows * int(np.prod(self.shape[1:], dtype=np.int64)) * self.dtype.itemsize
        for codec in codecs:
            name, conf = codec["name"], codec.get("configuration", {})
            if name == "bytes":
                byteorder = "<" if conf.get("endian", "little") == "little" else ">"
            elif name == GRADIENT:
                self.gradient = GradientCodec.from_dict(codec)
            else:
                self.bytes_codecs.append(_BYTES_CODECS[name](conf, chunk_nbytes, self.gradient is not None))
        self.stored_dtype = self.dtype.newbyteorder(byteorder)
        self._native_dtype = self.dtype.newbyteorder("=")  # what reads return
        self._indexes: dict[int, list[tuple[int, int]]] = {}
        # shard files kept open between reads when asked (frame handles): an open and close per random
        # read cost about a tenth of a 128² frame read; they close with `close` or when this is collected
        self._fds: dict[int, int] | None = {} if keep_open else None
        if self._fds is not None:
            weakref.finalize(self, _close_files, self._fds)
        # chunk file names as plain strings: building a Path per frame read cost as much as the pread
        self.flat_keys = separator == CHUNK_SEPARATOR  # the layout genima-data writes, every chunk included
        self._key_prefix = os.path.join(directory, f"c{separator}")
        self._key_suffix = "".join(f"{separator}0" for _ in self.shape[1:])

    @classmethod
    def for_array(cls, directory: Path, meta: dict[str, Any], keep_open: bool = False) -> DirectArray | None:
        """A DirectArray if the array's layout and codecs are ones this class runs, else None."""
        shape, codecs = meta["shape"], meta["codecs"]
        grid = meta.get("chunk_grid", {}).get("configuration", {}).get("chunk_shape")
        encoding = meta.get("chunk_key_encoding", {})
        if (
            not grid
            or grid[1:] != shape[1:]
            or encoding.get("name") != "default"
            or encoding.get("configuration", {}).get("separator", "/") not in CHUNK_SEPARATORS
            or meta.get("storage_transformers")
        ):
            return None
        if codecs and codecs[0]["name"] == SHARDING:
            conf = codecs[0]["configuration"]
            if (
                len(codecs) > 1
                or conf.get("chunk_shape") != [1, *shape[1:]]
                or conf.get("index_location", "end") != "end"
                or conf.get("index_codecs") != _INDEX_CODECS
            ):
                return None
            codecs = conf["codecs"]
        known = {"bytes", GRADIENT, *_BYTES_CODECS}
        return cls(directory, meta, keep_open) if all(c["name"] in known for c in codecs) else None

    # ------------------------------------------------------------ encoding
    def _key(self, k: int) -> str:
        return f"{self._key_prefix}{k}{self._key_suffix}"

    def _encode(self, rows: np.ndarray) -> bytes:
        arr = np.ascontiguousarray(rows, dtype=self.stored_dtype)
        if self.gradient is not None:
            arr = encode_gradient(arr, self.gradient.colour, self.gradient.subtract_green)
        data: Any = arr.tobytes()
        for codec in self.bytes_codecs:
            data = codec.encode(data)
        return bytes(data)

    def _decode(self, data: bytes, out: np.ndarray, path: str) -> None:
        """Decode one chunk of file `path` into `out` (its rows, native byte order)."""
        try:
            for codec in reversed(self.bytes_codecs):
                data = codec.decode(data)
            arr = np.frombuffer(data, dtype=self.stored_dtype).reshape(out.shape)
        except Exception as exc:  # codecs raise their own types (ZstdError, RuntimeError, ...) on bad bytes
            raise StoreError(
                f"a chunk cannot be decoded ({type(exc).__name__}: {exc}); the file is truncated or corrupt",
                file=path,
            ) from None
        if self.gradient is not None:
            decode_gradient(arr, self.gradient.colour, out=out, subtract_green=self.gradient.subtract_green)
        else:
            np.copyto(out, arr)

    def _empty(self, rows: int) -> np.ndarray:
        return np.empty((rows, *self.shape[1:]), dtype=self._native_dtype)

    def _fill(self, rows: int) -> np.ndarray:
        return np.full((rows, *self.shape[1:]), self.fill_value, dtype=self._native_dtype)

    # ------------------------------------------------------------ writing
    def write(self, source: ArraySource) -> None:
        """Write every row of `source` (same shape) into the array's directory, a bounded block at a time."""
        self.write_blocks(iter_blocks(source, align=self.chunk_rows))

    def write_blocks(self, blocks: Iterable[Block]) -> None:
        """Write every row of the array from `blocks` (`iter_blocks` of a source of the same shape, aligned
        to this array's chunk rows)."""
        if self.shard_rows is not None:
            self._write_shards(blocks, self.shard_rows)
            return
        for start, _, block in blocks:
            for offset in range(0, len(block), self.chunk_rows):
                rows = block[offset : offset + self.chunk_rows]
                if len(rows) < self.chunk_rows:  # zarr chunks are whole: pad the last one
                    rows = np.concatenate([rows, self._fill(self.chunk_rows - len(rows))])
                with open(self._key((start + offset) // self.chunk_rows), "wb") as f:
                    f.write(self._encode(rows))

    def _write_shards(self, blocks: Iterable[Block], shard_rows: int) -> None:
        rows = (row for _, _, block in blocks for row in block)
        total = self.shape[0]
        for first in range(0, total, shard_rows):
            with _ShardWriter(self._key(first // shard_rows), shard_rows) as writer:
                for j, row in zip(range(min(shard_rows, total - first)), rows, strict=False):
                    writer.add(j, self._encode(row[None]))

    # ------------------------------------------------------------ reading
    def rows(self, start: int, stop: int) -> np.ndarray:
        """Rows [start, stop) of the array (0 <= start <= stop <= T)."""
        if stop <= start:
            return self._fill(0)
        if self.shard_rows is not None:
            rows, out = self.shard_rows, self._empty(stop - start)  # frames decode straight into it
            for shard in range(start // rows, (stop - 1) // rows + 1):
                base = shard * rows  # first frame of the shard
                first, last = max(start - base, 0), min(stop - base, rows)
                self._shard_frames(shard, rows, first, out[base + first - start : base + last - start])
            return out
        first, last = start // self.chunk_rows, (stop - 1) // self.chunk_rows
        chunks = [self._chunk(k) for k in range(first, last + 1)]
        skip = start - first * self.chunk_rows
        return np.concatenate(chunks)[skip : skip + stop - start]

    def row(self, t: int) -> np.ndarray:
        """Row (frame) t, 0 <= t < T."""
        if self.shard_rows is None:
            return self._chunk(t // self.chunk_rows)[t % self.chunk_rows]
        shard, j = divmod(t, self.shard_rows)
        out = self._empty(1)
        self._shard_frames(shard, self.shard_rows, j, out)
        return out[0]

    def _shard_frames(self, shard: int, rows: int, first: int, out: np.ndarray) -> None:
        """Frames [first, first + len(out)) of a shard of `rows` frames into `out`; the index is read once."""
        fd = self._open_shard(shard)
        if fd is None:  # zarr does not write shards that hold only the fill value
            out[...] = self.fill_value
            return
        try:
            index = self._shard_index(fd, shard, rows)
            for frame, (offset, nbytes) in zip(out, index[first : first + len(out)], strict=True):
                if offset == _EMPTY:  # a chunk zarr left out: it holds only the fill value
                    frame[...] = self.fill_value
                else:
                    self._decode(os.pread(fd, nbytes, offset), frame[None], self._key(shard))
        finally:
            if self._fds is None:
                os.close(fd)

    def _shard_index(self, fd: int, shard: int, rows: int) -> list[tuple[int, int]]:
        """The (offset, nbytes) entries of an open shard of `rows` chunks, read once per shard."""
        index = self._indexes.get(shard)
        if index is None:
            index = self._indexes[shard] = _read_shard_index(fd, self._key(shard), rows)
        return index

    @property
    def chunk_count(self) -> int:
        """Chunks the array has: one per row when sharded, else one per `chunk_rows` rows."""
        return -(-self.shape[0] // self.chunk_rows)

    def missing_chunks(self) -> int:
        """How many of the array's chunks are not on disk (absent chunk files or shard index entries)."""
        if self.shard_rows is None:
            return sum(not os.path.exists(self._key(k)) for k in range(self.chunk_count))
        missing = 0
        for shard, first in enumerate(range(0, self.shape[0], self.shard_rows)):
            rows = min(self.shard_rows, self.shape[0] - first)  # a last shard's unused entries are empty
            fd = self._open_shard(shard)
            if fd is None:
                missing += rows
                continue
            try:
                index = self._shard_index(fd, shard, self.shard_rows)
            finally:
                if self._fds is None:
                    os.close(fd)
            missing += sum(offset == _EMPTY for offset, _ in index[:rows])
        return missing

    def _open_shard(self, shard: int) -> int | None:
        """A descriptor of the shard's file (kept open if asked), or None when the file does not exist."""
        fd = self._fds.get(shard) if self._fds is not None else None
        if fd is None:
            try:
                fd = os.open(self._key(shard), os.O_RDONLY)
            except FileNotFoundError:
                return None
            if self._fds is not None:
                self._fds[shard] = fd
        return fd

    def close(self) -> None:
        """Close the shard files kept open; a later read opens them again."""
        if self._fds:
            _close_files(self._fds)

    def __getstate__(self) -> dict[str, Any]:
        """Pickled without open files: descriptors mean nothing in another process."""
        return {**self.__dict__, "_fds": None if self._fds is None else {}}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        if self._fds is not None:
            weakref.finalize(self, _close_files, self._fds)

    def _chunk(self, k: int) -> np.ndarray:
        try:
            with open(self._key(k), "rb") as f:
                data = f.read()
        except FileNotFoundError:  # zarr does not write chunks equal to the fill value
            return self._fill(self.chunk_rows)
        out = self._empty(self.chunk_rows)
        self._decode(data, out, self._key(k))
        return out


class _ShardWriter:
    """Appends encoded chunks to one shard file, then the index of (offset, nbytes) pairs and its crc32c.

    A context manager: the index is written only when the block completes, so a shard left by a failure
    has no valid index and reads as corrupt; the file is closed either way.
    """

    def __init__(self, path: str, chunks: int) -> None:
        self._file = open(path, "wb")  # noqa: SIM115 (closed in __exit__)
        self._chunks = chunks
        self._entries: dict[int, tuple[int, int]] = {}  # numpy item assignment per chunk costs more than this
        self._offset = 0

    def add(self, j: int, data: bytes) -> None:
        self._entries[j] = (self._offset, len(data))
        self._file.write(data)
        self._offset += len(data)

    def __enter__(self) -> _ShardWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        with self._file:
            if exc_type is None:
                self._write_index()

    def _write_index(self) -> None:
        table = np.full((self._chunks, 2), _EMPTY, dtype="<u8")
        if self._entries:
            table[list(self._entries)] = list(self._entries.values())
        index = table.tobytes()
        self._file.write(index + google_crc32c.value(index).to_bytes(4, "little"))


def _close_files(fds: dict[int, int]) -> None:
    while fds:
        os.close(fds.popitem()[1])


def _read_shard_index(fd: int, path: str, chunks: int) -> list[tuple[int, int]]:
    """The shard's (offset, nbytes) per chunk, as Python ints (numpy scalars cost more per read)."""
    size = chunks * 16 + 4
    end = os.fstat(fd).st_size
    data = os.pread(fd, size, end - size) if end >= size else b""
    if len(data) != size or google_crc32c.value(data[:-4]) != int.from_bytes(data[-4:], "little"):
        raise StoreError("shard index is truncated or corrupt (crc32c mismatch)", file=path)
    return [tuple(entry) for entry in np.frombuffer(data[:-4], dtype="<u8").reshape(chunks, 2).tolist()]

"""zstd frames with (de)compression contexts kept per thread.

numcodecs and HDF5's zstd filter create a fresh zstd context on every call; for one 128² frame that set-up
costs about a third of the decode (bench/store_io.py). The frames are standard zstd frames with the content
size in the header: numcodecs, zarr-python and HDF5's zstd filter read them, and these functions read theirs.

Prediction residuals (`genima_data.store.gradient`) are compressed with level 1 tuned for them: repeats in
residuals are short and mostly chance, and each match costs a sequence to decode. Taking matches of 7 or
more bytes only, from a 256-entry hash table, leaves runs (flat image regions) matched and the rest to
Huffman-coded literals: on 128² and 256² frames that compresses 1.3-3x faster, decodes 1.3-1.9x faster and
comes out 1-4 % smaller than plain level 1 (docs/storage.md; bench/image_codecs.py compares the two).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import zstandard

_T = TypeVar("_T")
_contexts = threading.local()  # a zstandard context must not be used by two threads at once
RESIDUAL_HASH_LOG = 8  # log2 of the match finder's table size for residuals
RESIDUAL_MIN_MATCH = 7  # zstd's longest minimum match


def compress(data: bytes | memoryview, level: int, checksum: bool = False, residuals: bool = False) -> bytes:
    """One zstd frame of `data` at `level`, with a content checksum if `checksum`; `residuals` tunes the
    match finder for prediction residuals (see the module docstring)."""
    compressors: dict[tuple[int, bool, bool], zstandard.ZstdCompressor] = _per_thread("compressors", dict)
    key = (level, checksum, residuals)
    compressor = compressors.get(key)
    if compressor is None:
        compressor = compressors[key] = _compressor(level, checksum, residuals)
    return compressor.compress(data)


def _compressor(level: int, checksum: bool, residuals: bool) -> zstandard.ZstdCompressor:
    if not residuals:
        return zstandard.ZstdCompressor(level=level, write_checksum=checksum)
    params = zstandard.ZstdCompressionParameters(  # parameters left out follow `level` and the data size
        compression_level=level,
        hash_log=RESIDUAL_HASH_LOG,
        min_match=RESIDUAL_MIN_MATCH,
        write_checksum=checksum,
    )
    return zstandard.ZstdCompressor(compression_params=params)


def decompress(data: bytes | memoryview, nbytes: int) -> bytes:
    """The `nbytes` bytes held in zstd frame `data` (its checksum verified when it has one)."""
    decompressor = _per_thread("decompressor", zstandard.ZstdDecompressor)
    out = decompressor.decompress(data, max_output_size=nbytes)  # the size, when the header lacks it
    if len(out) != nbytes:
        raise zstandard.ZstdError(f"zstd frame holds {len(out)} bytes, expected {nbytes}")
    return out


def _per_thread(name: str, factory: Callable[[], _T]) -> _T:
    value = getattr(_contexts, name, None)
    if value is None:
        value = factory()
        setattr(_contexts, name, value)
    return value


@dataclass(frozen=True)
class ZstdFrames:
    """numcodecs-style codec over `compress` / `decompress` for chunks of a known size in bytes."""

    level: int
    checksum: bool
    nbytes: int
    residuals: bool = False

    def encode(self, data: bytes | memoryview) -> bytes:
        return compress(data, self.level, self.checksum, self.residuals)

    def decode(self, data: bytes | memoryview) -> bytes:
        return decompress(data, self.nbytes)

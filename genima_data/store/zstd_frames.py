"""zstd frames with (de)compression contexts kept per thread.

numcodecs and HDF5's zstd filter create a fresh zstd context on every call; for one 128² frame that set-up
costs about a third of the decode (bench/store_io.py). The frames are standard zstd frames with the content
size in the header: numcodecs, zarr-python and HDF5's zstd filter read them, and these functions read theirs.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import zstandard

_T = TypeVar("_T")
_contexts = threading.local()  # a zstandard context must not be used by two threads at once


def compress(data: bytes | memoryview, level: int, checksum: bool = False) -> bytes:
    """One zstd frame of `data` at `level`, with a content checksum if `checksum`."""
    compressors: dict[tuple[int, bool], zstandard.ZstdCompressor] = _per_thread("compressors", dict)
    compressor = compressors.get((level, checksum))
    if compressor is None:
        compressor = zstandard.ZstdCompressor(level=level, write_checksum=checksum)
        compressors[level, checksum] = compressor
    return compressor.compress(data)


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

    def encode(self, data: bytes | memoryview) -> bytes:
        return compress(data, self.level, self.checksum)

    def decode(self, data: bytes | memoryview) -> bytes:
        return decompress(data, self.nbytes)

"""Lossless gradient predictor for uint8 images: what brings zstd to PNG's size without PNG's decode cost.

Each pixel is predicted from its causal neighbours as left + up - up-left (the plane through them), after
red and blue are taken relative to green (the colour decorrelation of lossless WebP) when that compresses
smaller; the residuals, mostly near zero, then compress with zstd. Residuals wrap modulo 256, so the
transform is exact. Undoing the gradient predictor is a 2-D prefix sum, which `cv2.integral` computes in one
vectorised pass; PNG's Paeth predictor would need a per-pixel loop to undo. Frames are (H, W) or (H, W, 3),
optionally with leading axes.

The zarr v3 codec ``genima_data.gradient`` wraps the transform; it is registered with zarr on import and
through the ``zarr.codecs`` entry point, so zarr-python reads these arrays wherever genima-data is installed.
HDF5 has no Python filters: there the store applies the transform itself (see `genima_data.store.hdf5`).

Subtracting green pays on camera photographs, whose channels share their detail (edges and texture are
mostly brightness). On frames whose channels carry independent noise (simulator renders with sensor noise
added) it doubles the noise variance in red and blue: 5-10 % larger than PNG instead of at most its size
(bench/image_codecs.py, docs/storage.md). The writers therefore choose per stream
(`prefers_subtract_green`) and record the choice with the array.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
from zarr.abc.codec import ArrayArrayCodec
from zarr.registry import register_codec

from genima_data.errors import CodecUnavailableError
from genima_data.store import zstd_frames

if TYPE_CHECKING:
    from typing import Self

    from zarr.core.array_spec import ArraySpec
    from zarr.core.buffer import NDBuffer

CODEC_NAME = "genima_data.gradient"
RGB = 3
_INT32_SAFE_PIXELS = (2**31 - 1) // 255  # above this a 32-bit prefix sum could overflow


def has_colour(shape: tuple[int, ...]) -> bool:
    """Whether a (T, H, W[, 3]) image array has an RGB axis (then green decorrelation applies)."""
    return len(shape) == 4 and shape[-1] == RGB


def encode_gradient(frames: np.ndarray, colour: bool, subtract_green: bool = True) -> np.ndarray:
    """Residuals of uint8 frames (..., H, W[, 3]); `colour` says the last axis is RGB, `subtract_green`
    that red and blue are predicted relative to green (RGB only)."""
    x = np.ascontiguousarray(frames, dtype=np.uint8)
    if colour and subtract_green:  # a new array: the caller's frames are never written
        x = np.subtract(x, _green_on_red_and_blue(x))
    rows, cols = (-3, -2) if colour else (-2, -1)
    up = x.copy()
    np.subtract(_slice(x, rows, 1, None), _slice(x, rows, None, -1), out=_slice(up, rows, 1, None))
    residual = up.copy()
    np.subtract(_slice(up, cols, 1, None), _slice(up, cols, None, -1), out=_slice(residual, cols, 1, None))
    return residual


def decode_gradient(
    residuals: np.ndarray, colour: bool, out: np.ndarray | None = None, subtract_green: bool = True
) -> np.ndarray:
    """Frames from `encode_gradient`'s residuals (same shape, same `colour` and `subtract_green`), into
    `out` (C-contiguous uint8) if given."""
    residuals = np.asarray(residuals, dtype=np.uint8)
    if out is None:
        out = np.empty_like(residuals)
    elif out.shape != residuals.shape or out.dtype != np.uint8 or not out.flags.c_contiguous:
        raise ValueError(f"out must be a C-contiguous uint8 array of shape {residuals.shape}")
    frame_shape = residuals.shape[-3:] if colour else residuals.shape[-2:]
    green_back = colour and subtract_green
    if residuals.size == math.prod(frame_shape) > 0:  # one frame (a random read): skip the per-frame loop
        _decode_frame(residuals.reshape(frame_shape), out.reshape(frame_shape), green_back)
        return out
    for frame, dest in zip(residuals.reshape(-1, *frame_shape), out.reshape(-1, *frame_shape), strict=True):
        _decode_frame(frame, dest, green_back)
    return out


def prefers_subtract_green(frames: np.ndarray, zstd_level: int) -> bool:
    """Whether RGB frames (T, H, W, 3) compress smaller with red and blue relative to green: decided on
    the middle frame, residuals compressed as the stores compress them (ties keep green subtracted)."""
    if len(frames) == 0:
        return True
    frame = frames[len(frames) // 2]
    with_green, without = (
        len(zstd_frames.compress(encode_gradient(frame, True, choice).data, zstd_level, residuals=True))
        for choice in (True, False)
    )
    return with_green <= without


_GREEN_TO_RED_AND_BLUE = np.array([[0, 1, 0], [0, 0, 0], [0, 1, 0]], np.float32)


def _green_on_red_and_blue(x: np.ndarray) -> np.ndarray:
    """(g, 0, g) for every (r, g, b) pixel of C-contiguous uint8 (..., W, 3) data: exact, in one OpenCV
    pass over the interleaved pixels (splitting the channels costs more than the whole prefix sum)."""
    image = x if x.ndim == 3 else x.reshape(-1, x.shape[-2], 3)  # (H, W, 3) is one OpenCV image already
    return cv2.transform(image, _GREEN_TO_RED_AND_BLUE).reshape(x.shape)


def _decode_frame(frame: np.ndarray, out: np.ndarray, green_back: bool) -> None:
    """One (H, W[, 3]) frame from its residuals into `out`: a 2-D prefix sum, then green back on."""
    h, w = frame.shape[:2]
    if h * w <= _INT32_SAFE_PIXELS:
        np.copyto(out, cv2.integral(frame, sdepth=cv2.CV_32S)[1:, 1:], casting="unsafe")  # wraps mod 256
    else:
        np.copyto(out, cv2.integral(frame, sdepth=cv2.CV_64F)[1:, 1:].astype(np.int64), casting="unsafe")
    if green_back:  # the prefix sum is linear mod 256: green goes back onto red and blue after it
        np.add(out, _green_on_red_and_blue(out), out=out)


def _slice(a: np.ndarray, axis: int, start: int | None, stop: int | None) -> np.ndarray:
    index: list[Any] = [slice(None)] * a.ndim
    index[axis] = slice(start, stop)
    return a[tuple(index)]


@dataclass(frozen=True)
class GradientCodec(ArrayArrayCodec):
    """zarr v3 array-to-array codec applying `encode_gradient` to each chunk of a uint8 image array.

    Chunks hold whole frames (T, H, W[, 3]); `colour` and `subtract_green` are stored in the array
    metadata (arrays written before `subtract_green` existed have green subtracted).
    """

    is_fixed_size = True
    colour: bool = True
    subtract_green: bool = True

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        conf = data.get("configuration", {})
        unknown = sorted(set(conf) - {"colour", "subtract_green"})
        if unknown:  # a later variant of the transform: decoding it as this one would give wrong pixels
            raise CodecUnavailableError(
                f"codec {CODEC_NAME} has settings this genima-data does not know ({', '.join(unknown)}); "
                "upgrade genima-data"
            )
        subtract_green = bool(conf.get("subtract_green", True))
        return cls(colour=bool(conf.get("colour", True)), subtract_green=subtract_green)

    def to_dict(self) -> dict[str, Any]:
        conf = {"colour": self.colour, "subtract_green": self.subtract_green}
        return {"name": CODEC_NAME, "configuration": conf}

    def resolve_metadata(self, chunk_spec: ArraySpec) -> ArraySpec:
        return chunk_spec

    async def _decode_single(self, chunk_array: NDBuffer, chunk_spec: ArraySpec) -> NDBuffer:
        residuals = chunk_array.as_numpy_array()
        decoded = decode_gradient(residuals, self.colour, subtract_green=self.subtract_green)
        return chunk_spec.prototype.nd_buffer.from_numpy_array(decoded)

    async def _encode_single(self, chunk_array: NDBuffer, chunk_spec: ArraySpec) -> NDBuffer | None:
        encoded = encode_gradient(chunk_array.as_numpy_array(), self.colour, self.subtract_green)
        return chunk_spec.prototype.nd_buffer.from_numpy_array(encoded)

    def compute_encoded_size(self, input_byte_length: int, _chunk_spec: ArraySpec) -> int:
        return input_byte_length


register_codec(CODEC_NAME, GradientCodec)

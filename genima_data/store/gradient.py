"""Lossless gradient predictor for uint8 images: what brings zstd to PNG's size without PNG's decode cost.

Each pixel is predicted from its causal neighbours as left + up - up-left (the plane through them), after
red and blue are taken relative to green (the colour decorrelation of lossless WebP); the residuals, mostly
near zero, then compress with zstd. Residuals wrap modulo 256, so the transform is exact. Undoing the
gradient predictor is a 2-D prefix sum, which `cv2.integral` computes in one vectorised pass; PNG's Paeth
predictor would need a per-pixel loop to undo. Frames are (H, W) or (H, W, 3), optionally with leading axes.

The zarr v3 codec ``genima_data.gradient`` wraps the transform; it is registered with zarr on import and
through the ``zarr.codecs`` entry point, so zarr-python reads these arrays wherever genima-data is installed.
HDF5 has no Python filters: there the store applies the transform itself (see `genima_data.store.hdf5`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
from zarr.abc.codec import ArrayArrayCodec
from zarr.registry import register_codec

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


def encode_gradient(frames: np.ndarray, colour: bool) -> np.ndarray:
    """Residuals of uint8 frames (..., H, W[, 3]); `colour` says the last axis is RGB."""
    x = np.array(frames, dtype=np.uint8)  # a copy: the colour step writes in place
    if colour:
        x[..., 0] -= x[..., 1]
        x[..., 2] -= x[..., 1]
    rows, cols = (-3, -2) if colour else (-2, -1)
    up = x.copy()
    _slice(up, rows, 1, None)[...] -= _slice(x, rows, None, -1)
    residual = up.copy()
    _slice(residual, cols, 1, None)[...] -= _slice(up, cols, None, -1)
    return residual


def decode_gradient(residuals: np.ndarray, colour: bool) -> np.ndarray:
    """Frames from `encode_gradient`'s residuals (same shape)."""
    residuals = np.asarray(residuals, dtype=np.uint8)
    frame_shape = residuals.shape[-3:] if colour else residuals.shape[-2:]
    flat = residuals.reshape(-1, *frame_shape)
    out = np.empty_like(flat)
    for i, frame in enumerate(flat):
        out[i] = _prefix_sum_2d(_undo_colour(frame) if colour else frame)
    return out.reshape(residuals.shape)


def _undo_colour(frame: np.ndarray) -> np.ndarray:
    # the prefix sum is linear mod 256, so green goes back onto red and blue before it, on whole planes
    red, green, blue = cv2.split(frame)
    return cv2.merge((red + green, green, blue + green))


def _prefix_sum_2d(frame: np.ndarray) -> np.ndarray:
    h, w = frame.shape[:2]
    if h * w <= _INT32_SAFE_PIXELS:
        return cv2.integral(frame, sdepth=cv2.CV_32S)[1:, 1:].astype(np.uint8)
    return cv2.integral(frame, sdepth=cv2.CV_64F)[1:, 1:].astype(np.int64).astype(np.uint8)


def _slice(a: np.ndarray, axis: int, start: int | None, stop: int | None) -> np.ndarray:
    index: list[Any] = [slice(None)] * a.ndim
    index[axis] = slice(start, stop)
    return a[tuple(index)]


@dataclass(frozen=True)
class GradientCodec(ArrayArrayCodec):
    """zarr v3 array-to-array codec applying `encode_gradient` to each chunk of a uint8 image array.

    Chunks hold whole frames (T, H, W[, 3]); `colour` is stored in the array metadata.
    """

    is_fixed_size = True
    colour: bool = True

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        return cls(colour=bool(data.get("configuration", {}).get("colour", True)))

    def to_dict(self) -> dict[str, Any]:
        return {"name": CODEC_NAME, "configuration": {"colour": self.colour}}

    def resolve_metadata(self, chunk_spec: ArraySpec) -> ArraySpec:
        return chunk_spec

    async def _decode_single(self, chunk_array: NDBuffer, chunk_spec: ArraySpec) -> NDBuffer:
        decoded = decode_gradient(chunk_array.as_numpy_array(), self.colour)
        return chunk_spec.prototype.nd_buffer.from_numpy_array(decoded)

    async def _encode_single(self, chunk_array: NDBuffer, chunk_spec: ArraySpec) -> NDBuffer | None:
        encoded = encode_gradient(chunk_array.as_numpy_array(), self.colour)
        return chunk_spec.prototype.nd_buffer.from_numpy_array(encoded)

    def compute_encoded_size(self, input_byte_length: int, _chunk_spec: ArraySpec) -> int:
        return input_byte_length


register_codec(CODEC_NAME, GradientCodec)

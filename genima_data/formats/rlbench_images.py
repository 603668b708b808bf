"""RLBench's PNG encodings: RGB, depth packed into 24 bits, segmentation handles packed into RGB.

Depth (``rlbench/backend/utils.py``): depth normalised to [0, 1] between the camera's near and far planes,
scaled by 2^24 - 1, rounded, and packed R high byte, G middle, B low; metres = near + d * (far - near).
Masks: handle = R + 256 G + 65536 B (the opposite byte order). Decoding follows RLBench's arithmetic
(float64) before casting to the store's float32, so an exported PNG decodes to the same float32 metres.
"""

from __future__ import annotations

import struct
from pathlib import Path

import cv2
import numpy as np

from genima_data.errors import FormatError

DEPTH_SCALE = 2**24 - 1
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) from a PNG's header, without decoding it."""
    try:
        with open(path, "rb") as f:
            head = f.read(24)
    except OSError as exc:
        raise FormatError(f"cannot read PNG ({exc.strerror})", file=path) from None
    if len(head) < 24 or head[:8] != PNG_SIGNATURE or head[12:16] != b"IHDR":
        raise FormatError("not a PNG file (bad header)", file=path)
    width, height = struct.unpack(">II", head[16:24])
    return int(width), int(height)


def read_png_bgr(path: str | Path) -> np.ndarray:
    """An 8-bit 3-channel PNG as OpenCV decodes it (HxWx3 uint8, BGR); one-line FormatError if missing,
    corrupt or not 3-channel. This is the whole decoding cost; colour order is a later, cheap step."""
    try:
        with open(path, "rb", buffering=0) as f:  # unbuffered: half the system calls of np.fromfile
            data = np.frombuffer(f.read(), dtype=np.uint8)
    except OSError as exc:
        raise FormatError(f"cannot read PNG ({exc.strerror or exc})", file=path) from None
    image = _decode_quietly(data) if data.size else None
    if image is None:
        raise FormatError("PNG is corrupt or truncated (cannot decode it)", file=path)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        channels = 1 if image.ndim == 2 else image.shape[2]
        raise FormatError(f"expected an 8-bit RGB PNG, got {channels} channel(s) of {image.dtype}", file=path)
    return image


def read_png_rgb(path: str | Path) -> np.ndarray:
    """An 8-bit 3-channel PNG as HxWx3 uint8 RGB; one-line FormatError if missing, corrupt or not RGB."""
    return cv2.cvtColor(read_png_bgr(path), cv2.COLOR_BGR2RGB)


def _decode_quietly(data: np.ndarray) -> np.ndarray | None:
    """cv2.imdecode without OpenCV's own warning on stderr (a bad file gets our one-line error instead)."""
    level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    try:
        return cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    finally:
        cv2.utils.logging.setLogLevel(level)


def encode_png_rgb(rgb: np.ndarray) -> bytes:
    """HxWx3 uint8 RGB as PNG bytes (lossless)."""
    ok, data = cv2.imencode(".png", cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR))
    if not ok:  # pragma: no cover - OpenCV encodes any uint8 HxWx3 array
        raise FormatError("OpenCV could not encode the image as PNG")
    return data.tobytes()


def _packed_24bit(pixels: np.ndarray, to_little_endian: int) -> np.ndarray:
    """The 24-bit integers packed in (..., 3) pixels, as int32; `to_little_endian` orders the bytes low first.

    One OpenCV pass adds a fourth byte, read with the three as a little-endian uint32 (the fourth masked off).
    """
    # any leading shape, as one row: OpenCV pays per row, so a one-pixel-wide column costs 15x more
    row = np.ascontiguousarray(pixels, dtype=np.uint8).reshape(1, -1, 3)
    packed = cv2.cvtColor(row, to_little_endian).view("<u4")
    packed &= 0xFFFFFF
    return packed.view("<i4").reshape(np.shape(pixels)[:-1])  # below 2^24: the same value as int32


def _metres(packed: np.ndarray, near: float, far: float) -> np.ndarray:
    """RLBench's depth arithmetic on the 24-bit codes, in float64 and in place, cast to float32."""
    metres = packed / DEPTH_SCALE
    metres *= far - near
    metres += near
    return metres.astype(np.float32)


def depth_from_png(packed: np.ndarray, near: float, far: float) -> np.ndarray:
    """RLBench depth PNG pixels (HxWx3 uint8 RGB) to float32 metres."""
    return _metres(_packed_24bit(packed, cv2.COLOR_RGB2BGRA), near, far)  # R is the high byte


def depth_to_png(metres: np.ndarray, near: float, far: float) -> np.ndarray:
    """float32 metres to RLBench's packed depth pixels (HxWx3 uint8), clipped to [near, far]."""
    normalised = (np.asarray(metres, dtype=np.float64) - near) / (far - near)
    fixed = np.clip(np.floor(normalised * DEPTH_SCALE + 0.5), 0, DEPTH_SCALE).astype(np.uint32)
    return np.stack([fixed >> 16, (fixed >> 8) & 255, fixed & 255], axis=-1).astype(np.uint8)


def mask_from_png(packed: np.ndarray) -> np.ndarray:
    """RLBench mask PNG pixels (HxWx3 uint8 RGB) to int32 segmentation handles."""
    return _packed_24bit(packed, cv2.COLOR_RGB2RGBA)  # R is the low byte


def mask_to_png(handles: np.ndarray) -> np.ndarray:
    """int32 handles (0 <= h < 2^24) to RLBench's packed mask pixels (HxWx3 uint8)."""
    handles = np.asarray(handles)
    if handles.size and (handles.min() < 0 or handles.max() >= 1 << 24):
        raise FormatError(
            f"mask handles must lie in [0, 2^24) to fit an RLBench mask PNG, got "
            f"[{handles.min()}, {handles.max()}]"
        )
    h = handles.astype(np.uint32)
    return np.stack([h & 255, (h >> 8) & 255, h >> 16], axis=-1).astype(np.uint8)


STREAM_FRAMES = {
    "rgb": ((3,), np.uint8),
    "depth": ((), np.float32),
    "mask": ((), np.int32),
}  # per-pixel shape


# cvtColor codes that put a BGR-decoded pixel's packed bytes low first (depth: R high; mask: R low)
_LITTLE_ENDIAN_FROM_BGR = {"depth": cv2.COLOR_BGR2BGRA, "mask": cv2.COLOR_BGR2RGBA}


def read_png_frame(
    path: str | Path, kind: str, near: float | None = None, far: float | None = None
) -> np.ndarray:
    """One PNG of an ``<cam>_<kind>`` folder as the store's frame (depth needs near/far).

    Depth and masks unpack straight from OpenCV's BGR decode, one colour pass instead of two.
    """
    bgr = read_png_bgr(path)
    if kind == "rgb":
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    packed = _packed_24bit(bgr, _LITTLE_ENDIAN_FROM_BGR[kind])
    return packed if kind == "mask" else _metres(packed, near, far)


def frame_to_pixels(
    kind: str, frame: np.ndarray, near: float | None = None, far: float | None = None
) -> np.ndarray:
    """Inverse of `read_png_frame`: the RGB pixels RLBench writes for a frame."""
    if kind == "depth":
        return depth_to_png(frame, near, far)
    return mask_to_png(frame) if kind == "mask" else frame

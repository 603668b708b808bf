"""Lossless image codecs one frame at a time, in memory: size and decode time against PNG, in one run.

How `gradient-zstd` was chosen (docs/storage.md). PNG is PIL's default encoder, decoded with cv2.imdecode.
The gradient predictor with zstd is what the stores write; QOI, lossless WebP, HTJ2K, JPEG-LS and JPEG-XL
come from `imagecodecs` and are measured only when it is installed (`pip install imagecodecs`). Frames are
the natural and simulator sequences of bench/store_io.py.

    python bench/image_codecs.py [--sizes 128 256] [--frames 24]
"""

from __future__ import annotations

import argparse
import io
import sys
import timeit
from collections.abc import Callable
from pathlib import Path

import cv2
import numcodecs
import numpy as np
from PIL import Image
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from store_io import SEQUENCES, natural_available

from genima_data.store import zstd_frames
from genima_data.store.gradient import decode_gradient, encode_gradient, prefers_subtract_green

Encode = Callable[[np.ndarray], bytes]
Decode = Callable[[bytes], np.ndarray]


def png_bytes(frame: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(frame).save(buffer, format="PNG")
    return buffer.getvalue()


def gradient_codec(
    level: int, frame_shape: tuple[int, ...], subtract_green: bool, residuals: bool = True
) -> tuple[Encode, Decode]:
    """The stores' gradient-zstd for RGB frames of one shape, at a chosen zstd level, with or without green
    subtracted from red and blue, zstd's match finder tuned for residuals (as the stores write) or not."""
    nbytes = int(np.prod(frame_shape))

    def encode(frame: np.ndarray) -> bytes:
        residual = encode_gradient(frame, colour=True, subtract_green=subtract_green)
        return zstd_frames.compress(residual.data, level, residuals=residuals)

    def decode(data: bytes) -> np.ndarray:
        residual = np.frombuffer(zstd_frames.decompress(data, nbytes), np.uint8).reshape(frame_shape)
        return decode_gradient(residual, colour=True, subtract_green=subtract_green)

    return encode, decode


def candidates(frames: np.ndarray) -> dict[str, tuple[Encode, Decode]]:
    """Codecs to compare on these frames; gradient-zstd's colour transform is chosen on them as the
    stores choose it per stream, and both choices are shown."""
    shape, green = frames.shape[1:], prefers_subtract_green(frames, 1)
    chosen = "green subtracted" if green else "green kept"
    out: dict[str, tuple[Encode, Decode]] = {
        f"gradient-zstd (default: {chosen})": gradient_codec(1, shape, green),
        f"gradient-zstd, green {'kept' if green else 'subtracted'}": gradient_codec(1, shape, not green),
        "gradient-zstd, zstd 1 untuned": gradient_codec(1, shape, green, residuals=False),
        "gradient-zstd, zstd 5 untuned": gradient_codec(5, shape, green, residuals=False),
    }
    blosc = numcodecs.Blosc("zstd", 5, numcodecs.Blosc.SHUFFLE)
    out["blosc-zstd (raw bytes)"] = (blosc.encode, lambda b: np.frombuffer(blosc.decode(b), np.uint8))
    try:
        import imagecodecs as ic
    except ImportError:
        return out
    out["QOI"] = (ic.qoi_encode, ic.qoi_decode)
    out["lossless WebP (method 0)"] = (lambda f: ic.webp_encode(f, lossless=True, method=0), ic.webp_decode)
    out["HTJ2K lossless"] = (lambda f: ic.htj2k_encode(f, level=0), ic.htj2k_decode)
    out["JPEG-LS"] = (ic.jpegls_encode, ic.jpegls_decode)
    out["JPEG-XL lossless (effort 1)"] = (
        lambda f: ic.jpegxl_encode(f, lossless=True, effort=1),
        ic.jpegxl_decode,
    )
    return out


def seconds_per_call(fn: Callable[[], object], number: int = 50) -> float:
    return min(timeit.repeat(fn, number=number, repeat=3)) / number


def measure(frames: np.ndarray) -> list[tuple[str, float, float, float, bool]]:
    """(codec, size vs PNG, encode and decode speed vs PNG, lossless) for a stack of frames."""
    pngs = [np.frombuffer(png_bytes(f), np.uint8) for f in frames]
    png_size = np.mean([p.size for p in pngs])
    png_time = np.mean([seconds_per_call(lambda p=p: cv2.imdecode(p, cv2.IMREAD_COLOR)) for p in pngs[:4]])
    png_encode_time = np.mean([seconds_per_call(lambda f=f: png_bytes(f), 5) for f in frames[:4]])
    rows = [("PNG (PIL, cv2 decode)", 1.0, 1.0, 1.0, True)]
    for name, (encode, decode) in candidates(frames).items():
        encoded = [encode(f) for f in frames]
        lossless = all(
            np.array_equal(np.asarray(decode(e)).reshape(f.shape), f)
            for e, f in zip(encoded, frames, strict=True)
        )
        size = np.mean([len(e) for e in encoded])
        encode_time = np.mean([seconds_per_call(lambda f=f, c=encode: c(f), 5) for f in frames[:4]])
        decode_time = np.mean([seconds_per_call(lambda e=e, d=decode: d(e)) for e in encoded[:4]])
        rows.append((name, size / png_size, png_encode_time / encode_time, png_time / decode_time, lossless))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--frames", type=int, default=24, help="frames per kind and size (4 sequences)")
    args = parser.parse_args()
    kinds = [k for k in SEQUENCES if k != "natural" or natural_available()]
    console = Console()
    for kind in kinds:
        for size in args.sizes:
            per_sequence = max(1, args.frames // 4)
            frames = np.concatenate([SEQUENCES[kind](size, per_sequence, i) for i in range(4)])
            table = Table(title=f"{kind} frames, {size}x{size}, {len(frames)} frames")
            columns = ("codec", "size vs PNG", "encode speed vs PNG", "decode speed vs PNG", "lossless")
            for column in columns:
                table.add_column(column, justify="left" if column == "codec" else "right")
            for name, size_ratio, encode_speed, decode_speed, lossless in measure(frames):
                table.add_row(
                    name,
                    f"{size_ratio:.2f}x",
                    f"{encode_speed:.1f}x",
                    f"{decode_speed:.1f}x",
                    "yes" if lossless else "NO",
                )
            console.print(table)


if __name__ == "__main__":
    main()

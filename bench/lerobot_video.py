"""LeRobot export and import: time, size and image fidelity per video codec, against copying the store.

Baseline: converting the demo store to another store (zarr → HDF5, lossless, no video). The LeRobot
export encodes every camera stream (AV1 via SVT-AV1, H.264 via x264; yuv420p, keyframe every 2 frames,
crf 30); the import decodes them again. Fidelity is the PSNR of every frame after the round trip.

    python bench/lerobot_video.py [--episodes 4] [--frames 48] [--size 128]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from genima_data.convert import convert
from genima_data.demo import build_demo
from genima_data.store import open_dataset


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def timed(fn, *args, **kwargs) -> float:
    start = time.perf_counter()
    fn(*args, **kwargs)
    return time.perf_counter() - start


def size_of(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def frame_psnrs(original: Path, round_trip: Path) -> list[float]:
    scores = []
    with open_dataset(original) as a, open_dataset(round_trip) as b:
        for eid in a.episode_ids:
            with a.episode(eid) as x, b.episode(eid) as y:
                for cam in x.camera_names:
                    key = f"cameras/{cam}/rgb"
                    if key in x:
                        scores += [
                            psnr(f, g) for f, g in zip(x.iter_frames(key), y.iter_frames(key), strict=True)
                        ]
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--episodes", type=int, default=4)
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--size", type=int, default=128)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        store = root / "demo.zarr"
        build_demo(store, episodes=args.episodes, frames=args.frames, size=args.size)
        frames = args.episodes * args.frames * 4
        baseline = timed(convert, store, root / "copy_h5", to="hdf5")
        table = Table(
            title=f"LeRobot video, demo {args.episodes}x{args.frames} frames, 4 cameras {args.size}px"
        )
        for column in (
            "route",
            "codec",
            "seconds",
            "frames/s",
            "vs store copy",
            "size",
            "PSNR mean",
            "PSNR min",
        ):
            table.add_column(column, justify="right" if column not in ("route", "codec") else "left")
        table.add_row(
            "zarr → hdf5 (baseline)",
            "lossless",
            f"{baseline:.2f}",
            f"{frames / baseline:.0f}",
            "1.00x",
            f"{size_of(root / 'copy_h5') / 2**20:.2f} MiB",
            "inf",
            "inf",
        )
        for codec in ("libsvtav1", "libx264"):
            out = root / f"lerobot_{codec}"
            export = timed(convert, store, out, to="lerobot", writer_options={"image_codec": codec})
            back = root / f"back_{codec}.zarr"
            imported = timed(convert, out, back)
            scores = frame_psnrs(store, back)
            for route, seconds in (("store → lerobot", export), ("lerobot → store", imported)):
                table.add_row(
                    route,
                    codec,
                    f"{seconds:.2f}",
                    f"{frames / seconds:.0f}",
                    f"{seconds / baseline:.2f}x",
                    f"{size_of(out) / 2**20:.2f} MiB",
                    f"{np.mean(scores):.1f} dB",
                    f"{min(scores):.1f} dB",
                )
        Console(width=150).print(table)


if __name__ == "__main__":
    main()

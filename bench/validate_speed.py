"""How fast `validate_dataset` is, and how little memory it holds, against reading the data once.

Baseline: decode every frame of every camera stream once and load every numeric array, the least any
validator must do. Validation adds its per-frame statistics and checks on top; the ratio says how much.
Memory: peak traced allocation of validating vs loading one camera stream whole (what streaming avoids).

    python bench/validate_speed.py [--episodes 4] [--frames 300] [--size 256] [--workers 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from genima_data.demo import build_demo
from genima_data.episode import is_image_path
from genima_data.store import open_dataset
from genima_data.validate import validate_dataset


def read_everything_once(path: Path) -> int:
    """Decode every image frame and load every other array; returns frames decoded."""
    decoded = 0
    with open_dataset(path) as ds:
        for episode in ds:
            for key in episode.paths():
                if is_image_path(key):
                    for _frame in episode.iter_frames(key):
                        decoded += 1
                else:
                    episode.load(key)
    return decoded


def timed(fn, *args, **kwargs) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return time.perf_counter() - start, result


def peak_bytes(fn, *args, **kwargs) -> int:
    tracemalloc.start()
    try:
        fn(*args, **kwargs)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def load_one_stream_whole(path: Path) -> np.ndarray:
    with open_dataset(path) as ds, ds.episode(ds.episode_ids[0]) as episode:
        return episode.load("cameras/front/rgb")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=4)
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    console = Console(width=130)
    with tempfile.TemporaryDirectory() as tmp:
        table = Table(
            title=f"validate: {args.episodes} episodes x {args.frames} frames x 4 cameras, {args.size}²"
        )
        for column in (
            "store",
            "read once s",
            "validate s",
            "ratio",
            "validate -w s",
            "speed-up",
            "frames/s",
        ):
            table.add_column(column, justify="right")
        for name in ("sample.zarr", "sample_h5"):
            path = Path(tmp) / name
            build_demo(path, episodes=args.episodes, frames=args.frames, size=args.size)
            read_s, frames = timed(read_everything_once, path)
            serial_s, report = timed(validate_dataset, path)
            parallel_s, _ = timed(validate_dataset, path, workers=args.workers)
            assert report.exit_code == 0, [f.one_line() for f in report.errors]
            table.add_row(
                name,
                f"{read_s:.2f}",
                f"{serial_s:.2f}",
                f"{serial_s / read_s:.2f}x",
                f"{parallel_s:.2f}",
                f"{serial_s / parallel_s:.2f}x ({args.workers} workers)",
                f"{frames / serial_s:.0f}",
            )
        console.print(table)

        path = Path(tmp) / "sample.zarr"
        memory = Table(title="peak traced memory (tracemalloc), zarr")
        for column in ("validate whole dataset", "load one camera stream whole", "ratio"):
            memory.add_column(column, justify="right")
        validate_peak = peak_bytes(validate_dataset, path)
        stream_peak = peak_bytes(load_one_stream_whole, path)
        memory.add_row(
            f"{validate_peak / 2**20:.1f} MiB",
            f"{stream_peak / 2**20:.1f} MiB",
            f"{validate_peak / stream_peak:.2f}x",
        )
        console.print(memory)


if __name__ == "__main__":
    main()

"""Conversion throughput: RLBench folders → zarr and → HDF5, against decoding the same PNGs alone.

The dataset is the real RLBench pickles (the shared sample, else the ones bundled with the tests, repeated)
with PNGs written next to them for five 128x128 cameras x rgb/depth/mask, the way RLBench encodes them.
Image content is synthetic but not trivially compressible (shapes, gradients, sensor-like noise), so PNG
decode costs what it costs on rendered frames.

For each worker count the script times, in one run:
  decode   every PNG read and decoded by OpenCV (BGR, no colour conversion), nothing else: the floor
           a conversion cannot beat
  zarr     `genima_data.convert.convert(src, dst.zarr, workers=N)`
  hdf5     the same to an HDF5 directory
(store codecs: the defaults, or --image-codec / --array-codec) and prints PNGs/s, the share of
decode-only throughput, and the speed-up over one worker. A second table gives the per-frame cost of
PNG decode and of each store's image compression alone.

    python bench/convert.py --episodes 20 --workers 1 2
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from genima_data.convert import convert  # noqa: E402
from genima_data.formats import rlbench_images as images  # noqa: E402
from genima_data.formats.rlbench_pickle import load_pickle  # noqa: E402
from genima_data.parallel import run_tasks  # noqa: E402
from genima_data.store import zstd_frames  # noqa: E402
from genima_data.store.gradient import encode_gradient, prefers_subtract_green  # noqa: E402

SHARED = ROOT.parent / "shared" / "data" / "rlbench_reach_target"
BUNDLED = ROOT / "tests" / "data" / "rlbench"
CAMERAS = ("left_shoulder", "right_shoulder", "overhead", "wrist", "front")
SIZE = 128


def source_pickles() -> list[Path]:
    pickles = []
    for root in (SHARED, BUNDLED):
        for path in sorted(root.glob("reach_target/variation*/episodes/episode*/low_dim_obs.pkl")):
            try:
                load_pickle(path)
            except Exception:  # the truncated sample episode
                continue
            pickles.append(path)
        if pickles:
            return pickles
    raise SystemExit("no RLBench pickles found")


def frame_images(camera: int, t: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """rgb uint8, depth (normalised 0..1) and mask handles of one synthetic rendered frame."""
    yy, xx = np.mgrid[0:SIZE, 0:SIZE] / SIZE
    rgb = np.stack([0.55 + 0.2 * xx, 0.45 + 0.1 * yy, 0.35 + 0.15 * xx * yy], -1)
    depth = 0.4 + 0.3 * yy
    mask = np.full((SIZE, SIZE), 10, np.int32)
    for k in range(4):  # objects moving over the table
        cx, cy = 0.2 + 0.2 * k + 0.01 * t, 0.3 + 0.1 * np.sin(t / 7 + k + camera)
        inside = (xx - cx) ** 2 + (yy - cy) ** 2 < 0.004 * (k + 1)
        rgb[inside] = [0.2 * k, 0.8 - 0.15 * k, 0.3 + 0.1 * k]
        depth[inside] -= 0.05
        mask[inside] = 60 + k
    rgb = np.clip(rgb * 255 + rng.normal(0, 3, rgb.shape), 0, 255).astype(np.uint8)
    return rgb, np.clip(depth + rng.normal(0, 1e-4, depth.shape), 0, 1), mask


def build_dataset(root: Path, episodes: int) -> int:
    """RLBench folders with `episodes` episodes (pickles reused in turn); returns the number of PNGs."""
    pickles = source_pickles()
    rng = np.random.default_rng(0)
    descriptions = next(pickles[0].parents[2].glob("variation_descriptions.pkl"))
    variation = root / "reach_target" / "variation0"
    variation.mkdir(parents=True)
    shutil.copy(descriptions, variation / "variation_descriptions.pkl")
    count = 0
    for e in range(episodes):
        source = pickles[e % len(pickles)]
        folder = variation / "episodes" / f"episode{e}"
        folder.mkdir(parents=True)
        shutil.copy(source, folder / "low_dim_obs.pkl")
        T = len(load_pickle(source))
        for c, camera in enumerate(CAMERAS):
            for kind in ("rgb", "depth", "mask"):
                (folder / f"{camera}_{kind}").mkdir()
            for t in range(T):
                rgb, depth, mask = frame_images(c, t, rng)
                packed = {
                    "rgb": rgb,
                    "depth": images.depth_to_png(depth, 0.0, 1.0),
                    "mask": images.mask_to_png(mask),
                }
                for kind, pixels in packed.items():
                    (folder / f"{camera}_{kind}" / f"{t}.png").write_bytes(images.encode_png_rgb(pixels))
                    count += 1
    return count


def decode_episode(folder: str) -> int:
    """Decode every PNG of one episode folder; returns how many."""
    pngs = sorted(Path(folder).glob("*_*/*.png"))
    for png in pngs:
        images.read_png_bgr(png)
    return len(pngs)


def codec_cost(folder: Path) -> dict[str, dict[str, float]]:
    """Per RGB frame: PNG decode vs each image codec's compression alone (ms and bytes; no file I/O)."""
    import numcodecs

    frames = [images.read_png_rgb(p) for p in sorted(folder.glob("front_rgb/*.png"))]

    green = prefers_subtract_green(np.stack(frames), 1)  # the stores' choice for this stream
    cost = {"png decode": lambda f: None}
    cost["gradient-zstd (zstd 1, tuned for residuals)"] = lambda f: zstd_frames.compress(
        encode_gradient(f, True, green).data, 1, residuals=True
    )
    cost["blosc-zstd (clevel 5)"] = lambda f: numcodecs.Blosc("zstd", 5, 1).encode(f.tobytes())
    out = {}
    for name, encode in cost.items():
        start, size = time.perf_counter(), 0
        for frame, png in zip(frames, sorted(folder.glob("front_rgb/*.png")), strict=True):
            size += png.stat().st_size if name == "png decode" else len(encode(frame))
            if name == "png decode":
                images.read_png_bgr(png)
        out[name] = {"ms": 1e3 * (time.perf_counter() - start) / len(frames), "bytes": size / len(frames)}
    return out


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure(src: Path, work: Path, target: str, workers: int, codecs: dict[str, str]) -> float:
    """Seconds for one run of `target` ('decode', 'zarr' or 'hdf5') with `workers` processes."""
    folders = [str(p) for p in sorted(src.glob("*/*/episodes/*"))]
    dst = work / f"out-{target}-{workers}{'.zarr' if target == 'zarr' else ''}"
    shutil.rmtree(dst, ignore_errors=True)
    if target == "decode":
        seconds = timed(lambda: list(run_tasks(decode_episode, folders, workers=workers)))
    else:
        seconds = timed(lambda: convert(src, dst, to=target, workers=workers, writer_options=codecs))
    shutil.rmtree(dst, ignore_errors=True)
    return seconds


def run(
    episodes: int, workers: list[int], repeat: int, keep: Path | None, codecs: dict[str, str]
) -> tuple[list[dict], dict]:
    work = Path(tempfile.mkdtemp(prefix="bench-convert-")) if keep is None else keep
    src = work / "rlbench"
    console = Console(stderr=True)
    try:
        if not src.exists():
            console.print(f"building {episodes} episodes under {src} ...")
            build_dataset(src, episodes)
        pngs = sum(1 for _ in src.glob("*/*/episodes/*/*_*/*.png"))
        best: dict[tuple[str, int], float] = {}
        for round_ in range(repeat):  # rounds interleave the targets, so load drift hits all alike
            for n in workers:
                for target in ("decode", "zarr", "hdf5"):
                    seconds = measure(src, work, target, n, codecs)
                    best[target, n] = min(seconds, best.get((target, n), float("inf")))
                    console.print(f"round {round_ + 1}: {target:6s} workers={n}: {seconds:6.2f} s")
        rows = [
            {"target": t, "workers": n, "seconds": s, "pngs_per_s": pngs / s} for (t, n), s in best.items()
        ]
        costs = codec_cost(next(src.glob("*/*/episodes/episode0")))
    finally:
        if keep is None:
            shutil.rmtree(work, ignore_errors=True)
    one_worker = {r["target"]: r["pngs_per_s"] for r in rows if r["workers"] == 1}
    decode = {r["workers"]: r["pngs_per_s"] for r in rows if r["target"] == "decode"}
    for r in rows:
        r["pngs"] = pngs
        r["share_of_decode"] = r["pngs_per_s"] / decode[r["workers"]]
        r["speedup_vs_1_worker"] = r["pngs_per_s"] / one_worker[r["target"]] if one_worker else None
    return rows, costs


def tables(rows: list[dict], costs: dict[str, dict[str, float]]) -> list[Table]:
    title = f"RLBench → store ({rows[0]['pngs']} PNGs: 128x128, 5 cameras x rgb/depth/mask)"
    t = Table(title=title)
    for col in ("target", "workers", "seconds", "PNG/s", "share of decode-only", "speed-up vs 1 worker"):
        t.add_column(col, justify="right")
    for r in rows:
        speedup = "" if r["speedup_vs_1_worker"] is None else f"{r['speedup_vs_1_worker']:.2f}x"
        share = f"{100 * r['share_of_decode']:.0f} %"
        t.add_row(
            r["target"], str(r["workers"]), f"{r['seconds']:.2f}", f"{r['pngs_per_s']:.0f}", share, speedup
        )
    c = Table(title="per 128x128 RGB frame, one process, no file I/O")
    for col in ("step", "ms", "bytes out"):
        c.add_column(col, justify="left" if col == "step" else "right")
    for name, cost in costs.items():
        c.add_row(name, f"{cost['ms']:.3f}", f"{cost['bytes']:.0f}")
    return [t, c]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeat", type=int, default=1, help="runs per measurement; the fastest counts")
    parser.add_argument("--keep", type=Path, default=None, help="work directory to keep (reuses its dataset)")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    parser.add_argument("--image-codec", default=None, help="store image codec (default: the store's)")
    parser.add_argument("--array-codec", default=None, help="store codec for depth, masks, arrays")
    args = parser.parse_args()
    codecs = {k: v for k, v in (("image_codec", args.image_codec), ("array_codec", args.array_codec)) if v}
    rows, costs = run(args.episodes, sorted(set(args.workers)), args.repeat, args.keep, codecs)
    for table in tables(rows, costs):
        Console().print(table)
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "codec_ms_per_frame": costs}, indent=2))


if __name__ == "__main__":
    main()

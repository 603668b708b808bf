"""Store I/O benchmark: the canonical stores against PNG folders, and the codecs each store offers.

For each frame kind (natural images, simulator-like frames) and frame size (128², 256²) it writes the same
episodes as

* a PNG folder per episode, written the way RLBench writes its observations (PIL, default settings), and
  read back with ``cv2.imread`` (+ BGR→RGB, since stores return RGB);
* a store per back-end and image codec (`genima_data.store`, ``Dataset.write_episode`` / ``read_frame``),

and measures write throughput, random single-frame read throughput and size on disk. Reads come in two
patterns: uniform over all episodes (more than a store keeps open, so episode opens are part of the cost)
and uniform over as many episodes as a store keeps open (a loader that has been running). Every frame of
every layout is read back and compared bit-exact with what was written.

Timing on a shared machine: each repeat runs every layout in a rotating order, ratios are the median over
repeats of PNG's time / the layout's time *in the same repeat*, rates use the median time. Reads hit a warm
page cache (the files were just written, for PNG and stores alike), so they are CPU-bound and reported in
CPU time of this process, with the wall-clock ratio alongside; writes are wall-clock (they include the
stores' fsyncs).

Each frame is released as soon as it is read, as a loader does once it has copied the frame into its batch:
the next read gets the same memory back from the allocator. `--keep-frames` holds every frame of a repeat
instead, so each read also pays the kernel for first touching fresh memory (page faults), PNG and stores
alike; how much depends on the allocator's history and the machine (on this development VM a page fault
costs about 2 µs, 48 of them a 256² frame), which pulls every ratio towards 1 and adds noise.

Natural frames are scikit-image's bundled photographs, cropped and resized into video-like sequences with
small camera motion. scikit-image is a bench-only requirement (``pip install scikit-image``); without it
only the simulator-like frames (`genima_data.demo`) are measured.

    python bench/store_io.py                 # the full table (a few minutes)
    python bench/store_io.py --sizes 128 --kinds sim --episodes 2 --frames 6 --reads 10 --repeats 1
"""

from __future__ import annotations

import argparse
import functools
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image
from rich.console import Console
from rich.table import Table

from genima_data.demo import demo_episode, demo_manifest
from genima_data.episode import Episode
from genima_data.progress import progress_bar
from genima_data.schema import Manifest
from genima_data.store import create_dataset, open_dataset
from genima_data.store.base import FRAME_HANDLE_CACHE
from genima_data.store.codecs import DEFAULT_CODECS

CAMERA = "front"
STREAM = f"cameras/{CAMERA}/rgb"
STORE_CODECS: dict[str, tuple[str, ...]] = {
    "zarr": ("gradient-zstd", "blosc-zstd", "zstd"),
    "hdf5": ("gradient-zstd", "blosc-zstd", "blosc-lz4"),
}
NATURAL_SOURCES = ("astronaut", "coffee", "chelsea", "rocket")  # photographs bundled with scikit-image
FRAME_KINDS = ("natural", "sim")


# ------------------------------------------------------------------------------------------------ frames
def natural_sequence(size: int, frames: int, index: int) -> np.ndarray:
    """A (frames, size, size, 3) video-like crop of a scikit-image photograph with small camera motion."""
    import skimage.data

    source = getattr(skimage.data, NATURAL_SOURCES[index % len(NATURAL_SOURCES)])()
    rng = np.random.default_rng(index)
    crop = 0.6 * min(source.shape[:2])  # the window the camera sees, in source pixels
    scale = size / crop
    small = cv2.resize(source, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    h, w = small.shape[:2]
    start = rng.uniform([0, 0], [w - size * 1.1, h - size * 1.1])
    velocity = rng.uniform(-1.0, 1.0, 2)  # pixels per frame, as a slowly panning camera
    out = np.empty((frames, size, size, 3), np.uint8)
    for t in range(frames):
        zoom = 1.0 + 0.03 * np.sin(t / 7)
        x, y = np.clip(start + velocity * t, 0, [w - size * zoom - 1, h - size * zoom - 1])
        affine = np.array([[zoom, 0, x], [0, zoom, y]])
        out[t] = cv2.warpAffine(small, affine, (size, size), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
    return out


def sim_sequence(size: int, frames: int, index: int) -> np.ndarray:
    """Simulator-like frames: the bundled demo's camera stream."""
    return np.asarray(demo_episode(index, frames=frames, size=size)[STREAM][:])


SEQUENCES: dict[str, Callable[[int, int, int], np.ndarray]] = {
    "natural": natural_sequence,
    "sim": sim_sequence,
}


def natural_available() -> bool:
    try:
        import skimage.data  # noqa: F401
    except ImportError:
        return False
    return True


def bench_manifest(size: int) -> Manifest:
    manifest = demo_manifest(size)
    return manifest.model_copy(update={"cameras": [manifest.camera(CAMERA)]})


def bench_episodes(kind: str, size: int, episodes: int, frames: int) -> list[Episode]:
    """Demo episodes with only the required arrays and one camera stream of `kind` frames."""
    out = []
    for i in range(episodes):
        demo = demo_episode(i, frames=frames, size=8)
        arrays = {k: demo[k] for k in ("timestamps", "robot/joint_positions", "robot/gripper_open")}
        arrays[STREAM] = SEQUENCES[kind](size, frames, i)
        out.append(Episode(meta=demo.meta, arrays=arrays))
    return out


# ------------------------------------------------------------------------------------------------ PNG
def png_path(root: Path, episode_id: str, t: int) -> Path:
    return root / episode_id / f"{CAMERA}_rgb" / f"{t}.png"


def write_png_folders(root: Path, episodes: Sequence[Episode]) -> None:
    """One PNG per frame, as RLBench saves observations (PIL's default PNG settings)."""
    for episode in episodes:
        png_path(root, episode.episode_id, 0).parent.mkdir(parents=True)
        frames = episode[STREAM]
        for t in range(episode.length):
            Image.fromarray(frames[t]).save(png_path(root, episode.episode_id, t))


def read_png(root: Path, episode_id: str, t: int) -> np.ndarray:
    return cv2.cvtColor(
        cv2.imread(str(png_path(root, episode_id, t)), cv2.IMREAD_UNCHANGED), cv2.COLOR_BGR2RGB
    )


# ------------------------------------------------------------------------------------------------ stores
def write_store(root: Path, backend: str, codec: str, episodes: Sequence[Episode], size: int) -> None:
    ds = create_dataset(root, bench_manifest(size), backend=backend, image_codec=codec)
    for episode in episodes:
        ds.write_episode(episode)
    ds.commit()


def directory_size(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


Pick = tuple[str, int]  # (episode id, frame index)
Reader = Callable[[str, int], np.ndarray]
Timing = tuple[float, float]  # (wall-clock seconds, CPU seconds of this process)


def timed(run: Callable[[], object]) -> Timing:
    wall, cpu = time.perf_counter(), time.process_time()
    run()
    return time.perf_counter() - wall, time.process_time() - cpu


def read_patterns(episodes: int, frames: int, reads: int, seed: int) -> dict[str, list[Pick]]:
    """Random single-frame picks over all episodes, and over only as many as a store keeps open.

    Each frame is picked at most once per pattern and never frame 0 (the warm-up read), so no read is served
    by a cache of decompressed chunks: on a dataset far larger than this one, repeats are rare.
    """
    rng = np.random.default_rng(seed)
    open_episodes = min(episodes, FRAME_HANDLE_CACHE)

    def distinct(pool_episodes: int) -> list[Pick]:
        pool = [(f"episode{e}", t) for e in range(pool_episodes) for t in range(1, frames)]
        if reads > len(pool):
            raise SystemExit(f"--reads {reads} > {len(pool)} distinct frames: raise --frames or --episodes")
        return [pool[i] for i in rng.choice(len(pool), reads, replace=False)]

    return {
        f"all {episodes} episodes": distinct(episodes),
        f"{open_episodes} open episodes": distinct(open_episodes),
    }


@dataclass
class Layout:
    """One way of storing the frames: PNG folders, or a store back-end with an image codec."""

    layout: str  # "png", "zarr", "hdf5"
    codec: str
    root: Path

    @property
    def default(self) -> bool:
        return self.layout != "png" and DEFAULT_CODECS[self.layout]["image"] == self.codec

    def write(self, episodes: Sequence[Episode], size: int) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
        if self.layout == "png":
            write_png_folders(self.root, episodes)
        else:
            write_store(self.root, self.layout, self.codec, episodes, size)

    def open_reader(self) -> Reader:
        if self.layout == "png":
            return lambda episode_id, t: read_png(self.root, episode_id, t)
        ds = open_dataset(self.root)
        return lambda episode_id, t: ds.read_frame(episode_id, STREAM, t)


@dataclass
class Measurement:
    """One layout measured on one frame set: a timing per repeat, so ratios pair up with PNG's."""

    layout: str
    codec: str
    default: bool
    size_bytes: int
    writes: list[Timing]
    reads: dict[str, list[Timing]]  # per read pattern
    lossless: bool


def read_picks(read: Reader, picks: list[Pick], keep: bool) -> list[np.ndarray]:
    """Read every pick: all the frames, held to the end, if `keep`; else each is released before the next
    read (and none returned)."""
    if keep:
        return [read(episode_id, t) for episode_id, t in picks]
    for episode_id, t in picks:
        read(episode_id, t)
    return []


def _rotated(items: list, shift: int) -> list:
    """`items` in a different order each repeat, so load changes on a shared machine hit all alike."""
    shift %= len(items)
    return items[shift:] + items[:shift]


def measure_suite(
    layouts: list[Layout],
    episodes: Sequence[Episode],
    patterns: dict[str, list[Pick]],
    size: int,
    repeats: int,
    keep_frames: bool = False,
) -> list[Measurement]:
    """Write and read every layout `repeats` times, interleaved, then check every frame bit-exact."""
    order = list(range(len(layouts)))
    writes: list[list[Timing]] = [[] for _ in layouts]
    reads: list[dict[str, list[Timing]]] = [{name: [] for name in patterns} for _ in layouts]
    for r in range(repeats):
        for i in _rotated(order, r):
            writes[i].append(timed(lambda i=i: layouts[i].write(episodes, size)))
    for r in range(repeats):
        for name, picks in patterns.items():
            for i in _rotated(order, r):
                read = layouts[i].open_reader()  # opened outside the timing, afresh each repeat
                for episode_id in dict.fromkeys(e for e, _ in picks):  # a loader that has been running
                    read(episode_id, 0)
                run = functools.partial(read_picks, read, picks, keep_frames)
                reads[i][name].append(timed(run))
    out = []
    for i, layout in enumerate(layouts):
        read = layout.open_reader()
        lossless = all(
            np.array_equal(read(e.episode_id, t), e[STREAM][t]) for e in episodes for t in range(e.length)
        )
        size_bytes = directory_size(layout.root)
        shutil.rmtree(layout.root)
        out.append(
            Measurement(
                layout.layout, layout.codec, layout.default, size_bytes, writes[i], reads[i], lossless
            )
        )
    return out


# ------------------------------------------------------------------------------------------------ report
@dataclass
class Suite:
    kind: str
    size: int
    frames: int
    reads: int
    measurements: list[Measurement]

    @property
    def png(self) -> Measurement:
        return next(m for m in self.measurements if m.layout == "png")


def speedup(mine: list[Timing], png: list[Timing], clock: int) -> float:
    """Median over repeats of PNG's time / this layout's time in the same repeat (clock 0 wall, 1 CPU)."""
    return statistics.median(p[clock] / m[clock] for m, p in zip(mine, png, strict=True))


def per_second(count: int, timings: list[Timing], clock: int) -> float:
    return count / statistics.median(t[clock] for t in timings)


def _rows(suite: Suite) -> list[list[str]]:
    """Per layout: codec, size, write and read rates; ratios in brackets are against PNG, same repeats."""
    png = suite.png
    rows = []
    for m in suite.measurements:
        read_cells = [
            f"{per_second(suite.reads, timings, 1):,.0f} ({speedup(timings, png.reads[name], 1):.1f}x"
            f" | wall {speedup(timings, png.reads[name], 0):.1f}x)"
            for name, timings in m.reads.items()
        ]
        rows.append(
            [
                m.layout,
                m.codec + (" (default)" if m.default else ""),
                f"{m.size_bytes / suite.frames / 1024:.1f} ({m.size_bytes / png.size_bytes:.2f}x)",
                f"{per_second(suite.frames, m.writes, 0):,.0f} ({speedup(m.writes, png.writes, 0):.2f}x)",
                *read_cells,
                "yes" if m.lossless else "NO",
            ]
        )
    return rows


def _columns(suite: Suite) -> list[str]:
    reads = [f"reads/s CPU, {name} (vs PNG | wall)" for name in suite.png.reads]
    return ["layout", "codec", "KiB/frame (vs PNG)", "writes/s wall (vs PNG)", *reads, "lossless"]


def suite_table(suite: Suite) -> Table:
    """One suite as a rich table."""
    table = Table(title=f"{suite.kind} frames, {suite.size}x{suite.size}, {suite.frames} frames")
    for column in _columns(suite):
        table.add_column(column, justify="left" if column in ("layout", "codec", "lossless") else "right")
    for row in _rows(suite):
        table.add_row(*row)
    return table


def markdown_table(suites: Sequence[Suite]) -> str:
    """All suites as one Markdown table (for the README)."""
    columns = ["frames", "size", *_columns(suites[0])]
    header = [c.replace(" | ", r" \| ") for c in columns]  # a bare pipe would split the cell
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(columns)]
    for suite in suites:
        for row in _rows(suite):
            lines.append(
                "| " + " | ".join([suite.kind, f"{suite.size}²", *row]).replace(" | wall", ", wall") + " |"
            )
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ main
def run(
    *,
    sizes: Sequence[int] = (128, 256),
    kinds: Sequence[str] = FRAME_KINDS,
    episodes: int = FRAME_HANDLE_CACHE + 8,
    frames: int = 10,
    reads: int = 500,
    repeats: int = 5,
    all_codecs: bool = True,
    workdir: Path | None = None,
    seed: int = 0,
    progress: bool = True,
    keep_frames: bool = False,
) -> list[Suite]:
    """Measure every (kind, size) suite; returns the measurements (see the module docstring)."""
    choices = [("png", "PIL")] + [
        (backend, codec)
        for backend, codecs in STORE_CODECS.items()
        for codec in (codecs if all_codecs else (DEFAULT_CODECS[backend]["image"],))
    ]
    patterns = read_patterns(episodes, frames, reads, seed)
    suites = []
    with (
        tempfile.TemporaryDirectory(dir=workdir, prefix="store_io-") as tmp,
        progress_bar(len(kinds) * len(sizes), "store_io", enabled=progress) as advance,
    ):
        layouts = [Layout(layout, codec, Path(tmp) / f"{layout}-{codec}") for layout, codec in choices]
        for kind in kinds:
            for size in sizes:
                data = bench_episodes(kind, size, episodes, frames)
                measurements = measure_suite(layouts, data, patterns, size, repeats, keep_frames)
                suites.append(Suite(kind, size, episodes * frames, reads, measurements))
                advance(1)
    return suites


def main(argv: Sequence[str] | None = None) -> list[Suite]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256], help="frame sizes (square)")
    parser.add_argument("--kinds", nargs="+", choices=FRAME_KINDS, default=list(FRAME_KINDS))
    parser.add_argument(
        "--episodes",
        type=int,
        default=FRAME_HANDLE_CACHE + 8,
        help="episodes per suite (more than stores keep ready)",
    )
    parser.add_argument("--frames", type=int, default=10, help="frames per episode")
    parser.add_argument("--reads", type=int, default=500, help="random single-frame reads per repeat")
    parser.add_argument("--repeats", type=int, default=5, help="repeats; medians are reported")
    parser.add_argument("--defaults-only", action="store_true", help="only each store's default image codec")
    parser.add_argument("--workdir", type=Path, default=None, help="where to write (default: system temp)")
    parser.add_argument("--markdown", action="store_true", help="also print one Markdown table")
    parser.add_argument(
        "--keep-frames", action="store_true", help="hold every frame of a repeat instead of releasing each"
    )
    args = parser.parse_args(argv)
    console = Console(width=150)
    kinds = list(args.kinds)
    if "natural" in kinds and not natural_available():
        console.print(
            "[yellow]scikit-image is not installed: skipping natural frames (pip install scikit-image)"
        )
        kinds.remove("natural")
    suites = run(
        sizes=args.sizes,
        kinds=kinds,
        episodes=args.episodes,
        frames=args.frames,
        reads=args.reads,
        repeats=args.repeats,
        all_codecs=not args.defaults_only,
        workdir=args.workdir,
        keep_frames=args.keep_frames,
    )
    for suite in suites:
        console.print(suite_table(suite))
    if args.markdown:
        print(markdown_table(suites))
    if not all(m.lossless for s in suites for m in s.measurements):
        console.print("[red]a layout did not read back bit-exact frames")
        sys.exit(1)
    return suites


if __name__ == "__main__":
    main()

"""Benchmark: ACT data loading from the store (pre-rendered / on-the-fly targets) vs GENIMA's PNG folders,
and tiny-preset training steps/s on the CPU (genima preset on a GPU when there is one).

    python bench/train_act.py [--episodes 6] [--frames 60] [--size 128] [--workers 2] [--batches 40]

GENIMA's controller reads RLBench-style episode folders: one PNG per camera and frame of the sphere targets
on random backgrounds, plus the low-dimensional observations. This script writes such folders from the same
store (with cv2, as the RLBench exporter is not on main yet), then times the three DataLoaders with the same
batch size, workers and shuffling. Run it on an idle machine; numbers are samples (frames with all cameras)
per second.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from genima_data.demo import build_demo
from genima_data.store import open_dataset
from genima_models.act.config import preset_configs
from genima_models.act.model import ACTModel
from genima_models.act.train import batch_losses
from genima_models.data import (
    ACTDataset,
    ControllerImages,
    robot_sample,
    stack_camera_images,
    target_path,
)

console = Console()


def prerender_targets(path: Path) -> None:
    """Store targets/<cam>/rnd_bg for every frame, rendered by the same code the on-the-fly path uses."""
    with open_dataset(path, mode="a") as ds:
        cameras = [c.name for c in ds.manifest.cameras]
        images = ControllerImages(ds.manifest, path, cameras, set())
        rng = np.random.default_rng(0)
        for summary in ds.manifest.episodes:
            frames = {cam: [] for cam in cameras}
            for t in range(summary.length):
                for cam in cameras:
                    frames[cam].append(images.render(ds, summary.episode_id, t, cam, rng))
            images.close()
            ds.add_arrays(summary.episode_id, {target_path(c): np.stack(f) for c, f in frames.items()})


def write_png_folders(path: Path, root: Path) -> None:
    """GENIMA's layout: <root>/<episode>/<cam>_rnd_bg/<t>.png, plus low_dim.npz (joints, gripper, text)."""
    with open_dataset(path) as ds:
        for eid in ds.episode_ids:
            with ds.episode(eid) as ep:
                for cam in [c.name for c in ds.manifest.cameras]:
                    folder = root / eid / f"{cam}_rnd_bg"
                    folder.mkdir(parents=True, exist_ok=True)
                    for t, frame in enumerate(ep.iter_frames(target_path(cam))):
                        cv2.imwrite(str(folder / f"{t}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
                np.savez(
                    root / eid / "low_dim.npz",
                    joints=ep.load("robot/joint_positions"),
                    gripper=ep.load("robot/gripper_open"),
                    instruction=ep.meta.instruction,
                )


class PNGFolderDataset(torch.utils.data.Dataset):
    """The baseline: the same samples as ACTDataset, decoded from one PNG per camera and frame."""

    def __init__(self, root: Path, cameras: list[str], chunk_size: int = 20, image_size: int | None = None):
        self.root, self.cameras, self.chunk_size, self.image_size = root, cameras, chunk_size, image_size
        self.low_dim = {p.name: dict(np.load(p / "low_dim.npz")) for p in sorted(root.iterdir())}
        self.index = [(eid, t) for eid, d in self.low_dim.items() for t in range(len(d["joints"]) - 1)]

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> dict:
        eid, t = self.index[i]
        low_dim = self.low_dim[eid]
        proprio, actions, is_pad = robot_sample(low_dim["joints"], low_dim["gripper"], t, self.chunk_size)
        images = [
            cv2.cvtColor(cv2.imread(str(self.root / eid / f"{cam}_rnd_bg" / f"{t}.png")), cv2.COLOR_BGR2RGB)
            for cam in self.cameras
        ]
        return {
            "images": stack_camera_images(images, self.image_size),
            "proprio": proprio,
            "actions": actions,
            "is_pad": is_pad,
            "instruction": str(low_dim["instruction"]),
        }


def loader_samples_per_s(dataset: torch.utils.data.Dataset, args: argparse.Namespace) -> float:
    """Samples/s over `args.batches` shuffled batches, timed after worker start-up and the first batch."""
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=args.batch_size,
        shuffle=True,
        num_workers=args.workers,
        drop_last=True,
        persistent_workers=args.workers > 0,
    )

    def endless():
        while True:
            yield from loader

    batches = endless()
    next(batches)
    start = time.perf_counter()
    for _ in range(args.batches):
        next(batches)
    return args.batches * args.batch_size / (time.perf_counter() - start)


def training_steps_per_s(preset: str, dataset: ACTDataset, device: str, steps: int, batch_size: int) -> float:
    """Forward + backward + AdamW steps on pre-loaded batches (data loading excluded)."""
    config, train = preset_configs(preset)
    config.cameras, config.dof = dataset.cameras, dataset.dof
    model = ACTModel.build(config, dataset.joint_stats()).to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=train.lr, weight_decay=train.weight_decay)
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=True, drop_last=True)
    batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in next(iter(loader)).items()}

    def one_step() -> None:
        batch_losses(model, model, batch, train)["loss"].backward()
        optimizer.step()
        optimizer.zero_grad()

    one_step()  # warm-up
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        one_step()
    if device == "cuda":
        torch.cuda.synchronize()
    return steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--episodes", type=int, default=6)
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--size", type=int, default=128, help="image side in pixels (RLBench: 128)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--batches", type=int, default=40, help="timed batches per loader")
    parser.add_argument("--train-steps", type=int, default=20)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    root = args.workdir or Path(tempfile.mkdtemp(prefix="bench-act-"))
    plain, rendered, pngs = root / "plain.zarr", root / "rendered.zarr", root / "png"
    console.print(f"building {args.episodes} episodes x {args.frames} frames, {args.size} px, in {root}")
    build_demo(plain, episodes=args.episodes, frames=args.frames, size=args.size).close()
    build_demo(rendered, episodes=args.episodes, frames=args.frames, size=args.size).close()
    prerender_targets(rendered)
    write_png_folders(rendered, pngs)

    common = {"split": "all", "chunk_size": 20}
    on_the_fly = ACTDataset(plain, targets="on-the-fly", **common)
    prerendered = ACTDataset(rendered, targets="prerendered", **common)
    png = PNGFolderDataset(pngs, prerendered.cameras)
    rates = {
        "PNG folders (GENIMA)": loader_samples_per_s(png, args),
        "store, pre-rendered targets": loader_samples_per_s(prerendered, args),
        "store, on-the-fly targets": loader_samples_per_s(on_the_fly, args),
    }
    table = Table(
        title=f"ACT data loading: {len(prerendered.cameras)} cameras, {args.size} px, "
        f"batch {args.batch_size}, {args.workers} workers, {os.cpu_count()} CPUs"
    )
    for column in ("source", "samples/s", "vs PNG folders"):
        table.add_column(column, justify="right")
    baseline = rates["PNG folders (GENIMA)"]
    for name, rate in rates.items():
        table.add_row(name, f"{rate:.1f}", f"{rate / baseline:.2f}x")
    console.print(table)

    tiny = ACTDataset(rendered, targets="prerendered", image_size=64, **common)
    steps = Table(
        title="ACT training steps/s (forward, backward, AdamW; data pre-loaded; "
        f"{torch.get_num_threads()} threads)"
    )
    for column in ("preset", "device", "batch", "steps/s"):
        steps.add_column(column, justify="right")
    steps.add_row("tiny", "cpu", "8", f"{training_steps_per_s('tiny', tiny, 'cpu', args.train_steps, 8):.2f}")
    if torch.cuda.is_available():
        rate = training_steps_per_s("genima", prerendered, "cuda", args.train_steps, 8)
        steps.add_row("genima", torch.cuda.get_device_name(), "8", f"{rate:.2f}")
    else:
        steps.add_row("genima", "no GPU here", "-", "not measured")
    console.print(steps)


if __name__ == "__main__":
    main()

"""Benchmark: diffusion-agent generation speed, and training-pair loading from the store vs GENIMA's PNGs.

    python bench/diffusion.py [--model tiny|sd-turbo] [--episodes 4] [--frames 40] [--size 256]

1. Generated target images per second at 512x512 for 1, 5 and 10 Euler steps (GENIMA evaluates with 10),
   batch 1, best of --repeats (step counts interleaved), through `DiffusionAgent`
   (StableDiffusionControlNetPipeline). ``--model tiny`` is the tiny preset (CPU); ``--model sd-turbo``
   builds SD-Turbo's architecture (SD 2.1 UNet, VAE, OpenCLIP-H text encoder, ControlNet from the UNet)
   with random weights, since the weights cannot be downloaded here:
   the speed of a network does not depend on its weights. Use a GPU for it.
2. Training pairs per second (conditioning + target tensors at 512x512, no augmentation) from the store
   with pre-rendered targets, from the store with targets rendered on the fly, and from GENIMA's PNG
   folders (tiled_rgb/ and tiled_rgb_rendered/ written by `export_genima_png`, decoded as GENIMA's
   loader does: two PNGs per sample, resized to 512). Random access over all samples, one process.
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
from genima_models.diffusion.agent import DiffusionAgent
from genima_models.diffusion.config import preset_config
from genima_models.diffusion.data import DiffusionPairs, to_unit_tensor
from genima_models.diffusion.models import (
    SD_TURBO_SCHEDULER,
    BaseModels,
    build_tiny_base,
    controlnet_from_unet,
    tiny_tokenizer,
)

console = Console()


def sd_turbo_architecture() -> BaseModels:
    """SD-Turbo's networks (stabilityai/sd-turbo configs), random weights; the tokenizer is the tiny one."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    unet = UNet2DConditionModel(
        sample_size=64,
        block_out_channels=(320, 640, 1280, 1280),
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
        layers_per_block=2,
        cross_attention_dim=1024,
        attention_head_dim=(5, 10, 20, 20),
        use_linear_projection=True,
    )
    vae = AutoencoderKL(
        block_out_channels=(128, 256, 512, 512),
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        layers_per_block=2,
        latent_channels=4,
        sample_size=768,
    )
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=49408,
            hidden_size=1024,
            intermediate_size=4096,
            num_hidden_layers=23,
            num_attention_heads=16,
            max_position_embeddings=77,
            hidden_act="gelu",
            projection_dim=512,
        )
    )
    return BaseModels(tiny_tokenizer(), text_encoder, vae, unet, dict(SD_TURBO_SCHEDULER))


def generation_rates(model: str, device: str, repeats: int) -> dict[int, float]:
    """Generated 512x512 tiled target images per second for 1, 5 and 10 steps."""
    preset = "genima" if model == "sd-turbo" else "tiny"
    config = preset_config(preset)
    base = sd_turbo_architecture() if model == "sd-turbo" else build_tiny_base()
    agent = DiffusionAgent.from_models(base, controlnet_from_unet(base.unet, config), config, device=device)
    rng = np.random.default_rng(0)
    observation = {cam: rng.integers(0, 256, (256, 256, 3), dtype=np.uint8) for cam in config.cameras}
    agent.generate_tiled([observation], ["pick up the orange ball"])  # warm-up
    best = {steps: float("inf") for steps in (1, 5, 10)}
    for _ in range(repeats):  # interleaved, best of `repeats`: other load on the machine hurts less
        for steps in best:
            agent.steps = steps
            _sync(device)
            start = time.perf_counter()
            agent.generate_tiled([observation], ["pick up the orange ball"])
            _sync(device)
            best[steps] = min(best[steps], time.perf_counter() - start)
    return {steps: 1 / seconds for steps, seconds in best.items()}


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


class GenimaPNGPairs(torch.utils.data.Dataset):
    """The baseline: GENIMA's tiled_rgb / tiled_rgb_rendered PNG pairs, decoded and resized to 512."""

    def __init__(self, roots: list[Path], resolution: int = 512) -> None:
        self.pairs = sorted(
            (png, png.parent.parent / "tiled_rgb_rendered" / png.name)
            for root in roots
            for png in root.rglob("tiled_rgb/*.png")
        )
        self.resolution = resolution

    def __len__(self) -> int:
        return len(self.pairs)

    def _load(self, path: Path) -> torch.Tensor:
        image = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
        if image.shape[0] != self.resolution:
            image = cv2.resize(image, (self.resolution, self.resolution), interpolation=cv2.INTER_LINEAR)
        return to_unit_tensor(image)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        conditioning, target = self.pairs[index]
        return {
            "conditioning_pixel_values": self._load(conditioning),
            "pixel_values": self._load(target) * 2 - 1,
        }


def samples_per_s(dataset: torch.utils.data.Dataset, samples: int) -> float:
    order = np.random.default_rng(0).permutation(len(dataset))
    dataset[int(order[0])]  # warm-up: open files, build caches
    start = time.perf_counter()
    for i in range(samples):
        dataset[int(order[i % len(order)])]
    return samples / (time.perf_counter() - start)


def loader_rates(root: Path, args: argparse.Namespace) -> dict[str, float]:
    from genima_data.render.export import export_genima_png  # only the loader part needs the renderer
    from genima_data.render.pipeline import render_targets

    stored, plain = root / "stored.zarr", root / "plain.zarr"
    for path in (stored, plain):
        build_demo(path, episodes=args.episodes, frames=args.frames, size=args.size).close()
    render_targets(stored)
    roots = export_genima_png(stored, root / "png").roots
    config = preset_config("genima")
    tokenizer = tiny_tokenizer()  # tokenisation happens once per episode; the tokenizer does not matter here
    sources = {
        "PNG folders (GENIMA)": GenimaPNGPairs(roots),
        "store, pre-rendered targets": DiffusionPairs(stored, config, tokenizer, augment=False),
        "store, on-the-fly targets": DiffusionPairs(plain, config, tokenizer, augment=False),
    }
    return {name: samples_per_s(dataset, args.samples) for name, dataset in sources.items()}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", choices=["tiny", "sd-turbo"], default="tiny")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeats", type=int, default=3, help="timed generations per step count (best)")
    parser.add_argument("--episodes", type=int, default=4)
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--size", type=int, default=256, help="camera image side (GENIMA tiles 256 px)")
    parser.add_argument("--samples", type=int, default=100, help="timed samples per loader")
    parser.add_argument("--skip-loader", action="store_true")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()

    rates = generation_rates(args.model, args.device, args.repeats)
    device = torch.cuda.get_device_name() if args.device == "cuda" else f"CPU ({os.cpu_count()} cores)"
    table = Table(title=f"diffusion agent: 512x512 tiled targets, batch 1, {args.model}, {device}")
    for column in ("Euler steps", "images/s", "s/image", "vs 10 steps"):
        table.add_column(column, justify="right")
    for steps, rate in rates.items():
        table.add_row(str(steps), f"{rate:.2f}", f"{1 / rate:.3f}", f"{rate / rates[10]:.2f}x")
    console.print(table)
    if args.skip_loader:
        return

    root = args.workdir or Path(tempfile.mkdtemp(prefix="bench-diffusion-"))
    loads = loader_rates(root, args)
    table = Table(
        title=f"training pairs at 512x512: {args.episodes} episodes x {args.frames} frames, "
        f"{args.size} px cameras, random access, 1 process"
    )
    for column in ("source", "samples/s", "vs PNG folders"):
        table.add_column(column, justify="right")
    baseline = loads["PNG folders (GENIMA)"]
    for name, rate in loads.items():
        table.add_row(name, f"{rate:.1f}", f"{rate / baseline:.2f}x")
    console.print(table)


if __name__ == "__main__":
    main()

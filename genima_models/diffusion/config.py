"""Configuration of a diffusion-agent run: presets, the prompt, tiling, augmentation and optimisation.

Saved next to every checkpoint as ``genima_diffusion.json``, so inference and evaluation use exactly the
tiling, prompt and base model the ControlNet was trained with. Needs no torch (the CLI reads it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from genima_data.errors import GenimaDataError
from genima_data.render.compose import GENIMA_TILE_ORDER
from genima_data.render.targets import TargetConfig
from genima_data.schema import parse_model

CONFIG_FILE = "genima_diffusion.json"
PROMPT_TEMPLATE = "tiled perspectives of a robot arm executing '{instruction}'"
SD_TURBO = "stabilityai/sd-turbo"


class DiffusionError(GenimaDataError):
    """A diffusion-agent run cannot proceed: missing weights, a bad checkpoint, an unusable dataset."""


class DiffusionConfig(BaseModel):
    """Everything a diffusion-agent run depends on; GENIMA's values are the `genima` preset's defaults."""

    model_config = ConfigDict(extra="forbid")

    preset: Literal["genima", "tiny"] = Field(description="genima: SD-Turbo; tiny: small CPU models.")
    base_model: str = Field(
        description="Hugging Face id or local path of the base pipeline (UNet, VAE, text encoder, tokenizer, "
        "scheduler); a relative path is resolved against the run directory first."
    )
    base_variant: str | None = Field(None, description="Weight-file variant to load, e.g. 'fp16'.")
    tile_order: tuple[tuple[str, str], tuple[str, str]] = Field(
        GENIMA_TILE_ORDER, description="Cameras in the 2x2 grid, rows top to bottom."
    )
    tile_size: int = Field(256, gt=0, description="Side of one camera's tile, pixels.")
    prompt_template: str = Field(PROMPT_TEMPLATE, description="Prompt; '{instruction}' is replaced.")
    targets: Literal["auto", "stored", "on-the-fly"] = Field(
        "auto",
        description="Diffusion targets: targets/<cam>/rgb from the store, rendered on the fly, or stored "
        "when every episode has them and rendered otherwise.",
    )
    target_config: TargetConfig = Field(
        default_factory=TargetConfig,
        description="Sphere targets (horizon, colours, sizes): rendered on the fly and scored with these.",
    )
    controlnet_conditioning_channels: tuple[int, ...] = Field(
        (16, 32, 96, 256), description="ControlNet conditioning-embedding widths (4: 8x downsampling)."
    )
    crop_padding: int = Field(2, ge=0, description="Reflect-pad by this many pixels, then crop.")
    color_jitter: tuple[float, float, float, float] = Field(
        (0.2, 0.2, 0.1, 0.05), description="Brightness, contrast, saturation, hue jitter of the conditioning."
    )
    batch_size: int = Field(2, gt=0)
    learning_rate: float = Field(1e-5, gt=0)
    weight_decay: float = Field(1e-2, ge=0)
    adam_betas: tuple[float, float] = (0.9, 0.999)
    adam_epsilon: float = 1e-8
    max_grad_norm: float = Field(1.0, gt=0)
    mixed_precision: Literal["auto", "no", "fp16", "bf16"] = Field(
        "auto", description="auto: fp16 on a GPU for the genima preset, otherwise full precision."
    )
    steps: int = Field(1000, gt=0, description="Total optimisation steps of the run.")
    checkpoint_every: int = Field(500, gt=0)
    keep_checkpoints: int = Field(2, gt=0, description="Older checkpoints are deleted.")
    log_every: int = Field(10, gt=0, description="Steps between metrics.jsonl rows.")
    seed: int = 0
    num_workers: int = Field(0, ge=0, description="DataLoader worker processes.")
    episodes: list[str] | None = Field(None, description="Episodes to train on (default: all).")

    @model_validator(mode="after")
    def _resolution_fits_the_vae(self) -> DiffusionConfig:
        if self.resolution % 8:
            raise ValueError(f"2 x tile_size = {self.resolution} must be divisible by 8 (the VAE's stride)")
        if len(self.controlnet_conditioning_channels) != 4:
            raise ValueError("controlnet_conditioning_channels needs 4 entries (three 2x downsamplings)")
        if "{instruction}" not in self.prompt_template:
            raise ValueError("prompt_template must contain '{instruction}'")
        if len({cam for row in self.tile_order for cam in row}) != 4:
            raise ValueError(f"tile_order must name four different cameras, got {self.tile_order}")
        return self

    @property
    def resolution(self) -> int:
        """Side of the tiled image the models see."""
        return 2 * self.tile_size

    @property
    def cameras(self) -> list[str]:
        """Cameras in tile order (row by row)."""
        return [cam for row in self.tile_order for cam in row]

    def prompt(self, instruction: str) -> str:
        """The text prompt for an instruction.

        GENIMA's training script meant the same prompt but lost the instruction: in
        diffusion/rlbench_dataset/rlbench_dataset.py the f-string continuation stands on its own line, so
        the prompt is always "tiled perspectives of a robot " (github.com/MohitShridhar/genima). We keep it.
        """
        return self.prompt_template.format(instruction=instruction)

    def save(self, directory: Path) -> Path:
        from genima_data.atomic import atomic_write_text

        path = Path(directory) / CONFIG_FILE
        atomic_write_text(path, self.model_dump_json(indent=2) + "\n")
        return path

    @classmethod
    def load(cls, directory: Path) -> DiffusionConfig:
        path = Path(directory) / CONFIG_FILE
        if not path.is_file():
            raise DiffusionError(f"no {CONFIG_FILE}: not a diffusion-agent run or checkpoint", file=directory)
        return parse_model(cls, path.read_text(), file=path)


PRESETS: dict[str, dict[str, Any]] = {
    # GENIMA's diffusion/README.md: SD-Turbo, lr 1e-5, batch 2, fp16, checkpoints every 1000 steps
    "genima": {"base_model": SD_TURBO, "base_variant": "fp16", "checkpoint_every": 1000},
    # small models built from configs (genima_models.diffusion.models.build_tiny_base), saved in the run
    "tiny": {
        "base_model": "base",
        "controlnet_conditioning_channels": (8, 16, 16, 32),
        "checkpoint_every": 100,
        "log_every": 1,
    },
}


def preset_config(preset: str, **overrides: Any) -> DiffusionConfig:
    """The configuration of a preset with `overrides` (None values are ignored) applied."""
    if preset not in PRESETS:
        raise DiffusionError(f"unknown preset '{preset}'; choose from {sorted(PRESETS)}", field="preset")
    values = {"preset": preset, **PRESETS[preset], **{k: v for k, v in overrides.items() if v is not None}}
    return parse_model(DiffusionConfig, values)


def check_mixed_precision(config: DiffusionConfig, *, cuda: bool) -> None:
    """Refuse fp16 without a CUDA GPU before a run starts: on the CPU it fails mid-step on mixed dtypes."""
    if config.mixed_precision == "fp16" and not cuda:
        raise DiffusionError(
            "fp16 needs a CUDA GPU and none is available; use bf16 or no on the CPU",
            field="mixed_precision",
        )

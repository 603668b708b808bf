"""ACT presets as plain data: the model's architecture (`ACTConfig`) and how to train it (`TrainConfig`).

``genima`` follows GENIMA's controller (DESIGN.md): ResNet-18 per camera with frozen batch norm and FiLM from
a CLIP text embedding, transformer encoder 4 / decoder 6 layers, hidden 256, 8 heads, feed-forward 2048,
dropout 0.1, CVAE latent 32 with KL weight 10, chunk 20, AdamW lr 1e-5 (backbone 1e-5), weight decay 1e-4.
``tiny`` keeps every part but shrinks widths and images so CPU tests take seconds.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from genima_data.errors import GenimaDataError
from genima_models.errors import CheckpointError

CONFIG_FORMAT = "genima-act"  # marks config.json of an ACT checkpoint

RESNET18: dict[str, Any] = {
    "embedding_size": 64,
    "hidden_sizes": [64, 128, 256, 512],
    "depths": [2, 2, 2, 2],
    "layer_type": "basic",
    "hidden_act": "relu",
    "downsample_in_first_stage": False,
}


@dataclass
class ACTConfig:
    """Architecture of one ACT model; saved as a checkpoint's config.json."""

    preset: str
    cameras: list[str] = field(default_factory=list)
    dof: int = 7  # arm joints; proprio and actions carry one more value, gripper_open
    image_size: int | None = None  # square side the images are resized to; None keeps the stored size
    chunk_size: int = 20
    hidden_dim: int = 256
    enc_layers: int = 4
    dec_layers: int = 6
    heads: int = 8
    ff_dim: int = 2048
    dropout: float = 0.1
    latent_dim: int = 32
    kl_weight: float = 10.0
    gripper_weight: float = 0.05
    backbone: dict[str, Any] = field(default_factory=lambda: dict(RESNET18))  # transformers ResNetConfig
    backbone_weights: str | None = "microsoft/resnet-18"  # from_pretrained name; None: random init
    film_stages: list[int] = field(default_factory=lambda: [2, 3, 4])  # 1-based ResNet stages
    text_encoder: str | None = "openai/clip-vit-base-patch32"  # from_pretrained name of CLIP
    text_config: dict[str, Any] | None = None  # CLIPTextConfig; filled in once the encoder is built
    max_text_tokens: int = 77

    def to_dict(self) -> dict[str, Any]:
        return {"format": CONFIG_FORMAT, **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, file: Path | None = None) -> ACTConfig:
        if data.get("format") != CONFIG_FORMAT:
            raise CheckpointError(f"not an ACT checkpoint config (format {data.get('format')!r})", file=file)
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names - {"format"})
        if unknown:
            raise CheckpointError(f"unknown ACT config keys {unknown}", file=file)
        return cls(**{k: v for k, v in data.items() if k in names})

    @classmethod
    def load(cls, path: Path) -> ACTConfig:
        try:
            return cls.from_dict(json.loads(path.read_text()), file=path)
        except FileNotFoundError:
            raise CheckpointError("no config.json: not a checkpoint directory", file=path.parent) from None
        except (json.JSONDecodeError, TypeError) as exc:
            raise CheckpointError(f"unreadable config ({exc})", file=path) from None


@dataclass
class TrainConfig:
    """Optimisation, logging and augmentation settings of one training run."""

    batch_size: int = 8
    lr: float = 1e-5
    lr_backbone: float = 1e-5
    weight_decay: float = 1e-4
    steps: int = 100_000
    log_every: int = 100
    save_every: int = 5_000
    seed: int = 0
    crop_fraction: float = 0.95  # side of the random crop, as a fraction of the image, resized back
    brightness: float = 0.1  # colour jitter: factors drawn from U[1 - x, 1 + x]
    contrast: float = 0.1
    saturation: float = 0.1
    noise_std: float = 0.01  # Gaussian pixel noise, in [0, 1] intensity units
    augment: bool = True

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


TINY_TEXT_CONFIG: dict[str, Any] = {
    "vocab_size": 514,  # the character-level tokenizer's vocabulary (genima_models.act.text)
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
    "max_position_embeddings": 32,
    "projection_dim": 32,
    "bos_token_id": 512,
    "eos_token_id": 513,
    "pad_token_id": 513,
}


def preset_configs(name: str) -> tuple[ACTConfig, TrainConfig]:
    """Fresh copies of a preset's model and training configs."""
    if name == "genima":
        return ACTConfig(preset="genima"), TrainConfig()
    if name == "tiny":
        model = ACTConfig(
            preset="tiny",
            image_size=64,
            hidden_dim=32,
            enc_layers=1,
            dec_layers=1,
            heads=2,
            ff_dim=64,
            latent_dim=8,
            backbone={**RESNET18, "embedding_size": 8, "hidden_sizes": [8, 16, 32, 64]},
            backbone_weights=None,
            text_encoder=None,
            text_config=dict(TINY_TEXT_CONFIG),
            max_text_tokens=32,
        )
        train = TrainConfig(lr=1e-3, lr_backbone=1e-3, steps=200, log_every=5, save_every=50)
        return model, train
    raise GenimaDataError(f"unknown preset '{name}'; choose from {', '.join(PRESETS)}", field="preset")


PRESETS: tuple[str, ...] = ("genima", "tiny")

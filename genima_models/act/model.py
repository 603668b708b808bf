"""ACT (action chunking with transformers) as GENIMA's controller: images + proprio + instruction -> chunk.

Inputs per sample: one image per camera (float in [0, 1]), proprio ``[gripper_open, joints]`` and the
instruction; output: ``chunk_size`` steps of normalised joint positions plus a gripper-open logit. Joints are
z-scored inside the model with the statistics it was built with (buffers, saved in the weights), so callers
pass and receive robot units through `normalise_joints` / `denormalise_joints`.

Encoder tokens: [CVAE latent, proprio, instruction, image features of every camera]. During training a CVAE
encoder reads [CLS, proprio, action chunk] and yields the latent (KL-regularised); at inference it is zero.
Position embeddings are added once at the encoder input (learned for the three leading tokens, 2-D sine plus
a learned per-camera embedding for image features).
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import safetensors.torch
import torch
import torch.nn.functional as F  # noqa: N812 (the PyTorch convention)
from torch import nn

from genima_data.atomic import atomic_write_text
from genima_models.act.backbone import IMAGENET_MEAN, IMAGENET_STD, FiLMResNet, load_resnet
from genima_models.act.config import ACTConfig
from genima_models.act.text import build_text_encoder, load_tokenizer
from genima_models.data import JointStats
from genima_models.errors import CheckpointError

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
STATS_FILE = "normalisation.json"
TOKENIZER_DIR = "tokenizer"


def sine_table(positions: int, dim: int) -> torch.Tensor:
    """(positions, dim) sinusoidal embeddings, sin on even and cos on odd channels."""
    pos = torch.arange(positions, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(positions, dim)
    table[:, 0::2] = torch.sin(pos * freq)
    table[:, 1::2] = torch.cos(pos * freq)[:, : dim // 2]
    return table


def sine_grid(height: int, width: int, dim: int) -> torch.Tensor:
    """(height * width, dim) 2-D sine embeddings: half the channels for rows, half for columns."""
    rows, cols = sine_table(height, dim // 2), sine_table(width, dim - dim // 2)
    return torch.cat([rows[:, None].expand(-1, width, -1), cols[None].expand(height, -1, -1)], -1).flatten(
        0, 1
    )


@dataclass
class ACTOutput:
    """Normalised joints (B, chunk, dof), gripper-open logits (B, chunk), CVAE posterior (B, latent)."""

    joints: torch.Tensor
    gripper_logit: torch.Tensor
    mu: torch.Tensor | None
    logvar: torch.Tensor | None


def _encoder(config: ACTConfig, layers: int) -> nn.TransformerEncoder:
    layer = nn.TransformerEncoderLayer(
        config.hidden_dim, config.heads, config.ff_dim, config.dropout, activation="relu", batch_first=True
    )
    return nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)


class ACTModel(nn.Module):
    """See the module docstring. Build with `ACTModel.build`, reload with `ACTModel.from_pretrained`."""

    def __init__(
        self, config: ACTConfig, stats: JointStats, *, pretrained: bool, local_files_only: bool = True
    ):
        super().__init__()
        if not config.cameras:
            raise ValueError("ACTConfig.cameras is empty")
        self.config = config
        self.tokenizer, self.text_encoder = build_text_encoder(
            config, pretrained=pretrained, local_files_only=local_files_only
        )
        text_dim = self.text_encoder.config.hidden_size
        weights = config.backbone_weights if pretrained else None
        resnet = load_resnet(config.backbone, weights, local_files_only=local_files_only)
        self.backbones = nn.ModuleDict(  # one ResNet per camera, each starting from the same weights
            {cam: FiLMResNet(copy.deepcopy(resnet), text_dim, config.film_stages) for cam in config.cameras}
        )
        loaded = resnet.config
        config.backbone = {**config.backbone, **{k: getattr(loaded, k) for k in config.backbone}}
        self.stats_count = stats.count
        d, dof = config.hidden_dim, config.dof
        channels = self.backbones[config.cameras[0]].out_channels
        self.register_buffer("joint_mean", torch.as_tensor(stats.mean, dtype=torch.float32))
        self.register_buffer("joint_std", torch.as_tensor(stats.std, dtype=torch.float32))
        self.register_buffer("pixel_mean", torch.tensor(IMAGENET_MEAN)[:, None, None], persistent=False)
        self.register_buffer("pixel_std", torch.tensor(IMAGENET_STD)[:, None, None], persistent=False)
        self.input_proj = nn.Conv2d(channels, d, kernel_size=1)
        self.camera_embed = nn.Embedding(len(config.cameras), d)
        self.proprio_proj = nn.Sequential(nn.Linear(dof + 1, d), nn.ReLU(), nn.Linear(d, d))
        self.text_proj = nn.Linear(text_dim, d)
        self.latent_out_proj = nn.Linear(config.latent_dim, d)
        self.leading_pos = nn.Embedding(3, d)  # latent, proprio, instruction
        self.encoder = _encoder(config, config.enc_layers)
        decoder_layer = nn.TransformerDecoderLayer(
            d, config.heads, config.ff_dim, config.dropout, activation="relu", batch_first=True
        )
        self.decoder = nn.TransformerDecoder(decoder_layer, config.dec_layers, norm=nn.LayerNorm(d))
        self.query_embed = nn.Embedding(config.chunk_size, d)
        self.joint_head = nn.Linear(d, dof)
        self.gripper_head = nn.Linear(d, 1)
        # CVAE encoder over [CLS, proprio, action chunk]
        self.cvae_encoder = _encoder(config, config.enc_layers)
        self.cls_embed = nn.Embedding(1, d)
        self.cvae_proprio_proj = nn.Linear(dof + 1, d)
        self.cvae_action_proj = nn.Linear(dof + 1, d)
        self.latent_proj = nn.Linear(d, 2 * config.latent_dim)
        self.register_buffer("cvae_pos", sine_table(2 + config.chunk_size, d), persistent=False)
        self._text_cache: dict[str, torch.Tensor] = {}

    # ------------------------------------------------------------------ construction and persistence
    @classmethod
    def build(
        cls, config: ACTConfig, stats: JointStats, *, pretrained: bool = True, local_files_only: bool = True
    ) -> ACTModel:
        """A new model; with `pretrained`, ImageNet ResNet and CLIP weights where available offline."""
        return cls(config, stats, pretrained=pretrained, local_files_only=local_files_only)

    def save_pretrained(self, directory: str | Path) -> None:
        """config.json, model.safetensors, normalisation.json and the tokenizer, into `directory`."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        atomic_write_text(directory / CONFIG_FILE, json.dumps(self.config.to_dict(), indent=2) + "\n")
        stats = JointStats(
            self.joint_mean.double().cpu().numpy(), self.joint_std.double().cpu().numpy(), self.stats_count
        )
        atomic_write_text(directory / STATS_FILE, json.dumps(stats.to_dict(), indent=2) + "\n")
        self.tokenizer.save_pretrained(directory / TOKENIZER_DIR)
        state = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}
        safetensors.torch.save_file(state, directory / WEIGHTS_FILE, metadata={"format": "pt"})

    @classmethod
    def from_pretrained(cls, directory: str | Path, *, preset: str | None = None) -> ACTModel:
        """Reload a saved model (no download); `preset`, when given, must match the checkpoint's."""
        directory = Path(directory)
        config = ACTConfig.load(directory / CONFIG_FILE)
        if preset is not None and config.preset != preset:
            raise CheckpointError(
                f"checkpoint was trained with preset '{config.preset}', not '{preset}'", file=directory
            )
        stats_path = directory / STATS_FILE
        try:
            stats = JointStats.from_dict(json.loads(stats_path.read_text()))
        except (FileNotFoundError, KeyError, json.JSONDecodeError) as exc:
            raise CheckpointError(
                f"missing or unreadable normalisation statistics ({exc})", file=stats_path
            ) from None
        model = cls(config, stats, pretrained=False)
        model.tokenizer = load_tokenizer(directory / TOKENIZER_DIR)
        vocab = (config.text_config or {}).get("vocab_size")
        if vocab is not None and len(model.tokenizer) != vocab:  # another model's tokenizer: wrong token ids
            raise CheckpointError(
                f"tokenizer has {len(model.tokenizer)} tokens, the text encoder {vocab}",
                file=directory / TOKENIZER_DIR,
            )
        model.load_weights(directory / WEIGHTS_FILE)
        return model

    def load_weights(self, path: Path) -> None:
        """Load a safetensors state dict, naming the first tensor that does not fit this architecture."""
        try:
            state = safetensors.torch.load_file(path)
        except (FileNotFoundError, safetensors.SafetensorError, OSError) as exc:
            raise CheckpointError(f"cannot read weights ({exc})", file=path) from None
        own = self.state_dict()
        for key, value in own.items():
            if key not in state:
                raise CheckpointError("weights lack a tensor this architecture needs", file=path, field=key)
            if state[key].shape != value.shape:
                raise CheckpointError(
                    f"shape {tuple(state[key].shape)} does not fit the architecture's {tuple(value.shape)} "
                    "(config.json and weights disagree)",
                    file=path,
                    field=key,
                )
        extra = sorted(set(state) - set(own))
        if extra:
            raise CheckpointError("weights hold tensors this architecture lacks", file=path, field=extra[0])
        self.load_state_dict(state)

    # ------------------------------------------------------------------ normalisation
    def normalise_joints(self, joints: torch.Tensor) -> torch.Tensor:
        return (joints - self.joint_mean) / self.joint_std

    def denormalise_joints(self, joints: torch.Tensor) -> torch.Tensor:
        return joints * self.joint_std + self.joint_mean

    def _normalise_state(self, state: torch.Tensor, gripper_first: bool) -> torch.Tensor:
        """Proprio [gripper, joints] or actions [..., joints, gripper] with the joints z-scored."""
        if gripper_first:
            return torch.cat([state[..., :1], self.normalise_joints(state[..., 1:])], -1)
        return torch.cat([self.normalise_joints(state[..., :-1]), state[..., -1:]], -1)

    # ------------------------------------------------------------------ forward
    def train(self, mode: bool = True) -> ACTModel:
        super().train(mode)
        self.text_encoder.eval()  # frozen CLIP
        return self

    @torch.no_grad()
    def encode_instructions(self, instructions: Sequence[str]) -> torch.Tensor:
        """(B, text_dim) CLIP pooled embeddings; each distinct instruction is encoded once and cached."""
        device = self.joint_mean.device
        new = sorted({s for s in instructions if s not in self._text_cache})
        if new:
            tokens = self.tokenizer(
                new,
                padding="max_length",
                truncation=True,
                max_length=self.config.max_text_tokens,
                return_tensors="pt",
            ).to(device)
            pooled = self.text_encoder(**tokens).pooler_output.float()
            self._text_cache.update({s: e for s, e in zip(new, pooled, strict=True)})
        return torch.stack([self._text_cache[s].to(device) for s in instructions])

    def encode_images(self, images: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """(B, cameras, 3, H, W) in [0, 1] -> (B, tokens, hidden) image tokens with position embeddings."""
        tokens = []
        for c, cam in enumerate(self.config.cameras):
            pixels = (images[:, c] - self.pixel_mean) / self.pixel_std
            features = self.input_proj(self.backbones[cam](pixels, text))
            _, d, h, w = features.shape
            pos = sine_grid(h, w, d).to(features) + self.camera_embed.weight[c]
            tokens.append(features.flatten(2).transpose(1, 2) + pos)
        return torch.cat(tokens, 1)

    def forward(
        self,
        images: torch.Tensor,
        proprio: torch.Tensor,
        instructions: Sequence[str],
        actions: torch.Tensor | None = None,
        is_pad: torch.Tensor | None = None,
    ) -> ACTOutput:
        """Images (B, cameras, 3, H, W) in [0, 1]; proprio (B, dof+1) and actions (B, chunk, dof+1) in robot
        units. With actions (training) the latent comes from the CVAE encoder, otherwise it is zero."""
        batch = len(images)
        proprio_n = self._normalise_state(proprio, gripper_first=True)
        mu = logvar = None
        if actions is not None:
            mu, logvar = self._posterior(
                proprio_n, self._normalise_state(actions, gripper_first=False), is_pad
            )
            latent = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        else:
            latent = proprio.new_zeros(batch, self.config.latent_dim)
        text = self.encode_instructions(instructions).to(proprio.dtype)
        leading = (
            torch.stack([self.latent_out_proj(latent), self.proprio_proj(proprio_n), self.text_proj(text)], 1)
            + self.leading_pos.weight
        )
        memory = self.encoder(torch.cat([leading, self.encode_images(images, text)], 1))
        hidden = self.decoder(self.query_embed.weight.expand(batch, -1, -1), memory)
        return ACTOutput(self.joint_head(hidden), self.gripper_head(hidden).squeeze(-1), mu, logvar)

    def _posterior(
        self, proprio_n: torch.Tensor, actions_n: torch.Tensor, is_pad: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        batch = len(actions_n)
        tokens = (
            torch.cat(
                [
                    self.cls_embed.weight.expand(batch, 1, -1),
                    self.cvae_proprio_proj(proprio_n)[:, None],
                    self.cvae_action_proj(actions_n),
                ],
                1,
            )
            + self.cvae_pos
        )
        mask = None
        if is_pad is not None:
            mask = torch.cat([is_pad.new_zeros(batch, 2), is_pad], 1)
        cls = self.cvae_encoder(tokens, src_key_padding_mask=mask)[:, 0]
        mu, logvar = self.latent_proj(cls).chunk(2, -1)
        return mu, logvar

    # ------------------------------------------------------------------ loss
    def loss(self, output: ACTOutput, actions: torch.Tensor, is_pad: torch.Tensor) -> dict[str, torch.Tensor]:
        """L1 on normalised joints + gripper_weight * BCE(gripper logit) + kl_weight * KL, padding masked."""
        valid = (~is_pad).to(output.joints.dtype)
        count = valid.sum().clamp(min=1)
        target = self.normalise_joints(actions[..., :-1])
        l1 = ((output.joints - target).abs().mean(-1) * valid).sum() / count
        bce_all = F.binary_cross_entropy_with_logits(
            output.gripper_logit.float(), actions[..., -1].float().clamp(0, 1), reduction="none"
        )
        bce = (bce_all * valid).sum() / count
        if output.mu is not None and output.logvar is not None:
            kl = (-0.5 * (1 + output.logvar - output.mu.pow(2) - output.logvar.exp())).sum(-1).mean()
        else:
            kl = l1.new_zeros(())
        total = l1 + self.config.gripper_weight * bce + self.config.kl_weight * kl
        return {"loss": total, "l1": l1, "bce": bce, "kl": kl}

    def backbone_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.backbones.parameters() if p.requires_grad]

    def head_parameters(self) -> list[nn.Parameter]:
        """Trainable parameters outside the ResNets (the frozen text encoder excluded)."""
        skip = {id(p) for p in self.backbones.parameters()} | {id(p) for p in self.text_encoder.parameters()}
        return [p for p in self.parameters() if p.requires_grad and id(p) not in skip]

"""ResNet image encoder with frozen batch norm and FiLM language conditioning (GENIMA's ACT backbone).

The network is transformers' `ResNetModel` (basic blocks, depths [2, 2, 2, 2] for ResNet-18), loaded with
``from_pretrained`` when ImageNet weights are available offline. Batch norm is frozen (ACT/DETR's
FrozenBatchNorm2d: running statistics and affine parameters fixed). FiLM follows RoboAgent/robobase: in each
basic block of the conditioned stages, the residual branch's output becomes ``(1 + gamma) * x + beta`` before
the skip connection is added, gamma and beta linear in the text embedding (zero-initialised, so training
starts from the plain ResNet).
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import nn
from transformers import ResNetConfig, ResNetModel

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class FrozenBatchNorm2d(nn.Module):
    """Batch norm with fixed statistics and affine parameters (buffers, never updated)."""

    def __init__(self, num_features: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.register_buffer("weight", torch.ones(num_features))
        self.register_buffer("bias", torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))

    @classmethod
    def from_batch_norm(cls, bn: nn.BatchNorm2d) -> FrozenBatchNorm2d:
        frozen = cls(bn.num_features, bn.eps)
        with torch.no_grad():
            for name in ("weight", "bias", "running_mean", "running_var"):
                getattr(frozen, name).copy_(getattr(bn, name))
        return frozen

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.weight * (self.running_var + self.eps).rsqrt()
        shift = self.bias - self.running_mean * scale
        return x * scale[None, :, None, None] + shift[None, :, None, None]


def freeze_batch_norm(module: nn.Module) -> nn.Module:
    """Replace every BatchNorm2d below `module` by a FrozenBatchNorm2d with its statistics, in place."""
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d):
            setattr(module, name, FrozenBatchNorm2d.from_batch_norm(child))
        else:
            freeze_batch_norm(child)
    return module


def load_resnet(
    architecture: dict[str, Any], weights: str | None, *, local_files_only: bool = True
) -> ResNetModel:
    """`weights` via from_pretrained when available (local cache only by default), else `architecture`."""
    if weights:
        try:
            return ResNetModel.from_pretrained(weights, local_files_only=local_files_only)
        except OSError as exc:
            warnings.warn(
                f"ResNet weights '{weights}' are not available offline ({exc}); initialising randomly",
                stacklevel=2,
            )
    return ResNetModel(ResNetConfig(**architecture))


class FiLMResNet(nn.Module):
    """ResNet feature extractor, FiLM-conditioned on a text embedding in the given (1-based) stages."""

    def __init__(self, resnet: ResNetModel, text_dim: int, film_stages: list[int]) -> None:
        super().__init__()
        self.resnet = freeze_batch_norm(resnet)
        self.resnet.pooler = nn.Identity()  # features are read before pooling
        self.out_channels: int = resnet.config.hidden_sizes[-1]
        films = {}
        for stage in film_stages:
            channels, depth = resnet.config.hidden_sizes[stage - 1], resnet.config.depths[stage - 1]
            films[str(stage)] = nn.Linear(text_dim, 2 * depth * channels)
            nn.init.zeros_(films[str(stage)].weight)
            nn.init.zeros_(films[str(stage)].bias)
        self.film = nn.ModuleDict(films)

    def forward(self, pixels: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) ImageNet-normalised pixels, (B, text_dim) text -> (B, C, H/32, W/32) features."""
        x = self.resnet.embedder(pixels)
        for number, stage in enumerate(self.resnet.encoder.stages, start=1):
            film = self.film[str(number)](text) if str(number) in self.film else None
            for index, block in enumerate(stage.layers):
                branch = block.layer(x)
                if film is not None:
                    gamma, beta = film.view(len(x), len(stage.layers), 2, -1)[:, index].unbind(1)
                    branch = (1 + gamma[:, :, None, None]) * branch + beta[:, :, None, None]
                x = block.activation(branch + block.shortcut(x))
        return x

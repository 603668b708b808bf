"""Image augmentations for ACT training, batched in torch on the training device (torchvision-free).

Each image of each sample gets its own random crop (resized back to full size), colour jitter (brightness,
contrast, saturation; no hue shift, since sphere colours identify joints) and Gaussian pixel noise.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812 (the PyTorch convention)

from genima_models.act.config import TrainConfig

LUMA = (0.299, 0.587, 0.114)


def _uniform(
    n: int, low: float, high: float, like: torch.Tensor, generator: torch.Generator | None
) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, device=like.device, dtype=like.dtype, generator=generator)


def random_crop(
    images: torch.Tensor, fraction: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """(M, 3, H, W): a random square window of `fraction` of each side per image, resized back (bilinear)."""
    if fraction >= 1.0:
        return images
    m = len(images)
    theta = torch.zeros(m, 2, 3, device=images.device, dtype=images.dtype)
    theta[:, 0, 0] = theta[:, 1, 1] = fraction
    theta[:, 0, 2] = _uniform(m, fraction - 1, 1 - fraction, images, generator)
    theta[:, 1, 2] = _uniform(m, fraction - 1, 1 - fraction, images, generator)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


def colour_jitter(
    images: torch.Tensor,
    brightness: float,
    contrast: float,
    saturation: float,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """(M, 3, H, W) in [0, 1]: per-image brightness, contrast and saturation factors from U[1 - x, 1 + x]."""
    m = len(images)
    luma = torch.tensor(LUMA, device=images.device, dtype=images.dtype)[None, :, None, None]
    out = images * _uniform(m, 1 - brightness, 1 + brightness, images, generator)[:, None, None, None]
    mean = (out * luma).sum(1, keepdim=True).mean((2, 3), keepdim=True)
    out = (
        mean + (out - mean) * _uniform(m, 1 - contrast, 1 + contrast, images, generator)[:, None, None, None]
    )
    grey = (out * luma).sum(1, keepdim=True)
    out = (
        grey
        + (out - grey) * _uniform(m, 1 - saturation, 1 + saturation, images, generator)[:, None, None, None]
    )
    return out


def augment_images(
    images: torch.Tensor, config: TrainConfig, generator: torch.Generator | None = None
) -> torch.Tensor:
    """(B, cameras, 3, H, W) float in [0, 1] -> augmented, same shape, clamped to [0, 1]."""
    flat = images.flatten(0, 1)
    flat = random_crop(flat, config.crop_fraction, generator)
    flat = colour_jitter(flat, config.brightness, config.contrast, config.saturation, generator)
    if config.noise_std > 0:
        noise = torch.randn(flat.shape, device=flat.device, dtype=flat.dtype, generator=generator)
        flat = flat + config.noise_std * noise
    return flat.clamp(0, 1).view_as(images)

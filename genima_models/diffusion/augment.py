"""GENIMA's diffusion augmentations in plain torch (torchvision is not a dependency).

* `random_shift`: reflect-pad by a few pixels and crop back at one random offset, the same offset for the
  conditioning and the target image so the spheres stay registered with the scene.
* `color_jitter`: torchvision's ColorJitter semantics (brightness, contrast, saturation and hue factors
  drawn uniformly, the four adjustments applied in a random order), for the conditioning image only.

Images are float (3, H, W) tensors in [0, 1]; randomness comes from an explicit `torch.Generator`.
"""

from __future__ import annotations

import torch
from torch.nn import functional

GREY_WEIGHTS = (0.2989, 0.587, 0.114)  # ITU-R 601 luma, as torchvision's rgb_to_grayscale


def random_shift(images: list[torch.Tensor], padding: int, generator: torch.Generator) -> list[torch.Tensor]:
    """Reflect-pad every (C, H, W) image by `padding` and crop all at the same random offset."""
    if padding == 0:
        return images
    dy, dx = torch.randint(0, 2 * padding + 1, (2,), generator=generator).tolist()
    out = []
    for image in images:
        H, W = image.shape[-2:]
        padded = functional.pad(image[None], (padding,) * 4, mode="reflect")[0]
        out.append(padded[:, dy : dy + H, dx : dx + W])
    return out


def _grey(image: torch.Tensor) -> torch.Tensor:
    weights = torch.tensor(GREY_WEIGHTS, dtype=image.dtype, device=image.device)
    return (image * weights[:, None, None]).sum(dim=0, keepdim=True)


def _blend(image: torch.Tensor, other: torch.Tensor, factor: float) -> torch.Tensor:
    return (factor * image + (1 - factor) * other).clamp(0, 1)


def rgb_to_hsv(image: torch.Tensor) -> torch.Tensor:
    """(3, H, W) RGB in [0, 1] to HSV with hue in [0, 1)."""
    r, g, b = image
    value, _ = image.max(dim=0)
    chroma = value - image.min(dim=0).values
    safe_chroma = torch.where(chroma > 0, chroma, torch.ones_like(chroma))
    saturation = torch.where(value > 0, chroma / torch.where(value > 0, value, torch.ones_like(value)), 0)
    hue = torch.where(
        value == r,
        (g - b) / safe_chroma,
        torch.where(value == g, 2 + (b - r) / safe_chroma, 4 + (r - g) / safe_chroma),
    )
    hue = torch.where(chroma > 0, torch.remainder(hue / 6, 1.0), torch.zeros_like(hue))
    return torch.stack([hue, saturation, value])


def hsv_to_rgb(image: torch.Tensor) -> torch.Tensor:
    """Inverse of `rgb_to_hsv`."""
    hue, saturation, value = image
    sector = hue * 6
    # each channel is v - v s clamp(min(k, 4 - k), 0, 1) with k = (n + 6h) mod 6, n = 5, 3, 1 for r, g, b
    channels = []
    for n in (5, 3, 1):
        k = torch.remainder(n + sector, 6)
        channels.append(value - value * saturation * torch.clamp(torch.minimum(k, 4 - k), 0, 1))
    return torch.stack(channels)


def color_jitter(
    image: torch.Tensor,
    brightness: float,
    contrast: float,
    saturation: float,
    hue: float,
    generator: torch.Generator,
) -> torch.Tensor:
    """Random brightness, contrast, saturation and hue changes in a random order (ColorJitter semantics)."""

    def factor(spread: float) -> float:
        return 1 + spread * (2 * torch.rand((), generator=generator).item() - 1)

    shift = hue * (2 * torch.rand((), generator=generator).item() - 1)
    factors = (factor(brightness), factor(contrast), factor(saturation))
    for which in torch.randperm(4, generator=generator).tolist():
        if which == 0:
            image = (image * factors[0]).clamp(0, 1)
        elif which == 1:
            image = _blend(image, _grey(image).mean(), factors[1])
        elif which == 2:
            image = _blend(image, _grey(image), factors[2])
        elif shift:
            hsv = rgb_to_hsv(image)
            hsv[0] = torch.remainder(hsv[0] + shift, 1.0)
            image = hsv_to_rgb(hsv)
    return image

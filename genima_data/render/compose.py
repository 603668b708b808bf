"""Random backgrounds for the controller's input and GENIMA's 2x2 tiling of the four cameras.

GENIMA trains its controller on sphere targets whose non-sphere pixels are replaced by a random texture
(the MIL object-texture set) and whose sphere pixels are blended with it, with a sphere weight drawn
uniformly from [0.7, 1] per image. `TextureSource` offers procedurally generated textures as the offline
default (seeded, reproducible) and any folder of images otherwise.

The diffusion stage sees the four cameras as one 512x512 image of 256x256 tiles in the order
[wrist, front; right_shoulder, left_shoulder] (`GENIMA_TILE_ORDER`).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from genima_data.errors import GenimaDataError
from genima_data.render.pixels import put_pixels, take_pixels

GENIMA_TILE_ORDER: tuple[tuple[str, str], tuple[str, str]] = (
    ("wrist", "front"),
    ("right_shoulder", "left_shoulder"),
)
GENIMA_MIN_SPHERE_WEIGHT = 0.7  # GENIMA's alpha_blend: sphere weight ~ U[0.7, 1]
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}
PROCEDURAL_BANK_SIZE = 64  # base textures per seed; every sample is a random crop, flip and channel order
FOLDER_CACHE_SIZE = 256


class SphereLayer(Protocol):
    """Spheres on black (premultiplied) with their coverage: a RenderedTarget or RenderedSpheres."""

    sphere_rgb: np.ndarray
    alpha: np.ndarray


# ------------------------------------------------------------------------------------ backgrounds
def _value_noise(rng: np.random.Generator, size: tuple[int, int], cells: int) -> np.ndarray:
    """Smooth noise in [0, 1]: a random cells x cells grid upsampled bicubically."""
    grid = rng.random((cells + 3, cells + 3)).astype(np.float32)
    big = cv2.resize(grid, (size[1] + 3 * size[1] // cells, size[0] + 3 * size[0] // cells), cv2.INTER_CUBIC)
    return np.clip(big[: size[0], : size[1]], 0, 1)


def _pattern(rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    """One greyscale pattern in [0, 1]: stripes, checks, rings, cells or multi-octave noise."""
    H, W = size
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32) / max(H, W)
    angle = rng.uniform(0, np.pi)
    along = xx * np.cos(angle) + yy * np.sin(angle)
    across = -xx * np.sin(angle) + yy * np.cos(angle)
    frequency = rng.uniform(3, 24)
    kind = rng.integers(5)
    if kind == 0:  # stripes, hard or soft
        wave = np.sin(2 * np.pi * frequency * along)
        return (wave > 0).astype(np.float32) if rng.random() < 0.5 else (wave + 1) / 2
    if kind == 1:  # checks
        return ((np.floor(frequency * along) + np.floor(frequency * across)) % 2).astype(np.float32)
    if kind == 2:  # rings
        cy, cx = rng.uniform(0, 1, 2)
        return (np.sin(2 * np.pi * frequency * np.hypot(yy - cy, xx - cx)) + 1) / 2
    if kind == 3:  # cells: nearest of random seeds, each its own grey
        seeds = rng.random((int(rng.integers(6, 40)), 2)).astype(np.float32)
        d = (yy[..., None] - seeds[:, 0]) ** 2 + (xx[..., None] - seeds[:, 1]) ** 2
        return rng.random(len(seeds)).astype(np.float32)[np.argmin(d, axis=-1)]
    octaves = [_value_noise(rng, size, int(2**k)) * 0.5**k for k in range(2, 2 + int(rng.integers(2, 5)))]
    noise = np.sum(octaves, axis=0)
    return (noise - noise.min()) / max(float(np.ptp(noise)), 1e-6)


def procedural_texture(rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    """A random coloured texture (H, W, 3) uint8: a pattern mapped through a random palette, with grain."""
    pattern = _pattern(rng, size)
    palette = rng.integers(0, 256, (int(rng.integers(2, 5)), 3)).astype(np.float32)
    position = pattern * (len(palette) - 1)
    low = np.floor(position).astype(np.int64)
    high = np.minimum(low + 1, len(palette) - 1)
    frac = (position - low)[..., None]
    image = palette[low] * (1 - frac) + palette[high] * frac
    grain = _value_noise(rng, size, max(size) // 2)[..., None] - 0.5
    image = image * (1 + rng.uniform(0, 0.4) * grain)
    return np.clip(image, 0, 255).astype(np.uint8)


class TextureSource:
    """Random background textures: procedural by default (seeded), or the images of `folder`.

    `sample(rng, (H, W))` is a pure function of the generator's state and the source, so a seeded
    generator reproduces the same backgrounds. Procedural textures come from a bank of base textures
    fixed by `seed`, each drawn as a random crop with a random flip and channel order.
    """

    def __init__(self, folder: str | Path | None = None, seed: int = 0) -> None:
        self.folder = Path(folder) if folder is not None else None
        self.seed = int(seed)
        self.files: list[Path] = []
        if self.folder is not None:
            if not self.folder.is_dir():
                raise GenimaDataError("texture folder does not exist", file=self.folder)
            self.files = sorted(
                p for p in self.folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
            )
            if not self.files:
                raise GenimaDataError(
                    f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in the texture folder", file=self.folder
                )
        self._cache: OrderedDict[tuple[Any, ...], np.ndarray] = OrderedDict()

    def describe(self) -> dict[str, Any]:
        """What decides the backgrounds, for the record kept next to the targets."""
        if self.folder is None:
            return {"kind": "procedural", "seed": self.seed, "bank": PROCEDURAL_BANK_SIZE}
        return {
            "kind": "folder",
            "folder": str(self.folder.resolve()),
            "images": len(self.files),
            "seed": self.seed,
        }

    def _cached(self, key: tuple[Any, ...], make: Any) -> np.ndarray:
        image = self._cache.pop(key, None)
        if image is None:
            image = make()
        self._cache[key] = image
        while len(self._cache) > FOLDER_CACHE_SIZE:
            self._cache.popitem(last=False)
        return image

    def _bank_texture(self, index: int, size: tuple[int, int]) -> np.ndarray:
        larger = (size[0] * 3 // 2, size[1] * 3 // 2)  # room for a random crop
        return self._cached(
            ("bank", index, size),
            lambda: procedural_texture(np.random.default_rng([self.seed, index]), larger),
        )

    def _folder_image(self, index: int, size: tuple[int, int]) -> np.ndarray:
        path = self.files[index]

        def load() -> np.ndarray:
            bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if bgr is None:
                raise GenimaDataError("cannot read texture image", file=path)
            interpolation = (
                cv2.INTER_AREA if bgr.shape[0] * bgr.shape[1] > size[0] * size[1] else cv2.INTER_LINEAR
            )
            return cv2.cvtColor(
                cv2.resize(bgr, (size[1], size[0]), interpolation=interpolation), cv2.COLOR_BGR2RGB
            )

        return self._cached(("file", index, size), load)

    def sample(self, rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
        """One background image (H, W, 3) uint8."""
        size = (int(size[0]), int(size[1]))
        if self.files:
            return self._folder_image(int(rng.integers(len(self.files))), size).copy()
        texture = self._bank_texture(int(rng.integers(PROCEDURAL_BANK_SIZE)), size)
        y0 = int(rng.integers(texture.shape[0] - size[0] + 1))
        x0 = int(rng.integers(texture.shape[1] - size[1] + 1))
        texture = texture[y0 : y0 + size[0], x0 : x0 + size[1]]
        if rng.random() < 0.5:
            texture = texture[:, ::-1]
        if rng.random() < 0.5:
            texture = texture[::-1]
        return np.ascontiguousarray(texture[..., rng.permutation(3)])


def spheres_over(
    sphere_rgb: np.ndarray,
    alpha: np.ndarray,
    base: np.ndarray,
    weight: np.ndarray | float = 1.0,
    *,
    in_place: bool = False,
) -> np.ndarray:
    """Premultiplied spheres over `base` images of the same shape with sphere weight w, uint8.

    ``out = w * sphere_rgb + (1 - w * alpha) * base``, computed only where alpha > 0 (elsewhere the base
    shows unchanged). w = 1 composites the spheres; GENIMA's random backgrounds use w ~ U[0.7, 1], one
    weight per image of a stack. `in_place` writes into `base` (a uint8 array the caller owns).
    """
    if base.shape != sphere_rgb.shape:
        raise GenimaDataError(f"image is {base.shape}, the spheres {sphere_rgb.shape}", field="image")
    out = base if in_place else np.array(base, dtype=np.uint8, copy=True)
    flat_alpha = alpha.reshape(-1)
    covered = np.flatnonzero(flat_alpha > 0)  # a bool mask first: nonzero on floats is ~6x slower
    w = np.asarray(weight, np.float32).reshape(-1)
    w = w[covered // (flat_alpha.size // w.size)][:, None]  # one weight per image of the stack
    spheres, under = take_pixels(sphere_rgb, covered), take_pixels(out, covered)
    blended = np.clip(np.rint(w * spheres + (1.0 - w * flat_alpha[covered, None]) * under), 0, 255)
    put_pixels(out, covered, blended.astype(np.uint8))
    return out


def random_background_target(
    target: SphereLayer,
    background: np.ndarray,
    rng: np.random.Generator,
    min_weight: float = GENIMA_MIN_SPHERE_WEIGHT,
) -> np.ndarray:
    """The controller's input: spheres blended over `background` with a weight ~ U[min_weight, 1]."""
    return spheres_over(target.sphere_rgb, target.alpha, background, rng.uniform(min_weight, 1.0))


# ------------------------------------------------------------------------------------ tiling
def _resized(image: np.ndarray, size: int) -> np.ndarray:
    if image.shape[-3:-1] == (size, size):
        return image
    frames = image.reshape(-1, *image.shape[-3:])
    interpolation = cv2.INTER_AREA if image.shape[-3] > size else cv2.INTER_LINEAR
    out = np.stack([cv2.resize(f, (size, size), interpolation=interpolation) for f in frames])
    return out.reshape(*image.shape[:-3], size, size, image.shape[-1])


def tile_2x2(
    images: Mapping[str, np.ndarray],
    order: tuple[tuple[str, str], tuple[str, str]] = GENIMA_TILE_ORDER,
    tile_size: int = 256,
) -> np.ndarray:
    """Four camera images (…, H, W, 3) as one (…, 2*tile_size, 2*tile_size, 3) image, tiles in `order`.

    Images of another size are resized to tile_size (area interpolation when shrinking).
    """
    missing = [name for row in order for name in row if name not in images]
    if missing:
        raise GenimaDataError(f"tiling needs cameras {[n for r in order for n in r]}; missing {missing}")
    rows = [
        np.concatenate([_resized(np.asarray(images[n]), tile_size) for n in row], axis=-2) for row in order
    ]
    return np.concatenate(rows, axis=-3)


def untile_2x2(
    tiled: np.ndarray, order: tuple[tuple[str, str], tuple[str, str]] = GENIMA_TILE_ORDER
) -> dict[str, np.ndarray]:
    """The four camera tiles of a 2x2 image (…, 2T, 2T, 3), by name."""
    height, width = tiled.shape[-3], tiled.shape[-2]
    if height % 2 or width % 2:
        raise GenimaDataError(f"a 2x2 tiled image needs even height and width, got {height}x{width}")
    h, w = height // 2, width // 2
    return {
        name: tiled[..., r * h : (r + 1) * h, c * w : (c + 1) * w, :]
        for r, row in enumerate(order)
        for c, name in enumerate(row)
    }

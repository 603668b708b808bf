"""Find GENIMA's target spheres in an image by their colour: rendered targets and diffusion-generated ones.

Each sphere has one flat colour (gripper open / closed, one per joint) crossed by black stripes. A pixel
belongs to a sphere colour when that colour is the nearest of the sphere colours and lies within
`COLOUR_TOLERANCE` (Euclidean RGB distance; the closest pair that must stay apart, joint red (154, 0, 0) and
a black stripe, is 154 apart, so 60 keeps stripes, shadows and anti-aliased rims of other colours out while
accepting the colour noise of generated images). Given the observation the target was drawn on
(`background`), pixels that did not change by more than `CHANGE_THRESHOLD` (largest channel difference)
are scene, not sphere: a red object in the scene is never taken for the red sphere.

The pixels of one colour are grouped after dilation (so the bands a sphere's stripes cut apart join up),
the group with the most pixels is the sphere, and specks of fewer than `MIN_SPECK_PIXELS` are dropped.
Its centre is the least-squares circle through the group's convex-hull vertices: the hull vertices lie on
the sphere's outline even where black stripes cut the coloured area (a plain pixel centroid is pulled
away from the wide end stripe by up to 0.15 radii). Small or degenerate groups fall back to the centroid.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from genima_data.render.targets import TargetConfig

COLOUR_TOLERANCE = 60.0  # max Euclidean RGB distance from a sphere colour
CHANGE_THRESHOLD = 40  # min largest-channel change from the background for a sphere pixel
MIN_PIXELS = 4  # fewer pixels of a colour than this: not detected
MIN_SPECK_PIXELS = 3  # isolated groups smaller than this inside a sphere's cluster are noise
JOIN_FRACTION = 0.02  # pixels of one colour within this fraction of the image size are one sphere
MIN_HULL_VERTICES = 5  # fewer hull vertices than this: centroid instead of a circle fit


@dataclass(frozen=True)
class SphereBlob:
    """One detected sphere: its colour's name, centre (u, v) and radius in pixels, and pixel count."""

    name: str
    centre: tuple[float, float]
    radius: float
    pixels: int


def classify_colours(
    image: np.ndarray,
    colours: Sequence[Sequence[int]],
    *,
    tolerance: float = COLOUR_TOLERANCE,
    background: np.ndarray | None = None,
    change_threshold: int = CHANGE_THRESHOLD,
) -> np.ndarray:
    """(H, W) int16 label image: index of the nearest colour within `tolerance`, or -1."""
    image = _check_rgb(image, "image")
    palette = np.asarray(colours, dtype=np.float32).reshape(-1, 3)
    distance = np.linalg.norm(image[..., None, :].astype(np.float32) - palette, axis=-1)
    labels = distance.argmin(axis=-1).astype(np.int16)
    labels[distance.min(axis=-1) > tolerance] = -1
    if background is not None:
        background = _check_rgb(background, "background")
        if background.shape != image.shape:
            raise ValueError(f"background is {background.shape}, image is {image.shape}")
        change = np.abs(image.astype(np.int16) - background.astype(np.int16)).max(axis=-1)
        labels[change <= change_threshold] = -1
    return labels


def detect_blobs(
    image: np.ndarray,
    colours: Mapping[str, Sequence[int]],
    *,
    tolerance: float = COLOUR_TOLERANCE,
    background: np.ndarray | None = None,
    change_threshold: int = CHANGE_THRESHOLD,
    min_pixels: int = MIN_PIXELS,
) -> dict[str, SphereBlob | None]:
    """The sphere of each named colour in `image` (uint8 HxWx3), or None where there is none."""
    labels = classify_colours(
        image,
        list(colours.values()),
        tolerance=tolerance,
        background=background,
        change_threshold=change_threshold,
    )
    join_px = max(1, round(JOIN_FRACTION * max(labels.shape)))
    return {name: _blob(name, labels == index, join_px, min_pixels) for index, name in enumerate(colours)}


def detect_spheres(
    image: np.ndarray,
    config: TargetConfig,
    *,
    background: np.ndarray | None = None,
    tolerance: float = COLOUR_TOLERANCE,
) -> dict[str, tuple[float, float] | None]:
    """Centre (u, v) of each sphere colour of `config` in `image` (gripper_open, gripper_closed, joint<j>)."""
    blobs = detect_blobs(image, config.sphere_colours(), tolerance=tolerance, background=background)
    return {name: None if blob is None else blob.centre for name, blob in blobs.items()}


def sphere_mask(blobs: Mapping[str, SphereBlob | None], shape: tuple[int, int]) -> np.ndarray:
    """(H, W) bool: the discs of the detected spheres (their stripes included)."""
    mask = np.zeros(shape, dtype=np.uint8)
    for blob in blobs.values():
        if blob is not None:
            centre = (round(blob.centre[0] * 16), round(blob.centre[1] * 16))
            cv2.circle(mask, centre, round(blob.radius * 16), 1, thickness=-1, shift=4)
    return mask.astype(bool)


def _check_rgb(image: np.ndarray, what: str) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"{what} must be uint8 HxWx3, got {image.shape} {image.dtype}")
    return image


def _blob(name: str, mask: np.ndarray, join_px: int, min_pixels: int) -> SphereBlob | None:
    if mask.sum() < min_pixels:
        return None
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * join_px + 1, 2 * join_px + 1))
    _, groups = cv2.connectedComponents(cv2.dilate(mask.astype(np.uint8), kernel), connectivity=8)
    counts = np.bincount(groups[mask])
    counts[0] = 0
    sphere = mask & (groups == counts.argmax())
    _, specks, stats, _ = cv2.connectedComponentsWithStats(sphere.astype(np.uint8), connectivity=8)
    keep = stats[:, cv2.CC_STAT_AREA] >= MIN_SPECK_PIXELS
    keep[0] = False  # label 0 is everything outside the sphere
    if keep.any():  # a sphere too small to have groups that large is all specks: keep it whole
        sphere = keep[specks]
    vs, us = np.nonzero(sphere)
    if len(us) < min_pixels:
        return None
    points = np.stack([us, vs], axis=1).astype(np.float64)
    centre, radius = _circle_through_hull(points)
    return SphereBlob(name, (float(centre[0]), float(centre[1])), float(radius), len(us))


def _circle_through_hull(points: np.ndarray) -> tuple[np.ndarray, float]:
    """Least-squares circle through the convex-hull vertices of `points`; the centroid when degenerate."""
    centroid = points.mean(axis=0)
    fallback = centroid, float(np.sqrt(len(points) / np.pi))
    hull = cv2.convexHull(points.astype(np.float32)).reshape(-1, 2).astype(np.float64)
    if len(hull) < MIN_HULL_VERTICES:
        return fallback
    # Kåsa fit: u² + v² = 2a u + 2b v + c, linear in (a, b, c)
    A = np.column_stack([2 * hull, np.ones(len(hull))])
    (a, b, c), *_ = np.linalg.lstsq(A, (hull**2).sum(axis=1), rcond=None)
    radius_sq = c + a * a + b * b
    lo, hi = points.min(axis=0), points.max(axis=0)
    if radius_sq <= 0 or not (lo[0] <= a <= hi[0] and lo[1] <= b <= hi[1]):
        return fallback
    return np.array([a, b]), float(np.sqrt(radius_sq))

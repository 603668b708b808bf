"""`write_preview`: a labelled contact sheet of one episode so a person can check the targets by eye.

One row per sampled frame t; per camera three tiles: the observation at t, the target (spheres of frame
``min(t + horizon, T - 2)`` on the observation) and the random-background target. Stored targets are shown
when the episode has them and they were made with the given config; otherwise they are rendered on the fly
with that config (and procedural textures for the random background), and the title says which.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np

from genima_data.atomic import atomic_write_bytes
from genima_data.episode import Episode
from genima_data.errors import GenimaDataError
from genima_data.render.compose import TextureSource
from genima_data.render.export import encode_png
from genima_data.render.pipeline import (
    cameras_for,
    made_with,
    random_backgrounds,
    requested_cameras,
    stored_record,
    target_path,
)
from genima_data.render.targets import TargetConfig, TargetError, TargetRenderer, target_frames
from genima_data.schema import Manifest
from genima_data.store import open_dataset

MIN_TILE = 128  # small images are enlarged (nearest neighbour) to at least this many pixels
GAP = 4
LABEL_HEIGHT = 18
HEADER_HEIGHT = 26
ROW_LABEL_WIDTH = 70
BACKGROUND = (24, 24, 28)
TEXT = (235, 235, 235)
FONT = cv2.FONT_HERSHEY_SIMPLEX


def _text(canvas: np.ndarray, text: str, x: int, y: int, scale: float = 0.4) -> None:
    cv2.putText(canvas, text, (x, y), FONT, scale, TEXT, 1, cv2.LINE_AA)


def _enlarged(image: np.ndarray, size: int) -> np.ndarray:
    return (
        image if image.shape[0] == size else cv2.resize(image, (size, size), interpolation=cv2.INTER_NEAREST)
    )


def _episode_tiles(
    dataset_root: Path,
    manifest: Manifest,
    episode: Episode,
    frames: np.ndarray,
    cameras: list[str],
    config: TargetConfig,
    seed: int,
) -> tuple[dict[str, list[np.ndarray]], str]:
    """Per camera, the observation / target / random-background image of each sampled frame."""
    renderer = TargetRenderer(manifest, config, root=dataset_root)
    textures = TextureSource(seed=seed)

    def stored(cam: str, kind: str) -> np.ndarray | None:
        path = target_path(cam, kind)
        if not made_with(stored_record(episode, path), config):  # other targets would mislabel the rows
            return None
        return np.stack([episode.frame(path, int(t)) for t in frames])

    tiles: dict[str, list[np.ndarray]] = {}
    for cam in cameras:
        observations = np.stack([episode.frame(f"cameras/{cam}/rgb", int(t)) for t in frames])
        targets, backgrounds = stored(cam, "rgb"), stored(cam, "rnd_bg")
        if targets is None or backgrounds is None:
            block = renderer.render_frames(episode, cam, frames)
            targets = block.over(observations) if targets is None else targets
            if backgrounds is None:
                backgrounds = random_backgrounds(
                    block, episode.episode_id, textures, config.random_bg_min_weight
                )
        tiles[cam] = [
            img for triple in zip(observations, targets, backgrounds, strict=True) for img in triple
        ]
    if all(made_with(stored_record(episode, target_path(c, "rgb")), config) for c in cameras):
        return tiles, f"stored targets, config {config.fingerprint()}"
    return tiles, f"targets rendered now, config {config.fingerprint()}"


def contact_sheet(
    dataset: str | Path,
    episode_id: str,
    *,
    frames: int = 4,
    cameras: list[str] | None = None,
    config: TargetConfig | None = None,
    seed: int = 0,
) -> np.ndarray:
    """The contact sheet of one episode as an RGB uint8 image (see the module docstring)."""
    config = config or TargetConfig()
    with open_dataset(dataset) as ds, ds.episode(episode_id) as episode:
        ts = np.unique(np.linspace(0, episode.length - 1, min(frames, episode.length)).round().astype(int))
        try:
            cams = cameras_for(episode, requested_cameras(ds.manifest, cameras or config.cameras))
            if not cams:
                raise TargetError("episode has no RGB camera streams")
            tiles, source = _episode_tiles(ds.path, ds.manifest, episode, ts, cams, config, seed)
        except GenimaDataError as exc:
            raise exc.located(file=ds.episode_path(episode_id), episode=episode_id) from None
        targets = target_frames(episode.length, config.horizon)[ts]
        title = f"{ds.manifest.name} / {episode_id}: '{episode.meta.instruction}' - {source}"
    size = max(MIN_TILE, max(t[0].shape[0] for t in tiles.values()))
    cols = 3 * len(cams)
    width = ROW_LABEL_WIDTH + cols * (size + GAP) + GAP * (len(cams) - 1)
    height = HEADER_HEIGHT + LABEL_HEIGHT + len(ts) * (size + GAP)
    sheet = np.full((height, width, 3), BACKGROUND, np.uint8)
    _text(sheet, title, GAP, 17, 0.45)
    for c, cam in enumerate(cams):
        x0 = ROW_LABEL_WIDTH + c * (3 * (size + GAP) + GAP)
        for k, label in enumerate((f"{cam}: obs", "target", "random bg")):
            _text(sheet, label, x0 + k * (size + GAP) + 2, HEADER_HEIGHT + 12)
        for r in range(len(ts)):
            y = HEADER_HEIGHT + LABEL_HEIGHT + r * (size + GAP)
            for k in range(3):
                x = x0 + k * (size + GAP)
                sheet[y : y + size, x : x + size] = _enlarged(tiles[cam][3 * r + k], size)
    for r, (t, target) in enumerate(zip(ts, targets, strict=True)):
        y = HEADER_HEIGHT + LABEL_HEIGHT + r * (size + GAP)
        _text(sheet, f"t={t}", 6, y + size // 2 - 4)
        _text(sheet, f"-> {target}", 6, y + size // 2 + 12)
    return sheet


def write_preview(dataset: str | Path, episode_id: str, out: str | Path, **options: Any) -> Path:
    """Write the contact sheet of one episode as a PNG file, atomically; options as `contact_sheet`."""
    atomic_write_bytes(out, encode_png(contact_sheet(dataset, episode_id, **options)))
    return Path(out)

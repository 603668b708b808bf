"""`export_genima_png`: stored targets as the PNG folders GENIMA's official code reads.

GENIMA's ``render_data.py`` writes two copies of an RLBench dataset next to it::

    <name>_rgb_rendered/<task>/variation<V>/episodes/episode<N>/<cam>_rgb/<t>.png   spheres on observations
                                                             .../tiled_rgb/<t>.png      observations, 2x2
                                                             .../tiled_rgb_rendered/<t>.png  targets, 2x2
    <name>_rnd_bg/<task>/variation<V>/episodes/episode<N>/<cam>_rgb/<t>.png         spheres on textures

with ``render_data_config.yaml`` at each root and ``variation_descriptions.pkl`` (a pickled list of
instruction strings) in each variation folder. It renders the frames t < T - 1 and tiles those; the
per-camera folders here hold every frame (frame T - 1 shows the target of frame T - 2, as GENIMA's clamp
does). Tiles are [wrist, front; right_shoulder, left_shoulder] at the cameras' own size; episodes whose
dataset lacks one of those four cameras get no tiled folders. RLBench's ``low_dim_obs.pkl`` is not
written (it needs RLBench's classes); convert the dataset to RLBench's layout for it.
"""

from __future__ import annotations

import json
import pickle
import re
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from genima_data.atomic import atomic_output, atomic_write_bytes, atomic_write_text
from genima_data.episode import Episode
from genima_data.errors import GenimaDataError
from genima_data.progress import progress_bar
from genima_data.render.compose import GENIMA_TILE_ORDER, tile_2x2
from genima_data.render.pipeline import RECORD_ATTR, stored_record, target_path
from genima_data.render.targets import TargetConfig
from genima_data.schema import Manifest, natural_key
from genima_data.store import open_dataset

EPISODE_FOLDER = re.compile(r"^episode\d+$")
TILE_CAMERAS = tuple(name for row in GENIMA_TILE_ORDER for name in row)


@dataclass
class ExportResult:
    """Folders written by `export_genima_png` and the episodes' folder names."""

    roots: list[Path] = field(default_factory=list)
    episodes: dict[str, str] = field(default_factory=dict)  # episode id -> episode<N> folder
    untiled: list[str] = field(default_factory=list)  # episodes without the four tile cameras


def encode_png(image: np.ndarray) -> bytes:
    """An RGB uint8 image as PNG bytes."""
    ok, data = cv2.imencode(".png", cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2BGR))
    if not ok:
        raise GenimaDataError(f"cannot encode a {image.shape} {image.dtype} image as PNG")
    return data.tobytes()


def write_png(path: Path, image: np.ndarray) -> None:
    """Write an RGB uint8 image as PNG (inside a folder that `atomic_output` renames into place)."""
    path.write_bytes(encode_png(image))


def episode_folders(manifest: Manifest, episode_ids: list[str]) -> dict[str, tuple[str, int, str]]:
    """(task, variation, episode<N>) per episode id: ids of the form episode<N> are kept, others are
    numbered in natural order within their task and variation."""
    out: dict[str, tuple[str, int, str]] = {}
    counters: dict[tuple[str, int], int] = {}
    for summary in sorted(manifest.episodes, key=lambda e: natural_key(e.episode_id)):
        if summary.episode_id not in episode_ids:
            continue
        group = (summary.task, summary.variation or 0)
        index = counters.get(group, 0)
        counters[group] = index + 1
        name = summary.episode_id if EPISODE_FOLDER.match(summary.episode_id) else f"episode{index}"
        out[summary.episode_id] = (*group, name)
    return out


def _export_episode(folder: Path, episode: Episode, cameras: list[str], kind: str) -> bool:
    """Write one episode folder atomically; returns whether it got tiled folders."""
    T = episode.length
    tiled = kind == "rgb" and all(f"cameras/{c}/rgb" in episode and c in cameras for c in TILE_CAMERAS)
    with atomic_output(folder) as tmp:
        for cam in cameras:
            (tmp / f"{cam}_rgb").mkdir(parents=True)
            frames = episode[target_path(cam, kind)]
            for t in range(T):
                write_png(tmp / f"{cam}_rgb" / f"{t}.png", np.asarray(frames[t]))
        if tiled:
            for sub, stream in (("tiled_rgb", "cameras/{}/rgb"), ("tiled_rgb_rendered", "targets/{}/rgb")):
                (tmp / sub).mkdir()
                for t in range(T - 1):
                    images = {c: np.asarray(episode[stream.format(c)][t]) for c in TILE_CAMERAS}
                    size = images["front"].shape[0]
                    write_png(tmp / sub / f"{t}.png", tile_2x2(images, tile_size=size))
    return tiled


def export_genima_png(
    dataset: str | Path,
    out: str | Path,
    *,
    cameras: list[str] | None = None,
    episodes: list[str] | None = None,
    progress: bool = False,
) -> ExportResult:
    """Write the stored targets of `dataset` under `out` in GENIMA's folder layout (module docstring)."""
    out = Path(out)
    result = ExportResult()
    descriptions: dict[Path, list[str]] = {}
    records: dict[Path, str] = {}
    with open_dataset(dataset) as ds:
        manifest = ds.manifest
        ids = ds.episode_ids if episodes is None else episodes
        folders = episode_folders(manifest, ids)
        with progress_bar(len(ids), "export-png", enabled=progress) as advance:
            for eid in ids:
                with ds.episode(eid) as episode:
                    task, variation, name = folders[eid]
                    result.episodes[eid] = name
                    for kind, suffix in (("rgb", "rgb_rendered"), ("rnd_bg", "rnd_bg")):
                        cams = [
                            c for c in (cameras or episode.target_names) if target_path(c, kind) in episode
                        ]
                        if not cams and kind == "rgb":
                            raise GenimaDataError(
                                "no targets to export; run render-targets first", file=ds.path, episode=eid
                            )
                        if not cams:
                            continue
                        root = out / f"{manifest.name}_{suffix}"
                        variation_dir = root / task / f"variation{variation}"
                        tiled = _export_episode(variation_dir / "episodes" / name, episode, cams, kind)
                        if kind == "rgb" and not tiled:
                            result.untiled.append(eid)
                        task_model = manifest.task(task)
                        known = descriptions.setdefault(
                            variation_dir, list(task_model.instructions if task_model else [])
                        )
                        if episode.meta.instruction and episode.meta.instruction not in known:
                            known.append(episode.meta.instruction)
                        records.setdefault(root, stored_record(episode, target_path(cams[0], kind)) or "")
                        if root not in result.roots:
                            result.roots.append(root)
                advance(1)
    for variation_dir, texts in descriptions.items():
        atomic_write_bytes(variation_dir / "variation_descriptions.pkl", pickle.dumps(texts, protocol=4))
    for root, record in records.items():
        if record:
            config = TargetConfig.parse(json.loads(record)["config"])
            atomic_write_text(
                root / "render_data_config.yaml", f"# {RECORD_ATTR}: {record}\n" + config.to_yaml()
            )
    return result

"""Sphere-localisation metric: how well the diffusion agent draws the target spheres where they belong.

For every evaluated frame the agent draws the targets of the four tiled cameras; the spheres are found
by colour (`genima_data.render.detect`, with the observation as background so scene objects of a sphere's
colour are ignored) and their centres compared with the ground-truth projections of the target poses
(`TargetRenderer.sphere_centres`). Reported per sphere and per camera: pixel error (mean, median, 90th
percentile) of detected spheres, detection rate (detected / visible in the ground truth), spurious
detections (drawn but not visible in the ground truth), and the gripper-state accuracy (open / closed
colour of the gripper sphere against the gripper state at the target frame).

``ground_truth=True`` scores the ground-truth targets themselves (stored `targets/<cam>/rgb`, or rendered)
instead of generated images: it validates the detector, whose error there should be about 0 px.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Group
from rich.table import Table

from genima_data.atomic import atomic_write_text
from genima_data.episode import Episode
from genima_data.errors import StoreError
from genima_data.progress import progress_bar
from genima_data.render.detect import SphereBlob, detect_blobs
from genima_data.render.targets import GRIPPER, TargetConfig, TargetRenderer, target_frame
from genima_data.store import open_dataset
from genima_models.data import episode_instruction, resolve_cameras
from genima_models.diffusion.agent import GENIMA_INFERENCE_STEPS, DiffusionAgent
from genima_models.diffusion.checkpoints import resolve_checkpoint
from genima_models.diffusion.config import DiffusionConfig, preset_config

HELD_OUT_SPLITS = ("test", "val")


@dataclass(frozen=True)
class SphereMeasurement:
    """One target sphere in one camera of one frame."""

    episode: str
    t: int
    camera: str
    sphere: str
    visible: bool  # in the ground truth (in front of the camera and inside the image)
    detected: bool
    error_px: float | None  # distance between detected and true centre, when both exist
    gripper_open: bool | None = None  # gripper sphere only: ground-truth state at the target frame
    detected_open: bool | None = None  # gripper sphere only: the colour it was drawn in


def _gripper_blob(blobs: Mapping[str, SphereBlob | None]) -> tuple[SphereBlob | None, bool | None]:
    """The gripper sphere (the larger of its open and closed colours) and whether it is drawn open."""
    open_blob, closed_blob = blobs.get("gripper_open"), blobs.get("gripper_closed")
    if open_blob is None and closed_blob is None:
        return None, None
    if closed_blob is None or (open_blob is not None and open_blob.pixels >= closed_blob.pixels):
        return open_blob, True
    return closed_blob, False


def measure_frame(
    episode: str,
    t: int,
    images: Mapping[str, np.ndarray],
    truth: Mapping[str, Mapping[str, tuple[float, float] | None]],
    gripper_open: bool,
    config: TargetConfig,
    observations: Mapping[str, np.ndarray] | None = None,
) -> list[SphereMeasurement]:
    """Compare the spheres detected in `images` (camera -> uint8) with the true centres (camera -> name)."""
    colours = config.sphere_colours()
    rows = []
    for camera, centres in truth.items():
        background = observations[camera] if observations is not None else None
        blobs = detect_blobs(images[camera], colours, background=background)
        for name, true_uv in centres.items():
            state = None
            if name == GRIPPER:
                blob, state = _gripper_blob(blobs)
            else:
                blob = blobs.get(name)
            error = None
            if blob is not None and true_uv is not None:
                error = float(np.hypot(blob.centre[0] - true_uv[0], blob.centre[1] - true_uv[1]))
            rows.append(
                SphereMeasurement(
                    episode=episode,
                    t=t,
                    camera=camera,
                    sphere=name,
                    visible=true_uv is not None,
                    detected=blob is not None,
                    error_px=error,
                    gripper_open=gripper_open if name == GRIPPER else None,
                    detected_open=state,
                )
            )
    return rows


def summarise(rows: Iterable[SphereMeasurement]) -> dict[str, Any]:
    """Error statistics, detection rate and spurious detections of a group of measurements."""
    rows = list(rows)
    visible = [r for r in rows if r.visible]
    errors = np.array([r.error_px for r in visible if r.error_px is not None], dtype=np.float64)
    stats: dict[str, Any] = {
        "visible": len(visible),
        "detected": int(errors.size),
        "detection_rate": errors.size / len(visible) if visible else None,
        "spurious": sum(1 for r in rows if r.detected and not r.visible),
        "mean_px": float(errors.mean()) if errors.size else None,
        "median_px": float(np.median(errors)) if errors.size else None,
        "p90_px": float(np.percentile(errors, 90)) if errors.size else None,
    }
    return stats


@dataclass
class DiffusionEvalReport:
    """Measurements of an evaluation and their summaries; `to_dict` is the JSON report."""

    source: str  # "generated" or "ground truth"
    dataset: str
    checkpoint: str | None
    steps: int | None
    episodes: list[str]
    measurements: list[SphereMeasurement] = field(default_factory=list)

    def gripper_state_accuracy(self) -> float | None:
        judged = [r for r in self.measurements if r.sphere == GRIPPER and r.visible and r.detected]
        if not judged:
            return None
        return sum(r.detected_open == r.gripper_open for r in judged) / len(judged)

    def by(self, key: str) -> dict[str, dict[str, Any]]:
        groups: dict[str, list[SphereMeasurement]] = {}
        for row in self.measurements:
            groups.setdefault(getattr(row, key), []).append(row)
        return {name: summarise(rows) for name, rows in groups.items()}

    def to_dict(self, *, with_measurements: bool = False) -> dict[str, Any]:
        out = {
            "source": self.source,
            "dataset": self.dataset,
            "checkpoint": self.checkpoint,
            "steps": self.steps,
            "episodes": self.episodes,
            "frames": len({(r.episode, r.t) for r in self.measurements}),
            "overall": summarise(self.measurements),
            "gripper_state_accuracy": self.gripper_state_accuracy(),
            "spheres": self.by("sphere"),
            "cameras": self.by("camera"),
        }
        if with_measurements:
            out["measurements"] = [asdict(r) for r in self.measurements]
        return out

    def write_json(self, path: str | Path) -> None:
        atomic_write_text(path, json.dumps(self.to_dict(with_measurements=True), indent=2) + "\n")

    def renderable(self) -> Group:
        """Rich tables: per sphere and per camera."""
        accuracy = self.gripper_state_accuracy()
        title = (
            f"sphere localisation ({self.source}); gripper-state accuracy "
            f"{'n/a' if accuracy is None else f'{accuracy:.1%}'}"
        )
        tables = [_table(f"{title} — per sphere", "sphere", self.by("sphere"))]
        tables.append(_table("per camera", "camera", self.by("camera")))
        tables.append(_table("overall", "", {"all": summarise(self.measurements)}))
        return Group(*tables)


def _table(title: str, key: str, groups: Mapping[str, Mapping[str, Any]]) -> Table:
    table = Table(title=title, title_justify="left")
    for column in (key, "mean px", "median px", "p90 px", "detected", "spurious"):
        table.add_column(column, justify="left" if column == key else "right")

    def px(value: float | None) -> str:
        return "—" if value is None else f"{value:.2f}"

    for name, s in groups.items():
        rate = (
            "—"
            if s["detection_rate"] is None
            else f"{s['detected']}/{s['visible']} ({s['detection_rate']:.0%})"
        )
        table.add_row(name, px(s["mean_px"]), px(s["median_px"]), px(s["p90_px"]), rate, str(s["spurious"]))
    return table


def held_out_episodes(manifest: Any) -> list[str]:
    """Episodes of the manifest's 'test' (else 'val') split; every episode when there is no such split."""
    for split in HELD_OUT_SPLITS:
        if manifest.splits.get(split):
            return list(manifest.splits[split])
    return [e.episode_id for e in manifest.episodes]


def _ground_truth_images(
    episode: Episode,
    t: int,
    cameras: list[str],
    renderer: TargetRenderer,
    observations: dict[str, np.ndarray],
) -> dict[str, np.ndarray]:
    images = {}
    for cam in cameras:
        stored = f"targets/{cam}/rgb"
        images[cam] = (
            episode.frame(stored, t)
            if stored in episode
            else renderer.render(episode, t, cam).over(observations[cam])
        )
    return images


def evaluate_diffusion(
    data: str | Path,
    *,
    checkpoint: str | Path | None = None,
    episodes: list[str] | None = None,
    frame_stride: int = 10,
    steps: int = GENIMA_INFERENCE_STEPS,
    seed: int = 0,
    batch_size: int = 4,
    ground_truth: bool = False,
    progress: bool = True,
    download_weights: bool = False,
) -> DiffusionEvalReport:
    """Score the agent of `checkpoint` (or, with `ground_truth`, the true targets) on dataset `data`;
    `download_weights` lets a missing base model be downloaded."""
    if checkpoint is None and not ground_truth:
        raise StoreError("a checkpoint is needed to evaluate generated images", field="checkpoint")
    config: DiffusionConfig = (
        resolve_checkpoint(checkpoint).config if checkpoint is not None else preset_config("genima")
    )
    with open_dataset(data) as store:
        resolve_cameras(store.manifest, config.cameras, file=Path(data))
        chosen = episodes or held_out_episodes(store.manifest)
        unknown = [e for e in chosen if e not in store]
        if unknown:
            raise StoreError(f"no episode(s) {unknown} in the dataset", file=data, field="episodes")
        agent = (
            None
            if ground_truth
            else DiffusionAgent.load(checkpoint, steps=steps, seed=seed, download=download_weights)
        )
        renderer = TargetRenderer(store.manifest, config.target_config, root=Path(data))
        report = DiffusionEvalReport(
            source="ground truth" if ground_truth else "generated",
            dataset=str(data),
            checkpoint=None if checkpoint is None else str(checkpoint),
            steps=None if ground_truth else steps,
            episodes=chosen,
        )
        total = sum(
            len(_frames(m.length, frame_stride)) for m in store.manifest.episodes if m.episode_id in chosen
        )
        with progress_bar(total, "scoring sphere targets", enabled=progress) as advance:
            for eid in chosen:
                with store.episode(eid) as ep:
                    ts = _frames(ep.length, frame_stride)
                    for start in range(0, len(ts), batch_size):
                        batch = ts[start : start + batch_size]
                        report.measurements += _score_frames(ep, batch, config, renderer, agent)
                        advance(len(batch))
    return report


def _frames(length: int, stride: int) -> list[int]:
    """Evaluated frames of an episode: every `stride`-th of 0 … T-2 (the frames GENIMA trains on)."""
    return list(range(0, max(1, length - 1), stride))


def _score_frames(
    episode: Episode,
    frames: list[int],
    config: DiffusionConfig,
    renderer: TargetRenderer,
    agent: DiffusionAgent | None,
) -> list[SphereMeasurement]:
    """Measurements of frames `frames` of one episode: generated by `agent`, or the ground truth."""
    cameras = config.cameras
    observations = [{cam: episode.frame(f"cameras/{cam}/rgb", t) for cam in cameras} for t in frames]
    if agent is None:
        images = [
            _ground_truth_images(episode, t, cameras, renderer, obs)
            for t, obs in zip(frames, observations, strict=True)
        ]
    else:
        instruction = episode_instruction(renderer.manifest, episode.meta.task, episode.meta.instruction)
        tiled = agent.generate_tiled(observations, [instruction] * len(frames))
        images = [
            agent.untile(tile, {c: obs[c].shape[:2] for c in cameras})
            for tile, obs in zip(tiled, observations, strict=True)
        ]
    targets = config.target_config
    rows = []
    for t, obs, drawn in zip(frames, observations, images, strict=True):
        target_t = target_frame(t, episode.length, targets.horizon)
        gripper_open = bool(episode.frame("robot/gripper_open", target_t) > targets.gripper_closed_threshold)
        truth = {cam: renderer.sphere_centres(episode, t, cam) for cam in cameras}
        rows += measure_frame(episode.episode_id, t, drawn, truth, gripper_open, targets, observations=obs)
    return rows

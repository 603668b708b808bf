"""Dataset statistics that merge exactly: per channel min, max, mean, std, count and q01/q99.

    stats = compute_stats("delivery.zarr")                    # every episode
    train = compute_stats("delivery.zarr", episodes=train_ids)
    joints = stats.field("robot/joint_positions")             # .mean .std .q01 .q99 ... per joint
    both = stats_a.merge(stats_b)                             # == stats of A ∪ B, bit for bit

Representation. Each channel is summarised by its exact histogram over a lossless representation: every
distinct finite value (float64, which holds float32 and uint8 samples exactly) with its count. Merging is
the union with counts added, so the merged histogram is the same whatever the grouping, and every summary
is a deterministic function of it: mean and variance by exactly rounded sums (`math.fsum`), quantiles by
numpy's default (linear, type 7) interpolation between order statistics, identical to ``np.quantile`` on
the pooled samples. Why not a binned histogram or a sketch: those give approximate quantiles, and
stats(A ∪ B) would differ from merge(stats(A), stats(B)). The cost is memory proportional to the number of
distinct values, i.e. at most the number of robot samples (8 bytes + 8 bytes each): a 1,000-episode,
300-frame 8-channel dataset needs about 40 MB; gripper states and uint8 image channels need at most 256
entries. Images are summarised from `image_frames` evenly spaced frames per episode and camera.

Fields: ``robot/joint_positions``, ``robot/gripper_open``, ``robot/joint_velocities`` and
``action/joint_positions`` where the episodes have them; images: ``cameras/<cam>/rgb`` per channel r, g, b.

In the store: `save_stats` writes ``stats.npz`` at the dataset root (the summary as JSON plus the exact
histograms, atomically), so `load_stats` restores mergeable statistics without reading episodes again.
"""

from __future__ import annotations

import json
import math
import zipfile
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from genima_data.atomic import atomic_output
from genima_data.errors import GenimaDataError
from genima_data.parallel import run_tasks
from genima_data.progress import progress_bar
from genima_data.schema import Manifest, natural_key
from genima_data.store import Dataset, open_dataset

STATS_VERSION = 1
STATS_FILE = "stats.npz"  # the stats document at the dataset root
QUANTILES = {"q01": 0.01, "q99": 0.99}
IMAGE_CHANNELS = ("r", "g", "b")
DEFAULT_IMAGE_FRAMES = 4
QUANTILE_METHOD = "linear interpolation between order statistics of all samples (numpy's default, type 7)"


class StatsError(GenimaDataError):
    """Statistics cannot be computed, merged or loaded."""


FIELD_ORDER = (
    "robot/joint_positions",
    "robot/gripper_open",
    "robot/joint_velocities",
    "action/joint_positions",
)


def stat_fields(manifest: Manifest) -> dict[str, list[str]]:
    """The robot/action arrays statistics cover, with their channel names."""
    joints = list(manifest.robot.joint_names)
    return {
        "robot/joint_positions": joints,
        "robot/gripper_open": ["gripper_open"],
        "robot/joint_velocities": joints,
        "action/joint_positions": [*joints, "gripper_open"],
    }


# ------------------------------------------------------------------------------------------- histogram
def _lerp(a: float, b: float, t: float) -> float:
    """numpy's interpolation formula (exact at both ends, monotonic), so quantiles equal np.quantile's."""
    diff = b - a
    return b - diff * (1 - t) if t >= 0.5 else a + diff * t


@dataclass(frozen=True, eq=False)
class Histogram:
    """Exact distribution of one channel: sorted distinct finite values, their counts, and the non-finite."""

    values: np.ndarray  # (K,) float64, strictly increasing
    counts: np.ndarray  # (K,) int64, positive
    non_finite: int = 0

    @classmethod
    def of(cls, samples: np.ndarray) -> Histogram:
        samples = np.asarray(samples).reshape(-1)
        finite = samples[np.isfinite(samples)] if samples.dtype.kind == "f" else samples
        values, counts = np.unique(finite.astype(np.float64), return_counts=True)
        return cls(values, counts.astype(np.int64), int(samples.size - finite.size))

    @classmethod
    def of_uint8(cls, channel: np.ndarray) -> Histogram:
        """Histogram of uint8 samples by bincount (no sort)."""
        counts = np.bincount(np.asarray(channel, np.uint8).reshape(-1), minlength=256).astype(np.int64)
        present = np.flatnonzero(counts)
        return cls(present.astype(np.float64), counts[present])

    @staticmethod
    def merge_all(histograms: Sequence[Histogram]) -> Histogram:
        """The histogram of the pooled samples (exact: values united, counts added)."""
        if len(histograms) == 1:
            return histograms[0]
        values = np.concatenate([h.values for h in histograms])
        order = np.argsort(values, kind="stable")  # timsort: linear in the already sorted runs
        values, counts = values[order], np.concatenate([h.counts for h in histograms])[order]
        starts = np.flatnonzero(np.concatenate([[True], values[1:] != values[:-1]]))
        return Histogram(
            values[starts], np.add.reduceat(counts, starts), sum(h.non_finite for h in histograms)
        )

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Histogram)
            and self.non_finite == other.non_finite
            and np.array_equal(self.values, other.values)
            and np.array_equal(self.counts, other.counts)
        )

    @cached_property
    def count(self) -> int:
        return int(self.counts.sum())

    @cached_property
    def _cumulative(self) -> np.ndarray:
        return np.cumsum(self.counts)

    def order_statistic(self, rank: int) -> float:
        """The `rank`-th smallest sample (0-based)."""
        return float(self.values[np.searchsorted(self._cumulative, rank, side="right")])

    def quantile(self, q: float) -> float | None:
        """np.quantile(samples, q) exactly (linear method); None without finite samples."""
        if not self.count:
            return None
        h = (self.count - 1) * q
        lo = math.floor(h)
        a = self.order_statistic(lo)
        b = self.order_statistic(min(lo + 1, self.count - 1))
        return a if a == b else _lerp(a, b, h - lo)

    @cached_property
    def mean(self) -> float | None:
        if not self.count:
            return None
        return math.fsum((self.values * self.counts).tolist()) / self.count

    @cached_property
    def std(self) -> float | None:
        """Population standard deviation (ddof 0)."""
        if not self.count:
            return None
        return math.sqrt(math.fsum((self.counts * (self.values - self.mean) ** 2).tolist()) / self.count)

    def summary(self) -> dict[str, Any]:
        empty = not self.count
        return {
            "count": self.count,
            "min": None if empty else float(self.values[0]),
            "max": None if empty else float(self.values[-1]),
            "mean": self.mean,
            "std": self.std,
            **{name: self.quantile(q) for name, q in QUANTILES.items()},
            "non_finite": self.non_finite,
        }


# ------------------------------------------------------------------------------------------- fields
SUMMARY_KEYS = ("count", "min", "max", "mean", "std", *QUANTILES, "non_finite")


@dataclass(frozen=True)
class FieldStats:
    """Statistics of one array (T, channels), channel by channel; arrays are per channel (NaN if empty)."""

    name: str
    channels: tuple[str, ...]
    histograms: tuple[Histogram, ...]

    @classmethod
    def of(cls, name: str, channels: Sequence[str], samples: np.ndarray) -> FieldStats:
        samples = np.asarray(samples).reshape(len(samples), -1)
        if samples.shape[1] != len(channels):
            raise StatsError(f"has {samples.shape[1]} channels, expected {len(channels)}", field=name)
        return cls(name, tuple(channels), tuple(Histogram.of(samples[:, c]) for c in range(len(channels))))

    @staticmethod
    def merge_all(parts: Sequence[FieldStats]) -> FieldStats:
        first = parts[0]
        for other in parts[1:]:
            if other.channels != first.channels:
                raise StatsError(
                    f"cannot merge statistics of channels {list(other.channels)} into {list(first.channels)}",
                    field=first.name,
                )
        merged = tuple(
            Histogram.merge_all([p.histograms[c] for p in parts]) for c in range(len(first.channels))
        )
        return FieldStats(first.name, first.channels, merged)

    def _column(self, key: str) -> np.ndarray:
        values = [h.summary()[key] for h in self.histograms]
        return np.array([np.nan if v is None else v for v in values], dtype=np.float64)

    @property
    def count(self) -> np.ndarray:
        return np.array([h.count for h in self.histograms], dtype=np.int64)

    @property
    def min(self) -> np.ndarray:
        return self._column("min")

    @property
    def max(self) -> np.ndarray:
        return self._column("max")

    @property
    def mean(self) -> np.ndarray:
        return self._column("mean")

    @property
    def std(self) -> np.ndarray:
        return self._column("std")

    @property
    def q01(self) -> np.ndarray:
        return self._column("q01")

    @property
    def q99(self) -> np.ndarray:
        return self._column("q99")

    def to_dict(self) -> dict[str, Any]:
        summaries = [h.summary() for h in self.histograms]
        return {"channels": list(self.channels), **{k: [s[k] for s in summaries] for k in SUMMARY_KEYS}}


def _field_order(name: str) -> tuple[int, str]:
    return (FIELD_ORDER.index(name) if name in FIELD_ORDER else len(FIELD_ORDER), name)


def _merge_field_maps(maps: Iterable[dict[str, FieldStats]]) -> dict[str, FieldStats]:
    grouped: dict[str, list[FieldStats]] = {}
    for m in maps:
        for name, stats in m.items():
            grouped.setdefault(name, []).append(stats)
    return {name: FieldStats.merge_all(grouped[name]) for name in sorted(grouped, key=_field_order)}


# ------------------------------------------------------------------------------------------- episodes
@dataclass(frozen=True)
class EpisodeStats:
    """One episode's metadata and summary statistics (its histograms are merged into the dataset's)."""

    dataset: str
    episode_id: str
    task: str
    variation: int | None
    success: bool | None
    length: int
    duration_s: float
    fields: dict[str, dict[str, Any]]
    images: dict[str, dict[str, Any]]

    def sort_key(self) -> tuple:
        return (self.dataset, natural_key(self.episode_id))

    def to_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "episode_id": self.episode_id,
            "task": self.task,
            "variation": self.variation,
            "success": self.success,
            "length": self.length,
            "duration_s": self.duration_s,
            "fields": self.fields,
            "images": self.images,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EpisodeStats:
        return cls(**data)


@dataclass(frozen=True)
class EpisodeOutcome:
    """What one episode contributes: its summary and its exact histograms."""

    summary: EpisodeStats
    fields: dict[str, FieldStats]
    images: dict[str, FieldStats]


def sample_frames(length: int, count: int) -> np.ndarray:
    """Evenly spaced frame indices (first and last included) used for image statistics."""
    if count <= 0 or length <= 0:
        return np.zeros(0, np.int64)
    return np.unique(np.linspace(0, length - 1, min(count, length)).round().astype(np.int64))


def episode_stats(
    dataset: Dataset, episode_id: str, *, image_frames: int = DEFAULT_IMAGE_FRAMES
) -> EpisodeOutcome:
    """Statistics of one episode of an open dataset."""
    manifest = dataset.manifest
    with dataset.episode(episode_id) as episode:
        fields = {
            name: FieldStats.of(name, channels, episode.load(name))
            for name, channels in stat_fields(manifest).items()
            if name in episode
        }
        images = {}
        for cam in episode.camera_names:
            path = f"cameras/{cam}/rgb"
            if path not in episode or not image_frames:
                continue
            frames = [episode.frame(path, int(t)) for t in sample_frames(episode.length, image_frames)]
            pixels = np.stack(frames).reshape(-1, 3)
            images[cam] = FieldStats(
                path, IMAGE_CHANNELS, tuple(Histogram.of_uint8(pixels[:, c]) for c in range(3))
            )
        timestamps = episode.load("timestamps")
        meta = episode.meta
    duration = float(timestamps[-1] - timestamps[0]) if len(timestamps) else 0.0
    summary = EpisodeStats(
        dataset=manifest.name,
        episode_id=episode_id,
        task=meta.task,
        variation=meta.variation,
        success=meta.success,
        length=meta.length,
        duration_s=duration,
        fields={k: v.to_dict() for k, v in fields.items()},
        images={k: v.to_dict() for k, v in images.items()},
    )
    return EpisodeOutcome(summary, fields, images)


# ------------------------------------------------------------------------------------------- dataset
@dataclass(frozen=True)
class DatasetStats:
    """Statistics of a set of episodes (of one or several datasets); `merge` is exact."""

    fields: dict[str, FieldStats]
    images: dict[str, FieldStats]
    episodes: tuple[EpisodeStats, ...]
    image_frames: int = DEFAULT_IMAGE_FRAMES

    @classmethod
    def from_outcomes(cls, outcomes: Iterable[EpisodeOutcome], image_frames: int) -> DatasetStats:
        outcomes = list(outcomes)
        episodes = tuple(sorted((o.summary for o in outcomes), key=EpisodeStats.sort_key))
        seen = Counter((e.dataset, e.episode_id) for e in episodes)
        dupes = sorted(f"{d}/{e}" for (d, e), n in seen.items() if n > 1)
        if dupes:
            raise StatsError(f"episodes counted twice: {dupes[:5]}", field="episodes")
        return cls(
            _merge_field_maps(o.fields for o in outcomes),
            _merge_field_maps(o.images for o in outcomes),
            episodes,
            image_frames,
        )

    def merge(self, other: DatasetStats) -> DatasetStats:
        """Statistics of both sets of episodes, identical to computing them over the union."""
        if other.image_frames != self.image_frames:
            raise StatsError(
                f"image statistics sampled {self.image_frames} and {other.image_frames} frames per episode; "
                "compute both with the same image_frames",
                field="image_frames",
            )
        parts = [EpisodeOutcome(e, {}, {}) for e in (*self.episodes, *other.episodes)]
        merged = DatasetStats.from_outcomes(parts, self.image_frames)
        return DatasetStats(
            _merge_field_maps([self.fields, other.fields]),
            _merge_field_maps([self.images, other.images]),
            merged.episodes,
            self.image_frames,
        )

    def field(self, name: str) -> FieldStats:
        """Statistics of one field, e.g. ``robot/joint_positions``; StatsError when absent."""
        if name not in self.fields:
            raise StatsError(f"no statistics for this field (fields: {sorted(self.fields)})", field=name)
        return self.fields[name]

    @property
    def frames(self) -> int:
        return sum(e.length for e in self.episodes)

    @property
    def datasets(self) -> list[str]:
        return sorted({e.dataset for e in self.episodes})

    def to_dict(self) -> dict[str, Any]:
        """The stats.json document (summaries only; the exact histograms live in the store's stats.npz)."""
        return {
            "stats_version": STATS_VERSION,
            "datasets": self.datasets,
            "episodes": len(self.episodes),
            "frames": self.frames,
            "quantile_method": QUANTILE_METHOD,
            "std": "population (ddof 0)",
            "image_frames_per_episode": self.image_frames,
            "fields": {k: v.to_dict() for k, v in self.fields.items()},
            "images": {k: v.to_dict() for k, v in self.images.items()},
            "per_episode": [e.to_dict() for e in self.episodes],
        }

    def write_json(self, path: str | Path) -> Path:
        """Write `to_dict()` as JSON, atomically."""
        from genima_data.atomic import atomic_write_text

        atomic_write_text(path, json.dumps(self.to_dict(), indent=2) + "\n")
        return Path(path)

    # ------------------------------------------------------------------ the stats document
    def _arrays(self) -> dict[str, np.ndarray]:
        arrays: dict[str, np.ndarray] = {}
        for group, stats in (("fields", self.fields), ("images", self.images)):
            for name, fs in stats.items():
                for c, h in enumerate(fs.histograms):
                    key = f"{group}/{name}/{c}"
                    arrays[f"{key}/values"] = h.values
                    arrays[f"{key}/counts"] = h.counts
                    arrays[f"{key}/non_finite"] = np.array(h.non_finite, np.int64)
        header = {
            "stats_version": STATS_VERSION,
            "image_frames": self.image_frames,
            "fields": {k: list(v.channels) for k, v in self.fields.items()},
            "images": {k: list(v.channels) for k, v in self.images.items()},
            "episodes": [e.to_dict() for e in self.episodes],
        }
        arrays["header"] = np.array(json.dumps(header))
        return arrays

    def save(self, path: str | Path) -> Path:
        """Write the stats document (summary + exact histograms) to `path` atomically."""
        with atomic_output(path) as tmp, open(tmp, "wb") as f:
            np.savez_compressed(f, **self._arrays())
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> DatasetStats:
        """Read a stats document written by `save` (no pickles are loaded)."""
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as npz:
                header = json.loads(str(npz["header"]))
                if header.get("stats_version") != STATS_VERSION:
                    raise StatsError(
                        f"stats version {header.get('stats_version')}, expected {STATS_VERSION}", file=path
                    )

                def read(group: str) -> dict[str, FieldStats]:
                    out = {}
                    for name, channels in header[group].items():
                        hists = tuple(
                            Histogram(
                                npz[f"{group}/{name}/{c}/values"],
                                npz[f"{group}/{name}/{c}/counts"],
                                int(npz[f"{group}/{name}/{c}/non_finite"]),
                            )
                            for c in range(len(channels))
                        )
                        field_name = f"cameras/{name}/rgb" if group == "images" else name
                        out[name] = FieldStats(field_name, tuple(channels), hists)
                    return out

                return cls(
                    read("fields"),
                    read("images"),
                    tuple(EpisodeStats.from_dict(e) for e in header["episodes"]),
                    int(header["image_frames"]),
                )
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
            raise StatsError(f"unreadable stats document ({type(exc).__name__}: {exc})", file=path) from None


# ------------------------------------------------------------------------------------------- computing
@dataclass(frozen=True)
class StatsJob:
    dataset: str
    episode_id: str
    image_frames: int


_OPENED: dict[str, Dataset] = {}  # per worker process


def _run_job(job: StatsJob, dataset: Dataset | None = None) -> EpisodeOutcome:
    if dataset is None:
        dataset = _OPENED.get(job.dataset) or _OPENED.setdefault(job.dataset, open_dataset(job.dataset))
    try:
        return episode_stats(dataset, job.episode_id, image_frames=job.image_frames)
    except GenimaDataError as exc:
        raise exc.located(file=dataset.path, episode=job.episode_id) from None


def compute_stats(
    dataset: Dataset | str | Path,
    *,
    episodes: Sequence[str] | None = None,
    image_frames: int = DEFAULT_IMAGE_FRAMES,
    workers: int = 1,
    progress: bool = False,
) -> DatasetStats:
    """Statistics over `episodes` (default: every committed episode) of a dataset (open or a path)."""
    if not isinstance(dataset, Dataset):
        with open_dataset(dataset) as ds:
            return compute_stats(
                ds, episodes=episodes, image_frames=image_frames, workers=workers, progress=progress
            )
    ids = list(dataset.episode_ids if episodes is None else episodes)
    unknown = [e for e in ids if e not in dataset]
    if unknown:
        raise StatsError(f"no such episodes: {unknown[:5]}", file=dataset.path, field="episodes")
    if not ids:
        raise StatsError("no episodes to compute statistics of", file=dataset.path, field="episodes")
    jobs = [StatsJob(str(dataset.path), eid, image_frames) for eid in ids]
    run = _run_job if workers > 1 else (lambda job: _run_job(job, dataset))
    outcomes = []
    with progress_bar(len(jobs), "statistics", enabled=progress) as advance:
        for _job, outcome in run_tasks(run, jobs, workers=workers):
            outcomes.append(outcome)
            advance(1)
    return DatasetStats.from_outcomes(outcomes, image_frames)


def stats_path(dataset_path: str | Path) -> Path:
    """Where a dataset keeps its stats document."""
    return Path(dataset_path) / STATS_FILE


def save_stats(dataset_path: str | Path, stats: DatasetStats) -> Path:
    """Store `stats` in the dataset (its stats document), atomically; the dataset must be committed."""
    with open_dataset(dataset_path):  # refuses a missing or uncommitted dataset
        pass
    return stats.save(stats_path(dataset_path))


def load_stats(dataset_path: str | Path) -> DatasetStats | None:
    """The dataset's stored statistics if they cover exactly its current episodes, else None."""
    path = stats_path(dataset_path)
    if not path.exists():
        return None
    stats = DatasetStats.load(path)
    with open_dataset(dataset_path) as ds:
        current = [(ds.manifest.name, eid) for eid in ds.episode_ids]
    stored = [(e.dataset, e.episode_id) for e in stats.episodes]
    return stats if sorted(stored) == sorted(current) else None


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def stats_renderable(stats: DatasetStats) -> Any:
    """Rich tables, one per field and camera, one row per channel."""
    from rich.console import Group
    from rich.table import Table

    tables = []
    groups = (("", stats.fields), ("image, sampled frames: ", stats.images))
    for prefix, group in groups:
        for name, fs in group.items():
            counts = sorted(set(fs.count.tolist()))
            table = Table(
                title=f"{prefix}{name} ({', '.join(map(str, counts))} samples)", title_justify="left"
            )
            keys = [
                k for k in SUMMARY_KEYS[1:] if k != "non_finite" or any(h.non_finite for h in fs.histograms)
            ]
            for column in ("channel", *keys):
                table.add_column(column, justify="left" if column == "channel" else "right")
            for channel, hist in zip(fs.channels, fs.histograms, strict=True):
                summary = hist.summary()
                table.add_row(channel, *(_number(summary[k]) for k in keys))
            tables.append(table)
    verdict = f"{len(stats.episodes)} episodes, {stats.frames} frames ({', '.join(stats.datasets)})"
    return Group(*tables, verdict)

"""Writing LeRobot v3.0 datasets: many episodes per data and video file, metadata written last.

Crash safety and resuming. Episodes are appended to a *file group* (one data parquet, one MP4 per video
key and one episode-metadata parquet, all with the same chunk/file index). A group is written under
temporary names; closing it renames the data and video files into place and then writes its
``meta/episodes`` file, the group's completion mark. ``meta/info.json`` (with tasks, stats, calibration)
is written by `commit`, last; until then ``meta/.genima-pending.json`` marks the dataset as incomplete.
Re-running an interrupted conversion keeps every closed group, discards the open one and converts its
episodes again: resuming works at the granularity of a file group (``episodes_per_file``, or LeRobot's
size limits of 100 MB of data / 500 MB of video per file). Episodes appended to a committed dataset go to
new files, as LeRobot itself does when it resumes recording.

Each episode's videos are encoded on their own first and appended to the group's files by copying
packets, so an episode that fails half-way (a corrupt frame) leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from genima_data import __version__
from genima_data.atomic import TMP_PREFIX, atomic_output, atomic_write_text, remove_path, remove_temporaries
from genima_data.calibration import load_calibration, save_calibration
from genima_data.episode import Episode, spec_for
from genima_data.errors import FormatError, GenimaDataError, StoreError
from genima_data.formats.lerobot_layout import (
    ACTION,
    CALIBRATION_PATH,
    CODEBASE_VERSION,
    DATA_PATH,
    DEFAULT_TOLERANCE_S,
    EPISODE_META_COLUMN,
    EPISODES_DIR,
    EPISODES_PATH,
    GENIMA_PATH,
    GRIPPER_NAME,
    IMAGE_PREFIX,
    INDEX_FEATURES,
    INFO_PATH,
    KNOWN_FEATURES,
    PENDING_PATH,
    STATE,
    STATS_PATH,
    TASKS_PATH,
    VIDEO_PATH,
    import_pyarrow,
    looks_like_lerobot,
    read_json,
)
from genima_data.formats.mapping import (
    manifest_from_record,
    manifest_record,
    writer_manifest,
)
from genima_data.formats.video import VideoConcatenator, VideoSettings, VideoWriter, import_av
from genima_data.schema import EpisodeMeta, EpisodeSummary, Manifest, natural_key, parse_model
from genima_data.store.base import check_episode_structure, require_same_meta

CHUNKS_SIZE = 1000  # files per chunk directory, LeRobot's default
# sphere targets as RGB planes: yuv420p's halved chroma caps their label colours at 24-33 dB at any crf
TARGET_SETTINGS = VideoSettings(vcodec="libx264rgb", crf=18, pix_fmt="rgb24")
TIMESTAMPS_FEATURE = "genima.timestamps"
MAX_STATS_ENTRIES = 64


def plan_features(
    episode: Episode | None, manifest: Manifest, *, fps: int | float, retime: bool
) -> dict[str, Any]:
    """LeRobot features for the arrays of `episode` (info.json entries), where each comes from
    (`sources`: key → [kind, path]) and, for single-array features, the per-frame shape and dtype to
    restore them with (`arrays`)."""
    names = [*manifest.robot.joint_names, GRIPPER_NAME]
    features: dict[str, dict[str, Any]] = {STATE: {"dtype": "float32", "shape": [len(names)], "names": names}}
    sources = {STATE: ["state", "robot/joint_positions"]}
    arrays: dict[str, dict[str, Any]] = {}
    paths = episode.paths() if episode is not None else []
    if "action/joint_positions" in paths:
        features[ACTION] = {"dtype": "float32", "shape": [len(names)], "names": names}
        sources[ACTION] = ["action", "action/joint_positions"]
    by_path = {path: key for key, path in KNOWN_FEATURES.items()}
    handled = {"timestamps", "robot/joint_positions", "robot/gripper_open", "action/joint_positions"}
    for path in (p for p in paths if p not in handled):
        source = episode[path]
        frame_shape, dtype = [int(d) for d in source.shape[1:]], str(np.dtype(source.dtype))
        if is_video_stream(path, source):
            key = video_key(path)
            features[key] = {"dtype": "video", "shape": frame_shape, "names": ["height", "width", "channels"]}
        elif path in by_path:
            key = by_path[path]
            features[key] = {"dtype": dtype, "shape": frame_shape, "names": list(manifest.robot.joint_names)}
        else:
            key = "genima." + path.replace("/", ".")
            features[key] = {"dtype": dtype, "shape": [int(np.prod(frame_shape))], "names": None}
        sources[key] = ["video" if features[key]["dtype"] == "video" else "numeric", path]
        arrays[key] = {"path": path, "shape": frame_shape, "dtype": dtype}
    if retime:
        features[TIMESTAMPS_FEATURE] = {"dtype": "float64", "shape": [1], "names": None}
        sources[TIMESTAMPS_FEATURE] = ["numeric", "timestamps"]
        arrays[TIMESTAMPS_FEATURE] = {"path": "timestamps", "shape": [], "dtype": "float64"}
    features.update(INDEX_FEATURES)
    for feature in features.values():
        if feature["dtype"] != "video":
            feature["fps"] = fps
    return {"features": features, "sources": sources, "arrays": arrays}


def is_video_stream(path: str, source: Any) -> bool:
    """uint8 (T, H, W, 3) image streams become videos; depth, masks and other arrays stay numeric."""
    spec = spec_for(path)
    return (
        bool(spec and spec.image) and np.dtype(source.dtype) == np.uint8 and tuple(source.shape[3:]) == (3,)
    )


def video_key(path: str) -> str:
    """Feature key of an image stream: cameras/<cam>/rgb → observation.images.<cam>,
    targets/<cam>/<kind> → observation.targets.<cam>.<kind>."""
    group, camera, kind = path.split("/")
    return f"{IMAGE_PREFIX}{camera}" if group == "cameras" else f"observation.{group}.{camera}.{kind}"


def numeric_stats(values: np.ndarray) -> dict[str, Any]:
    """Per-episode statistics of a (T, n) feature, as LeRobot stores them (one set for wide arrays)."""
    values = np.asarray(values, dtype=np.float64).reshape(len(values), -1)
    if values.shape[1] > MAX_STATS_ENTRIES:  # depth maps, masks: per-entry stats would dwarf the data
        values = values.reshape(-1, 1)
    return {
        "min": values.min(0).tolist(),
        "max": values.max(0).tolist(),
        "mean": values.mean(0).tolist(),
        "std": values.std(0).tolist(),
        "count": [len(values)],
    }


class ImageStats:
    """Per-channel min/max/mean/std of RGB frames scaled to [0, 1], shaped (3, 1, 1) as in LeRobot."""

    def __init__(self) -> None:
        self.count = 0
        self.sum = np.zeros(3)
        self.sum_sq = np.zeros(3)
        self.min = np.full(3, np.inf)
        self.max = np.full(3, -np.inf)

    def add(self, frame: np.ndarray) -> None:
        pixels = frame.reshape(-1, 3).astype(np.float64) / 255.0
        self.count += len(pixels)
        self.sum += pixels.sum(0)
        self.sum_sq += (pixels**2).sum(0)
        self.min = np.minimum(self.min, pixels.min(0))
        self.max = np.maximum(self.max, pixels.max(0))

    def result(self, frames: int) -> dict[str, Any]:
        mean = self.sum / self.count
        std = np.sqrt(np.maximum(self.sum_sq / self.count - mean**2, 0))
        as_chw = lambda v: v.reshape(3, 1, 1).tolist()  # noqa: E731
        return {
            "min": as_chw(self.min),
            "max": as_chw(self.max),
            "mean": as_chw(mean),
            "std": as_chw(std),
            "count": [frames],
        }


def aggregate_stats(per_episode: list[dict[str, Any]]) -> dict[str, Any]:
    """Dataset statistics from per-episode ones: counts add, means weight, variances pool exactly."""
    counts = np.array([s["count"][0] for s in per_episode], dtype=np.float64)
    means = np.array([s["mean"] for s in per_episode], dtype=np.float64)
    stds = np.array([s["std"] for s in per_episode], dtype=np.float64)
    weights = (counts / counts.sum()).reshape(-1, *([1] * (means.ndim - 1)))
    mean = (weights * means).sum(0)
    variance = (weights * (stds**2 + (means - mean) ** 2)).sum(0)
    return {
        "min": np.min([s["min"] for s in per_episode], axis=0).tolist(),
        "max": np.max([s["max"] for s in per_episode], axis=0).tolist(),
        "mean": mean.tolist(),
        "std": np.sqrt(variance).tolist(),
        "count": [int(counts.sum())],
    }


def tasks_table(tasks: dict[str, int]) -> Any:
    """meta/tasks.parquet as LeRobot's pandas writes it: column task_index, index named 'task'."""
    pa, _ = import_pyarrow()
    ordered = sorted(tasks.items(), key=lambda item: item[1])
    table = pa.table(
        {
            "task_index": pa.array([i for _, i in ordered], pa.int64()),
            "task": pa.array([t for t, _ in ordered], pa.string()),
        }
    )
    pandas_meta = {
        "index_columns": ["task"],
        "column_indexes": [
            {
                "name": None,
                "field_name": None,
                "pandas_type": "unicode",
                "numpy_type": "object",
                "metadata": {"encoding": "UTF-8"},
            }
        ],
        "columns": [
            {
                "name": "task_index",
                "field_name": "task_index",
                "pandas_type": "int64",
                "numpy_type": "int64",
                "metadata": None,
            },
            {
                "name": "task",
                "field_name": "task",
                "pandas_type": "unicode",
                "numpy_type": "object",
                "metadata": None,
            },
        ],
        "creator": {"library": "pyarrow", "version": pa.__version__},
        "pandas_version": "2.2.3",
    }
    return table.replace_schema_metadata({b"pandas": json.dumps(pandas_meta).encode()})


def write_parquet(path: Path, table: Any) -> None:
    _, pq = import_pyarrow()
    with atomic_output(path) as tmp:
        pq.write_table(table, tmp)


def arrow_column(values: np.ndarray) -> Any:
    """(T,) → a plain column; (T, n) → fixed-size lists of n, as HF datasets' Sequence(length=n)."""
    pa, _ = import_pyarrow()
    values = np.ascontiguousarray(values)
    if values.ndim == 1:
        return pa.array(values)
    flat = values.reshape(len(values), -1)
    return pa.FixedSizeListArray.from_arrays(pa.array(flat.reshape(-1)), flat.shape[1])


@dataclass
class FileGroup:
    """The data, video and episode-metadata files of one chunk/file index, while they are written."""

    chunk: int
    file: int
    outputs: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)
    data: Any = None
    videos: dict[str, VideoConcatenator] = field(default_factory=dict)
    rows: list[dict[str, Any]] = field(default_factory=list)
    frames: int = 0
    data_bytes: int = 0

    def where(self) -> dict[str, int]:
        return {"chunk_index": self.chunk, "file_index": self.file}


class LeRobotWriter:
    """Writes Episodes as a LeRobot v3.0 dataset (see the module docstring for crash safety).

    Options: `image_codec` (video codec; default libsvtav1 if PyAV has it, else libx264), `crf` (30),
    `target_crf` (sphere target streams, encoded as RGB with libx264rgb; 18), `gop` (keyframe interval, 2);
    a resumed or extended dataset keeps the video settings it was started with (others are refused),
    `episodes_per_file` (close a file group after this many episodes; default by LeRobot's size limits
    `data_file_mb`/`video_file_mb`), `retime` (accept timestamps off the
    fps grid: frames are re-stamped on the grid and the originals kept in genima.timestamps),
    `tolerance_s` (how far off the grid a timestamp may be without `retime`).
    """

    def __init__(
        self,
        path: str | Path,
        manifest: Manifest | None,
        *,
        image_codec: str | None = None,
        crf: int | None = None,
        target_crf: int | None = None,
        gop: int | None = None,
        episodes_per_file: int | None = None,
        data_file_mb: float = 100,
        video_file_mb: float = 500,
        retime: bool = False,
        tolerance_s: float = DEFAULT_TOLERANCE_S,
    ) -> None:
        self.path = Path(path)
        self.episodes_per_file = episodes_per_file
        self.data_file_bytes, self.video_file_bytes = data_file_mb * 2**20, video_file_mb * 2**20
        self.retime, self.tolerance_s = bool(retime), float(tolerance_s)
        self.manifest = writer_manifest(manifest, self._existing_manifest(), path=self.path, what="LeRobot")
        fps = self.manifest.fps
        self.fps: int | float = int(fps) if float(fps).is_integer() else fps
        recorded = self._recorded_state()
        self._plan: dict[str, Any] | None = recorded.get("plan")
        self._video = self._video_record(
            recorded.get("video"), image_codec=image_codec, crf=crf, target_crf=target_crf, gop=gop
        )
        self.settings = VideoSettings(
            vcodec=self._video["image_codec"], crf=self._video["crf"], gop=self._video["gop"]
        )
        self.target_settings = replace(TARGET_SETTINGS, crf=self._video["target_crf"], gop=self._video["gop"])
        self._group: FileGroup | None = None
        self._remove_leftovers()
        rows = sorted(self._completed_rows(), key=lambda r: r["episode_index"])
        # where each closed episode's metadata is kept (the genima/episode column), for require_same_episode
        self._stored: dict[str, tuple[str, Path]] = {
            json.loads(r[EPISODE_META_COLUMN])["episode_id"]: (r[EPISODE_META_COLUMN], r["file"])
            for r in rows
        }
        self._done = set(self._stored)
        self._episodes_closed, self._frames_closed = len(rows), sum(r["length"] for r in rows)
        self._tasks: dict[str, int] = {}
        for row in rows:
            for task in row["tasks"]:
                self._tasks.setdefault(task, len(self._tasks))
        self._next_group = max(
            ((r["meta/episodes/chunk_index"], r["meta/episodes/file_index"]) for r in rows), default=None
        )
        # a committed dataset is marked incomplete only once something is appended to it: a run refused
        # before that (another seed, other video settings) leaves it readable
        self._marked = False
        if not (self.path / INFO_PATH).is_file() or (self.path / PENDING_PATH).is_file():
            self._write_pending()

    # ---------------------------------------------------------------- opening and resuming
    def _existing_manifest(self) -> Manifest | None:
        if not self.path.exists():
            return None
        if not looks_like_lerobot(self.path):
            if not self._only_leftovers():
                raise StoreError("destination exists and is not a LeRobot dataset", file=self.path)
            return None  # new, or a run killed before its write marker landed: _remove_leftovers cleans up
        pending = self.path / PENDING_PATH
        if pending.is_file():
            return parse_model(Manifest, read_json(pending, what="write marker")["manifest"], file=pending)
        if not (self.path / GENIMA_PATH).is_file():
            raise StoreError(
                "destination is a LeRobot dataset genima-data did not write; choose another destination",
                file=self.path,
            )
        recorded = read_json(self.path / GENIMA_PATH, what="meta/genima.json")["manifest"]
        return manifest_from_record(
            recorded, load_calibration(self.path / CALIBRATION_PATH), file=self.path / GENIMA_PATH
        )

    def _only_leftovers(self) -> bool:
        """Whether the destination holds nothing but what a run killed while writing its first file left:
        an empty ``meta/`` directory and temporaries (``.tmp-*``)."""
        if not self.path.is_dir():
            return False
        for entry in self.path.iterdir():
            if entry.name.startswith(TMP_PREFIX):
                continue
            if entry.name != "meta" or not entry.is_dir():
                return False
            if any(not e.name.startswith(TMP_PREFIX) for e in entry.iterdir()):
                return False
        return True

    def _recorded_state(self) -> dict[str, Any]:
        """The write marker of an unfinished run, else meta/genima.json of a committed one, else {}."""
        pending = self.path / PENDING_PATH
        if pending.is_file():
            return read_json(pending, what="write marker")
        if (self.path / GENIMA_PATH).is_file():
            return read_json(self.path / GENIMA_PATH, what="meta/genima.json")
        return {}

    def _video_record(
        self,
        recorded: dict[str, Any] | None,
        *,
        image_codec: str | None,
        crf: int | None,
        target_crf: int | None,
        gop: int | None,
    ) -> dict[str, Any]:
        """The video settings to write with: those the dataset was started with (settings asked for that
        differ are refused: its videos and info.json would disagree), else the options or their defaults."""
        asked = {"image_codec": image_codec, "crf": crf, "target_crf": target_crf, "gop": gop}
        asked = {k: (v if v is None or k == "image_codec" else int(v)) for k, v in asked.items()}
        if recorded is not None:
            for key, value in asked.items():
                if value is not None and recorded.get(key) != value:
                    what = "image codec" if key == "image_codec" else key
                    option = "codec" if key == "image_codec" else key
                    raise StoreError(
                        f"the dataset was started with {what} {recorded.get(key)!r}, not {value!r}; resume "
                        f"without the {option} option or choose another destination",
                        file=self.path,
                    )
            return dict(recorded)
        defaults = {"crf": 30, "target_crf": TARGET_SETTINGS.crf, "gop": 2}
        chosen = {k: (v if v is not None else defaults.get(k)) for k, v in asked.items()}
        chosen["image_codec"] = VideoSettings(vcodec=image_codec).codec()  # the default resolved, recorded
        return chosen

    def _remove_leftovers(self) -> None:
        """Temporaries of an interrupted run, and data/video files whose group never got its metadata."""
        remove_temporaries(self.path)
        remove_temporaries(self.path / "meta")
        complete = {
            p.relative_to(self.path / EPISODES_DIR) for p in (self.path / EPISODES_DIR).glob("chunk-*/*")
        }
        for directory in [
            *(self.path / "data").glob("chunk-*"),
            *(self.path / "videos").glob("*/chunk-*"),
            *(self.path / EPISODES_DIR).glob("chunk-*"),
        ]:
            remove_temporaries(directory)
            for file in directory.glob("file-*"):
                if Path(directory.name, file.with_suffix(".parquet").name) not in complete:
                    file.unlink()

    def _completed_rows(self) -> list[dict[str, Any]]:
        """What resuming needs of the episodes in closed file groups (not their statistics)."""
        _, pq = import_pyarrow()
        columns = [
            "episode_index",
            "length",
            "tasks",
            EPISODE_META_COLUMN,
            "meta/episodes/chunk_index",
            "meta/episodes/file_index",
        ]
        rows = []
        for file in sorted((self.path / EPISODES_DIR).glob("chunk-*/file-*.parquet")):
            rows += [{**row, "file": file} for row in pq.read_table(file, columns=columns).to_pylist()]
        return rows

    def _write_pending(self) -> None:
        marker = {
            "manifest": self.manifest.model_dump(mode="json", exclude={"episodes", "storage"}),
            "plan": self._plan,
            "video": self._video,
        }
        atomic_write_text(self.path / PENDING_PATH, json.dumps(marker, indent=2))
        self._marked = True

    # ---------------------------------------------------------------- writer protocol
    def has_episode(self, episode_id: str) -> bool:
        return episode_id in self._done

    def require_same_episode(self, meta: EpisodeMeta) -> None:
        """Raise unless the episode kept under `meta`'s id has the same metadata: a resumed run must not
        keep an episode of another dataset that shares the manifest (another seed, a re-recording)."""
        if meta.episode_id not in self._stored:
            return  # written by this run
        text, file = self._stored[meta.episode_id]
        require_same_meta(EpisodeMeta.model_validate_json(text), meta, file=file)

    def write_episode(self, episode: Episode) -> None:
        """Append one episode to the open file group; nothing of it remains if it fails."""
        if episode.episode_id in self._done:
            raise StoreError("episode is already in the dataset", file=self.path, episode=episode.episode_id)
        try:
            check_episode_structure(episode, self.manifest)
            if self._plan is None:
                self._plan = plan_features(episode, self.manifest, fps=self.fps, retime=self.retime)
                self._write_pending()
            elif not self._marked:
                self._write_pending()
            self._check_same_features(episode)
            self._append(episode)
        except GenimaDataError as exc:
            raise exc.located(episode=episode.episode_id) from None

    def _check_same_features(self, episode: Episode) -> None:
        planned = {path for kind, path in self._plan["sources"].values() if path != "timestamps"}
        planned |= {"robot/gripper_open", "timestamps"}
        if set(episode.paths()) != planned:
            raise FormatError(
                "LeRobot needs the same features in every episode: this one has extra "
                f"{sorted(set(episode.paths()) - planned)}, lacks {sorted(planned - set(episode.paths()))}",
                file=self.path,
            )

    def _timestamps(self, episode: Episode) -> tuple[np.ndarray, np.ndarray]:
        stamps = episode.load("timestamps").astype(np.float64)
        grid = np.arange(episode.length, dtype=np.float64) / self.manifest.fps
        off = np.abs(stamps - grid)
        retimed = TIMESTAMPS_FEATURE in self._plan["sources"]  # as the write started, also when resumed
        if not retimed and off.max(initial=0) > self.tolerance_s:
            t = int(np.argmax(off))
            raise FormatError(
                f"frame {t} is at {stamps[t]:.6f} s, off the {self.manifest.fps:g} Hz grid LeRobot needs "
                f"({grid[t]:.6f} s ± {self.tolerance_s:g} s); pass --writer-opt retime=true to re-stamp "
                "frames on the grid (originals kept in genima.timestamps)",
                field="timestamps",
            )
        return grid, stamps

    def _columns(
        self, episode: Episode, episode_index: int, first_frame: int, task_index: int
    ) -> dict[str, Any]:
        grid, stamps = self._timestamps(episode)
        T = episode.length
        columns: dict[str, np.ndarray] = {}
        for key, (kind, path) in self._plan["sources"].items():
            if kind == "state":
                gripper = episode.load("robot/gripper_open").astype(np.float32)[:, None]
                columns[key] = np.concatenate([episode.load(path).astype(np.float32), gripper], axis=1)
            elif kind == "action" or (kind == "numeric" and path != "timestamps"):
                columns[key] = episode.load(path)
            elif path == "timestamps":
                columns[key] = stamps
        columns.update(
            timestamp=grid.astype(np.float32),
            frame_index=np.arange(T, dtype=np.int64),
            episode_index=np.full(T, episode_index, dtype=np.int64),
            index=np.arange(first_frame, first_frame + T, dtype=np.int64),
            task_index=np.full(T, task_index, dtype=np.int64),
        )
        return columns

    def _append(self, episode: Episode) -> None:
        pa, _ = import_pyarrow()
        T = episode.length
        task = episode.meta.instruction or episode.meta.task
        task_index = self._tasks.get(task, len(self._tasks))
        episode_index = self._episodes_closed + len(self._group.rows if self._group else [])
        first_frame = self._frames_closed + (self._group.frames if self._group else 0)
        columns = self._columns(episode, episode_index, first_frame, task_index)
        table = pa.table({key: arrow_column(values) for key, values in columns.items()})
        stats = {key: numeric_stats(values) for key, values in columns.items()}
        staging = self.path / f"{TMP_PREFIX}episode-{os.getpid()}"
        staging.mkdir(parents=True, exist_ok=True)
        try:
            staged = {
                key: self._encode(episode, path, staging / f"{key}.mp4", stats)
                for key, (kind, path) in self._plan["sources"].items()
                if kind == "video"
            }
            group = self._group or self._open_group()
            try:
                group.data = group.data or self._data_writer(group, table.schema)
                group.data.write_table(table)
                for key, file in staged.items():
                    group.videos[key].append(file, T)
            except Exception:
                self._abort_group()
                raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        self._tasks.setdefault(task, task_index)
        group.rows.append(self._episode_row(episode, episode_index, first_frame, task, group, stats))
        group.frames += T
        group.data_bytes += table.nbytes
        self._done.add(episode.episode_id)
        if self._group_is_full(group):
            self._close_group()

    def _encode(self, episode: Episode, path: str, file: Path, stats: dict[str, Any]) -> Path:
        source = episode[path]
        height, width = int(source.shape[1]), int(source.shape[2])
        writer = VideoWriter(file, self.manifest.fps, width, height, self._video_settings(path))
        image_stats = ImageStats()
        for t in range(episode.length):
            frame = np.asarray(source[t])
            writer.write(frame)
            image_stats.add(frame)
        writer.close()
        stats[video_key(path)] = image_stats.result(episode.length)
        return file

    def _video_settings(self, path: str) -> VideoSettings:
        return self.target_settings if path.startswith("targets/") else self.settings

    def _episode_row(
        self,
        episode: Episode,
        index: int,
        first_frame: int,
        task: str,
        group: FileGroup,
        stats: dict[str, Any],
    ) -> dict[str, Any]:
        T = episode.length
        row: dict[str, Any] = {
            "episode_index": index,
            "tasks": [task],
            "length": T,
            "data/chunk_index": group.chunk,
            "data/file_index": group.file,
            "dataset_from_index": first_frame,
            "dataset_to_index": first_frame + T,
        }
        start = (group.frames) / self.manifest.fps
        for key in group.videos:
            row.update(
                {
                    f"videos/{key}/chunk_index": group.chunk,
                    f"videos/{key}/file_index": group.file,
                    f"videos/{key}/from_timestamp": float(start),
                    f"videos/{key}/to_timestamp": float(start + T / self.manifest.fps),
                }
            )
        for key, values in stats.items():
            row.update({f"stats/{key}/{name}": value for name, value in values.items()})
        row["meta/episodes/chunk_index"], row["meta/episodes/file_index"] = group.chunk, group.file
        row[EPISODE_META_COLUMN] = episode.meta.model_dump_json()
        return row

    # ---------------------------------------------------------------- file groups
    def _open_group(self) -> FileGroup:
        if self._next_group is None:
            chunk, file = 0, 0
        else:
            chunk, file = self._next_group
            chunk, file = (chunk + 1, 0) if file == CHUNKS_SIZE - 1 else (chunk, file + 1)
        self._next_group = (chunk, file)
        group = FileGroup(chunk, file)
        for key, (kind, _) in self._plan["sources"].items():
            if kind == "video":
                final = self.path / VIDEO_PATH.format(video_key=key, **group.where())
                group.videos[key] = VideoConcatenator(
                    group.outputs.enter_context(atomic_output(final)), self.manifest.fps
                )
        self._group = group
        return group

    def _data_writer(self, group: FileGroup, schema: Any) -> Any:
        _, pq = import_pyarrow()
        final = self.path / DATA_PATH.format(**group.where())
        return pq.ParquetWriter(group.outputs.enter_context(atomic_output(final)), schema)

    def _group_is_full(self, group: FileGroup) -> bool:
        if self.episodes_per_file is not None:
            return len(group.rows) >= self.episodes_per_file
        videos = max((v.size for v in group.videos.values()), default=0)
        return group.data_bytes >= self.data_file_bytes or videos >= self.video_file_bytes

    def _close_group(self) -> None:
        """Finish the open group's files, rename them into place, then write its episode metadata."""
        pa, _ = import_pyarrow()
        group, self._group = self._group, None
        if group is None:
            return
        if group.data is not None:
            group.data.close()
        for video in group.videos.values():
            video.close()
        group.outputs.close()  # renames data and video files into place
        if group.rows:
            write_parquet(self.path / EPISODES_PATH.format(**group.where()), pa.Table.from_pylist(group.rows))
        self._episodes_closed += len(group.rows)
        self._frames_closed += group.frames

    def _abort_group(self) -> None:
        """Discard the open group (its temporaries) after a failure while appending to it."""
        group, self._group = self._group, None
        if group is None:
            return
        for episode_row in group.rows:
            self._done.discard(json.loads(episode_row[EPISODE_META_COLUMN])["episode_id"])
        with contextlib.suppress(Exception):
            if group.data is not None:
                group.data.close()
            for video in group.videos.values():
                video.close()
        group.outputs.__exit__(FormatError, FormatError("aborted"), None)

    # ---------------------------------------------------------------- commit
    def commit(self) -> Manifest:
        """Close the open file group and write tasks, stats, calibration and info.json (last)."""
        self._close_group()
        _, pq = import_pyarrow()
        rows = []
        for file in sorted((self.path / EPISODES_DIR).glob("chunk-*/file-*.parquet")):
            rows += pq.read_table(file).to_pylist()
        rows.sort(key=lambda r: r["episode_index"])
        plan = self._plan or plan_features(None, self.manifest, fps=self.fps, retime=False)
        features = plan["features"]
        write_parquet(self.path / TASKS_PATH, tasks_table(self._tasks))
        stats = {
            key: aggregate_stats(
                [{n: r[f"stats/{key}/{n}"] for n in ("min", "max", "mean", "std", "count")} for r in rows]
            )
            for key in features
            if rows and f"stats/{key}/mean" in rows[0]
        }
        atomic_write_text(self.path / STATS_PATH, json.dumps(stats, indent=2) + "\n")
        save_calibration(self.manifest.cameras, self.path / CALIBRATION_PATH)
        genima = {
            "writer": f"genima-data {__version__}",
            "manifest": manifest_record(self.manifest),
            "arrays": plan["arrays"],
            "plan": plan,
            "video": self._video,
        }
        atomic_write_text(self.path / GENIMA_PATH, json.dumps(genima, indent=2) + "\n")
        info = self._info(features, plan["sources"], rows)
        atomic_write_text(self.path / INFO_PATH, json.dumps(info, indent=4) + "\n")
        remove_path(self.path / PENDING_PATH)
        summaries = [EpisodeSummary.of(EpisodeMeta.model_validate_json(r[EPISODE_META_COLUMN])) for r in rows]
        return self.manifest.with_episodes(sorted(summaries, key=lambda s: natural_key(s.episode_id)))

    def _info(
        self, features: dict[str, Any], sources: dict[str, Any], rows: list[dict[str, Any]]
    ) -> dict[str, Any]:
        av = import_av("writing video")
        for key, feature in features.items():
            if feature["dtype"] == "video":
                height, width, channels = feature["shape"]
                settings = self._video_settings(sources[key][1])
                feature["info"] = {
                    "video.height": height,
                    "video.width": width,
                    "video.codec": av.codec.Codec(settings.codec(), "w").canonical_name,
                    "video.pix_fmt": settings.pix_fmt,
                    "video.is_depth_map": False,
                    "video.fps": self.fps,
                    "video.channels": channels,
                    "has_audio": False,
                }
        has_video = any(f["dtype"] == "video" for f in features.values())
        return {
            "codebase_version": CODEBASE_VERSION,
            "robot_type": self.manifest.robot.model,
            "total_episodes": len(rows),
            "total_frames": sum(r["length"] for r in rows),
            "total_tasks": len(self._tasks),
            "chunks_size": CHUNKS_SIZE,
            "data_files_size_in_mb": self.data_file_bytes / 2**20,
            "video_files_size_in_mb": self.video_file_bytes / 2**20,
            "fps": self.fps,
            "splits": {"train": f"0:{len(rows)}"},
            "data_path": DATA_PATH,
            "video_path": VIDEO_PATH if has_video else None,
            "features": features,
        }

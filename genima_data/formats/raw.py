"""Raw recordings: a vendor's own episode folders, described by a mapping file (`raw_mapping`).

    genima-data convert RAW_DIR OUT.zarr --from raw --mapping mapping.yaml

Every episode folder holds per camera an image sequence (PNG/JPEG) or a video file, and logs of joint
positions and gripper state, each stream with its own timestamps and rate. The reader puts everything on
the reference camera's clock:

* other cameras: the nearest frame within ``align.camera_tolerance_s`` (default half a frame period);
* joints (and a gripper width or fraction): linear interpolation between the two samples around the frame
  time, both within ``align.tolerance_s``, or the nearest sample within it (``align.method``); open/closed
  gripper states always take the nearest sample. Nothing is extrapolated.

A frame that lacks a sample within tolerance in any stream is never invented: with ``align.missing: drop``
it is left out, and the episode's metadata (``extras.raw_import``) and a line on stderr list the frames
left out and why, unless that would leave out more than half of the episode's frames (``MAX_DROPPED_SHARE``:
a timestamp unit or clock mistake, not dropouts), which stops the import; with ``error`` the import stops.
Log values must be finite (a NaN is named by row and column), one per row and column. Timestamps must
increase strictly; a gap in a camera's timestamps (dropped frames) stops the import unless
``align.dropped_frames: allow``. Joint positions are
converted to radians and checked against the robot's limits, so degrees declared as radians (or the other
way round) are caught and named. Each camera's calibration (any format `genima_data.calibration` reads)
must be for the size of the recorded frames. Images and video frames are decoded lazily (`LazyFrames`).
A problem in one episode found while the reader is built (its metadata, or its reference camera's stamps
when the frame rate is measured) is kept and raised by `episode()`, so `--skip-invalid` skips only it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import yaml

from genima_data.episode import Episode, LazyFrames
from genima_data.errors import FormatError, GenimaDataError
from genima_data.formats import Format
from genima_data.formats.raw_mapping import (
    DEFAULT_MAPPING_FILE,
    TIME_UNIT_SECONDS,
    CameraMapping,
    GripperMapping,
    RawMapping,
    Timestamps,
    load_mapping,
)
from genima_data.formats.tables import Table, read_table
from genima_data.formats.video import VideoReader, import_av
from genima_data.progress import stderr_console
from genima_data.robots import robot_preset
from genima_data.schema import (
    EPISODE_ID_PATTERN,
    Camera,
    EpisodeMeta,
    EpisodeSource,
    Manifest,
    Robot,
    Task,
    natural_key,
    parse_model,
)

T = TypeVar("T")
JOINT_LIMIT_MARGIN_RAD = 0.05  # readings this far beyond a limit are not a unit mistake
UNIT_WORDS = {"rad": "radians", "deg": "degrees"}
RADIAN_RANGE = 2 * np.pi  # a degree log whose every value lies within ±2π is almost surely radians
REPORTED_FRAMES = 100  # frames listed per stream in extras.raw_import
MAX_DROPPED_SHARE = 0.5  # dropping more of an episode's frames than this is a timing mistake, not dropouts
LOG_VALUE_FIELDS = {"joints": "joints.columns", "gripper": "gripper.column"}  # mapping field per log
VIDEO_TIME_TOLERANCE_S = 1e-4  # a video frame is fetched by its presentation time, up to rounding


# ------------------------------------------------------------------------------------------- timing
def check_increasing(times: np.ndarray, *, file: Path, field: str) -> None:
    """FormatError naming the first row whose timestamp does not exceed the previous one."""
    if not np.all(np.isfinite(times)):
        row = int(np.flatnonzero(~np.isfinite(times))[0])
        raise FormatError(f"timestamp of row {row} is not a number", file=file, field=field)
    steps = np.diff(times)
    if np.any(steps <= 0):
        i = int(np.flatnonzero(steps <= 0)[0])
        raise FormatError(
            f"timestamps are not strictly increasing: row {i + 1} (t={times[i + 1]:.6f} s) follows row {i} "
            f"(t={times[i]:.6f} s; rows counted from 0)",
            file=file,
            field=field,
        )


def frame_gaps(times: np.ndarray, factor: float) -> tuple[np.ndarray, float]:
    """Indices i where the interval to frame i+1 exceeds `factor` × the median interval, and that median."""
    if len(times) < 3:
        return np.zeros(0, np.int64), float(np.diff(times)[0]) if len(times) == 2 else 0.0
    steps = np.diff(times)
    median = float(np.median(steps))
    return np.flatnonzero(steps > factor * median), median


def nearest_samples(t_ref: np.ndarray, t_src: np.ndarray, tolerance: float) -> tuple[np.ndarray, np.ndarray]:
    """Index of the nearest source sample for each reference time, and whether it is within tolerance."""
    right = (
        np.clip(np.searchsorted(t_src, t_ref), 1, len(t_src) - 1)
        if len(t_src) > 1
        else np.zeros(len(t_ref), int)
    )
    left = np.maximum(right - 1, 0)
    index = np.where(np.abs(t_src[left] - t_ref) <= np.abs(t_src[right] - t_ref), left, right)
    return index, np.abs(t_src[index] - t_ref) <= tolerance


def align_samples(
    t_ref: np.ndarray, t_src: np.ndarray, values: np.ndarray, *, method: str, tolerance: float
) -> tuple[np.ndarray, np.ndarray]:
    """`values` (N, ...) sampled at `t_src`, resampled at `t_ref`, and a mask of frames that had samples.

    nearest: the nearest sample within `tolerance`; linear: interpolation between the samples on either
    side, both within `tolerance` (an exact hit needs only itself). Frames outside the mask are zero.
    """
    if method == "nearest":
        index, ok = nearest_samples(t_ref, t_src, tolerance)
        return np.where(_expand(ok, values), values[index], 0), ok
    hi = np.searchsorted(t_src, t_ref, side="left")  # first sample at or after the frame
    exact = (hi < len(t_src)) & (t_src[np.minimum(hi, len(t_src) - 1)] == t_ref)
    lo = hi - 1
    inside = (lo >= 0) & (hi < len(t_src))
    lo_c, hi_c = np.clip(lo, 0, len(t_src) - 1), np.clip(hi, 0, len(t_src) - 1)
    ok = exact | (inside & (t_ref - t_src[lo_c] <= tolerance) & (t_src[hi_c] - t_ref <= tolerance))
    span = np.where(inside, t_src[hi_c] - t_src[lo_c], 1.0)
    w = np.where(exact | ~inside, 0.0, (t_ref - t_src[lo_c]) / span)
    start = np.where(exact, hi_c, lo_c)
    w = _expand(w, values)
    aligned = (1 - w) * values[start] + w * values[hi_c]
    return np.where(_expand(ok, values), aligned, 0), ok


def _expand(mask: np.ndarray, values: np.ndarray) -> np.ndarray:
    return mask.reshape(-1, *([1] * (values.ndim - 1)))


def describe_frames(frames: np.ndarray, times: np.ndarray, limit: int = 5) -> str:
    shown = ", ".join(f"{int(f)} (t={times[f]:.3f} s)" for f in frames[:limit])
    return shown + (f" and {len(frames) - limit} more" if len(frames) > limit else "")


# ------------------------------------------------------------------------------------------- log values
def one_per_row(values: np.ndarray, name: str, *, file: Path, field: str) -> np.ndarray:
    """Column `name` as (N,); several values per row (e.g. both fingers) would be misread when flattened."""
    if values.ndim == 0 or values.shape[1:] != (1,) * (values.ndim - 1):
        raise FormatError(
            f"column '{name}' has shape {values.shape}, expected one value per row", file=file, field=field
        )
    return values.reshape(len(values))


def joint_matrix(table: Table, columns: str | list[str], dof: int, *, field: str) -> np.ndarray:
    """The joint log as (N, dof), from one column per joint or one (N, dof) column."""
    if isinstance(columns, str):
        raw = table.column(columns, field=field)
        raw = raw[:, None] if raw.ndim == 1 else raw
    else:
        raw = np.column_stack(
            [one_per_row(table.column(c, field=field), c, file=table.path, field=field) for c in columns]
        )
    if raw.ndim != 2:
        raise FormatError(
            f"column '{columns}' has shape {raw.shape}, expected (rows, {dof}): one row of joint values "
            "per sample",
            file=table.path,
            field=field,
        )
    if raw.shape[1] != dof:
        raise FormatError(
            f"{raw.shape[1]} joint values per row for a robot with {dof} joints", file=table.path, field=field
        )
    return raw


def check_finite(values: np.ndarray, columns: str | list[str], *, file: Path, field: str) -> None:
    """FormatError naming the first row holding NaN or infinity and its column (limit checks skip NaN)."""
    flat = values.reshape(len(values), -1)
    bad = ~np.isfinite(flat)
    if not bad.any():
        return
    row = int(np.flatnonzero(bad.any(axis=1))[0])
    col = int(np.flatnonzero(bad[row])[0])
    if isinstance(columns, list):
        label = columns[col]
    else:
        label = columns if flat.shape[1] == 1 else f"{columns}[:, {col}]"
    raise FormatError(
        f"row {row} (rows counted from 0): column '{label}' is {flat[row, col]}, not a finite number",
        file=file,
        field=field,
    )


# ------------------------------------------------------------------------------------------- units
def joints_in_radians(
    raw: np.ndarray, unit: str, robot: Robot, *, check: bool, file: Path, field: str
) -> np.ndarray:
    """Joint positions in radians; with `check`, a unit mistake (degrees vs radians) is a one-line error."""
    q = np.deg2rad(raw) if unit == "deg" else raw.astype(np.float64)
    if not check:
        return q
    lower = np.asarray(robot.joint_lower) - JOINT_LIMIT_MARGIN_RAD
    upper = np.asarray(robot.joint_upper) + JOINT_LIMIT_MARGIN_RAD

    def outside(values: np.ndarray) -> np.ndarray:
        return np.flatnonzero(((values < lower) | (values > upper)).any(axis=0))

    other = "rad" if unit == "deg" else "deg"
    bad = outside(q)
    if len(bad):
        j = int(bad[0])
        name = robot.joint_names[j]
        worst = q[np.argmax(np.maximum(lower[j] - q[:, j], q[:, j] - upper[j])), j]
        if not len(outside(raw.astype(np.float64) if unit == "deg" else np.deg2rad(raw))):
            raise FormatError(
                f"joint values look like {UNIT_WORDS[other]}, not {UNIT_WORDS[unit]}: read as "
                f"{unit}, {name} reaches {worst:.3f} rad, outside its limits [{robot.joint_lower[j]:.3f}, "
                f"{robot.joint_upper[j]:.3f}]; read as {other} every joint is within limits "
                f"(set unit: {other})",
                file=file,
                field=field,
            )
        raise FormatError(
            f"{name} reaches {worst:.3f} rad, outside its limits [{robot.joint_lower[j]:.3f}, "
            f"{robot.joint_upper[j]:.3f}] in either unit (wrong columns or robot?)",
            file=file,
            field=field,
        )
    if unit == "deg" and np.abs(raw).max() <= RADIAN_RANGE and np.ptp(raw, axis=0).max() > 0.05:
        raise FormatError(
            f"joint values look like radians, not degrees: every value is within ±{RADIAN_RANGE:.2f} "
            f"(largest |value| {np.abs(raw).max():.3f}), i.e. within ±6.3° as degrees (set unit: rad, or "
            "check_units: false if the arm really stays that close to zero)",
            file=file,
            field=field,
        )
    return q


def gripper_open(values: np.ndarray, mapping: GripperMapping, *, file: Path, field: str) -> np.ndarray:
    """gripper_open in [0, 1] (1 = open) from the logged gripper state, one value per row."""
    values = one_per_row(values, mapping.column, file=file, field=field).astype(np.float64)
    if mapping.kind == "open_closed":
        if not np.isin(values, (0.0, 1.0)).all():
            raise FormatError(
                f"open/closed values must be booleans or 0/1, got {np.unique(values)[:5]}",
                file=file,
                field=field,
            )
        return values if mapping.true_means == "open" else 1 - values
    scale = mapping.max_width_m if mapping.kind == "width" else 1.0
    fraction = values / scale
    low, high = float(fraction.min()), float(fraction.max())
    if low < -0.05 or high > 1.05:
        what = (
            f"width / max_width_m ({mapping.max_width_m} m)" if mapping.kind == "width" else "open fraction"
        )
        raise FormatError(
            f"{what} spans [{low:.3f}, {high:.3f}], expected [0, 1] (unit or max_width_m wrong?)",
            file=file,
            field=field,
        )
    return np.clip(fraction, 0.0, 1.0)


# ------------------------------------------------------------------------------------------- cameras
def _times(values: np.ndarray, spec: Timestamps) -> np.ndarray:
    return np.asarray(values, np.float64) * TIME_UNIT_SECONDS[spec.unit.value]


def _stamp_column(table: Table, spec: Timestamps, *, field: str) -> np.ndarray:
    """Timestamps (s) of the stream `field` from their log column, one per row."""
    name = str(spec.column)
    values = table.column(name, field=f"{field}.timestamps.column")
    return _times(one_per_row(values, name, file=table.path, field=f"{field}.timestamps.column"), spec)


def _read_rgb(path: Path) -> np.ndarray:
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise FormatError("image cannot be decoded", file=path)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


@dataclass
class CameraStream:
    """One camera's frames in one episode: timestamps (s), frame shape and a frame loader."""

    name: str
    file: Path  # image folder or video file, for messages
    times: np.ndarray
    frame_shape: tuple[int, int, int]
    load: Any  # (source frame index) -> (H, W, 3) uint8
    describe: Any  # (source frame index) -> str
    close: Any = lambda: None


def probe_video(path: Path) -> tuple[np.ndarray, tuple[int, int, int]]:
    """Presentation times (s) of every frame of a video, sorted, and its frame shape, without decoding."""
    av = import_av("reading video")
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise FormatError("file has no video stream", file=path)
            stream = container.streams.video[0]
            pts = sorted(p.pts for p in container.demux(stream) if p.pts is not None)
            return np.asarray(pts, np.float64) * float(stream.time_base), (stream.height, stream.width, 3)
    except av.error.FFmpegError as exc:
        raise FormatError(f"cannot read video: {exc}", file=path) from None


def _image_files(folder: Path, pattern: str, *, field: str) -> list[Path]:
    files = sorted((p for p in folder.glob(pattern) if p.is_file()), key=lambda p: natural_key(p.name))
    if not files:
        raise FormatError(f"no image files match '{pattern}'", file=folder, field=field)
    return files


def _filename_times(files: list[Path], spec: Timestamps, *, field: str) -> np.ndarray:
    pattern = re.compile(spec.filename_pattern or "")
    values = []
    for path in files:
        match = pattern.search(path.name)
        if match is None:
            raise FormatError(f"file name does not match '{spec.filename_pattern}'", file=path, field=field)
        values.append(float(match.group("t")))
    return _times(np.asarray(values), spec)


# ------------------------------------------------------------------------------------------- reader
class RawReader:
    """Reads raw episode folders through a mapping (see the module docstring).

    Options: `mapping` (the mapping file; default ``RAW_DIR/raw_mapping.yaml``) and `calibration` (a
    calibration file for cameras whose mapping names none).
    """

    def __init__(
        self, path: Path, *, mapping: str | Path | None = None, calibration: str | Path | None = None
    ):
        self.root = Path(path)
        if not self.root.is_dir():
            raise FormatError("raw recording folder not found", file=self.root)
        self.mapping_file = Path(mapping) if mapping is not None else self.root / DEFAULT_MAPPING_FILE
        if mapping is None and not self.mapping_file.is_file():
            raise FormatError("no mapping file: pass --mapping mapping.yaml", file=self.root)
        self.mapping: RawMapping = load_mapping(self.mapping_file)
        self.default_calibration = Path(calibration) if calibration is not None else None
        folders = [p for p in self.root.glob(self.mapping.episodes.folders) if p.is_dir()]
        self._folders = {p.name: p for p in sorted(folders, key=lambda p: natural_key(p.name))}
        if not self._folders:
            raise FormatError(
                f"no episode folders match '{self.mapping.episodes.folders}'",
                file=self.root,
                field="episodes.folders",
            )
        bad = [n for n in self._folders if not re.match(EPISODE_ID_PATTERN, n)]
        if bad:
            raise FormatError(
                f"folder names {bad[:3]} cannot be episode ids (letters, digits, _ . -)", file=self.root
            )
        self.robot = self._robot()
        self._infos: dict[str, EpisodeMeta] = {}
        self._invalid: dict[str, GenimaDataError] = {}  # found while building; fails only that episode
        for eid in self._folders:
            info = self._try_episode(eid, self._episode_info)
            if info is not None:
                self._infos[eid] = info
        if not self._infos:
            raise next(iter(self._invalid.values()))
        self._manifest = Manifest(
            name=self.mapping.name,
            description=self.mapping.description,
            fps=self.mapping.fps or self._measured_fps(),
            robot=self.robot,
            cameras=[self._camera(name, cam) for name, cam in self.mapping.cameras.items()],
            tasks=self._tasks(),
            license=self.mapping.license,
            provenance=self.mapping.provenance or f"raw recordings (mapping {self.mapping_file.name})",
        )

    # ------------------------------------------------------------------ dataset level
    @property
    def manifest(self) -> Manifest:
        return self._manifest

    @property
    def episode_ids(self) -> list[str]:
        return list(self._folders)

    def _robot(self) -> Robot:
        robot = self.mapping.robot
        if isinstance(robot, Robot):
            return robot
        base = None if self.mapping.T_world_base is None else np.asarray(self.mapping.T_world_base)
        try:
            return robot_preset(robot, base)
        except GenimaDataError as exc:
            raise exc.located(file=self.mapping_file) from None

    def _camera(self, name: str, spec: CameraMapping) -> Camera:
        from genima_data.calibration import load_calibration, load_pose

        field = f"cameras.{name}.calibration"
        if spec.calibration is None and self.default_calibration is None:
            raise FormatError(
                "no calibration file (give one here or pass --calibration)",
                file=self.mapping_file,
                field=field,
            )
        path = self.root / spec.calibration if spec.calibration is not None else self.default_calibration
        reference = None if spec.T_world_reference is None else np.asarray(spec.T_world_reference)
        found = load_calibration(
            path,
            format=spec.calibration_format,
            camera=spec.calibration_camera or name,
            T_world_reference=reference,
        )
        update: dict[str, Any] = {"name": name}
        if spec.mount != "world":
            update |= {"mount": spec.mount, "T_link_camera": spec.T_link_camera, "T_world_camera": None}
        elif spec.T_world_camera is not None:
            update["T_world_camera"] = spec.T_world_camera
        elif spec.pose is not None:
            update["T_world_camera"] = load_pose(self.root / spec.pose).tolist()
        camera = parse_model(Camera, found[0].model_dump() | update, file=path)
        if camera.mount == "world" and camera.T_world_camera is None:
            raise FormatError(
                f"camera '{name}' has no pose: {path.name} holds none; give T_world_camera or pose in the "
                "mapping",
                file=self.mapping_file,
                field=f"cameras.{name}",
            )
        return camera

    def _episode_info(self, episode_id: str) -> EpisodeMeta:
        """The episode's metadata, validated now; its length is set once its frames are aligned."""
        spec = self.mapping.episodes
        values: dict[str, Any] = {"task": spec.task, "instruction": spec.instruction, "success": spec.success}
        source = self.mapping_file
        if spec.metadata is not None:
            source = self._folders[episode_id] / spec.metadata
            values |= self._metadata_file(source)
        if not values.get("task"):
            raise FormatError(
                "no task: set episodes.task or 'task' in the episode metadata",
                file=self._folders[episode_id],
                field="task",
            )
        # length 1 is a placeholder: the real length is known once the frames are aligned (_assemble)
        values |= {"episode_id": episode_id, "instruction": values.get("instruction") or "", "length": 1}
        return parse_model(EpisodeMeta, values, file=source, episode=episode_id)

    @staticmethod
    def _metadata_file(path: Path) -> dict[str, Any]:
        if not path.is_file():
            raise FormatError("episode metadata file not found", file=path, field="episodes.metadata")
        try:
            doc = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            raise FormatError(f"not valid JSON/YAML: {' '.join(str(exc).split())}", file=path) from None
        if not isinstance(doc, dict):
            raise FormatError("episode metadata must be a mapping", file=path)
        return {k: doc[k] for k in ("task", "instruction", "success", "variation") if k in doc}

    def _tasks(self) -> list[Task]:
        tasks = {t.name: t for t in self.mapping.tasks}
        for info in self._infos.values():
            task = tasks.setdefault(info.task, Task(name=info.task))
            if info.instruction and info.instruction not in task.instructions:
                tasks[info.task] = task.model_copy(
                    update={"instructions": [*task.instructions, info.instruction]}
                )
        return list(tasks.values())

    def _measured_fps(self) -> float:
        """The reference camera's rate in the first episode whose stamps can be read."""
        for eid in self._infos:
            fps = self._try_episode(eid, self._episode_fps)
            if fps is not None:
                return fps
        raise next(iter(self._invalid.values()))

    def _episode_fps(self, episode_id: str) -> float:
        stream = self._camera_stream(episode_id, self.mapping.reference_camera)
        stream.close()
        _, median = frame_gaps(stream.times, self.mapping.align.dropped_frame_factor)
        if median <= 0:
            raise FormatError("cannot measure the frame rate; set fps in the mapping", file=stream.file)
        return round(1.0 / median, 3)

    def _try_episode(self, episode_id: str, work: Callable[[str], T]) -> T | None:
        """`work(episode_id)`, or None with its error kept for `episode()` (other episodes still convert)."""
        try:
            return work(episode_id)
        except GenimaDataError as exc:
            self._invalid[episode_id] = exc.located(episode=episode_id)
            return None

    # ------------------------------------------------------------------ streams
    def _log_times(self, folder: Path, table: Table, spec: Timestamps, *, field: str) -> np.ndarray:
        source = read_table(folder / spec.file) if spec.file is not None else table
        return _stamp_column(source, spec, field=field)

    def _camera_stream(self, episode_id: str, name: str) -> CameraStream:
        spec = self.mapping.cameras[name]
        folder = self._folders[episode_id]
        field = f"cameras.{name}"
        stamps = spec.timestamps
        if spec.video is not None:
            path = folder / spec.video
            if not path.is_file():
                raise FormatError("video file not found", file=path, field=f"{field}.video")
            times, shape = probe_video(path)
            video = VideoReader(path)

            def load(i: int, video: VideoReader = video, pts: np.ndarray = times) -> np.ndarray:
                return video.frame_at(float(pts[i]), VIDEO_TIME_TOLERANCE_S)  # by its own timestamp

            stream = CameraStream(name, path, times, shape, load, lambda i: f"{path}#frame{i}", video.close)
        else:
            files = _image_files(folder, str(spec.images), field=f"{field}.images")
            times = np.zeros(len(files))
            if stamps is not None and stamps.filename_pattern is not None:
                times = _filename_times(files, stamps, field=f"{field}.timestamps")
            stream = CameraStream(
                name,
                files[0].parent,
                times,
                _read_rgb(files[0]).shape,
                lambda i: _read_rgb(files[i]),
                lambda i: str(files[i]),
            )
        if stamps is not None and stamps.column is not None:
            table = read_table(folder / str(stamps.file))
            logged = _stamp_column(table, stamps, field=field)
            if len(logged) != len(times):
                raise FormatError(
                    f"{len(times)} frames but {len(logged)} timestamps (a dropped frame or a stray file?)",
                    file=table.path,
                    field=f"{field}.timestamps",
                )
            stream.times = logged
        source = table.path if stamps is not None and stamps.column is not None else stream.file
        check_increasing(stream.times, file=source, field=f"{field}.timestamps")
        return stream

    def _check_camera(self, stream: CameraStream) -> None:
        field = f"cameras.{stream.name}"
        camera = self._manifest.camera(stream.name)
        height, width = stream.frame_shape[:2]
        if (width, height) != (camera.width, camera.height):
            raise FormatError(
                f"calibration is for {camera.width}x{camera.height} but the recorded frames are "
                f"{width}x{height}",
                file=stream.file,
                field=f"{field}.calibration",
            )
        align = self.mapping.align
        gaps, median = frame_gaps(stream.times, align.dropped_frame_factor)
        if len(gaps) and align.dropped_frames == "error":
            i = int(gaps[0])
            raise FormatError(
                f"{len(gaps)} gap(s) in the frame timestamps (dropped frames): after frame {i} "
                f"(t={stream.times[i]:.3f} s) "
                f"the next frame comes {stream.times[i + 1] - stream.times[i]:.3f} s later (median interval "
                f"{median:.3f} s); set align.dropped_frames: allow to keep the gaps",
                file=stream.file,
                field=f"{field}.timestamps",
            )

    def _robot_log(
        self, episode_id: str
    ) -> tuple[dict[str, tuple[np.ndarray, np.ndarray, str]], dict[str, Path]]:
        """(times, values, method) of joints and gripper, and their files."""
        folder = self._folders[episode_id]
        joints, gripper = self.mapping.joints, self.mapping.gripper
        jtable = read_table(folder / joints.file)
        raw = joint_matrix(jtable, joints.columns, self.robot.dof, field="joints.columns")
        jtimes = self._log_times(folder, jtable, joints.timestamps, field="joints")
        gtable = jtable if gripper.file == joints.file else read_table(folder / gripper.file)
        gvalues = gtable.column(gripper.column, field="gripper.column")
        gtimes = self._log_times(folder, gtable, gripper.timestamps, field="gripper")
        logs = {
            "joints": (jtimes, raw, jtable.path, joints.columns),
            "gripper": (gtimes, gvalues, gtable.path, gripper.column),
        }
        for name, (times, values, path, columns) in logs.items():
            if len(times) == 0:
                raise FormatError("the log has no rows", file=path, field=name)
            if len(times) != len(values):
                raise FormatError(
                    f"{len(values)} rows but {len(times)} timestamps", file=path, field=f"{name}.timestamps"
                )
            check_increasing(times, file=path, field=f"{name}.timestamps")
            check_finite(values, columns, file=path, field=LOG_VALUE_FIELDS[name])
        q = joints_in_radians(
            raw,
            joints.unit,
            self.robot,
            check=self.mapping.check_units,
            file=jtable.path,
            field="joints.unit",
        )
        opening = gripper_open(gvalues, gripper, file=gtable.path, field="gripper.column")
        method = self.mapping.align.method
        out = {
            "joints": (jtimes, q, method),
            "gripper": (gtimes, opening, "nearest" if gripper.kind == "open_closed" else method),
        }
        return out, {"joints": jtable.path, "gripper": gtable.path}

    # ------------------------------------------------------------------ episodes
    def episode(self, episode_id: str) -> Episode:
        if episode_id not in self._folders:
            raise FormatError(f"no episode folder '{episode_id}'", file=self.root)
        if episode_id in self._invalid:
            raise self._invalid[episode_id].located()
        try:
            return self._episode(episode_id)
        except GenimaDataError as exc:
            raise exc.located(episode=episode_id) from None

    def _episode(self, episode_id: str) -> Episode:
        align = self.mapping.align
        streams = {name: self._camera_stream(episode_id, name) for name in self.mapping.cameras}
        for stream in streams.values():
            self._check_camera(stream)
        reference = streams[self.mapping.reference_camera]
        t_ref = reference.times
        keep = np.ones(len(t_ref), bool)
        missing: dict[str, np.ndarray] = {}
        where: dict[str, tuple[Path, str, float]] = {}  # stream → file, mapping field, tolerance
        frame_index = {reference.name: np.arange(len(t_ref))}
        camera_tolerance = align.camera_tolerance_s or 0.5 / self._manifest.fps
        for name, stream in streams.items():
            if name != reference.name:
                frame_index[name], ok = nearest_samples(t_ref, stream.times, camera_tolerance)
                missing[f"camera {name}"], keep = np.flatnonzero(~ok), keep & ok
                where[f"camera {name}"] = (stream.file, f"cameras.{name}", camera_tolerance)
        logs, files = self._robot_log(episode_id)
        aligned = {}
        for name, (times, values, method) in logs.items():
            aligned[name], ok = align_samples(
                t_ref, times, values, method=method, tolerance=align.tolerance_s
            )
            missing[name], keep = np.flatnonzero(~ok), keep & ok
            where[name] = (files[name], name, align.tolerance_s)
        missing = {k: v for k, v in missing.items() if len(v)}
        kept = np.flatnonzero(keep)
        self._check_missing(missing, where, t_ref, len(kept))
        if len(kept) == 0:
            raise FormatError(
                "no frame has samples of every stream within tolerance", file=reference.file, field="align"
            )
        report = {
            "reference_camera": reference.name,
            "source_frames": len(t_ref),
            "kept_frames": len(kept),
            "dropped_frames": {k: v[:REPORTED_FRAMES].tolist() for k, v in missing.items()},
        }
        if missing:
            stderr_console.print(
                f"[yellow]warning:[/] episode {episode_id}: left out {len(t_ref) - len(kept)} of "
                f"{len(t_ref)} frames "
                + "; ".join(
                    f"no {k} sample within tolerance at {describe_frames(v, t_ref - t_ref[0], 3)}"
                    for k, v in missing.items()
                ),
                highlight=False,
            )
        return self._assemble(episode_id, streams, frame_index, kept, t_ref, aligned, report)

    def _check_missing(
        self,
        missing: dict[str, np.ndarray],
        where: dict[str, tuple[Path, str, float]],
        t_ref: np.ndarray,
        kept: int,
    ) -> None:
        """Stop on frames without samples (missing: error) or when dropping them would lose most frames."""
        if not missing:
            return
        dropped = len(t_ref) - kept
        if self.mapping.align.missing == "error":
            what, frames = next(iter(missing.items()))
            advice = "set align.missing: drop to leave them out"
        elif dropped > MAX_DROPPED_SHARE * len(t_ref):
            what, frames = max(missing.items(), key=lambda item: len(item[1]))
            advice = (
                f"align.missing: drop would leave out {dropped} of {len(t_ref)} frames, more than "
                f"{MAX_DROPPED_SHARE:.0%}: timestamps in the wrong unit or from another clock?"
            )
        else:
            return
        file, field, tolerance = where[what]
        raise FormatError(
            f"{len(frames)} frame(s) have no {what} sample within {tolerance:g} s: "
            f"{describe_frames(frames, t_ref - t_ref[0])} ({advice})",
            file=file,
            field=field,
        )

    def _assemble(
        self,
        episode_id: str,
        streams: dict[str, CameraStream],
        frame_index: dict[str, np.ndarray],
        kept: np.ndarray,
        t_ref: np.ndarray,
        aligned: dict[str, np.ndarray],
        report: dict[str, Any],
    ) -> Episode:
        arrays: dict[str, Any] = {
            "timestamps": (t_ref[kept] - t_ref[kept[0]]).astype(np.float64),
            "robot/joint_positions": aligned["joints"][kept].astype(np.float32),
            "robot/gripper_open": aligned["gripper"][kept].astype(np.float32),
        }
        for name, stream in streams.items():
            source = frame_index[name][kept]
            arrays[f"cameras/{name}/rgb"] = LazyFrames(
                lambda t, s=stream, idx=source: s.load(int(idx[t])),
                len(kept),
                stream.frame_shape,
                np.uint8,
                describe=lambda t, s=stream, idx=source: s.describe(int(idx[t])),
            )
        meta = self._infos[episode_id].model_copy(
            update={
                "length": len(kept),
                "source": EpisodeSource(format="raw", path=episode_id),
                "extras": {"raw_import": report},
            }
        )
        return Episode(meta=meta, arrays=arrays, _on_close=[s.close for s in streams.values()])


def looks_like_raw(path: Path) -> bool:
    """A folder with a mapping file in it (other raw folders need --from raw --mapping)."""
    return path.is_dir() and (path / DEFAULT_MAPPING_FILE).is_file()


RAW = Format(
    name="raw",
    description="a vendor's raw episode folders (images or video, joint and gripper logs) via a mapping",
    detect=looks_like_raw,
    reader=RawReader,
)

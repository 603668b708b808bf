"""Reading LeRobot datasets (v3.0, v2.1, v2.0) as Episodes; see `genima_data.formats.lerobot`."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from genima_data.calibration import load_calibration
from genima_data.episode import Episode, LazyFrames
from genima_data.errors import FormatError, GenimaDataError
from genima_data.formats.lerobot_layout import (
    ACTION,
    CALIBRATION_PATH,
    DEFAULT_TOLERANCE_S,
    EPISODE_META_COLUMN,
    EPISODES_DIR,
    GENIMA_PATH,
    GRIPPER_NAME,
    INDEX_FEATURES,
    INFO_PATH,
    KNOWN_FEATURES,
    PENDING_PATH,
    READABLE_VERSIONS,
    STATE,
    STATS_PATH,
    TASKS_PATH,
    camera_name_of,
    column_to_numpy,
    feature_names,
    import_pyarrow,
    read_json,
    read_json_lines,
)
from genima_data.formats.mapping import (
    ArmLayout,
    calibrated_cameras,
    chosen_cameras,
    manifest_from_record,
)
from genima_data.formats.video import VideoReader
from genima_data.robots import ROBOTS, load_robot, robot_preset
from genima_data.schema import (
    Camera,
    EpisodeMeta,
    EpisodeSource,
    Manifest,
    Robot,
    Task,
    natural_key,
    parse_model,
)


@dataclass
class EpisodeRef:
    """Where one episode's rows and videos live."""

    index: int
    episode_id: str
    length: int
    tasks: list[str]
    data_file: Path
    videos: dict[str, tuple[Path, float, float]] = field(default_factory=dict)  # key → file, from, to
    meta_json: str | None = None


class LeRobotReader:
    """Reads a LeRobot v3.0/v2.1/v2.0 dataset as Episodes (see the module docstring for the mapping).

    Options: `calibration` (file with the cameras; overrides meta/calibration.json), `robot` (built-in
    model name or schema.Robot file; default: genima-data's record, else LeRobot's robot_type when it is
    a built-in model), `arm` (name prefix choosing one arm of a multi-arm state, e.g. 'left'), `gripper`
    (the gripper entry's name), `cameras` (names to import; default all), `task` (task name for
    foreign datasets), `tolerance_s` (timestamps vs frame rate), `require_stats` (missing stats are an
    error unless False).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        calibration: str | Path | None = None,
        robot: str | Path | None = None,
        arm: str | None = None,
        gripper: str | None = None,
        cameras: list[str] | None = None,
        task: str | None = None,
        tolerance_s: float = DEFAULT_TOLERANCE_S,
        require_stats: bool = True,
    ) -> None:
        self.path = Path(path)
        self.tolerance_s = float(tolerance_s)
        if (self.path / PENDING_PATH).is_file() and not (self.path / INFO_PATH).is_file():
            raise FormatError(
                "LeRobot dataset is incomplete: an interrupted write never committed it; re-run the "
                "command that wrote it to resume",
                file=self.path,
            )
        self.info = read_json(self.path / INFO_PATH, what="meta/info.json")
        self.version = str(self.info.get("codebase_version", ""))
        if self.version not in READABLE_VERSIONS:
            raise FormatError(
                f"codebase_version '{self.version}' is not supported "
                f"(readable: {', '.join(READABLE_VERSIONS)})",
                file=self.path / INFO_PATH,
                field="codebase_version",
            )
        self.fps = float(self._info_field("fps"))
        self.features: dict[str, dict[str, Any]] = self._info_field("features")
        for key, feature in self.features.items():
            if not isinstance(feature, dict) or "dtype" not in feature or "shape" not in feature:
                raise FormatError(
                    "needs dtype and shape", file=self.path / INFO_PATH, field=f"features.{key}"
                )
        if require_stats:
            self._require_stats()
        self.genima = (
            read_json(self.path / GENIMA_PATH, what="meta/genima.json")
            if (self.path / GENIMA_PATH).is_file()
            else {}
        )
        self.arrays: dict[str, dict[str, Any]] = self.genima.get("arrays", {})
        self.tasks = self._read_tasks()
        self._episodes = {ref.episode_id: ref for ref in self._read_episodes()}
        images = [k for k, f in self.features.items() if f["dtype"] in ("video", "image")]
        available = list(dict.fromkeys(self._camera_of(k) for k in images))
        chosen = chosen_cameras(available, cameras, source=self.path / INFO_PATH)
        self.image_keys = [k for k in images if self._camera_of(k) in chosen]
        self.state = self._layout(STATE, arm, gripper, robot)
        self.action = self._layout(ACTION, arm, gripper, robot) if ACTION in self.features else None
        self._manifest = self._build_manifest(calibration, robot, task)

    # ---------------------------------------------------------------- metadata
    def _info_field(self, name: str) -> Any:
        if name not in self.info:
            raise FormatError("is missing", file=self.path / INFO_PATH, field=name)
        return self.info[name]

    def _require_stats(self) -> None:
        candidates = [STATS_PATH] if self.version == "v3.0" else ["meta/episodes_stats.jsonl", STATS_PATH]
        if not any((self.path / c).is_file() for c in candidates):
            raise FormatError(
                f"normalisation statistics are missing ({' or '.join(candidates)}); LeRobot policies need "
                "them (pass --reader-opt require_stats=false to convert anyway)",
                file=self.path,
                field="stats",
            )

    def _camera_of(self, key: str) -> str:
        path = self.arrays.get(key, {}).get("path")
        return path.split("/")[1] if path else camera_name_of(key)

    def _read_tasks(self) -> dict[int, str]:
        if self.version == "v3.0":
            if not (self.path / TASKS_PATH).is_file():
                raise FormatError("meta/tasks.parquet is missing", file=self.path / TASKS_PATH)
            table = read_parquet(self.path / TASKS_PATH)
            text_column = next((c for c in ("task", "__index_level_0__") if c in table.column_names), None)
            if text_column is None or "task_index" not in table.column_names:
                raise FormatError("needs columns 'task' and 'task_index'", file=self.path / TASKS_PATH)
            return dict(zip(table["task_index"].to_pylist(), table[text_column].to_pylist(), strict=True))
        rows = read_json_lines(self.path / "meta/tasks.jsonl", what="meta/tasks.jsonl")
        return {int(r["task_index"]): str(r["task"]) for r in rows}

    def _read_episodes(self) -> list[EpisodeRef]:
        refs = []
        for row in sorted(self._episode_rows(), key=lambda r: int(r["episode_index"])):
            index = int(row["episode_index"])
            meta_json = row.get(EPISODE_META_COLUMN)
            episode_id = json.loads(meta_json)["episode_id"] if meta_json else f"episode_{index:06d}"
            try:
                data_file, videos = self._locations(row, index)
                length = int(row["length"])
            except KeyError as exc:
                raise FormatError(
                    f"episode {index}'s metadata has no '{exc.args[0]}'", file=self.path, field=exc.args[0]
                ) from None
            tasks = [str(t) for t in row.get("tasks") or []]
            refs.append(EpisodeRef(index, episode_id, length, tasks, data_file, videos, meta_json))
        return refs

    def _locations(
        self, row: dict[str, Any], index: int
    ) -> tuple[Path, dict[str, tuple[Path, float, float]]]:
        """The episode's data file and, per video key, its video file and time span in it."""
        keys = [k for k, f in self.features.items() if f["dtype"] == "video"]
        if self.version == "v3.0":  # many episodes per file: the row says which file and where
            data = {"chunk_index": row["data/chunk_index"], "file_index": row["data/file_index"]}
            spans = {
                k: (
                    {
                        "chunk_index": row[f"videos/{k}/chunk_index"],
                        "file_index": row[f"videos/{k}/file_index"],
                    },
                    float(row[f"videos/{k}/from_timestamp"]),
                    float(row[f"videos/{k}/to_timestamp"]),
                )
                for k in keys
            }
        else:  # one file per episode, in chunks of `chunks_size` episodes
            data = {"episode_chunk": index // int(self.info.get("chunks_size", 1000)), "episode_index": index}
            spans = {k: (data, 0.0, float("inf")) for k in keys}
        videos = {
            k: (self.path / self._info_field("video_path").format(video_key=k, **where), start, stop)
            for k, (where, start, stop) in spans.items()
        }
        return self.path / self._info_field("data_path").format(**data), videos

    def _episode_rows(self) -> list[dict[str, Any]]:
        if self.version != "v3.0":
            return read_json_lines(self.path / "meta/episodes.jsonl", what="meta/episodes.jsonl")
        files = sorted((self.path / EPISODES_DIR).glob("chunk-*/file-*.parquet"))
        if not files:
            raise FormatError("no episode metadata (meta/episodes/chunk-*/file-*.parquet)", file=self.path)
        return [row for file in files for row in read_parquet(file, skip_prefix="stats/").to_pylist()]

    def _layout(self, key: str, arm: str | None, gripper: str | None, robot: str | Path | None) -> ArmLayout:
        if key not in self.features:
            raise FormatError(
                "is missing from the features", file=self.path / INFO_PATH, field=f"features.{key}"
            )
        if self.features[key].get("names") is None and robot is not None:
            joint_names = load_robot(robot).joint_names
            return ArmLayout(
                names=(*joint_names, GRIPPER_NAME),
                joints=tuple(range(len(joint_names))),
                gripper=len(joint_names),
            )
        names = feature_names(self.features, key, file=self.path / INFO_PATH)
        try:
            return ArmLayout.from_names(names, arm=arm, gripper=gripper, field=f"features.{key}.names")
        except GenimaDataError as exc:
            raise exc.located(file=self.path / INFO_PATH) from None

    def _build_manifest(
        self, calibration: str | Path | None, robot: str | Path | None, task: str | None
    ) -> Manifest:
        cameras = self._cameras(calibration)
        recorded = self.genima.get("manifest")
        if recorded is not None:
            if robot is not None:
                recorded = {**recorded, "robot": load_robot(robot).model_dump(mode="json")}
            return manifest_from_record(recorded, cameras, file=self.path / GENIMA_PATH)
        task_strings = [self.tasks[i] for i in sorted(self.tasks)]
        return Manifest(
            name=self.path.name or "lerobot",
            fps=self.fps,
            robot=self._robot(robot),
            cameras=cameras,
            tasks=[Task(name=task or self.path.name or "task", instructions=task_strings)],
            provenance=f"LeRobot {self.version} dataset {self.path}",
        )

    def _cameras(self, calibration: str | Path | None) -> list[Camera]:
        sizes: dict[str, tuple[int, int]] = {}
        for key in self.image_keys:
            height, width = self._image_shape(key)
            sizes.setdefault(self._camera_of(key), (width, height))
        file = Path(calibration) if calibration is not None else self.path / CALIBRATION_PATH
        if file.is_file():  # the dataset's (or the given) calibration file: say which cameras it lacks
            calibrated = {camera.name for camera in load_calibration(file)}
            missing = [name for name in sizes if name not in calibrated]
            if missing:
                given = "the calibration file" if calibration is not None else CALIBRATION_PATH
                raise FormatError(
                    f"no calibration for camera(s) {missing}: {given} has only {sorted(calibrated)}; "
                    "pass --calibration FILE covering them, or --reader-opt 'cameras=[...]' to import "
                    "fewer cameras",
                    file=file,
                    field="cameras",
                )
        return calibrated_cameras(
            list(sizes),
            calibration,
            self.path / CALIBRATION_PATH,
            source=self.path,
            what="a LeRobot dataset",
            sizes=sizes,
        )

    def _robot(self, robot: str | Path | None) -> Robot:
        joint_names = self.state.joint_names
        if robot is not None:
            chosen = load_robot(robot)
        elif self.info.get("robot_type") in ROBOTS:
            chosen = robot_preset(self.info["robot_type"])
        else:
            raise FormatError(
                f"robot_type '{self.info.get('robot_type')}' is not a built-in robot "
                f"({', '.join(sorted(ROBOTS))}): describe it with --reader-opt robot=<model or robot.yaml>",
                file=self.path / INFO_PATH,
                field="robot_type",
            )
        if chosen.dof != len(joint_names):
            raise FormatError(
                f"robot '{chosen.model}' has {chosen.dof} joints but the state has {len(joint_names)} "
                f"({joint_names})",
                file=self.path / INFO_PATH,
                field=f"features.{STATE}.names",
            )
        return chosen

    # ---------------------------------------------------------------- reader protocol
    @property
    def manifest(self) -> Manifest:
        return self._manifest

    @property
    def episode_ids(self) -> list[str]:
        return sorted(self._episodes, key=natural_key)

    def episode(self, episode_id: str) -> Episode:
        """The episode's numeric columns loaded, its video frames decoded lazily."""
        try:
            ref = self._episodes[episode_id]
        except KeyError:
            raise FormatError(f"no episode '{episode_id}' in the dataset", file=self.path) from None
        try:
            return self._episode(ref)
        except GenimaDataError as exc:
            raise exc.located(file=ref.data_file, episode=episode_id) from None

    def _episode(self, ref: EpisodeRef) -> Episode:
        columns = self._rows(ref)
        timestamps = self._timestamps(ref, columns)
        arrays: dict[str, Any] = {"timestamps": timestamps}
        arrays["robot/joint_positions"], arrays["robot/gripper_open"] = self.state.split(columns[STATE])
        if not self.state.is_whole_vector:
            arrays[f"extras/{STATE}"] = columns[STATE]
        if self.action is not None:
            arrays["action/joint_positions"] = self.action.joints_and_gripper(columns[ACTION])
            if not self.action.is_whole_vector:
                arrays[f"extras/{ACTION}"] = columns[ACTION]
        for key, values in columns.items():
            is_image = self.features.get(key, {}).get("dtype") in ("video", "image")
            if not (is_image or key in (STATE, ACTION, *INDEX_FEATURES)):
                arrays.update(self._numeric_array(key, values))
        readers: list[VideoReader] = []
        for key in self.image_keys:
            arrays[self._image_path(key)] = self._frames(ref, key, columns, readers)
        meta = self._meta(ref)
        return Episode(meta=meta, arrays=arrays, _on_close=[r.close for r in readers])

    def _rows(self, ref: EpisodeRef) -> dict[str, np.ndarray]:
        if not ref.data_file.is_file():
            raise FormatError("data file is missing", file=ref.data_file)
        filters = [("episode_index", "=", ref.index)] if self.version == "v3.0" else None
        table = read_parquet(ref.data_file, filters=filters)
        if table.num_rows != ref.length:
            raise FormatError(
                f"has {table.num_rows} rows, expected {ref.length} (episode length)", field="length"
            )
        if "frame_index" in table.column_names:
            table = table.sort_by("frame_index")
        missing = [k for k in (STATE, "timestamp") if k not in table.column_names]
        if missing:
            raise FormatError(f"columns {missing} are missing", field=missing[0])
        return {
            name: table[name]
            if self.features.get(name, {}).get("dtype") == "image"
            else column_to_numpy(table[name], table.num_rows)
            for name in table.column_names
        }

    def _timestamps(self, ref: EpisodeRef, columns: dict[str, Any]) -> np.ndarray:
        stamps = np.asarray(columns["timestamp"], dtype=np.float32).reshape(-1)
        frame_index = np.asarray(columns.get("frame_index", np.arange(ref.length))).reshape(-1)
        if not np.array_equal(frame_index, np.arange(ref.length)):
            raise FormatError("frame_index is not 0, 1, 2, ...", field="frame_index")
        steps = np.diff(stamps.astype(np.float64))
        bad = np.flatnonzero(np.abs(steps - 1 / self.fps) > self.tolerance_s)
        if bad.size:
            t = int(bad[0]) + 1
            raise FormatError(
                f"timestamps do not match fps {self.fps:g}: frame {t} is {steps[t - 1]:.6f} s after "
                f"frame {t - 1}, expected {1 / self.fps:.6f} s ± {self.tolerance_s:g} s",
                field="timestamp",
            )
        for key, (file, start, stop) in ref.videos.items():
            if key in self.image_keys and start + float(stamps[-1]) > stop - 1 / self.fps + self.tolerance_s:
                raise FormatError(
                    f"the episode's last timestamp {stamps[-1]:.4f} s lies beyond its video span "
                    f"[{start:.4f}, {stop:.4f}) s",
                    file=file,
                    field=f"videos/{key}/to_timestamp",
                )
        if "genima.timestamps" in columns:  # written with retime: the original, off-grid timestamps
            return np.asarray(columns["genima.timestamps"], dtype=np.float64).reshape(-1)
        grid = np.arange(ref.length, dtype=np.float64) / self.fps
        # frames written on the fps grid come back as exactly that grid, not its float32 rounding
        return grid if np.array_equal(stamps, grid.astype(np.float32)) else stamps.astype(np.float64)

    def _numeric_array(self, key: str, values: np.ndarray) -> dict[str, np.ndarray]:
        """Where a numeric column goes in the tree; text columns have no place there and are left out."""
        if values.dtype.kind not in "biuf":
            return {}
        recorded = self.arrays.get(key)
        if recorded is not None:
            if recorded["path"] == "timestamps":
                return {}
            shape = (values.shape[0], *recorded["shape"])
            return {recorded["path"]: values.reshape(shape).astype(recorded["dtype"])}
        if key in KNOWN_FEATURES and self._per_joint(key):
            return {KNOWN_FEATURES[key]: values[:, list(self.state.joints)].astype(np.float32)}
        return {f"extras/{key}": values}

    def _per_joint(self, key: str) -> bool:
        names = self.features[key].get("names")
        names = next(iter(names.values()), None) if isinstance(names, dict) else names
        return names is not None and list(names) == list(self.state.names)

    def _image_path(self, key: str) -> str:
        recorded = self.arrays.get(key)
        return recorded["path"] if recorded else f"cameras/{camera_name_of(key)}/rgb"

    def _image_shape(self, key: str) -> tuple[int, int]:
        feature = self.features[key]
        shape, names = list(feature["shape"]), feature.get("names") or ["height", "width", "channels"]
        if "height" in names and "width" in names:
            return int(shape[names.index("height")]), int(shape[names.index("width")])
        return int(shape[0]), int(shape[1])

    def _frames(
        self, ref: EpisodeRef, key: str, columns: dict[str, Any], readers: list[VideoReader]
    ) -> LazyFrames:
        height, width = self._image_shape(key)
        stamps = np.asarray(columns["timestamp"], dtype=np.float64).reshape(-1)
        if self.features[key]["dtype"] == "image":
            cells = columns[key]
            return LazyFrames(
                lambda t: decode_image_cell(cells[t].as_py(), key),
                ref.length,
                (height, width, 3),
                np.uint8,
                describe=lambda t: f"{ref.data_file}: {key} frame {t}",
            )
        file, start, _ = ref.videos[key]
        video = VideoReader(file)
        readers.append(video)
        return LazyFrames(
            lambda t: video.frame_at(start + stamps[t], self.tolerance_s),
            ref.length,
            (height, width, 3),
            np.uint8,
            describe=lambda t: f"{file}: frame at {start + stamps[t]:.4f} s",
        )

    def _meta(self, ref: EpisodeRef) -> EpisodeMeta:
        if ref.meta_json:
            return parse_model(EpisodeMeta, ref.meta_json, file=ref.data_file, episode=ref.episode_id)
        task = self._manifest.tasks[0].name
        return EpisodeMeta(
            episode_id=ref.episode_id,
            task=task,
            instruction=ref.tasks[0] if ref.tasks else "",
            length=ref.length,
            source=EpisodeSource(
                format="lerobot", path=str(ref.data_file.relative_to(self.path)), index=ref.index
            ),
            extras={"lerobot_tasks": ref.tasks} if len(ref.tasks) > 1 else {},
        )


def read_parquet(file: Path, *, skip_prefix: str | None = None, **options: Any) -> Any:
    """The table of a parquet file (without columns starting with `skip_prefix`); a corrupt or truncated
    file is a one-line error naming it, not pyarrow's exception."""
    pa, pq = import_pyarrow()
    try:
        if skip_prefix is not None:
            options["columns"] = [c for c in pq.read_schema(file).names if not c.startswith(skip_prefix)]
        return pq.read_table(file, **options)
    except (pa.ArrowException, OSError) as exc:
        raise FormatError(f"unreadable parquet file ({exc})", file=file) from None


def decode_image_cell(cell: dict[str, Any] | None, key: str) -> np.ndarray:
    """An RGB frame from a LeRobot 'image' feature cell ({'bytes': PNG/JPEG, 'path': ...})."""
    import cv2

    data = (cell or {}).get("bytes")
    image = None if data is None else cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise FormatError("image cell cannot be decoded", field=key)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)

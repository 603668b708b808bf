"""LeRobot dataset layout: paths, feature names and the small readers both directions share."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from genima_data.errors import FormatError
from genima_data.schema import NAME_PATTERN

CODEBASE_VERSION = "v3.0"
READABLE_VERSIONS = ("v2.0", "v2.1", "v3.0")
INFO_PATH = "meta/info.json"
STATS_PATH = "meta/stats.json"
TASKS_PATH = "meta/tasks.parquet"
EPISODES_DIR = "meta/episodes"
CALIBRATION_PATH = "meta/calibration.json"
GENIMA_PATH = "meta/genima.json"
PENDING_PATH = "meta/.genima-pending.json"
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
EPISODES_PATH = EPISODES_DIR + "/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"

STATE, ACTION, VELOCITY, EFFORT = "observation.state", "action", "observation.velocity", "observation.effort"
IMAGE_PREFIX = "observation.images."
GRIPPER_NAME = "gripper_open"
EPISODE_META_COLUMN = "genima/episode"
INDEX_FEATURES: dict[str, dict[str, Any]] = {
    "timestamp": {"dtype": "float32", "shape": [1], "names": None},
    "frame_index": {"dtype": "int64", "shape": [1], "names": None},
    "episode_index": {"dtype": "int64", "shape": [1], "names": None},
    "index": {"dtype": "int64", "shape": [1], "names": None},
    "task_index": {"dtype": "int64", "shape": [1], "names": None},
}
# single-path features every LeRobot user knows; everything else goes under genima.<path>
KNOWN_FEATURES = {VELOCITY: "robot/joint_velocities", EFFORT: "robot/joint_forces"}
DEFAULT_TOLERANCE_S = 1e-4


def import_pyarrow() -> tuple[Any, Any]:
    """(pyarrow, pyarrow.parquet), or a one-line error naming the extra that installs them."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:  # pragma: no cover - the formats extra is installed in tests
        raise FormatError("LeRobot datasets need pyarrow: pip install 'genima-data[formats]'") from None
    return pa, pq


def looks_like_lerobot(path: Path) -> bool:
    """A LeRobot dataset, or one genima-data is writing."""
    return path.is_dir() and ((path / INFO_PATH).is_file() or (path / PENDING_PATH).is_file())


def read_json(path: Path, *, what: str) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise FormatError(f"{what} is missing", file=path) from None
    except json.JSONDecodeError as exc:
        raise FormatError(f"{what} is not valid JSON: {exc}", file=path) from None


def read_json_lines(path: Path, *, what: str) -> list[dict[str, Any]]:
    if not path.is_file():
        raise FormatError(f"{what} is missing", file=path)
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise FormatError(f"line {number} is not valid JSON: {exc}", file=path) from None
    return rows


def feature_names(features: dict[str, Any], key: str, *, file: Path) -> list[str]:
    """The names of a 1-D feature's entries (LeRobot writes a list, v2.0 ports a {"motors": [...]})."""
    names = features[key].get("names")
    if isinstance(names, dict):
        names = next(iter(names.values()), None)
    if names is None:
        raise FormatError(
            "names is null: the entries of the state vector must be named (e.g. joint names and "
            "'gripper') so joints and gripper can be told apart",
            file=file,
            field=f"features.{key}.names",
        )
    shape = features[key].get("shape") or [0]
    if len(names) != int(np.prod(shape)):
        raise FormatError(f"{len(names)} names for shape {shape}", file=file, field=f"features.{key}.names")
    return [str(n) for n in names]


def column_to_numpy(column: Any, length: int) -> np.ndarray:
    """A parquet column of scalars or (fixed-size) lists as a (T,) or (T, n) array."""
    import pyarrow.compute as pc

    column = column.combine_chunks() if hasattr(column, "combine_chunks") else column
    if hasattr(column.type, "value_type"):
        values = np.asarray(pc.list_flatten(column))
        if length and values.size % length:
            raise FormatError(f"rows have different lengths ({values.size} values in {length} rows)")
        return values.reshape(length, -1)
    return column.to_numpy(zero_copy_only=False)


def camera_name_of(key: str) -> str:
    """Camera name for an image feature key: 'observation.images.top' → 'top'."""
    name = key.removeprefix(IMAGE_PREFIX)
    return name if re.match(NAME_PATTERN, name) else re.sub(r"[^A-Za-z0-9_.\-]", "_", name).strip("_.-")

"""LeRobot datasets as a format: v3.0 read and written, v2.1 and v2.0 read. Needs the `formats` extra.

Layout (v3.0, what `LeRobotWriter` writes)::

    meta/info.json                     codebase_version, fps, features (dtype, shape, names), path templates
    meta/stats.json                    min/max/mean/std/count per feature over the dataset
    meta/tasks.parquet                 task string (pandas index 'task') → task_index
    meta/episodes/chunk-*/file-*.parquet  one row per episode: length, tasks, where its rows and video are,
                                       per-episode stats
    data/chunk-*/file-*.parquet        one row per frame, many episodes per file
    videos/<key>/chunk-*/file-*.mp4    one stream per camera, many episodes per file
    meta/calibration.json              genima-data's addition: the cameras' calibration (LeRobot has no slot)
    meta/genima.json                   genima-data's addition: robot, tasks and array mapping, for exact
                                       round trips

v2.1/v2.0 keep one parquet and one MP4 per episode (``data/chunk-000/episode_000000.parquet``,
``videos/chunk-000/<key>/episode_000000.mp4``) and JSON-lines metadata (``meta/episodes.jsonl``,
``meta/tasks.jsonl``, ``meta/episodes_stats.jsonl``).

Mapping to the canonical tree: ``observation.state`` = arm joints + gripper (names pick them, see
`ArmLayout`), ``action`` likewise, ``observation.velocity``/``observation.effort`` = joint velocities and
torques, ``observation.images.<cam>`` = ``cameras/<cam>/rgb``, everything else numeric under
``genima.<path>`` (genima-data's own) or ``extras/<key>`` (foreign). Video frames are decoded lazily by
timestamp ``from_timestamp + timestamp``; timestamps must follow the frame rate within ``tolerance_s``
(LeRobot's own rule, default 1e-4 s).
"""

from __future__ import annotations

from genima_data.formats import Format
from genima_data.formats.lerobot_layout import looks_like_lerobot
from genima_data.formats.lerobot_reader import LeRobotReader
from genima_data.formats.lerobot_writer import LeRobotWriter

__all__ = ["LEROBOT", "LeRobotReader", "LeRobotWriter"]

LEROBOT = Format(
    name="lerobot",
    description="LeRobot dataset: v3.0 read and written, v2.1/v2.0 read (parquet + MP4)",
    detect=looks_like_lerobot,
    reader=LeRobotReader,
    writer=LeRobotWriter,
    parallel_write=False,  # v3 packs many episodes into each data and video file
)

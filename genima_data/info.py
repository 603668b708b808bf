"""`dataset_info`: what a dataset holds, as plain data (JSON) and as rich tables.

Reads only metadata (manifest, per-episode array shapes), never image data, so it is instant on any size.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Group
from rich.table import Table

from genima_data.store import open_dataset


def _camera_summary(cam: Any) -> dict[str, Any]:
    K = cam.K_array
    return {
        "name": cam.name,
        "resolution": f"{cam.width}x{cam.height}",
        "fx": round(float(K[0, 0]), 3),
        "fy": round(float(K[1, 1]), 3),
        "cx": round(float(K[0, 2]), 3),
        "cy": round(float(K[1, 2]), 3),
        "distortion": str(cam.distortion.model),
        "mount": cam.mount,
        "pose": "static"
        if cam.T_world_camera is not None
        else "per-frame"
        if cam.mount != "world"
        else "none",
    }


def dataset_info(path: str | Path) -> dict[str, Any]:
    """Summary of a dataset: episodes, frames, cameras with calibration, tasks, streams, size, codecs."""
    with open_dataset(path) as ds:
        m = ds.manifest
        lengths = np.array([e.length for e in m.episodes], dtype=np.int64)
        streams: dict[str, str] = {}
        if ds.episode_ids:
            with ds.episode(ds.episode_ids[0]) as ep:
                streams = {k: f"{tuple(ep[k].shape[1:])} {np.dtype(ep[k].dtype)}" for k in ep.paths()}
        labelled = [e.success for e in m.episodes if e.success is not None]
        tasks = []
        for task in m.tasks:
            count = sum(e.task == task.name for e in m.episodes)
            tasks.append({"name": task.name, "episodes": count, "instructions": len(task.instructions)})
        return {
            "path": str(ds.path),
            "name": m.name,
            "backend": ds.backend,
            "format_version": m.format_version,
            "episodes": len(m.episodes),
            # indexed but gone from disk (a partial copy): one stat per episode, no data read
            "missing_episodes": [e for e in ds.episode_ids if not ds.episode_path(e).exists()],
            "frames": int(lengths.sum()),
            "episode_length": {
                "min": int(lengths.min()) if lengths.size else 0,
                "mean": float(lengths.mean()) if lengths.size else 0.0,
                "max": int(lengths.max()) if lengths.size else 0,
            },
            "fps": m.fps,
            "duration_s": float(lengths.sum() / m.fps),
            "success_rate": float(np.mean(labelled)) if labelled else None,
            "robot": {"name": m.robot.name, "model": m.robot.model, "dof": m.robot.dof},
            "cameras": [_camera_summary(c) for c in m.cameras],
            "tasks": tasks,
            "streams": streams,
            "splits": {k: len(v) for k, v in m.splits.items()},
            "size_bytes": ds.size_on_disk(),
            "codecs": dict(m.storage.codecs) if m.storage else {},
            "requires": list(m.storage.requires) if m.storage else [],
        }


def _human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    raise AssertionError("unreachable")


def _episodes_line(info: dict[str, Any]) -> str:
    missing = info["missing_episodes"]
    if not missing:
        return str(info["episodes"])
    named = ", ".join(missing[:3]) + (", …" if len(missing) > 3 else "")
    return f"{info['episodes']} [bold red]({len(missing)} missing on disk: {named}; see validate)[/]"


def info_renderable(info: dict[str, Any]) -> Group:
    """Rich tables for `dataset_info`'s result."""
    overview = Table(
        title=f"{info['name']}  ({info['backend']}, format {info['format_version']})", show_header=False
    )
    overview.add_column(style="bold")
    overview.add_column()
    length = info["episode_length"]
    rate = "unknown" if info["success_rate"] is None else f"{info['success_rate']:.1%}"
    for key, value in (
        ("path", info["path"]),
        ("episodes", _episodes_line(info)),
        (
            "frames",
            f"{info['frames']} (per episode {length['min']}–{length['max']}, mean {length['mean']:.1f})",
        ),
        ("fps / duration", f"{info['fps']:g} Hz / {info['duration_s']:.1f} s"),
        ("success rate", rate),
        ("robot", f"{info['robot']['name']} ({info['robot']['model']}, {info['robot']['dof']} DoF)"),
        ("size on disk", _human_bytes(info["size_bytes"])),
        ("codecs", ", ".join(f"{k}: {v}" for k, v in info["codecs"].items()) or "-"),
        ("needs", ", ".join(info["requires"]) or "-"),
        ("splits", ", ".join(f"{k}: {v}" for k, v in info["splits"].items()) or "-"),
    ):
        overview.add_row(key, value)
    cameras = Table(title="cameras")
    for col in ("name", "resolution", "fx", "fy", "cx", "cy", "distortion", "mount", "pose"):
        cameras.add_column(col)
    for cam in info["cameras"]:
        cameras.add_row(
            *(
                str(cam[c])
                for c in ("name", "resolution", "fx", "fy", "cx", "cy", "distortion", "mount", "pose")
            )
        )
    tasks = Table(title="tasks")
    for col in ("task", "episodes", "instructions"):
        tasks.add_column(col)
    for task in info["tasks"]:
        tasks.add_row(task["name"], str(task["episodes"]), str(task["instructions"]))
    streams = Table(title="streams (first episode)")
    streams.add_column("array")
    streams.add_column("per-frame shape and dtype")
    for key, value in info["streams"].items():
        streams.add_row(key, value)
    return Group(overview, cameras, tasks, streams)

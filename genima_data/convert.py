"""`convert`: read episodes from any registered format and write them to any other.

Resumable: the destination writer knows which episodes are complete and they are skipped. Crash-safe:
each episode lands atomically and the destination is committed (index written) only when every episode
converted, or with ``skip_invalid`` when every good one did. Without ``skip_invalid`` the first bad
episode stops the run with its one-line error and the destination stays uncommitted (never looks valid).
"""

from __future__ import annotations

import inspect
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from genima_data.errors import FormatError, GenimaDataError
from genima_data.formats import Reader, Writer, destination_format, detect_format, get_format
from genima_data.parallel import run_tasks
from genima_data.progress import progress_bar
from genima_data.schema import Manifest, natural_key


@dataclass(frozen=True)
class ConvertJob:
    """One episode to convert; everything a fresh worker process needs to do it."""

    source: str
    source_format: str
    reader_options: tuple[tuple[str, Any], ...]
    destination: str
    destination_format: str
    writer_options: tuple[tuple[str, Any], ...]
    episode_id: str


@dataclass
class ConvertResult:
    """What a conversion did; `failed` maps episode id to its one-line error."""

    source_format: str
    destination_format: str
    destination: Path
    written: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    manifest: Manifest | None = None

    @property
    def ok(self) -> bool:
        return not self.failed

    def to_dict(self) -> dict[str, Any]:
        return {
            "source_format": self.source_format,
            "destination_format": self.destination_format,
            "destination": str(self.destination),
            "written": self.written,
            "skipped": self.skipped,
            "failed": self.failed,
            "committed": self.manifest is not None,
        }


_WORKER_CACHE: dict[tuple, Any] = {}


def _cached(kind: str, fmt: str, path: str, options: tuple, factory: Any) -> Any:
    key = (kind, fmt, path, json.dumps(options, sort_keys=True, default=str))
    if key not in _WORKER_CACHE:
        _WORKER_CACHE[key] = factory()
    return _WORKER_CACHE[key]


def convert_episode(
    job: ConvertJob, reader: Reader | None = None, writer: Writer | None = None
) -> str | None:
    """Convert one episode; returns None on success or the one-line error of a bad episode."""
    src_fmt, dst_fmt = get_format(job.source_format), get_format(job.destination_format)
    reader = reader or _cached(
        "r",
        job.source_format,
        job.source,
        job.reader_options,
        lambda: src_fmt.reader(Path(job.source), **dict(job.reader_options)),
    )
    writer = writer or _cached(
        "w",
        job.destination_format,
        job.destination,
        job.writer_options,
        lambda: dst_fmt.writer(Path(job.destination), None, **dict(job.writer_options)),
    )
    try:
        with reader.episode(job.episode_id) as episode:
            writer.write_episode(episode)
    except GenimaDataError as exc:  # the source's file where the reader knows it (stores), else its root
        episode_path = getattr(reader, "episode_path", None)
        where = episode_path(job.episode_id) if episode_path is not None else job.source
        return str(exc.located(file=where, episode=job.episode_id))
    return None


def _require_same_episodes(reader: Reader, writer: Writer, episode_ids: list[str]) -> None:
    """Refuse to resume over episodes whose metadata differs from the source's, where the destination can
    tell (the canonical stores): another seed or re-recording under the same manifest is not this data."""
    require_same = getattr(writer, "require_same_episode", None)
    for eid in episode_ids if require_same is not None else []:
        with reader.episode(eid) as episode:
            require_same(episode.meta)


def check_options(factory: Any, what: str, *args: Any, **options: Any) -> None:
    """A one-line error for options a reader or writer does not take (instead of a TypeError)."""
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):  # pragma: no cover - builtins without a signature
        return
    try:
        signature.bind(*args, **options)
    except TypeError as exc:
        accepted = [p for p in signature.parameters.values() if p.kind is inspect.Parameter.KEYWORD_ONLY]
        raise FormatError(
            f"{what}: {exc} (options: {', '.join(p.name for p in accepted) or 'none'})"
        ) from None


def open_source(
    source: str | Path, source_format: str | None = None, **reader_options: Any
) -> tuple[str, Reader]:
    """Detect (or take) the source format and open a reader on it."""
    name = source_format or detect_format(source)
    fmt = get_format(name)
    if fmt.reader is None:
        raise FormatError(f"format '{name}' cannot be read", file=source)
    check_options(fmt.reader, f"format '{name}' reader", Path(source), **reader_options)
    return name, fmt.reader(Path(source), **reader_options)


def convert(
    source: str | Path,
    destination: str | Path,
    *,
    to: str | None = None,
    source_format: str | None = None,
    workers: int = 1,
    skip_invalid: bool = False,
    reader_options: dict[str, Any] | None = None,
    writer_options: dict[str, Any] | None = None,
    engine: str = "local",
    address: str | None = None,
    episodes: list[str] | None = None,
    progress: bool = False,
) -> ConvertResult:
    """Convert `source` to `destination` (format `to`, or implied by the destination); see module doc."""
    reader_options, writer_options = dict(reader_options or {}), dict(writer_options or {})
    src_name, reader = open_source(source, source_format, **reader_options)
    if Path(destination).resolve() == Path(source).resolve():
        raise FormatError("the destination is the source; choose another destination", file=destination)
    dst_name = to or destination_format(destination)
    if dst_name is None:
        raise FormatError("cannot tell the destination format from its name; pass --to", file=destination)
    dst_fmt = get_format(dst_name)
    if dst_fmt.writer is None:
        raise FormatError(f"format '{dst_name}' cannot be written", file=destination)
    if engine != "local" and not dst_fmt.parallel_write:
        raise FormatError(
            f"format '{dst_name}' is written by a single process (episodes share files); "
            "convert it with the local engine",
            file=destination,
        )
    check_options(dst_fmt.writer, f"format '{dst_name}' writer", Path(destination), None, **writer_options)
    writer = dst_fmt.writer(Path(destination), reader.manifest, **writer_options)
    result = ConvertResult(src_name, dst_name, Path(destination))

    ids = sorted(episodes if episodes is not None else reader.episode_ids, key=natural_key)
    unknown = sorted(set(ids) - set(reader.episode_ids))
    if unknown:
        raise FormatError(f"no such episodes in the source: {unknown}", file=source)
    result.skipped = [e for e in ids if writer.has_episode(e)]
    todo = [e for e in ids if not writer.has_episode(e)]
    _require_same_episodes(reader, writer, result.skipped)
    jobs = [
        ConvertJob(
            str(source),
            src_name,
            tuple(sorted(reader_options.items())),
            str(destination),
            dst_name,
            tuple(sorted(writer_options.items())),
            eid,
        )
        for eid in todo
    ]
    parallel = dst_fmt.parallel_write and (workers > 1 or engine != "local")
    run = (
        run_tasks(convert_episode, jobs, workers=workers, engine=engine, address=address)
        if parallel
        else ((job, convert_episode(job, reader, writer)) for job in jobs)
    )
    with progress_bar(len(jobs), f"convert {src_name} → {dst_name}", enabled=progress) as advance:
        try:
            for job, error in run:
                advance(1)
                if error is None:
                    result.written.append(job.episode_id)
                elif skip_invalid:
                    result.failed[job.episode_id] = error
                else:
                    raise GenimaDataError(error)
        finally:
            if hasattr(run, "close"):
                run.close()
    result.written.sort(key=natural_key)
    result.manifest = writer.commit()
    return result

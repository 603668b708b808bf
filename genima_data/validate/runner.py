"""`validate_dataset`: run the selected checks over a dataset, episodes in parallel, and collect a report.

The episode pass opens every indexed episode (an episode that cannot be opened becomes an error finding,
never a crash) and runs the episode-scope checks on it, in this process or in worker processes; then the
dataset-scope checks run with what the pass gathered (joint-trajectory fingerprints for `duplicates`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from genima_data.errors import GenimaDataError, SchemaError
from genima_data.parallel import run_tasks
from genima_data.progress import progress_bar
from genima_data.schema import EpisodeSummary
from genima_data.store import Dataset, open_dataset
from genima_data.validate.checks import joint_digest
from genima_data.validate.registry import (
    CheckSpec,
    DatasetContext,
    EpisodeContext,
    Finding,
    Severity,
    ValidateOptions,
    load_checks,
    resolve_checks,
    run_check,
)
from genima_data.validate.report import ValidationReport

Opened = tuple[Dataset, dict[str, EpisodeSummary], dict[str, Any]]  # dataset, index, per-process cache


def registered_checks() -> dict[str, CheckSpec]:
    """Every check the modules in CHECK_MODULES register, by name, in registration order."""
    from genima_data.validate import CHECK_MODULES  # the package imports this module

    return load_checks(CHECK_MODULES)


@dataclass(frozen=True)
class EpisodeJob:
    """One episode to validate; everything a fresh worker process needs (picklable)."""

    dataset: str
    episode_id: str
    checks: tuple[str, ...]
    modules: tuple[str, ...]  # modules registering those checks, imported by the worker
    options: ValidateOptions


@dataclass(frozen=True)
class EpisodeOutcome:
    findings: tuple[Finding, ...]
    joint_digest: str | None


_OPENED: dict[str, Opened] = {}  # per worker process: each opens the dataset once


def _open(path: str) -> Opened:
    if path not in _OPENED:
        dataset = open_dataset(path)
        _OPENED[path] = (dataset, {e.episode_id: e for e in dataset.manifest.episodes}, {})
    return _OPENED[path]


def _unopenable(job: EpisodeJob, file: str, exc: Exception) -> Finding:
    """The finding for an episode that cannot be opened at all (missing, truncated, invalid metadata)."""
    if isinstance(exc, GenimaDataError):
        check = "episode_meta" if isinstance(exc, SchemaError) else "episode_files"
        message, field, file = exc.message, exc.field, exc.file or file
    else:  # e.g. a zarr group whose metadata JSON is cut short
        check, message, field = "episode_files", f"cannot be opened: {type(exc).__name__}: {exc}", None
    return Finding(check, Severity.error, message, episode=job.episode_id, field=field, file=file)


def validate_episode(job: EpisodeJob, opened: Opened | None = None) -> EpisodeOutcome:
    """Run the job's episode checks on one episode (in a worker, `opened` is None: open it here)."""
    registry = load_checks(job.modules)
    dataset, index, shared = opened or _open(job.dataset)
    file = str(dataset.episode_path(job.episode_id))
    try:
        episode = dataset.episode(job.episode_id)
    except Exception as exc:  # any failure to open is a finding for this episode, not a crash of the run
        return EpisodeOutcome((_unopenable(job, file, exc),), None)
    with episode:
        ctx = EpisodeContext(
            path=dataset.path,
            dataset=dataset,
            manifest=dataset.manifest,
            options=job.options,
            episode=episode,
            episode_id=job.episode_id,
            file=file,
            summary=index.get(job.episode_id),
            shared=shared,
        )
        findings = tuple(f for name in job.checks for f in run_check(registry[name], ctx))
        try:
            digest = joint_digest(ctx)
        except Exception:  # unreadable joints are already reported by the checks that read them
            digest = None
    return EpisodeOutcome(findings, digest)


def validate_dataset(
    path: str | Path,
    *,
    checks: list[str] | None = None,
    options: ValidateOptions | None = None,
    workers: int = 1,
    progress: bool = False,
) -> ValidationReport:
    """Validate a dataset with the named checks (default: every default check); see the module docstring.

    Raises StoreError/SchemaError when the dataset cannot be opened at all (missing or malformed manifest,
    incomplete write) and GenimaDataError for unknown check names.
    """
    options = options or ValidateOptions()
    selected = resolve_checks(registered_checks(), checks)
    episode_checks = tuple(s.name for s in selected if s.scope == "episode")
    modules = tuple(dict.fromkeys(s.fn.__module__ for s in selected))
    with open_dataset(path) as dataset:
        index = {e.episode_id: e for e in dataset.manifest.episodes}
        shared: dict[str, Any] = {}
        root = str(dataset.path)
        jobs = [EpisodeJob(root, eid, episode_checks, modules, options) for eid in dataset.episode_ids]
        run = validate_episode if workers > 1 else partial(validate_episode, opened=(dataset, index, shared))
        outcomes: dict[str, EpisodeOutcome] = {}
        with progress_bar(len(jobs), "validating episodes", enabled=progress) as advance:
            for job, outcome in run_tasks(run, jobs, workers=workers):
                outcomes[job.episode_id] = outcome
                advance(1)
        ctx = DatasetContext(
            path=dataset.path,
            dataset=dataset,
            manifest=dataset.manifest,
            options=options,
            joint_digests={e: o.joint_digest for e, o in outcomes.items() if o.joint_digest is not None},
            shared=shared,
        )
        findings = [f for spec in selected if spec.scope == "dataset" for f in run_check(spec, ctx)]
        findings += [f for job in jobs for f in outcomes[job.episode_id].findings]
        return ValidationReport(
            dataset=str(path),
            backend=dataset.backend,
            episodes=len(jobs),
            checks=selected,
            findings=findings,
            options=options,
        )

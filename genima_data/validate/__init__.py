"""`genima-data validate`: is a dataset GENIMA-ready? A registry of small checks, a report, exit codes.

    report = validate_dataset("delivery.zarr", workers=4)
    report.exit_code        # 0 ready (warnings allowed), 1 errors found
    report.write_json("report.json")

Adding checks: write a module whose functions are decorated with
``@check(name, scope="dataset" | "episode", description=...)`` and yield `Finding`s (most easily through
``ctx.error / ctx.warning / ctx.info``, which fill in the check, episode and file), then append the module
to CHECK_MODULES. Episode checks read arrays through ``ctx.array(path)`` (cached, non-image arrays) and
image streams only frame by frame (``ctx.frame_stats(path)``, ``ctx.episode.iter_frames(path)``); their
thresholds belong in `ValidateOptions`. Worker processes import the same modules, so checks run with
``--workers`` unchanged.
"""

from __future__ import annotations

from genima_data.validate.registry import (
    CheckSpec,
    DatasetContext,
    EpisodeContext,
    Finding,
    FrameStats,
    Severity,
    ValidateOptions,
    check,
    describe_frames,
)
from genima_data.validate.report import ValidationReport, checks_table
from genima_data.validate.runner import registered_checks, validate_dataset

CHECK_MODULES: list[str] = [
    "genima_data.validate.checks",
    "genima_data.validate.geometry",
]

__all__ = [
    "CHECK_MODULES",
    "CheckSpec",
    "DatasetContext",
    "EpisodeContext",
    "Finding",
    "FrameStats",
    "Severity",
    "ValidateOptions",
    "ValidationReport",
    "check",
    "checks_table",
    "describe_frames",
    "registered_checks",
    "validate_dataset",
]

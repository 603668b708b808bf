"""The pieces every check is built from: findings, options, the check registry and the contexts checks read.

A check is a small function registered with `@check(name, scope=..., description=...)`. Dataset-scope
checks get a `DatasetContext` once per run; episode-scope checks get an `EpisodeContext` once per episode
(possibly in a worker process). Both yield `Finding`s, usually through ``ctx.error/warning/info``, which
fill in the check name, episode and file.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import Enum
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import numpy as np

from genima_data.episode import Episode, is_image_path
from genima_data.errors import GenimaDataError
from genima_data.schema import EpisodeMeta, EpisodeSummary, Manifest
from genima_data.store import Dataset
from genima_data.store.base import StructureKind, structure_problems

Scope = Literal["dataset", "episode"]
LISTED_FRAMES = 10  # frame indices named in a message; the finding's `frames` keeps up to MAX_FRAMES
MAX_FRAMES = 200


class Severity(str, Enum):
    """How bad a finding is: errors make a dataset not GENIMA-ready, warnings deserve a look."""

    error = "error"
    warning = "warning"
    info = "info"


@dataclass(frozen=True)
class Finding:
    """One thing a check found: where (episode, field, file, frames) and what (message)."""

    check: str
    severity: Severity
    message: str
    episode: str | None = None
    field: str | None = None
    file: str | None = None
    frames: tuple[int, ...] = ()

    def one_line(self) -> str:
        """``<file>: episode <id>: <field>: <message>``, the same form as genima-data's errors."""
        where = {"file": self.file, "episode": self.episode, "field": self.field}
        return GenimaDataError(self.message, **where).one_line()

    def to_dict(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "severity": self.severity.value,
            "episode": self.episode,
            "field": self.field,
            "file": self.file,
            "frames": list(self.frames),
            "message": self.message,
        }


@dataclass(frozen=True)
class ValidateOptions:
    """Every threshold the checks use; defaults suit 10–30 Hz teleoperation and RLBench data."""

    horizon: int = 20  # GENIMA's target horizon in frames
    min_length: int | None = None  # shortest acceptable episode; None: horizon + 3
    max_length: int | None = 10_000  # longer episodes are probably several demonstrations run together
    joint_limit_margin_rad: float = 0.02  # tolerated excursion beyond the robot's joint limits
    velocity_limit_factor: float = 1.5  # a jump: joint speed above this × joint_velocity_limits
    fps_tolerance: float = 0.1  # measured frame interval may differ from 1/fps by this fraction
    dropped_frame_factor: float = 1.5  # an interval longer than this many periods drops frames
    jitter_warning_fraction: float = 0.2  # warn when the interval's std exceeds this fraction of a period
    blank_std_threshold: float = 2.0  # a frame whose pixel std (grey levels) is below this is blank
    frozen_run_frames: int = 5  # this many identical consecutive frames make a frozen run
    frozen_motion_rad: float = 0.01  # ... an error when the arm moved more than this during the run
    min_fov_deg: float = 10.0  # plausible horizontal/vertical field of view implied by K
    max_fov_deg: float = 170.0
    max_pixel_aspect: float = 1.05  # fx / fy beyond this (or its inverse) is suspicious
    fk_tolerance_m: float = 0.03  # geometry checks: recorded poses vs forward kinematics
    fk_tolerance_deg: float = 3.0  # ... and a camera's orientation in an FK link frame
    camera_tolerance_m: float = 0.002  # static cameras, and cameras on a recorded link: allowed motion
    camera_tolerance_deg: float = 0.2
    strict: bool = False  # warnings count as errors for the exit code

    @property
    def effective_min_length(self) -> int:
        return self.min_length if self.min_length is not None else self.horizon + 3

    def with_overrides(self, overrides: Mapping[str, Any]) -> ValidateOptions:
        """A copy with `overrides` applied; unknown names or wrong types raise a one-line error."""
        fields = {f.name: str(f.type) for f in dataclasses.fields(self)}
        for name, value in overrides.items():
            if name not in fields:
                raise GenimaDataError(f"unknown option; choose from {', '.join(fields)}", field=name)
            base, _, optional = fields[name].partition(" | ")
            accepted = {"int": (int,), "float": (int, float), "bool": (bool,)}[base]
            if not (
                (value is None and optional)
                or (isinstance(value, accepted) and isinstance(value, bool) == (base == "bool"))
            ):
                raise GenimaDataError(f"expects {fields[name]}, got {value!r}", field=name)
        return dataclasses.replace(self, **overrides)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


CheckFn = Callable[[Any], Iterable[Finding]]


@dataclass(frozen=True)
class CheckSpec:
    """A registered check."""

    name: str
    scope: Scope
    description: str
    default: bool
    fn: CheckFn


REGISTRY: dict[str, CheckSpec] = {}


def check(name: str, *, scope: Scope, description: str, default: bool = True) -> Callable[[CheckFn], CheckFn]:
    """Register ``fn(ctx) -> Iterable[Finding]`` as check `name`; default checks run unless some are named."""

    def register(fn: CheckFn) -> CheckFn:
        known = REGISTRY.get(name)
        if known is not None and (known.fn.__module__, known.fn.__qualname__) != (
            fn.__module__,
            fn.__qualname__,
        ):
            raise ValueError(f"check '{name}' is already registered by {known.fn.__module__}")
        REGISTRY[name] = CheckSpec(name, scope, " ".join(description.split()), default, fn)
        return fn

    return register


def load_checks(modules: Iterable[str]) -> dict[str, CheckSpec]:
    """Import the check modules (registering their checks) and return the registry."""
    for module in modules:
        importlib.import_module(module)
    return REGISTRY


def resolve_checks(registry: Mapping[str, CheckSpec], names: Iterable[str] | None) -> list[CheckSpec]:
    """The checks to run: the named ones, or every default one; unknown names raise a one-line error."""
    if names is None:
        return [spec for spec in registry.values() if spec.default]
    names = list(dict.fromkeys(names))
    unknown = [n for n in names if n not in registry]
    if unknown:
        raise GenimaDataError(
            f"unknown check(s) {', '.join(unknown)}; known: {', '.join(registry)}", field="checks"
        )
    return [registry[n] for n in names]


def describe_frames(frames: Iterable[int]) -> str:
    """'frame 7' or 'frames 3, 4, 9 (+12 more)'."""
    frames = list(frames)
    head = ", ".join(map(str, frames[:LISTED_FRAMES]))
    more = f" (+{len(frames) - LISTED_FRAMES} more)" if len(frames) > LISTED_FRAMES else ""
    return f"frame{'s' if len(frames) > 1 else ''} {head}{more}"


@dataclass
class DatasetContext:
    """What a dataset-scope check reads. `joint_digests` (episode id → fingerprint of its joint
    trajectory) is filled by the episode pass, which runs first."""

    path: Path
    dataset: Dataset
    manifest: Manifest
    options: ValidateOptions
    joint_digests: dict[str, str] = field(default_factory=dict)
    shared: dict[str, Any] = field(default_factory=dict)  # per process, kept across episodes: see `cached`
    check_name: str = ""  # set by the runner before each check runs

    def cached(self, key: str, factory: Callable[[], Any]) -> Any:
        """An expensive object (kinematics, a camera model) built once per process and reused by every
        episode this process checks."""
        if key not in self.shared:
            self.shared[key] = factory()
        return self.shared[key]

    def finding(
        self,
        severity: Severity,
        message: str,
        *,
        field: str | None = None,
        frames: Iterable[int] = (),
        episode: str | None = None,
        file: str | Path | None = None,
    ) -> Finding:
        return Finding(
            check=self.check_name,
            severity=severity,
            message=message,
            episode=episode,
            field=field,
            file=str(self.path if file is None else file),
            frames=tuple(int(t) for t in list(frames)[:MAX_FRAMES]),
        )

    def error(self, message: str, **where: Any) -> Finding:
        return self.finding(Severity.error, message, **where)

    def warning(self, message: str, **where: Any) -> Finding:
        return self.finding(Severity.warning, message, **where)

    def info(self, message: str, **where: Any) -> Finding:
        return self.finding(Severity.info, message, **where)


@dataclass(frozen=True)
class FrameStats:
    """Per-frame statistics of one image stream, gathered in a single frame-by-frame pass."""

    std: np.ndarray  # (T,) pixel standard deviation
    same_as_previous: np.ndarray  # (T,) bool; frame t identical to frame t-1 (False at t = 0)
    nonfinite: np.ndarray  # (T,) number of NaN/inf values (0 for integer streams)


@dataclass
class EpisodeContext(DatasetContext):
    """What an episode-scope check reads: the dataset context plus one open episode.

    `array(path)` loads (and caches) a whole non-image array; image streams are only ever read frame by
    frame, through `frame_stats` or `episode.iter_frames`.
    """

    episode: Episode = field(default=None)  # type: ignore[assignment]
    episode_id: str = ""  # the id the dataset stores the episode under (its metadata may disagree)
    file: str | None = None  # the episode's file or group on disk
    summary: EpisodeSummary | None = None  # the manifest index's line for this episode
    _arrays: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    _frame_stats: dict[str, FrameStats] = field(default_factory=dict, repr=False)

    @property
    def meta(self) -> EpisodeMeta:
        return self.episode.meta

    def finding(self, severity: Severity, message: str, **where: Any) -> Finding:
        where.setdefault("episode", self.episode_id)
        where.setdefault("file", self.file)
        return super().finding(severity, message, **where)

    def has(self, path: str) -> bool:
        return path in self.episode

    def array(self, path: str) -> np.ndarray:
        """The whole array at `path` (cached); refuses image streams, which must be streamed."""
        if is_image_path(path):
            raise ValueError(f"{path} is an image stream: read it frame by frame")
        if path not in self._arrays:
            self._arrays[path] = np.asarray(self.episode[path][...])
        return self._arrays[path]

    @cached_property
    def structure(self) -> list[tuple[StructureKind, GenimaDataError]]:
        """`genima_data.store.base.structure_problems` of this episode, computed once."""
        return list(structure_problems(self.episode, self.manifest))

    def usable(self, path: str) -> bool:
        """Whether value checks can read `path`: present, numeric, and one frame has the expected shape."""
        if path not in self.episode or np.dtype(self.episode[path].dtype).kind not in "biuf":
            return False
        return not any(kind in ("unknown", "shape") and err.field == path for kind, err in self.structure)

    def frame_stats(self, path: str) -> FrameStats:
        """Statistics of every frame of an image stream, streamed one frame at a time (cached)."""
        if path not in self._frame_stats:
            source = self.episode[path]
            T = source.shape[0]
            std = np.zeros(T)
            same = np.zeros(T, dtype=bool)
            nonfinite = np.zeros(T, dtype=np.int64)
            floating = np.dtype(source.dtype).kind == "f"
            previous = None
            for t, frame in enumerate(self.episode.iter_frames(path)):
                std[t] = frame.std()
                same[t] = previous is not None and np.array_equal(frame, previous)
                if floating:
                    nonfinite[t] = frame.size - np.count_nonzero(np.isfinite(frame))
                previous = frame
            self._frame_stats[path] = FrameStats(std, same, nonfinite)
        return self._frame_stats[path]


def run_check(spec: CheckSpec, ctx: DatasetContext) -> Iterator[Finding]:
    """Run one check; a check that cannot read its data reports an error instead of stopping the run."""
    ctx.check_name = spec.name
    try:
        findings = list(spec.fn(ctx))
    except GenimaDataError as exc:
        findings = [ctx.error(exc.message, field=exc.field, **({"file": exc.file} if exc.file else {}))]
    except Exception as exc:  # any other failure stops this check only, and is reported as a finding
        findings = [ctx.error(f"could not run this check: {type(exc).__name__}: {exc}")]
    yield from findings

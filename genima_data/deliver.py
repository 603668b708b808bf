"""`deliver`: turn a dataset into a self-describing, verifiable delivery bundle; `verify` checks one.

    genima-data deliver delivery.zarr OUT [--allow-warnings] [--render-targets]
    genima-data verify OUT

The bundle::

    OUT/
      <dataset>/            the dataset (a copy; with its stats document, and targets when rendered)
      DATASHEET.md          datasheet with tables and figures (genima_data.datasheet)
      stats.json            exact statistics (genima_data.stats)
      validation.json       the validation report the delivery passed
      previews/             figures: episode lengths, joint coverage, frames per camera, target sheets
      delivery.json         what was delivered: dataset, its fingerprint, tool version, pending items
      checksums.sha256      SHA-256 of every other file, in the format `sha256sum -c` reads

Validation comes first: errors stop the delivery, and so do warnings unless `allow_warnings`. The bundle is
built in a temporary sibling folder and renamed into place at the end, so OUT is either the previous
delivery or the complete new one, never a half-written bundle. OUT may already hold a delivery of the same
dataset (it is replaced); anything else there is refused. `verify` streams every file through SHA-256
(large files never load whole), reports missing, changed and unlisted files, and validates the dataset again.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from genima_data import __version__
from genima_data.atomic import TMP_PREFIX, atomic_output, atomic_write_text, remove_path
from genima_data.errors import GenimaDataError
from genima_data.progress import progress_bar
from genima_data.stats import compute_stats, save_stats
from genima_data.store import open_dataset
from genima_data.validate import ValidateOptions, ValidationReport, validate_dataset

CHECKSUMS = "checksums.sha256"
DELIVERY = "delivery.json"
DATASHEET = "DATASHEET.md"
PREVIEWS = "previews"
DELIVERY_VERSION = 1
HASH_BLOCK = 1 << 20  # files are hashed in 1 MiB blocks
TARGET_SHEETS = 2  # episodes whose sphere-target contact sheets go into previews/
# arrays every episode has; small, and they tell two recordings apart where metadata may not
IDENTITY_ARRAYS = ("timestamps", "robot/joint_positions", "robot/gripper_open")


class DeliveryError(GenimaDataError):
    """A delivery cannot be made (validation failed, OUT holds something else) or does not verify."""


# ------------------------------------------------------------------------------------------- checksums
def sha256_file(path: Path, advance: Any = None) -> str:
    """Hex SHA-256 of a file, read in blocks; `advance(n)` is called with the bytes read."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(HASH_BLOCK):
            digest.update(block)
            if advance is not None:
                advance(len(block))
    return digest.hexdigest()


def bundle_files(root: Path) -> list[Path]:
    """Every file below `root` except the checksum list itself, as sorted relative POSIX paths."""
    files = (p.relative_to(root) for p in root.rglob("*") if p.is_file() and not p.is_symlink())
    return sorted((p for p in files if p.as_posix() != CHECKSUMS), key=lambda p: p.as_posix())


def write_checksums(root: Path, *, progress: bool = False) -> Path:
    """Write ``checksums.sha256`` (``<hex>  <relative path>`` per line, `sha256sum -c` format)."""
    files = bundle_files(root)
    total = sum((root / f).stat().st_size for f in files)
    lines = []
    with progress_bar(total, "checksums (bytes)", enabled=progress) as advance:
        for rel in files:
            lines.append(f"{sha256_file(root / rel, advance)}  {rel.as_posix()}\n")
    atomic_write_text(root / CHECKSUMS, "".join(lines))
    return root / CHECKSUMS


@dataclass
class ChecksumReport:
    """What `check_checksums` found."""

    checked: int = 0
    changed: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unlisted: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.changed or self.missing or self.unlisted)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "checked": self.checked,
            "changed": self.changed,
            "missing": self.missing,
            "unlisted": self.unlisted,
        }


def read_checksums(root: Path) -> dict[str, str]:
    """relative path -> hex digest from ``checksums.sha256``; a malformed line is a one-line error."""
    path = root / CHECKSUMS
    if not path.is_file():
        raise DeliveryError("not a delivery: no checksums.sha256", file=root)
    entries = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        digest, sep, name = line.partition("  ")
        if not sep or len(digest) != 64 or not all(c in "0123456789abcdef" for c in digest):
            raise DeliveryError(f"line {number} is not '<sha256>  <path>'", file=path)
        if name.startswith("/") or ".." in Path(name).parts:
            raise DeliveryError(f"line {number} names a file outside the delivery: {name}", file=path)
        entries[name] = digest
    return entries


def check_checksums(root: Path, *, progress: bool = False) -> ChecksumReport:
    """Re-hash every listed file; report changed, missing and unlisted files."""
    listed = read_checksums(root)
    present = {p.as_posix() for p in bundle_files(root)}
    report = ChecksumReport(missing=sorted(set(listed) - present), unlisted=sorted(present - set(listed)))
    todo = [name for name in listed if name in present]
    total = sum((root / name).stat().st_size for name in todo)
    with progress_bar(total, "verifying checksums (bytes)", enabled=progress) as advance:
        for name in todo:
            if sha256_file(root / name, advance) != listed[name]:
                report.changed.append(name)
            report.checked += 1
    return report


# ------------------------------------------------------------------------------------------- delivery
def dataset_fingerprint(path: Path) -> str:
    """SHA-256 of what identifies the dataset: its committed manifest (identity and episode index) and,
    per episode, its metadata and the arrays every episode has (timestamps, joints, gripper)."""
    digest = hashlib.sha256()
    with open_dataset(path) as ds:
        digest.update(ds.manifest.to_json().encode())
        for eid in ds.episode_ids:
            with ds.episode(eid) as ep:
                digest.update(ep.meta.model_dump_json().encode())
                for name in IDENTITY_ARRAYS:
                    _hash_array(digest, np.asarray(ep.load(name)))
    return digest.hexdigest()


def _hash_array(digest: Any, array: np.ndarray) -> None:
    digest.update(f"{array.dtype.str}{array.shape}".encode())
    digest.update(np.ascontiguousarray(array).tobytes())


def _check_destination(out: Path, dataset: Path, fingerprint: str) -> None:
    out_r, dataset_r = out.resolve(), dataset.resolve()
    if out_r == dataset_r or dataset_r in out_r.parents or out_r in dataset_r.parents:
        raise DeliveryError("the delivery folder cannot contain, or be inside, the dataset", file=out)
    if not out.exists():
        return
    if out.is_file() or (any(out.iterdir()) and not (out / DELIVERY).is_file()):
        raise DeliveryError("exists and is not a delivery; choose an empty or new folder", file=out)
    if (out / DELIVERY).is_file():
        try:
            previous = json.loads((out / DELIVERY).read_text())
        except json.JSONDecodeError:
            raise DeliveryError("holds a delivery.json that is not JSON", file=out) from None
        if previous.get("fingerprint") != fingerprint:
            raise DeliveryError(
                f"already holds a different delivery (dataset '{previous.get('dataset')}', fingerprint "
                f"{str(previous.get('fingerprint'))[:12]}…); choose another folder or remove it",
                file=out,
            )
        added = _files_not_delivered(out)
        if added:  # delivering again replaces the folder: files someone put there would be lost
            raise DeliveryError(
                f"holds files that are not part of the delivery ({', '.join(added[:3])}"
                f"{', …' if len(added) > 3 else ''}); move them out, then deliver again",
                file=out,
            )


def _files_not_delivered(out: Path) -> list[str]:
    """Files in a delivery folder that its checksum list does not name (all of them without a list)."""
    listed = read_checksums(out) if (out / CHECKSUMS).is_file() else {}
    return sorted({p.as_posix() for p in bundle_files(out)} - set(listed))


def _gate(report: ValidationReport, allow_warnings: bool, dataset: Path) -> None:
    if report.errors or (report.warnings and not allow_warnings):
        first = (report.errors or report.warnings)[0]
        what = f"{len(report.errors)} error(s)" if report.errors else f"{len(report.warnings)} warning(s)"
        hint = "fix them" if report.errors else "fix them or pass --allow-warnings"
        raise DeliveryError(
            f"validation found {what}; {hint} (first: [{first.check}] {first.one_line()})", file=dataset
        )


def _copy_dataset(source: Path, destination: Path, *, progress: bool) -> None:
    """Copy the dataset's files, leaving out leftovers of interrupted writes (.tmp-* files and folders)."""
    files = [
        p
        for p in source.rglob("*")
        if p.is_file() and not any(part.startswith(TMP_PREFIX) for part in p.relative_to(source).parts)
    ]
    with progress_bar(len(files), "copying dataset", enabled=progress) as advance:
        for path in files:
            target = destination / path.relative_to(source)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
            advance(1)


def _render_api() -> Any | None:
    """The render pipeline (targets and previews), or None in a build without it."""
    try:
        from genima_data.render import pipeline, preview
    except ImportError:
        return None
    return pipeline, preview


def _targets_missing(dataset: Path) -> list[str]:
    """Episodes whose cameras lack a stored `targets/<cam>/rgb`."""
    with open_dataset(dataset) as ds:
        missing = []
        for eid in ds.episode_ids:
            with ds.episode(eid) as ep:
                cams = [c for c in ep.camera_names if f"cameras/{c}/rgb" in ep]
                if any(f"targets/{c}/rgb" not in ep for c in cams):
                    missing.append(eid)
        return missing


@dataclass
class DeliveryResult:
    """What `deliver` wrote."""

    out: Path
    dataset_dir: str
    report: ValidationReport
    files: int
    pending: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {
            "out": str(self.out),
            "dataset": self.dataset_dir,
            "genima_ready": self.report.exit_code == 0,
            "files": self.files,
            "pending": self.pending,
        }


def _previews(bundle: Path, dataset_dir: Path, stats: Any, render: Any, pending: list[str]) -> dict[str, str]:
    from genima_data.datasheet import camera_sample_sheet, plot_episode_lengths, plot_joint_coverage

    previews = bundle / PREVIEWS
    figures: dict[str, str] = {}
    with open_dataset(dataset_dir) as ds:
        m = ds.manifest
        plot_episode_lengths(stats, m.fps, previews / "episode_lengths.png")
        figures["lengths"] = f"{PREVIEWS}/episode_lengths.png"
        if "robot/joint_positions" in stats.fields:
            joints = stats.field("robot/joint_positions")
            plot_joint_coverage(
                joints, m.robot.joint_lower, m.robot.joint_upper, previews / "joint_coverage.png"
            )
            figures["joints"] = f"{PREVIEWS}/joint_coverage.png"
        for cam in m.cameras:
            if camera_sample_sheet(ds, cam.name, previews / f"camera_{cam.name}.png") is not None:
                figures[f"camera:{cam.name}"] = f"{PREVIEWS}/camera_{cam.name}.png"
        ids = ds.episode_ids
    if render is None:
        pending.append("sphere-target contact sheets (this genima-data build has no render module)")
        return figures
    for eid in ids[:TARGET_SHEETS]:
        render[1].write_preview(dataset_dir, eid, previews / f"targets_{eid}.png")
        figures[f"targets:{eid}"] = f"{PREVIEWS}/targets_{eid}.png"
    return figures


def _streams(dataset_dir: Path) -> dict[str, str]:
    with open_dataset(dataset_dir) as ds, ds.episode(ds.episode_ids[0]) as ep:
        return {k: f"{tuple(ep[k].shape[1:])} {np.dtype(ep[k].dtype)}" for k in ep.paths()}


def _build(
    bundle: Path,
    dataset: Path,
    report: ValidationReport,
    *,
    render_targets: bool,
    info: dict[str, str],
    workers: int,
    progress: bool,
) -> tuple[str, list[str]]:
    from genima_data.datasheet import DatasheetInputs, render_datasheet

    dataset_dir = bundle / dataset.name
    _copy_dataset(dataset, dataset_dir, progress=progress)
    pending: list[str] = []
    render = _render_api()
    missing = _targets_missing(dataset_dir)
    if missing and render_targets:
        if render is None:
            raise DeliveryError("--render-targets needs the render module, which this build lacks")
        result = render[0].render_targets(
            dataset_dir, random_bg="procedural", workers=workers, progress=progress
        )
        if result.failed:
            error = next(iter(result.failed.values()))
            raise DeliveryError(
                f"rendering targets failed for {len(result.failed)} episode(s); first: {error}"
            )
    elif missing:
        pending.append(
            f"sphere targets are not stored for {len(missing)} episode(s): training renders them on the fly, "
            "or re-deliver with --render-targets"
        )
    stats = compute_stats(dataset_dir, workers=workers, progress=progress)
    save_stats(dataset_dir, stats)
    stats.write_json(bundle / "stats.json")
    report.write_json(bundle / "validation.json")
    figures = _previews(bundle, dataset_dir, stats, render, pending)
    with open_dataset(dataset_dir) as ds:
        metas = [ds.episode(eid).meta for eid in ds.episode_ids]
        manifest = ds.manifest
    inputs = DatasheetInputs(
        manifest=manifest,
        metas=metas,
        stats=stats,
        validation=report.to_dict(),
        dataset_dir=dataset.name,
        streams=_streams(dataset_dir),
        figures=figures,
        pending=pending,
        info=info,
    )
    atomic_write_text(bundle / DATASHEET, render_datasheet(inputs))
    return dataset.name, pending


def _remove_stale_builds(out: Path) -> None:
    """Leftovers of interrupted deliveries to `out` (temporary siblings) are removed."""
    for leftover in out.parent.glob(f"{TMP_PREFIX}{out.name}.*"):
        remove_path(leftover)


def deliver(
    dataset: str | Path,
    out: str | Path,
    *,
    allow_warnings: bool = False,
    render_targets: bool = False,
    options: ValidateOptions | None = None,
    info: dict[str, str] | None = None,
    workers: int = 1,
    progress: bool = False,
) -> DeliveryResult:
    """Validate `dataset` and write its delivery bundle to `out` (see the module docstring)."""
    dataset, out = Path(dataset), Path(out)
    fingerprint = dataset_fingerprint(dataset)  # also refuses a missing or uncommitted dataset
    _check_destination(out, dataset, fingerprint)
    report = validate_dataset(dataset, options=options, workers=workers, progress=progress)
    _gate(report, allow_warnings, dataset)
    _remove_stale_builds(out)
    with atomic_output(out) as bundle:
        bundle.mkdir()
        dataset_dir, pending = _build(
            bundle,
            dataset,
            report,
            render_targets=render_targets,
            info=info or {},
            workers=workers,
            progress=progress,
        )
        record = {
            "delivery_version": DELIVERY_VERSION,
            "dataset": open_dataset(bundle / dataset_dir).manifest.name,
            "dataset_dir": dataset_dir,
            "fingerprint": fingerprint,
            "tool": f"genima-data {__version__}",
            "pending": pending,
        }
        atomic_write_text(bundle / DELIVERY, json.dumps(record, indent=2) + "\n")
        write_checksums(bundle, progress=progress)
        files = len(read_checksums(bundle))
    return DeliveryResult(out, dataset_dir, report, files, pending)


# ------------------------------------------------------------------------------------------- verify
@dataclass
class VerifyResult:
    """Checksums and validation of a delivery."""

    out: Path
    checksums: ChecksumReport
    report: ValidationReport | None
    unreadable: str | None = None  # why the dataset could not be validated at all

    @property
    def ok(self) -> bool:
        return self.checksums.ok and self.report is not None and self.report.exit_code == 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "out": str(self.out),
            "ok": self.ok,
            "checksums": self.checksums.to_dict(),
            "validation": None if self.report is None else self.report.to_dict(),
            "unreadable": self.unreadable,
        }


def verify(
    out: str | Path, *, options: ValidateOptions | None = None, workers: int = 1, progress: bool = False
) -> VerifyResult:
    """Re-check every checksum of a delivery and validate its dataset again."""
    out = Path(out)
    if not (out / DELIVERY).is_file():
        raise DeliveryError("not a delivery: no delivery.json", file=out)
    try:
        dataset = out / str(json.loads((out / DELIVERY).read_text())["dataset_dir"])
    except (json.JSONDecodeError, KeyError, TypeError):
        raise DeliveryError("delivery.json does not name the dataset folder", file=out / DELIVERY) from None
    checksums = check_checksums(out, progress=progress)
    try:
        report = validate_dataset(dataset, options=options, workers=workers, progress=progress)
    except GenimaDataError as exc:  # e.g. a damaged manifest: the checksums already say which file
        return VerifyResult(out, checksums, None, str(exc))
    return VerifyResult(out, checksums, report)


def load_info(path: str | Path) -> dict[str, str]:
    """Datasheet answers from a YAML file (keys: see datasheet.INFO_SECTIONS)."""
    import yaml

    from genima_data.datasheet import INFO_SECTIONS

    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise DeliveryError(f"unreadable info file ({' '.join(str(exc).split())})", file=path) from None
    if not isinstance(doc, dict):
        raise DeliveryError("the info file must be a mapping", file=path)
    unknown = sorted(set(doc) - set(INFO_SECTIONS))
    if unknown:
        raise DeliveryError(f"unknown keys {unknown}; use {', '.join(INFO_SECTIONS)}", file=path)
    return {k: str(v) for k, v in doc.items()}

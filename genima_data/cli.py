"""`genima-data`: the command line, a thin layer over the public API.

Errors a user can cause print one line (file, episode, field, message) and exit non-zero; ``--debug``
shows the traceback instead. Progress goes to stderr, JSON to files or stdout.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape

from genima_data import __version__
from genima_data.errors import GenimaDataError

app = typer.Typer(
    name="genima-data",
    help="Make robot demonstrations GENIMA-ready: convert, render sphere targets, validate, inspect.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
console = Console()
err_console = Console(stderr=True, soft_wrap=True)

EXIT_OK, EXIT_ERROR, EXIT_UNREADABLE, EXIT_BUG = 0, 1, 2, 3


def _version(value: bool) -> None:
    if value:
        console.print(f"genima-data {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks instead of one-line errors."),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version."
    ),
) -> None:
    """Make robot demonstrations GENIMA-ready."""


def _parse_options(pairs: list[str], what: str) -> dict[str, Any]:
    """KEY=VALUE pairs; values are parsed as JSON where they can be (numbers, booleans), else strings."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise GenimaDataError(f"{what} '{pair}' is not KEY=VALUE")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def _write_json(path: Path, data: Any) -> None:
    from genima_data.atomic import atomic_write_text

    atomic_write_text(path, json.dumps(data, indent=2, default=str) + "\n")


@app.command()
def convert(
    source: Path = typer.Argument(..., help="Dataset to read (format detected; see --from)."),
    destination: Path = typer.Argument(..., help="Where to write it."),
    to: str | None = typer.Option(
        None, "--to", help="Destination format (zarr, hdf5, ...); default from the name."
    ),
    source_format: str | None = typer.Option(
        None, "--from", help="Source format, if detection is not enough."
    ),
    workers: int = typer.Option(
        1, "--workers", "-w", min=1, help="Processes converting episodes in parallel."
    ),
    skip_invalid: bool = typer.Option(
        False, "--skip-invalid", help="Convert every good episode, list the bad ones, exit 1."
    ),
    codec: str | None = typer.Option(
        None,
        "--codec",
        help="Image codec of the destination (stores; lerobot: libsvtav1/libx264; aloha: raw/jpeg).",
    ),
    calibration: Path | None = typer.Option(
        None, "--calibration", help="Calibration file for sources without one (ALOHA, raw)."
    ),
    mapping: Path | None = typer.Option(
        None, "--mapping", help="Mapping file of a raw recording (--from raw; see examples/vendor)."
    ),
    reader_opt: list[str] = typer.Option([], "--reader-opt", help="Extra reader option KEY=VALUE."),
    writer_opt: list[str] = typer.Option([], "--writer-opt", help="Extra writer option KEY=VALUE."),
    engine: str = typer.Option("local", "--engine", help="local (process pool) or ray."),
    address: str | None = typer.Option(None, "--address", help="Ray cluster address for --engine ray."),
    report: Path | None = typer.Option(None, "--json", help="Write a JSON report of the conversion here."),
) -> None:
    """Convert a dataset between formats; an interrupted run resumes when re-run."""
    from genima_data.convert import convert as run_convert

    reader_options = _parse_options(reader_opt, "--reader-opt")
    writer_options = _parse_options(writer_opt, "--writer-opt")
    if calibration is not None:
        reader_options["calibration"] = str(calibration)
    if mapping is not None:
        reader_options["mapping"] = str(mapping)
    if codec is not None:
        writer_options["image_codec"] = codec
    result = run_convert(
        source,
        destination,
        to=to,
        source_format=source_format,
        workers=workers,
        skip_invalid=skip_invalid,
        reader_options=reader_options,
        writer_options=writer_options,
        engine=engine,
        address=address,
        progress=True,
    )
    if report is not None:
        _write_json(report, result.to_dict())
    console.print(
        f"{result.source_format} → {result.destination_format}: wrote {len(result.written)}, "
        f"skipped {len(result.skipped)} already complete, failed {len(result.failed)} → {destination}"
    )
    for episode_id, error in result.failed.items():
        err_console.print(f"[red]failed[/] {escape(episode_id)}: {escape(error)}", highlight=False)
    if not result.ok:
        raise typer.Exit(EXIT_ERROR)


@app.command()
def info(
    dataset: Path = typer.Argument(..., help="A genima-data dataset (HDF5 directory or .zarr)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of tables."),
) -> None:
    """Episodes, frames, cameras with calibration, tasks, size on disk and codecs."""
    from genima_data.info import dataset_info, info_renderable

    summary = dataset_info(dataset)
    if as_json:
        console.print_json(data=summary)
    else:
        console.print(info_renderable(summary))


@app.command()
def schema(
    out: Path = typer.Option(Path("schemas"), "--out", help="Directory for the JSON Schema files."),
    check: bool = typer.Option(False, "--check", help="Exit 1 if the files there are out of date."),
) -> None:
    """Write (or check) the JSON Schema files of the manifest, episode metadata and calibration."""
    from genima_data.schema import json_schemas, write_json_schemas

    if check:
        stale = [
            stem
            for stem, doc in json_schemas().items()
            if not (out / f"{stem}.schema.json").exists()
            or json.loads((out / f"{stem}.schema.json").read_text()) != doc
        ]
        if stale:
            err_console.print(f"out of date in {out}: {', '.join(stale)}; run `genima-data schema`")
            raise typer.Exit(EXIT_ERROR)
        console.print(f"schemas in {out} are up to date")
        return
    for path in write_json_schemas(out):
        console.print(f"wrote {path}")


@app.command()
def demo(
    destination: Path = typer.Argument(Path("demo/sample.zarr"), help="Where to build the sample dataset."),
    episodes: int = typer.Option(4, min=1, help="Number of episodes."),
    frames: int = typer.Option(48, min=2, help="Frames per episode."),
    size: int = typer.Option(128, min=16, help="Image width and height in pixels."),
    seed: int = typer.Option(0, help="Random seed."),
) -> None:
    """Build the bundled synthetic sample dataset."""
    from genima_data.demo import build_demo

    ds = build_demo(destination, episodes=episodes, frames=frames, size=size, seed=seed)
    console.print(f"built {destination}: {len(ds)} episodes")


# ---------------------------------------------------------------------------- render: targets and preview
def _target_config(config: Path | None, overrides: list[str]) -> Any:
    """TargetConfig from YAML (GENIMA's defaults without one) with KEY=VALUE overrides, dotted for nesting."""
    from genima_data.render.targets import TargetConfig

    data = TargetConfig.from_yaml(config).model_dump(mode="json") if config else {}
    for key, value in _parse_options(overrides, "--set").items():
        *parents, leaf = key.split(".")
        node = data
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return TargetConfig.parse(data, file=config)


def _names(values: list[str]) -> list[str] | None:
    """Repeated and/or comma-separated names, or None when none were given."""
    names = [n for v in values for n in v.split(",") if n]
    return names or None


CONFIG_OPTION = typer.Option(None, "--config", help="Target config YAML; GENIMA's defaults otherwise.")
SET_OPTION = typer.Option([], "--set", help="Override a config key, e.g. horizon=10, camera_scales.front=6.")
CAMERAS_OPTION = typer.Option([], "--cameras", help="Cameras (repeat or comma-separate); default all.")


@app.command("render-targets")
def render_targets_command(
    dataset: Path = typer.Argument(..., help="A genima-data dataset (HDF5 directory or .zarr)."),
    config: Path | None = CONFIG_OPTION,
    set_: list[str] = SET_OPTION,
    cameras: list[str] = CAMERAS_OPTION,
    random_bg: str | None = typer.Option(
        None, "--random-bg", help="Also write rnd_bg targets on 'procedural' textures or a folder of images."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the random backgrounds."),
    workers: int = typer.Option(
        1, "--workers", "-w", min=1, help="Processes rendering episodes in parallel."
    ),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Replace targets that were rendered with another config."
    ),
    export_png: Path | None = typer.Option(
        None, "--export-png", help="Also write GENIMA's PNG folders (<cam>_rgb/, tiled_rgb*/) here."
    ),
    codec: str | None = typer.Option(
        None, "--codec", help="Lossless codec of the targets (default blosc-lz4); 'store': the store's own."
    ),
    report: Path | None = typer.Option(None, "--json", help="Write a JSON report here."),
) -> None:
    """Render GENIMA sphere targets into the dataset; a re-run skips what is done and resumes."""
    from genima_data.render.export import export_genima_png
    from genima_data.render.pipeline import render_targets

    target_config = _target_config(config, set_)
    result = render_targets(
        dataset,
        config=target_config,
        cameras=_names(cameras),
        random_bg=random_bg,
        seed=seed,
        workers=workers,
        overwrite=overwrite,
        progress=True,
        **({} if codec is None else {"codec": None if codec == "store" else codec}),
    )
    summary = result.to_dict()
    console.print(
        f"targets for {', '.join(result.cameras)} (config {target_config.fingerprint()}): rendered "
        f"{len(result.rendered)} episodes, skipped {len(result.skipped)} already done, failed "
        f"{len(result.failed)} → {dataset}"
    )
    for error in result.failed.values():  # each names its episode
        err_console.print(f"[red]failed[/] {escape(error)}", highlight=False)
    if export_png is not None and result.ok:
        exported = export_genima_png(dataset, export_png, cameras=_names(cameras), progress=True)
        summary["export"] = {"roots": [str(r) for r in exported.roots], "untiled": exported.untiled}
        console.print(f"exported GENIMA PNG folders: {', '.join(str(r) for r in exported.roots)}")
    if report is not None:
        _write_json(report, summary)
    if not result.ok:
        raise typer.Exit(EXIT_ERROR)


@app.command()
def preview(
    dataset: Path = typer.Argument(..., help="A genima-data dataset (HDF5 directory or .zarr)."),
    episode: str | None = typer.Option(None, "--episode", help="Episode id; default the first."),
    out: Path = typer.Option(Path("preview.png"), "--out", help="PNG file to write."),
    frames: int = typer.Option(4, "--frames", min=1, help="Frames sampled evenly over the episode."),
    config: Path | None = CONFIG_OPTION,
    set_: list[str] = SET_OPTION,
    cameras: list[str] = CAMERAS_OPTION,
    seed: int = typer.Option(0, "--seed", help="Seed of on-the-fly random backgrounds."),
) -> None:
    """Contact sheet of one episode: observation, target and random-background tiles per camera."""
    from genima_data.render.preview import write_preview
    from genima_data.store import open_dataset

    if episode is None:
        with open_dataset(dataset) as ds:
            if not ds.episode_ids:
                raise GenimaDataError("dataset has no episodes", file=dataset)
            episode = ds.episode_ids[0]
    write_preview(
        dataset,
        episode,
        out,
        frames=frames,
        cameras=_names(cameras),
        config=_target_config(config, set_),
        seed=seed,
    )
    console.print(f"wrote {out}")


# ---------------------------------------------------------------- validate (branch `validate`)
def _default(name: str) -> Any:
    from genima_data.validate import ValidateOptions

    return getattr(ValidateOptions(), name)


@app.command()
def validate(
    dataset: Path | None = typer.Argument(None, help="A genima-data dataset (HDF5 directory or .zarr)."),
    report: Path | None = typer.Option(None, "--json", help="Write the full report as JSON here."),
    checks: str | None = typer.Option(None, "--checks", help="Comma-separated checks to run (default: all)."),
    list_checks: bool = typer.Option(False, "--list-checks", help="List the checks and exit."),
    workers: int = typer.Option(1, "--workers", "-w", min=1, help="Processes checking episodes."),
    strict: bool = typer.Option(False, "--strict", help="Warnings count as errors (exit 1)."),
    horizon: int = typer.Option(_default("horizon"), min=1, help="GENIMA target horizon in frames."),
    min_length: int | None = typer.Option(
        None, min=1, help="Shortest acceptable episode (default: horizon + 3)."
    ),
    max_length: int | None = typer.Option(_default("max_length"), min=1, help="Longest acceptable episode."),
    joint_margin: float = typer.Option(
        _default("joint_limit_margin_rad"), help="Tolerance beyond joint limits, rad."
    ),
    velocity_factor: float = typer.Option(
        _default("velocity_limit_factor"), help="Jump: joint speed above this × the velocity limit."
    ),
    fps_tolerance: float = typer.Option(
        _default("fps_tolerance"), help="Allowed relative error of the measured frame interval vs 1/fps."
    ),
    blank_std: float = typer.Option(
        _default("blank_std_threshold"), help="Blank frame: pixel std below this (grey levels)."
    ),
    frozen_frames: int = typer.Option(
        _default("frozen_run_frames"), min=2, help="Frozen: this many identical consecutive frames."
    ),
    option: list[str] = typer.Option(
        [], "--option", "-o", help="Any other threshold as NAME=VALUE (see ValidateOptions)."
    ),
    max_findings: int = typer.Option(20, help="Findings listed on screen (the JSON has all)."),
) -> None:
    """Check that a dataset is GENIMA-ready: exit 0 ready, 1 errors found, 2 unreadable input."""
    from genima_data.validate import ValidateOptions, checks_table, registered_checks, validate_dataset

    if list_checks:
        console.print(checks_table(list(registered_checks().values())))
        return
    if dataset is None:
        raise typer.BadParameter("missing the DATASET to validate", param_hint="DATASET")
    flags = {
        "horizon": horizon,
        "max_length": max_length,
        "joint_limit_margin_rad": joint_margin,
        "velocity_limit_factor": velocity_factor,
        "fps_tolerance": fps_tolerance,
        "blank_std_threshold": blank_std,
        "frozen_run_frames": frozen_frames,
        "strict": strict,
        **({"min_length": min_length} if min_length is not None else {}),
    }
    names = [n.strip() for n in checks.split(",") if n.strip()] if checks else None
    try:
        options = ValidateOptions().with_overrides({**flags, **_parse_options(option, "--option")})
        result = validate_dataset(dataset, checks=names, options=options, workers=workers, progress=True)
    except GenimaDataError as exc:  # unreadable dataset, unknown check or option: nothing was validated
        exc.exit_code = EXIT_UNREADABLE  # main() prints the one line and exits with it
        raise
    console.print(result.renderable(max_findings), soft_wrap=True)
    if report is not None:
        try:
            result.write_json(report)
        except (OSError, GenimaDataError) as exc:  # validated and shown, but the report was not written
            error = exc if isinstance(exc, GenimaDataError) else GenimaDataError(os_error_line(exc))
            error.exit_code = EXIT_UNREADABLE
            raise error from None
    raise typer.Exit(result.exit_code)


# ------------------------------------------------------------------------------------------------------------
# calibration (branch `calibration`): import camera calibration, show it, attach it to a dataset
calibration_app = typer.Typer(
    help="Import camera calibration (ROS camera_info, OpenCV FileStorage, Kalibr camchain, genima) and "
    "attach it to a dataset.",
    no_args_is_help=True,
)
app.add_typer(calibration_app, name="calibration")

CALIBRATION_FORMAT_HELP = "File format: ros, opencv, kalibr or genima (default: detected)."
CAMERA_HELP = "Name the camera of a ROS/OpenCV file, or pick one camera of a Kalibr/genima file."
RENAME_HELP = "Rename a camera OLD=NEW, e.g. cam0=front (repeatable)."
REFERENCE_HELP = "Kalibr reference frame the poses are relative to: cam0..camN or imu."
REFERENCE_POSE_HELP = (
    "File with T_world_reference, the reference frame's pose in the world (default identity)."
)


def _name_pairs(pairs: list[str], what: str) -> dict[str, str]:
    """NAME=VALUE options with the value kept as text (camera names, file names)."""
    _parse_options(pairs, what)  # rejects anything that is not KEY=VALUE
    return dict(pair.split("=", 1) for pair in pairs)


def _load_cameras(
    files: list[Path],
    fmt: str | None,
    camera: str | None,
    rename: list[str],
    reference: str,
    reference_pose: Path | None,
) -> list:
    from genima_data.calibration import load_calibrations, load_pose

    if camera is not None and len(files) > 1:
        raise GenimaDataError("--camera applies to one file; use --rename to name the cameras of several")
    return load_calibrations(
        files,
        format=fmt,
        camera=camera,
        rename=_name_pairs(rename, "--rename"),
        reference=reference,
        T_world_reference=None if reference_pose is None else load_pose(reference_pose),
    )


@calibration_app.command("show")
def calibration_show(
    file: Path = typer.Argument(..., help="Calibration file."),
    as_json: bool = typer.Option(False, "--json", help="Print the cameras as genima-format JSON."),
    fmt: str | None = typer.Option(None, "--format", help=CALIBRATION_FORMAT_HELP),
    camera: str | None = typer.Option(None, "--camera", help=CAMERA_HELP),
    rename: list[str] = typer.Option([], "--rename", help=RENAME_HELP),
    reference: str = typer.Option("cam0", "--reference", help=REFERENCE_HELP),
    reference_pose: Path | None = typer.Option(None, "--reference-pose", help=REFERENCE_POSE_HELP),
    out: Path | None = typer.Option(
        None, "--out", help="Also save the cameras in genima format (YAML/JSON)."
    ),
) -> None:
    """Show the cameras of a calibration file; --out converts it to genima format."""
    from genima_data.calibration import calibration_document, calibration_table, save_calibration

    cameras = _load_cameras([file], fmt, camera, rename, reference, reference_pose)
    if out is not None:
        save_calibration(cameras, out)
    if as_json:
        console.print_json(data=calibration_document(cameras))
    else:
        console.print(calibration_table(cameras, title=str(file)))


@calibration_app.command("attach")
def calibration_attach(
    dataset: Path = typer.Argument(..., help="A genima-data dataset (HDF5 directory or .zarr)."),
    files: list[Path] = typer.Argument(
        None, help="Calibration files (intrinsics, and poses where they have them)."
    ),
    fmt: str | None = typer.Option(None, "--format", help=CALIBRATION_FORMAT_HELP),
    camera: str | None = typer.Option(None, "--camera", help=CAMERA_HELP),
    rename: list[str] = typer.Option([], "--rename", help=RENAME_HELP),
    pose: list[str] = typer.Option(
        [], "--pose", help="Set a camera's T_world_camera from a file: NAME=FILE."
    ),
    reference: str = typer.Option("cam0", "--reference", help=REFERENCE_HELP),
    reference_pose: Path | None = typer.Option(None, "--reference-pose", help=REFERENCE_POSE_HELP),
    intrinsics_only: bool = typer.Option(
        False, "--intrinsics-only", help="Keep the dataset's camera poses; take only intrinsics from FILES."
    ),
) -> None:
    """Attach calibration to a dataset's cameras (image sizes are checked against the frames)."""
    from genima_data.calibration import attach_calibration, calibration_table, load_pose

    cameras = _load_cameras(files or [], fmt, camera, rename, reference, reference_pose)
    poses = {name: load_pose(path) for name, path in _name_pairs(pose, "--pose").items()}
    if not cameras and not poses:
        raise GenimaDataError("nothing to attach: give calibration FILES and/or --pose NAME=FILE")
    manifest = attach_calibration(dataset, cameras, poses=poses, intrinsics_only=intrinsics_only)
    changed = {c.name for c in cameras} | set(poses)
    console.print(
        calibration_table([c for c in manifest.cameras if c.name in changed], title=f"attached to {dataset}")
    )


# ---------------------------------------------------------------- stats (branch `vendor`)
@app.command()
def stats(
    dataset: Path = typer.Argument(..., help="A genima-data dataset (HDF5 directory or .zarr)."),
    report: Path | None = typer.Option(None, "--json", help="Also write the statistics as JSON here."),
    image_frames: int = typer.Option(4, min=0, help="Frames per episode and camera sampled for image stats."),
    workers: int = typer.Option(1, "--workers", "-w", min=1, help="Processes reading episodes."),
    store: bool = typer.Option(True, "--store/--no-store", help="Keep the statistics in the dataset."),
) -> None:
    """Per-channel min, max, mean, std, q01, q99 of joints, gripper, actions and images (exact, mergeable)."""
    from genima_data.stats import compute_stats, save_stats, stats_renderable

    result = compute_stats(dataset, image_frames=image_frames, workers=workers, progress=True)
    if store:
        save_stats(dataset, result)
    if report is not None:
        result.write_json(report)
    console.print(stats_renderable(result))


# ---------------------------------------------------------------- split (branch `vendor`)
@app.command()
def split(
    dataset: Path = typer.Argument(..., help="A genima-data dataset (HDF5 directory or .zarr)."),
    val: float = typer.Option(0.1, "--val", help="Fraction of episodes for validation."),
    seed: int = typer.Option(0, "--seed", help="Random seed (same seed, same split)."),
    stratify: bool = typer.Option(True, "--stratify/--no-stratify", help="Balance tasks and variations."),
) -> None:
    """Record train/val episode lists in the dataset's manifest (by episode, stratified, reproducible)."""
    from rich.table import Table

    from genima_data.splits import split_dataset, split_table_rows
    from genima_data.store import open_dataset

    splits = split_dataset(dataset, val_fraction=val, seed=seed, stratify=stratify)
    with open_dataset(dataset) as ds:
        rows = split_table_rows(ds.manifest.episodes, splits)
    table = Table(title=f"split of {dataset} (val {val}, seed {seed})")
    for column in ("task / variation", "train", "val"):
        table.add_column(column, justify="left" if column.startswith("task") else "right")
    for name, n_train, n_val in rows:
        table.add_row(name, str(n_train), str(n_val))
    table.add_row("[bold]total", str(len(splits["train"])), str(len(splits["val"])))
    console.print(table)


# ---------------------------------------------------------------- deliver / verify (branch `vendor`)
@app.command()
def deliver(
    dataset: Path = typer.Argument(..., help="The dataset to deliver (HDF5 directory or .zarr)."),
    out: Path = typer.Argument(
        ..., help="Delivery folder to write (new, empty, or a delivery of the same data)."
    ),
    allow_warnings: bool = typer.Option(
        False, "--allow-warnings", help="Deliver despite validation warnings."
    ),
    render_targets: bool = typer.Option(
        False, "--render-targets", help="Render missing sphere targets into the delivered copy."
    ),
    info: Path | None = typer.Option(
        None,
        "--info",
        help="YAML with datasheet answers: motivation, collection, uses, maintenance, contact.",
    ),
    workers: int = typer.Option(1, "--workers", "-w", min=1, help="Processes for validation and statistics."),
) -> None:
    """Validate, compute statistics, write DATASHEET.md, previews and checksums.sha256: a checkable bundle."""
    from genima_data.deliver import DeliveryError, load_info
    from genima_data.deliver import deliver as run_deliver

    try:
        result = run_deliver(
            dataset,
            out,
            allow_warnings=allow_warnings,
            render_targets=render_targets,
            info=load_info(info) if info is not None else None,
            workers=workers,
            progress=True,
        )
    except DeliveryError as exc:
        if exc.message.startswith("validation found"):
            console.print("[red]delivery stopped:[/] see `genima-data validate` for every finding")
        raise
    console.print(f"delivered {dataset} → {out}: {result.files} files in checksums.sha256")
    for item in result.pending:
        console.print(f"[yellow]pending:[/] {escape(item)}", highlight=False)


@app.command()
def verify(
    out: Path = typer.Argument(..., help="A delivery folder written by `genima-data deliver`."),
    report: Path | None = typer.Option(None, "--json", help="Write the verification result as JSON here."),
    workers: int = typer.Option(1, "--workers", "-w", min=1, help="Processes for validation."),
) -> None:
    """Re-check every checksum (streamed) and re-validate the dataset: exit 0 intact, 1 not."""
    from genima_data.deliver import verify as run_verify

    result = run_verify(out, workers=workers, progress=True)
    if report is not None:
        _write_json(report, result.to_dict())
    sums = result.checksums
    console.print(f"checksums: {sums.checked} files checked", highlight=False)
    for kind in ("changed", "missing", "unlisted"):
        for name in getattr(sums, kind):
            err_console.print(f"[red]{kind}:[/] {escape(name)}", highlight=False)
    if result.report is not None:  # the findings too, as validate shows them: what failed, where
        console.print(result.report.renderable(), soft_wrap=True)
    else:
        err_console.print(f"[red]cannot validate:[/] {escape(str(result.unreadable))}", highlight=False)
    console.print(
        "[bold green]delivery verified[/]" if result.ok else "[bold red]delivery does NOT verify[/]"
    )
    raise typer.Exit(EXIT_OK if result.ok else EXIT_ERROR)


def os_error_line(exc: OSError) -> str:
    """``<file>: <reason>`` for an OSError, naming both files of a failed rename."""
    files = [str(f) for f in (exc.filename, exc.filename2) if f is not None]
    return ": ".join([" -> ".join(files), exc.strerror] if files and exc.strerror else [str(exc)])


def run_app(typer_app: typer.Typer, args: list[str], prog_name: str) -> None:
    """Run a typer app with one-line errors and exit codes; tracebacks only with --debug."""
    debug = "--debug" in args
    try:
        typer_app(args=args, prog_name=prog_name)  # exits through SystemExit with the command's code
    except GenimaDataError as exc:
        if debug:
            raise
        err_console.print(f"[red]error:[/] {escape(str(exc))}", highlight=False)
        sys.exit(getattr(exc, "exit_code", EXIT_ERROR))
    except OSError as exc:  # the file system refused (permissions, full disk, not a directory): not a bug
        if debug:
            raise
        err_console.print(f"[red]error:[/] {escape(os_error_line(exc))}", highlight=False)
        sys.exit(EXIT_ERROR)
    except Exception as exc:
        if debug:
            raise
        err_console.print(
            f"internal error: {type(exc).__name__}: {exc} (a bug; re-run with --debug for the traceback)",
            highlight=False,
            markup=False,
        )
        sys.exit(EXIT_BUG)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point of `genima-data`."""
    run_app(app, list(sys.argv[1:] if argv is None else argv), "genima-data")

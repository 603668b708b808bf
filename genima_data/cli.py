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
    horizon: int = typer.Option(_default("horizon"), help="GENIMA target horizon in frames."),
    min_length: int | None = typer.Option(None, help="Shortest acceptable episode (default: horizon + 3)."),
    max_length: int | None = typer.Option(_default("max_length"), help="Longest acceptable episode."),
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
    if report is not None:
        result.write_json(report)
    console.print(result.renderable(max_findings), soft_wrap=True)
    raise typer.Exit(result.exit_code)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: one-line errors and exit codes; tracebacks only with --debug."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    try:
        app(args=args, prog_name="genima-data")  # exits through SystemExit with the command's code
    except GenimaDataError as exc:
        if debug:
            raise
        err_console.print(f"[red]error:[/] {escape(str(exc))}", highlight=False)
        sys.exit(getattr(exc, "exit_code", EXIT_ERROR))
    except Exception as exc:
        if debug:
            raise
        err_console.print(
            f"internal error: {type(exc).__name__}: {exc} (a bug; re-run with --debug for the traceback)",
            highlight=False,
            markup=False,
        )
        sys.exit(EXIT_BUG)

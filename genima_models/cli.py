"""`genima-train`: train and evaluate GENIMA's diffusion agent and ACT controller.

Commands import torch only when they run, so ``genima-train --help`` works without the [train] extra.
Errors print one line and exit non-zero, as in genima-data; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from genima_data.cli import run_app

app = typer.Typer(
    name="genima-train",
    help="Train and evaluate GENIMA's two stages on a genima-data dataset (needs the \\[train] extra).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(soft_wrap=True)  # long paths stay on one line


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks instead of one-line errors."),
) -> None:
    """Train and evaluate GENIMA's two stages."""


@app.command("subcommands")
def subcommands() -> None:
    """List the training and evaluation subcommands and their state."""
    typer.echo("act             train the ACT controller            (available)")
    typer.echo("eval-act        offline evaluation of ACT           (available)")
    typer.echo("diffusion       fine-tune the ControlNet agent      (available)")
    typer.echo("eval-diffusion  sphere-localisation metric          (available)")
    typer.echo("eval-genima     offline evaluation of the chain     (available)")


# ---------------------------------------------------------------------------------------------- ACT (issue 5)
def _camera_list(values: list[str]) -> list[str] | None:
    """--cameras a,b --cameras c -> [a, b, c]; None when not given."""
    names = [name for value in values for name in value.split(",") if name]
    return names or None


@app.command("act")
def act(
    data: Path = typer.Option(..., "--data", help="genima-data dataset (zarr or HDF5)."),
    out: Path = typer.Option(..., "--out", help="Run directory: checkpoints/ and metrics.jsonl."),
    preset: str = typer.Option("genima", "--preset", help="genima (GENIMA's ACT) or tiny (CPU tests)."),
    steps: int | None = typer.Option(None, "--steps", min=1, help="Optimizer steps (default: the preset's)."),
    epochs: int | None = typer.Option(
        None, "--epochs", min=1, help="Passes over the data, instead of --steps."
    ),
    batch_size: int | None = typer.Option(None, "--batch-size", min=1, help="Samples per step and device."),
    lr: float | None = typer.Option(None, "--lr", help="Learning rate of everything but the ResNets."),
    lr_backbone: float | None = typer.Option(None, "--lr-backbone", help="Learning rate of the ResNets."),
    cameras: list[str] = typer.Option([], "--cameras", help="Cameras to use (repeat or comma-separate)."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the latest checkpoint in --out."),
    num_workers: int = typer.Option(0, "--num-workers", min=0, help="DataLoader worker processes."),
    mixed_precision: str = typer.Option("no", "--mixed-precision", help="no, fp16 or bf16."),
    cpu: bool = typer.Option(False, "--cpu", help="Train on the CPU even if a GPU is available."),
    targets: str = typer.Option(
        "auto", "--targets", help="auto (stored where present, else rendered), prerendered or on-the-fly."
    ),
    textures: Path | None = typer.Option(
        None, "--textures", help="Folder of background images (on the fly)."
    ),
    download_weights: bool = typer.Option(
        False, "--download-weights", help="Let from_pretrained download ResNet/CLIP weights."
    ),
    log_every: int | None = typer.Option(None, "--log-every", min=1, help="Steps per metrics.jsonl row."),
    save_every: int | None = typer.Option(None, "--save-every", min=1, help="Steps per checkpoint."),
    no_augment: bool = typer.Option(False, "--no-augment", help="Switch off crop, colour jitter and noise."),
) -> None:
    """Train GENIMA's ACT controller on sphere-target images (multi-GPU: launch with `accelerate launch`)."""
    from genima_models.act.train import train_act

    result = train_act(
        data,
        out,
        preset=preset,
        steps=steps,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        lr_backbone=lr_backbone,
        cameras=_camera_list(cameras),
        resume=resume,
        num_workers=num_workers,
        mixed_precision=mixed_precision,
        cpu=cpu,
        targets=targets,  # type: ignore[arg-type]
        texture_folder=textures,
        download_weights=download_weights,
        log_every=log_every,
        save_every=save_every,
        augment=False if no_augment else None,
    )
    if not result.main_process:
        return
    last = result.metrics[-1] if result.metrics else {}
    console.print(
        f"trained {result.steps} steps, final loss {last.get('loss', float('nan')):.4f} → {result.checkpoint}"
    )


@app.command("eval-act")
def eval_act(
    checkpoint: Path = typer.Option(..., "--checkpoint", help="Checkpoint directory or training run."),
    data: Path = typer.Option(..., "--data", help="genima-data dataset to evaluate on."),
    split: str = typer.Option(
        "val", "--split", help="val (held out in training), train, all, or a split name."
    ),
    batch_size: int = typer.Option(16, "--batch-size", min=1),
    num_workers: int = typer.Option(0, "--num-workers", min=0),
    device: str | None = typer.Option(None, "--device", help="cpu, cuda, cuda:1, ... (default: GPU if any)."),
    targets: str = typer.Option("auto", "--targets", help="auto, prerendered or on-the-fly."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of the table."),
    report: Path | None = typer.Option(None, "--report", help="Also write the JSON report here."),
) -> None:
    """Offline evaluation on held-out episodes: joint L1/L2 error per chunk step and gripper accuracy."""
    from genima_models.act.evaluate import evaluate_act

    result = evaluate_act(
        checkpoint,
        data,
        split=split,
        batch_size=batch_size,
        num_workers=num_workers,
        device=device,
        targets=targets,  # type: ignore[arg-type]
        progress=not as_json,
    )
    show_action_errors(result, as_json=as_json, report=report)


def show_action_errors(result: Any, *, as_json: bool, report: Path | None) -> None:
    """Print an action-error evaluation (table or JSON) and write its JSON report when asked."""
    from genima_data.atomic import atomic_write_text

    if report is not None:
        atomic_write_text(report, json.dumps(result.to_dict(), indent=2) + "\n")
    if as_json:
        console.print_json(data=result.to_dict())
    else:
        console.print(result.renderable())


# -------------------------------------------------------------------------------- diffusion agent (issue 6)
DOWNLOAD_BASE_HELP = "Download the diffusion base model when it is not in the local Hugging Face cache."


@app.command("diffusion")
def diffusion(
    data: Path = typer.Option(..., "--data", help="genima-data dataset (zarr or HDF5)."),
    out: Path = typer.Option(..., "--out", help="Run directory: checkpoint-<step>/, metrics.jsonl."),
    preset: str = typer.Option("genima", "--preset", help="genima (SD-Turbo) or tiny (small CPU models)."),
    steps: int | None = typer.Option(None, "--steps", min=1, help="Total optimisation steps."),
    resume: bool = typer.Option(
        False, "--resume", help="Continue the run in --out from its last checkpoint."
    ),
    batch_size: int | None = typer.Option(None, "--batch-size", min=1, help="Samples per step and device."),
    lr: float | None = typer.Option(None, "--lr", help="AdamW learning rate (GENIMA: 1e-5)."),
    base_model: str | None = typer.Option(
        None, "--base-model", help="Hugging Face id or local copy of the base model (default: the preset's)."
    ),
    targets: str | None = typer.Option(None, "--targets", help="auto, stored or on-the-fly."),
    target_config: Path | None = typer.Option(
        None, "--target-config", help="TargetConfig YAML (on the fly)."
    ),
    tile_size: int | None = typer.Option(None, "--tile-size", min=8, help="Tile side, px (GENIMA: 256)."),
    episodes: list[str] = typer.Option([], "--episode", help="Train on these episodes only (repeat)."),
    mixed_precision: str | None = typer.Option(None, "--mixed-precision", help="auto, no, fp16 or bf16."),
    num_workers: int | None = typer.Option(None, "--num-workers", min=0, help="DataLoader worker processes."),
    checkpoint_every: int | None = typer.Option(None, "--checkpoint-every", min=1),
    log_every: int | None = typer.Option(None, "--log-every", min=1, help="Steps per metrics.jsonl row."),
    seed: int | None = typer.Option(None, "--seed"),
    download_weights: bool = typer.Option(False, "--download-weights", help=DOWNLOAD_BASE_HELP),
) -> None:
    """Fine-tune GENIMA's diffusion agent (ControlNet on SD-Turbo); multi-GPU: `accelerate launch`."""
    from genima_data.render.targets import TargetConfig
    from genima_models.diffusion.train import train_diffusion

    overrides = {
        "batch_size": batch_size,
        "learning_rate": lr,
        "base_model": base_model,
        "targets": targets,
        "target_config": TargetConfig.from_yaml(target_config) if target_config else None,
        "tile_size": tile_size,
        "episodes": episodes or None,
        "mixed_precision": mixed_precision,
        "num_workers": num_workers,
        "checkpoint_every": checkpoint_every,
        "log_every": log_every,
        "seed": seed,
    }
    result = train_diffusion(
        data, out, preset=preset, steps=steps, resume=resume, download_weights=download_weights, **overrides
    )
    loss = "n/a" if result.loss is None else f"{result.loss:.4f}"
    console.print(f"trained to step {result.step}, last loss {loss} → {result.checkpoint}")


@app.command("eval-diffusion")
def eval_diffusion(
    data: Path = typer.Option(..., "--data", help="genima-data dataset to evaluate on."),
    checkpoint: Path | None = typer.Option(
        None, "--checkpoint", help="Run directory or checkpoint (not needed with --ground-truth)."
    ),
    ground_truth: bool = typer.Option(
        False,
        "--ground-truth",
        help="Score the true targets instead of generated ones (checks the detector).",
    ),
    episodes: list[str] = typer.Option([], "--episode", help="Episodes (default: split test, val, or all)."),
    frame_stride: int = typer.Option(10, "--frame-stride", min=1, help="Evaluate every n-th frame."),
    steps: int = typer.Option(10, "--steps", min=1, help="Euler steps per image (GENIMA: 10)."),
    seed: int = typer.Option(0, "--seed"),
    batch_size: int = typer.Option(4, "--batch-size", min=1, help="Images generated together."),
    as_json: bool = typer.Option(False, "--json", help="Print the JSON report instead of tables."),
    report: Path | None = typer.Option(
        None, "--report", help="Also write the JSON report (with every measurement)."
    ),
    download_weights: bool = typer.Option(False, "--download-weights", help=DOWNLOAD_BASE_HELP),
) -> None:
    """Sphere-localisation metric: pixel error, detection rate and gripper-state accuracy of drawn spheres."""
    from genima_models.diffusion.evaluate import evaluate_diffusion

    result = evaluate_diffusion(
        data,
        checkpoint=checkpoint,
        episodes=episodes or None,
        frame_stride=frame_stride,
        steps=steps,
        seed=seed,
        batch_size=batch_size,
        ground_truth=ground_truth,
        progress=not as_json,
        download_weights=download_weights,
    )
    if report is not None:
        result.write_json(report)
    if as_json:
        console.print_json(data=result.to_dict())
    else:
        console.print(result.renderable())


# ------------------------------------------------------------------------- chained GENIMA policy (issue 6)
@app.command("eval-genima")
def eval_genima(
    diffusion_checkpoint: Path = typer.Option(
        ..., "--diffusion-checkpoint", help="Diffusion-agent run directory or checkpoint."
    ),
    act_checkpoint: Path = typer.Option(..., "--act-checkpoint", help="ACT checkpoint directory or run."),
    data: Path = typer.Option(..., "--data", help="genima-data dataset to evaluate on."),
    split: str = typer.Option("val", "--split", help="val (held out by the ACT run), train, all, or a name."),
    frame_stride: int = typer.Option(1, "--frame-stride", min=1, help="Evaluate every n-th frame."),
    steps: int = typer.Option(10, "--steps", min=1, help="Euler steps per generated image (GENIMA: 10)."),
    background: str = typer.Option(
        "random", "--background", help="random (spheres on textures, as ACT trained) or generated."
    ),
    textures: Path | None = typer.Option(None, "--textures", help="Folder of background images."),
    seed: int = typer.Option(0, "--seed"),
    device: str | None = typer.Option(None, "--device", help="cpu, cuda, ... (default: GPU if any)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of the table."),
    report: Path | None = typer.Option(None, "--report", help="Also write the JSON report here."),
    download_weights: bool = typer.Option(False, "--download-weights", help=DOWNLOAD_BASE_HELP),
) -> None:
    """Offline evaluation of the chained policy (diffusion agent → ACT): action error per chunk step."""
    from genima_models.policy import evaluate_genima

    result = evaluate_genima(
        diffusion_checkpoint,
        act_checkpoint,
        data,
        split=split,
        frame_stride=frame_stride,
        steps=steps,
        seed=seed,
        device=device,
        texture_folder=textures,
        background=background,  # type: ignore[arg-type]
        progress=not as_json,
        download_weights=download_weights,
    )
    show_action_errors(result, as_json=as_json, report=report)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point of `genima-train`."""
    run_app(app, list(sys.argv[1:] if argv is None else argv), "genima-train")

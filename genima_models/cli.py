"""`genima-train`: train and evaluate GENIMA's diffusion agent and ACT controller."""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.console import Console

app = typer.Typer(
    name="genima-train",
    help="Train and evaluate GENIMA's two stages on a genima-data dataset (needs the [train] extra).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()


@app.command("subcommands")
def subcommands() -> None:
    """List the training and evaluation subcommands and their state."""
    typer.echo("act             train the ACT controller            (planned: issue 5)")
    typer.echo("eval-act        offline evaluation of ACT           (planned: issue 5)")
    typer.echo("diffusion       fine-tune the ControlNet agent      (planned: issue 6)")
    typer.echo("eval-diffusion  sphere-localisation metric          (planned: issue 6)")


# -------------------------------------------------------------------------------- diffusion agent (issue 6)
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
) -> None:
    """Fine-tune GENIMA's diffusion agent (ControlNet on SD-Turbo); multi-GPU: `accelerate launch`."""
    from genima_data.render.targets import TargetConfig
    from genima_models.diffusion.train import train_diffusion

    result = train_diffusion(
        data,
        out,
        preset=preset,
        steps=steps,
        resume=resume,
        batch_size=batch_size,
        learning_rate=lr,
        base_model=base_model,
        targets=targets,
        target_config=TargetConfig.from_yaml(target_config) if target_config else None,
        tile_size=tile_size,
        episodes=episodes or None,
        mixed_precision=mixed_precision,
        num_workers=num_workers,
        checkpoint_every=checkpoint_every,
        log_every=log_every,
        seed=seed,
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
    )
    if report is not None:
        result.write_json(report)
    if as_json:
        console.print_json(data=result.to_dict())
    else:
        console.print(result.renderable())


def main(argv: list[str] | None = None) -> None:
    app(args=list(sys.argv[1:] if argv is None else argv), prog_name="genima-train")

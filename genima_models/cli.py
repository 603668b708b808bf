"""`genima-train`: train and evaluate GENIMA's diffusion agent and ACT controller."""

from __future__ import annotations

import sys

import typer

app = typer.Typer(
    name="genima-train",
    help="Train and evaluate GENIMA's two stages on a genima-data dataset (needs the [train] extra).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.command("subcommands")
def subcommands() -> None:
    """List the training and evaluation subcommands and their state."""
    typer.echo("act             train the ACT controller            (planned: issue 5)")
    typer.echo("eval-act        offline evaluation of ACT           (planned: issue 5)")
    typer.echo("diffusion       fine-tune the ControlNet agent      (planned: issue 6)")
    typer.echo("eval-diffusion  sphere-localisation metric          (planned: issue 6)")


def main(argv: list[str] | None = None) -> None:
    app(args=list(sys.argv[1:] if argv is None else argv), prog_name="genima-train")

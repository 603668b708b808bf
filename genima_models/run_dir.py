"""What ACT and diffusion training share about run directories and the checkpoint files in them.

A run writes into `--out` only when it is new, an empty folder, or a run of the same kind: anything else
(a dataset store, a run of the other kind, a user's own folder) is refused before a byte is written.
Leftovers of interrupted atomic writes (``.tmp-*``, each possibly a full checkpoint) are removed when a run
(re)starts in its directory; trainer_state.json and optimizer.pt that cannot be read are one-line errors.
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from genima_data.atomic import remove_temporaries
from genima_data.errors import GenimaDataError
from genima_models.errors import CheckpointError


class RunDirectoryError(GenimaDataError):
    """`--out` is a file, or a folder holding something other than a run of this kind."""


def check_run_dir(out: Path, kind: str, is_run: Callable[[Path], bool]) -> None:
    """Refuse `out` unless it is new, an empty folder, or a run of `kind` (``is_run(out)``)."""
    out = Path(out)
    for parent in out.parents:  # `runs/a.txt/x` fails on the file, not with "Not a directory"
        if parent.exists():
            if not parent.is_dir():
                raise RunDirectoryError("is not a directory; --out must be inside a folder", file=parent)
            break
    if not out.exists():
        return
    if not out.is_dir():
        raise RunDirectoryError("is not a directory; --out names the folder of a training run", file=out)
    if not is_run(out) and any(out.iterdir()):
        raise RunDirectoryError(
            f"is not empty and holds no {kind} run; choose a new or empty folder for --out "
            "(nothing was written)",
            file=out,
        )


def remove_leftovers(*directories: Path, main_process: bool = True) -> None:
    """Delete what interrupted atomic writes left in `directories` (only one process may do it)."""
    if main_process:
        for directory in directories:
            remove_temporaries(directory)


def read_state_file(path: Path) -> dict[str, Any]:
    """A checkpoint's trainer_state.json as a JSON object."""
    try:
        state = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"missing or unreadable trainer state ({exc})", file=path) from None
    if not isinstance(state, dict):
        raise CheckpointError("trainer state is not a JSON object", file=path)
    return state


def state_step(path: Path) -> int:
    """The step a checkpoint was saved at, from its trainer_state.json."""
    step = read_state_file(path).get("step")
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise CheckpointError(f"'step' must be a non-negative integer, not {step!r}", file=path, field="step")
    return step


def load_optimizer_file(path: Path, device: torch.device | str = "cpu") -> dict[str, Any]:
    """A saved optimizer state (tensors and plain containers only: no arbitrary unpickling)."""
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except (OSError, RuntimeError, EOFError, pickle.UnpicklingError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__  # keep the error on one line
        raise CheckpointError(f"cannot read optimizer state ({reason})", file=path) from None

"""Training checkpoints: ``<out>/checkpoints/step-NNNNNNNN/`` with the model (config.json, model.safetensors,
normalisation.json, tokenizer/), the optimizer state (optimizer.pt) and trainer_state.json.

Each checkpoint directory is written under a temporary name and renamed when complete, so a crash never
leaves a checkpoint that looks valid. The optimizer state is read back with ``torch.load(weights_only=True)``
(tensors and plain containers only: no arbitrary unpickling).
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from genima_data.atomic import TMP_PREFIX, atomic_output, remove_path
from genima_models.act.model import CONFIG_FILE, ACTModel
from genima_models.errors import CheckpointError

CHECKPOINTS = "checkpoints"
OPTIMIZER_FILE = "optimizer.pt"
STATE_FILE = "trainer_state.json"


def checkpoint_dirs(out: Path) -> list[Path]:
    """Complete checkpoints under a training directory, oldest first."""
    root = Path(out) / CHECKPOINTS
    if not root.is_dir():
        return []
    found = [
        p for p in root.glob("step-*") if not p.name.startswith(TMP_PREFIX) and (p / STATE_FILE).exists()
    ]
    return sorted(found, key=lambda p: int(p.name.split("-")[1]))


def locate_checkpoint(path: str | Path) -> Path:
    """`path` if it is a checkpoint (or a saved model), else the latest checkpoint of the run there."""
    path = Path(path)
    if (path / CONFIG_FILE).exists():
        return path
    found = checkpoint_dirs(path)
    if not found:
        raise CheckpointError("no ACT checkpoint here (no config.json and no checkpoints/step-*)", file=path)
    return found[-1]


def checkpoint_path(out: Path, step: int) -> Path:
    return Path(out) / CHECKPOINTS / f"step-{step:08d}"


def save_checkpoint(
    out: Path,
    step: int,
    model: ACTModel,
    optimizer: torch.optim.Optimizer,
    state: Mapping[str, Any],
    *,
    keep: int = 3,
) -> Path:
    """Write checkpoint `step` atomically and delete all but the newest `keep` checkpoints."""
    final = checkpoint_path(out, step)
    with atomic_output(final) as tmp:
        model.save_pretrained(tmp)
        torch.save(optimizer.state_dict(), tmp / OPTIMIZER_FILE)
        (tmp / STATE_FILE).write_text(json.dumps({"step": step, **state}, indent=2) + "\n")
    for old in checkpoint_dirs(out)[:-keep]:
        remove_path(old)
    return final


def read_trainer_state(checkpoint: Path) -> dict[str, Any]:
    path = checkpoint / STATE_FILE
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"missing or unreadable trainer state ({exc})", file=path) from None


def load_optimizer_state(checkpoint: Path) -> dict[str, Any]:
    path = checkpoint / OPTIMIZER_FILE
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (FileNotFoundError, RuntimeError, OSError, pickle.UnpicklingError) as exc:
        raise CheckpointError(f"cannot read optimizer state ({exc})", file=path) from None

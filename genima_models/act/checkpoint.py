"""Training checkpoints: ``<out>/checkpoints/step-NNNNNNNN/`` with the model (config.json, model.safetensors,
normalisation.json, tokenizer/), the optimizer state (optimizer.pt) and trainer_state.json.

Each checkpoint directory is written under a temporary name and renamed when complete, so a crash never
leaves a checkpoint that looks valid. The optimizer state is read back with ``torch.load(weights_only=True)``
(tensors and plain containers only: no arbitrary unpickling).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from genima_data.atomic import TMP_PREFIX, atomic_output, remove_path
from genima_models.act.model import CONFIG_FILE, ACTModel
from genima_models.errors import CheckpointError
from genima_models.run_dir import load_optimizer_file, read_state_file, state_step

CHECKPOINTS = "checkpoints"
OPTIMIZER_FILE = "optimizer.pt"
STATE_FILE = "trainer_state.json"
STEP_PATTERN = re.compile(r"step-(\d+)")


def checkpoint_dirs(out: Path) -> list[Path]:
    """Complete checkpoints under a training directory, oldest first."""
    root = Path(out) / CHECKPOINTS
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if STEP_PATTERN.fullmatch(p.name) and (p / STATE_FILE).exists()]
    return sorted(found, key=lambda p: int(p.name.split("-")[1]))


def is_act_run(out: Path) -> bool:
    """Whether `out` is an ACT run directory: a checkpoints/ folder holding only step-N (or leftovers)."""
    root = Path(out) / CHECKPOINTS
    return root.is_dir() and all(
        STEP_PATTERN.fullmatch(p.name) or p.name.startswith(TMP_PREFIX) for p in root.iterdir()
    )


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
    return read_state_file(checkpoint / STATE_FILE)


def trainer_step(checkpoint: Path) -> int:
    """The step checkpoint `checkpoint` was saved at."""
    return state_step(checkpoint / STATE_FILE)


def saved_train_settings(checkpoint: Path) -> dict[str, Any]:
    """The TrainConfig fields a checkpoint's run used (its trainer_state.json "train" object)."""
    path = checkpoint / STATE_FILE
    train = read_state_file(path).get("train")
    if not isinstance(train, dict):
        raise CheckpointError("trainer state lacks the run's training settings", file=path, field="train")
    return train


def load_optimizer_state(checkpoint: Path) -> dict[str, Any]:
    return load_optimizer_file(checkpoint / OPTIMIZER_FILE)

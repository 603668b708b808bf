"""Checkpoints of a diffusion-agent run: layout, atomic saving, pruning and finding the one to load.

A run directory holds::

    genima_diffusion.json          the run's DiffusionConfig
    metrics.jsonl                  one JSON row per logged step
    base/                          tiny preset only: the base models, diffusers layout
    checkpoint-<step>/
        controlnet/                ControlNetModel.save_pretrained (config.json + safetensors)
        optimizer.pt               AdamW state (tensors only: loaded with weights_only=True)
        trainer_state.json         {"step": ...}
        genima_diffusion.json

``checkpoint-<step>/controlnet`` is also where GENIMA's own evaluation code looks for the ControlNet.
Each checkpoint is written under a temporary name and renamed into place, so a checkpoint that exists is
complete.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from genima_data.atomic import atomic_output, remove_path
from genima_models.diffusion.config import CONFIG_FILE, DiffusionConfig, DiffusionError
from genima_models.run_dir import load_optimizer_file, state_step

CHECKPOINT_PATTERN = re.compile(r"^checkpoint-(\d+)$")
CONTROLNET_DIR = "controlnet"
OPTIMIZER_FILE = "optimizer.pt"
STATE_FILE = "trainer_state.json"


@dataclass(frozen=True)
class Checkpoint:
    """A ControlNet to load, the run configuration it was trained with, and the run directory."""

    controlnet_dir: Path
    config: DiffusionConfig
    run_dir: Path
    step: int | None


def checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    """Complete checkpoints of a run, (step, path), oldest first."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return []
    found = []
    for path in run_dir.iterdir():
        match = CHECKPOINT_PATTERN.match(path.name)
        if match and (path / STATE_FILE).is_file():
            found.append((int(match.group(1)), path))
    return sorted(found)


def is_diffusion_run(run_dir: Path) -> bool:
    """Whether `run_dir` holds a diffusion-agent run (its genima_diffusion.json or a checkpoint)."""
    return (Path(run_dir) / CONFIG_FILE).is_file() or bool(checkpoints(run_dir))


def save_checkpoint(
    run_dir: Path, step: int, controlnet: Any, optimizer: torch.optim.Optimizer, config: DiffusionConfig
) -> Path:
    """Write checkpoint-<step> atomically and delete all but the newest `config.keep_checkpoints`."""
    path = Path(run_dir) / f"checkpoint-{step}"
    with atomic_output(path) as tmp:
        tmp.mkdir()
        controlnet.save_pretrained(tmp / CONTROLNET_DIR)
        torch.save(optimizer.state_dict(), tmp / OPTIMIZER_FILE)
        config.save(tmp)
        (tmp / STATE_FILE).write_text(json.dumps({"step": step}) + "\n")
    for _, old in checkpoints(run_dir)[: -config.keep_checkpoints]:
        remove_path(old)
    return path


def load_optimizer_state(checkpoint_dir: Path, device: torch.device) -> dict[str, Any]:
    """The saved AdamW state (tensors and numbers only: no arbitrary objects are unpickled)."""
    return load_optimizer_file(Path(checkpoint_dir) / OPTIMIZER_FILE, device)


def checkpoint_step(checkpoint_dir: Path) -> int:
    return state_step(Path(checkpoint_dir) / STATE_FILE)


def resolve_checkpoint(path: str | Path) -> Checkpoint:
    """What to load for `path`: a run directory (its newest checkpoint), a checkpoint-<step> directory, or a
    ControlNet directory inside one. A one-line error when none of these holds a ControlNet."""
    path = Path(path)
    if not path.exists():
        raise DiffusionError("no such checkpoint", file=path)
    found = checkpoints(path)
    if found:
        step, path = found[-1]
    elif (path / CONTROLNET_DIR).is_dir():
        step = checkpoint_step(path) if (path / STATE_FILE).is_file() else None
    elif (path / "config.json").is_file() and (path.parent / CONFIG_FILE).is_file():
        return Checkpoint(path, DiffusionConfig.load(path.parent), _run_dir(path.parent), None)
    else:
        raise DiffusionError(
            "not a ControlNet checkpoint (expected a run directory with checkpoint-<step>/controlnet, a "
            "checkpoint directory, or a controlnet directory)",
            file=path,
        )
    return Checkpoint(path / CONTROLNET_DIR, DiffusionConfig.load(path), _run_dir(path), step)


def _run_dir(checkpoint_dir: Path) -> Path:
    """The run directory a checkpoint belongs to (its parent for checkpoint-<step>)."""
    return checkpoint_dir.parent if CHECKPOINT_PATTERN.match(checkpoint_dir.name) else checkpoint_dir

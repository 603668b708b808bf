"""Train GENIMA's ACT controller on a genima-data store (accelerate: devices, mixed precision, multi-GPU).

``<out>/metrics.jsonl`` gets one JSON row per logged step (step, loss, l1, bce, kl, lr, samples_per_s, ...);
``<out>/checkpoints/step-N/`` a checkpoint every ``save_every`` steps and at the end. ``resume=True``
continues from the latest checkpoint: weights, optimizer state, step and data order (the sampler is seeded
per epoch and the batches already seen are skipped); metrics logged after that checkpoint are dropped;
`lr`/`lr_backbone` given on resume replace the rates the optimizer state restores. `out` must be new, empty
or an ACT run (see genima_models.run_dir).
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator, DataLoaderConfiguration
from accelerate.utils import set_seed

from genima_data.atomic import atomic_write_text
from genima_data.errors import GenimaDataError
from genima_data.progress import progress_bar, stderr_console
from genima_models.act.augment import augment_images
from genima_models.act.checkpoint import (
    CHECKPOINTS,
    STATE_FILE,
    checkpoint_dirs,
    checkpoint_path,
    is_act_run,
    load_optimizer_state,
    save_checkpoint,
    saved_train_settings,
    trainer_step,
)
from genima_models.act.config import ACTConfig, TrainConfig, preset_configs
from genima_models.act.model import CONFIG_FILE, ACTModel
from genima_models.data import DEFAULT_VAL_FRACTION, ACTDataset, TargetMode
from genima_models.errors import CheckpointError
from genima_models.run_dir import check_run_dir, remove_leftovers

METRICS_FILE = "metrics.jsonl"
LOSS_KEYS = ("loss", "l1", "bce", "kl")
MIXED_PRECISION = ("no", "fp16", "bf16")


@dataclass
class TrainResult:
    """Where a finished run left its outputs."""

    out: Path
    checkpoint: Path
    steps: int
    metrics: list[dict[str, Any]]
    main_process: bool = True  # False in the other processes of a multi-GPU run


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """Rows of a metrics.jsonl; a torn last line (crash mid-write) is ignored."""
    rows = []
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                break
    return rows


def _resume_point(out: Path, resume: bool, preset: str) -> Path | None:
    existing = checkpoint_dirs(out)
    if existing and not resume:
        raise CheckpointError(
            "already holds a training run; pass --resume to continue it or choose another --out", file=out
        )
    if not existing:
        return None
    latest = existing[-1]
    saved = ACTConfig.load(latest / CONFIG_FILE)
    if saved.preset != preset:
        raise CheckpointError(
            f"checkpoint was trained with preset '{saved.preset}', not '{preset}'", file=latest
        )
    return latest


def _saved_train_config(start: Path) -> TrainConfig:
    try:
        return TrainConfig(**saved_train_settings(start))
    except TypeError as exc:  # an unknown or missing field
        raise CheckpointError(
            f"unusable training settings ({exc})", file=start / STATE_FILE, field="train"
        ) from None


def _train_config(start: Path | None, preset: str, overrides: dict[str, Any]) -> TrainConfig:
    base = _saved_train_config(start) if start else preset_configs(preset)[1]
    return dataclasses.replace(base, **{k: v for k, v in overrides.items() if v is not None})


def _check_options(**values: float | None) -> None:
    """Counts must be > 0, learning rates >= 0 (0 freezes that part); None: the preset's or checkpoint's."""
    for name, value in values.items():
        rate = name.startswith("lr")
        if value is not None and (value < 0 if rate else value <= 0):
            bound = "greater than or equal to 0" if rate else "greater than 0"
            raise GenimaDataError(f"Input should be {bound}", field=name)


def _apply_learning_rates(optimizer: torch.optim.Optimizer, config: TrainConfig, echo: bool) -> None:
    """Set the run's rates after loading a checkpoint's optimizer state (which restores the old ones)."""
    for group, name in zip(optimizer.param_groups, ("lr", "lr_backbone"), strict=True):
        new = getattr(config, name)
        if group["lr"] != new and echo:
            stderr_console.print(
                f"resuming with {name} {new:g} (checkpoint: {group['lr']:g})", highlight=False
            )
        group["lr"] = new


def _model(
    start: Path | None, preset: str, config: ACTConfig, dataset: ACTDataset, download: bool
) -> ACTModel:
    """The checkpoint's model when resuming, else a new one normalised with the training split's stats."""
    if start is None:
        config.cameras, config.dof = dataset.cameras, dataset.dof
        return ACTModel.build(config, dataset.joint_stats(), local_files_only=not download)
    model = ACTModel.from_pretrained(start, preset=preset)
    if model.config.dof != dataset.dof:
        raise CheckpointError(
            f"checkpoint has {model.config.dof} joints, the dataset {dataset.dof}", file=start
        )
    return model


class MetricsLog:
    """metrics.jsonl: rows after `after_step` (logged past the checkpoint a run resumes from) are dropped."""

    def __init__(self, path: Path, *, after_step: int, enabled: bool, echo: bool) -> None:
        self.path, self.enabled, self.echo = path, enabled, echo
        if enabled:
            path.parent.mkdir(parents=True, exist_ok=True)
            kept = [row for row in read_metrics(path) if row["step"] <= after_step]
            atomic_write_text(path, "".join(json.dumps(row) + "\n" for row in kept))

    def append(self, row: dict[str, Any]) -> None:
        if not self.enabled:
            return
        with self.path.open("a") as f:
            f.write(json.dumps(row) + "\n")
        if self.echo:
            losses = ", ".join(f"{k} {row[k]:.4f}" for k in LOSS_KEYS)
            stderr_console.print(
                f"step {row['step']}: {losses}, {row['samples_per_s']:.1f} samples/s", highlight=False
            )


class LossMeter:
    """Sums the loss components over the steps since the last logged row (on the device, no sync per step)."""

    def __init__(self, accelerator: Accelerator, samples_per_step: int) -> None:
        self.accelerator, self.samples_per_step = accelerator, samples_per_step
        self.sums = torch.zeros(len(LOSS_KEYS), device=accelerator.device)
        self.steps, self.tick = 0, time.perf_counter()

    def add(self, losses: dict[str, torch.Tensor]) -> None:
        self.sums += torch.stack([losses[k].detach().float() for k in LOSS_KEYS])
        self.steps += 1

    def row(self, step: int, epoch: int, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
        """Means since the last row, averaged over processes; resets the meter."""
        mean = self.accelerator.reduce(self.sums / self.steps, reduction="mean").tolist()
        elapsed = time.perf_counter() - self.tick
        row = {
            "step": step,
            "epoch": epoch,
            **{k: round(v, 6) for k, v in zip(LOSS_KEYS, mean, strict=True)},
            "lr": optimizer.param_groups[0]["lr"],
            "lr_backbone": optimizer.param_groups[1]["lr"],
            "samples_per_s": round(self.steps * self.samples_per_step / elapsed, 3),
        }
        self.sums.zero_()
        self.steps, self.tick = 0, time.perf_counter()
        return row


def batch_losses(
    model: torch.nn.Module, act_model: ACTModel, batch: dict[str, Any], config: TrainConfig
) -> dict[str, torch.Tensor]:
    """Loss components of one training batch: uint8 images to [0, 1], augmented when ``config.augment``.

    `model` runs the forward pass (it may be accelerate's wrapper of `act_model`, which owns the loss).
    """
    images = batch["images"].float() / 255
    if config.augment:
        images = augment_images(images, config)
    output = model(images, batch["proprio"], batch["instruction"], batch["actions"], batch["is_pad"])
    return act_model.loss(output, batch["actions"], batch["is_pad"])


def train_act(
    data: str | Path,
    out: str | Path,
    *,
    preset: str = "genima",
    steps: int | None = None,
    epochs: int | None = None,
    batch_size: int | None = None,
    lr: float | None = None,
    lr_backbone: float | None = None,
    cameras: Sequence[str] | None = None,
    resume: bool = False,
    num_workers: int = 0,
    mixed_precision: str = "no",
    cpu: bool = False,
    targets: TargetMode = "auto",
    texture_folder: Path | None = None,
    download_weights: bool = False,
    log_every: int | None = None,
    save_every: int | None = None,
    augment: bool | None = None,
    progress: bool = True,
) -> TrainResult:
    """Train (or resume) an ACT controller; see the module docstring for what lands in `out`."""
    out = Path(out)
    preset_configs(preset)  # an unknown preset fails before anything is read
    if mixed_precision not in MIXED_PRECISION:
        raise GenimaDataError(
            f"unknown mixed precision '{mixed_precision}'; choose from {', '.join(MIXED_PRECISION)}"
        )
    _check_options(
        steps=steps,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        lr_backbone=lr_backbone,
        log_every=log_every,
        save_every=save_every,
    )
    check_run_dir(out, "ACT", is_act_run)
    start = _resume_point(out, resume, preset)
    model_config = ACTConfig.load(start / CONFIG_FILE) if start else preset_configs(preset)[0]
    if start and cameras and list(cameras) != model_config.cameras:
        raise CheckpointError(
            f"checkpoint was trained on cameras {model_config.cameras}, not {list(cameras)}", file=start
        )
    overrides = {"batch_size": batch_size, "lr": lr, "lr_backbone": lr_backbone, "log_every": log_every}
    config = _train_config(start, preset, {**overrides, "save_every": save_every, "augment": augment})
    dataset = ACTDataset(
        data,
        split="train",
        cameras=model_config.cameras if start else cameras,
        chunk_size=model_config.chunk_size,
        image_size=model_config.image_size,
        targets=targets,
        texture_folder=texture_folder,
        val_fraction=DEFAULT_VAL_FRACTION,
        split_seed=config.seed,
    )
    accelerator = Accelerator(
        mixed_precision=mixed_precision,
        cpu=cpu,
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True, data_seed=config.seed),
    )
    set_seed(config.seed)
    if accelerator.is_main_process:
        (out / CHECKPOINTS).mkdir(parents=True, exist_ok=True)  # marks `out` as an ACT run from the start
    remove_leftovers(out, out / CHECKPOINTS, main_process=accelerator.is_main_process)
    model = _model(start, preset, model_config, dataset, download_weights)
    optimizer = torch.optim.AdamW(
        [
            {"params": model.head_parameters(), "lr": config.lr},
            {"params": model.backbone_parameters(), "lr": config.lr_backbone},
        ],
        weight_decay=config.weight_decay,
    )
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=config.batch_size,
        shuffle=True,
        num_workers=num_workers,
        drop_last=len(dataset) >= config.batch_size,
        persistent_workers=num_workers > 0,
    )
    model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
    step = 0
    if start:
        optimizer.load_state_dict(load_optimizer_state(start))
        _apply_learning_rates(optimizer, config, echo=progress and accelerator.is_main_process)
        step = trainer_step(start)
    if steps is None:
        steps = epochs * len(loader) if epochs is not None else config.steps
    config = dataclasses.replace(config, steps=steps)
    run_state = {
        "train": config.to_dict(),
        "dataset": str(data),
        "train_episodes": dataset.episode_ids,
        "val_fraction": DEFAULT_VAL_FRACTION,
        "split_seed": config.seed,
        "targets": targets,
    }
    metrics = MetricsLog(
        out / METRICS_FILE, after_step=step, enabled=accelerator.is_main_process, echo=progress
    )
    final = _run_steps(accelerator, model, optimizer, loader, config, step, metrics, out, run_state, progress)
    return TrainResult(
        out, checkpoint_path(out, final), final, read_metrics(metrics.path), accelerator.is_main_process
    )


def _run_steps(
    accelerator: Accelerator,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    loader: torch.utils.data.DataLoader,
    config: TrainConfig,
    step: int,
    metrics: MetricsLog,
    out: Path,
    run_state: dict[str, Any],
    progress: bool,
) -> int:
    """Optimise from `step` to ``config.steps``, checkpointing on the way and at the end; returns the step."""
    unwrapped: ACTModel = accelerator.unwrap_model(model)
    meter = LossMeter(accelerator, config.batch_size * accelerator.num_processes)
    epoch, skip = divmod(step, len(loader))
    model.train()
    enabled = progress and accelerator.is_main_process
    with progress_bar(config.steps, f"training ACT ({unwrapped.config.preset})", enabled=enabled) as advance:
        advance(step)
        while step < config.steps:
            loader.set_epoch(epoch)
            for batch in accelerator.skip_first_batches(loader, skip) if skip else loader:
                losses = batch_losses(model, unwrapped, batch, config)
                accelerator.backward(losses["loss"])
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                step += 1
                meter.add(losses)
                advance(1)
                if step % config.log_every == 0 or step == config.steps:
                    metrics.append(meter.row(step, epoch, optimizer))
                if step % config.save_every == 0 or step == config.steps:
                    accelerator.wait_for_everyone()
                    if accelerator.is_main_process:
                        save_checkpoint(out, step, unwrapped, optimizer, run_state)
                if step >= config.steps:
                    break
            epoch, skip = epoch + 1, 0
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return step

"""Fine-tune GENIMA's diffusion agent: a ControlNet on a frozen SD-Turbo (or the tiny preset's models).

As GENIMA's training script (diffusion/train_controlnet_genima.py): the ControlNet starts as a copy of the
base UNet's encoder; UNet, VAE and text encoder stay frozen (and in half precision under fp16 mixed
precision); targets are VAE latents noised with the DDPM schedule of the base model's scheduler config at
uniformly drawn timesteps; the loss is the MSE between the UNet's prediction (with the ControlNet's
residuals) and the noise (or the velocity for v-prediction models); AdamW (lr 1e-5, weight decay 1e-2) at a
constant learning rate, gradients clipped to norm 1.

Everything random is a function of (seed, step): the batch (`StepBatchSampler`), the augmentation (seed,
epoch, sample), the VAE sample, noise and timesteps. A run resumed from checkpoint-<s> therefore continues
exactly like the uninterrupted run. With several processes (``accelerate launch``) every process draws its
own part of each step's batch.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from accelerate import Accelerator
from diffusers import DDPMScheduler
from torch.nn import functional
from torch.utils.data import DataLoader

from genima_data.atomic import atomic_output, atomic_write_text
from genima_data.progress import progress_bar
from genima_models.diffusion.checkpoints import (
    CONTROLNET_DIR,
    checkpoint_step,
    checkpoints,
    is_diffusion_run,
    load_optimizer_state,
    save_checkpoint,
)
from genima_models.diffusion.config import (
    CONFIG_FILE,
    DiffusionConfig,
    DiffusionError,
    check_mixed_precision,
    preset_config,
)
from genima_models.diffusion.data import DiffusionPairs, StepBatchSampler
from genima_models.diffusion.models import (
    BaseModels,
    build_tiny_base,
    controlnet_from_unet,
    fetch_base,
    load_base,
    load_controlnet,
    resolve_base,
    save_base,
)
from genima_models.run_dir import check_run_dir, remove_leftovers

METRICS_FILE = "metrics.jsonl"
WEIGHT_DTYPES = {"no": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


@dataclass(frozen=True)
class TrainResult:
    """Where a run ended: its directory, the last step, the checkpoint written and the last logged loss."""

    run_dir: Path
    step: int
    checkpoint: Path
    loss: float | None


def run_config(
    run_dir: Path, preset: str, *, resume: bool, steps: int | None = None, **overrides: Any
) -> tuple[DiffusionConfig, Path | None]:
    """The configuration of a new or resumed run and the checkpoint to resume from (None: start fresh)."""
    run_dir = Path(run_dir)
    saved = run_dir / CONFIG_FILE
    existing = checkpoints(run_dir)
    if not resume:
        if saved.exists() or existing:
            raise DiffusionError(
                "already holds a diffusion run: pass --resume to continue it, or choose an empty directory",
                file=run_dir,
            )
        return preset_config(preset, steps=steps, **overrides), None
    if not saved.exists():
        return preset_config(preset, steps=steps, **overrides), None
    config = DiffusionConfig.load(run_dir)
    if config.preset != preset:
        raise DiffusionError(
            f"run was trained with preset '{config.preset}', not '{preset}'", file=run_dir, field="preset"
        )
    config = _resumed_config(config, run_dir, steps=steps, **overrides)
    return config, existing[-1][1] if existing else None


RESUMABLE_SETTINGS = ("steps", "learning_rate", "num_workers", "checkpoint_every", "log_every")


def _resumed_config(config: DiffusionConfig, run_dir: Path, **asked: Any) -> DiffusionConfig:
    """A resumed run's saved configuration with the settings a resume may change (`RESUMABLE_SETTINGS`);
    asking for another value of any other setting (the data, the model) is refused, never ignored."""
    asked = {key: value for key, value in asked.items() if value is not None}
    wanted = DiffusionConfig.model_validate({**config.model_dump(), **asked})
    for key in asked:
        if key not in RESUMABLE_SETTINGS and getattr(wanted, key) != getattr(config, key):
            raise DiffusionError(
                f"a resumed run keeps the {key} it was started with ({getattr(config, key)!r}); leave the "
                "option out, or start a new run",
                file=run_dir,
                field=key,
            )
    return config.model_copy(update={key: getattr(wanted, key) for key in asked if key in RESUMABLE_SETTINGS})


def _tiny_base_to_build(config: DiffusionConfig, run_dir: Path) -> bool:
    return config.preset == "tiny" and not (run_dir / config.base_model).is_dir()


def _base_models(config: DiffusionConfig, run_dir: Path) -> BaseModels:
    """The frozen base models; the tiny preset builds them (seeded) until the run has saved them."""
    if _tiny_base_to_build(config, run_dir):
        return build_tiny_base()
    return load_base(resolve_base(config, run_dir), variant=config.base_variant)


def _mixed_precision(config: DiffusionConfig) -> str:
    if config.mixed_precision != "auto":
        return config.mixed_precision
    return "fp16" if config.preset == "genima" and torch.cuda.is_available() else "no"


def _step_seed(seed: int, step: int, process: int) -> int:
    return int(np.random.SeedSequence([seed, step, process]).generate_state(1)[0])


def _trim_metrics(path: Path, last_step: int) -> None:
    """Keep the rows of steps up to `last_step` (a resumed run rewrites what came after)."""
    if not path.exists():
        return
    rows = []
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:  # a line cut short by an interruption
            continue
        if row.get("step", 0) <= last_step:
            rows.append(line)
    atomic_write_text(path, "".join(f"{r}\n" for r in rows))


class _MetricsLog:
    """metrics.jsonl rows: mean loss over the logging interval, learning rate and samples per second."""

    def __init__(self, path: Path, enabled: bool) -> None:
        self.path = path
        self.enabled = enabled
        self.losses: list[float] = []
        self.samples = 0
        self.since = time.perf_counter()
        self.last_loss: float | None = None

    def add(self, loss: float, samples: int) -> None:
        self.losses.append(loss)
        self.samples += samples

    def write(self, step: int, lr: float) -> None:
        elapsed = max(time.perf_counter() - self.since, 1e-9)
        self.last_loss = float(np.mean(self.losses))
        row = {"step": step, "loss": self.last_loss, "lr": lr, "samples_per_s": self.samples / elapsed}
        if self.enabled:
            with self.path.open("a") as f:
                f.write(json.dumps(row) + "\n")
        self.losses, self.samples, self.since = [], 0, time.perf_counter()


def _batches(loader: DataLoader, device: torch.device) -> Iterator[dict[str, torch.Tensor]]:
    for batch in loader:
        yield {k: v.to(device, non_blocking=True) for k, v in batch.items()}


def train_diffusion(
    data: str | Path,
    out: str | Path,
    *,
    preset: str = "tiny",
    steps: int | None = None,
    resume: bool = False,
    progress: bool = True,
    download_weights: bool = False,
    **overrides: Any,
) -> TrainResult:
    """Train (or resume) a diffusion-agent run on dataset `data`, writing checkpoints to `out`.

    `overrides` set DiffusionConfig fields (e.g. ``batch_size=4``, ``base_model="/models/sd-turbo"``) of a
    new run; a resumed run keeps its saved configuration except `RESUMABLE_SETTINGS` (asking for another
    value of any other setting is refused). `download_weights` lets the base
    model be fetched into the Hugging Face cache first (otherwise only local copies are read).
    """
    run_dir = Path(out)
    check_run_dir(run_dir, "diffusion", is_diffusion_run)
    config, resume_from = run_config(run_dir, preset, resume=resume, steps=steps, **overrides)
    # settled before anything is written: a run that cannot start leaves no run directory behind
    check_mixed_precision(config, cuda=torch.cuda.is_available())
    if download_weights:
        fetch_base(config, run_dir)
    start = checkpoint_step(resume_from) if resume_from is not None else 0
    if start >= config.steps:
        raise DiffusionError(
            f"run is already at step {start}; pass a larger --steps to train further", file=run_dir
        )
    accelerator = Accelerator(mixed_precision=_mixed_precision(config))
    device, main = accelerator.device, accelerator.is_main_process
    weight_dtype = WEIGHT_DTYPES[accelerator.mixed_precision]
    remove_leftovers(run_dir, main_process=main)
    base = _base_models(config, run_dir)
    # the dataset is checked before anything is written, so a bad dataset leaves no half-started run
    pairs = DiffusionPairs(data, config, base.tokenizer, target_config=config.target_config)
    if main:
        run_dir.mkdir(parents=True, exist_ok=True)
        config.save(run_dir)  # first: from now on `run_dir` reads as a diffusion run (resumable)
        if _tiny_base_to_build(config, run_dir):
            with atomic_output(run_dir / config.base_model) as tmp:
                save_base(base, tmp)
    for frozen in (base.vae, base.unet, base.text_encoder):
        frozen.requires_grad_(False).eval().to(device)
        if weight_dtype != torch.float32:  # frozen parts run in half precision, as GENIMA's
            frozen.to(dtype=weight_dtype)

    if resume_from is not None:
        controlnet = load_controlnet(resume_from / CONTROLNET_DIR)
    else:
        torch.manual_seed(config.seed)  # the conditioning embedding's initialisation
        controlnet = controlnet_from_unet(base.unet, config)
    controlnet.train()
    optimizer = torch.optim.AdamW(
        controlnet.parameters(),
        lr=config.learning_rate,
        betas=config.adam_betas,
        weight_decay=config.weight_decay,
        eps=config.adam_epsilon,
    )
    controlnet, optimizer = accelerator.prepare(controlnet, optimizer)
    if resume_from is not None:
        optimizer.load_state_dict(load_optimizer_state(resume_from, device))
        for group in optimizer.param_groups:  # the state restores the old rate; a resume may set a new one
            group["lr"] = config.learning_rate
    noise_scheduler = DDPMScheduler.from_config(base.scheduler_config)
    sampler = StepBatchSampler(
        len(pairs),
        config.batch_size,
        config.seed,
        start,
        config.steps,
        rank=accelerator.process_index,
        world=accelerator.num_processes,
    )
    loader = DataLoader(pairs, batch_sampler=sampler, num_workers=config.num_workers)
    metrics = _MetricsLog(run_dir / METRICS_FILE, enabled=main)
    if main:
        _trim_metrics(metrics.path, start)
    generator = torch.Generator(device=device)
    checkpoint = resume_from
    with progress_bar(config.steps - start, "training ControlNet", enabled=progress and main) as advance:
        for step, batch in zip(range(start, config.steps), _batches(loader, device), strict=True):
            generator.manual_seed(_step_seed(config.seed, step, accelerator.process_index))
            loss = _training_loss(batch, base, controlnet, noise_scheduler, generator, weight_dtype)
            accelerator.backward(loss)
            accelerator.clip_grad_norm_(controlnet.parameters(), config.max_grad_norm)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            done = step + 1
            samples = len(batch["input_ids"]) * sampler.world
            metrics.add(accelerator.reduce(loss.detach(), "mean").item(), samples)
            if done % config.log_every == 0 or done == config.steps:
                metrics.write(done, optimizer.param_groups[0]["lr"])
            if done % config.checkpoint_every == 0 or done == config.steps:
                accelerator.wait_for_everyone()
                if main:
                    checkpoint = save_checkpoint(
                        run_dir, done, accelerator.unwrap_model(controlnet), optimizer, config
                    )
            advance(1)
    pairs.close()
    accelerator.wait_for_everyone()
    return TrainResult(run_dir, config.steps, checkpoint or run_dir, metrics.last_loss)


def _training_loss(
    batch: dict[str, torch.Tensor],
    base: BaseModels,
    controlnet: Any,
    noise_scheduler: DDPMScheduler,
    generator: torch.Generator,
    weight_dtype: torch.dtype,
) -> torch.Tensor:
    """GENIMA's ControlNet objective on one batch."""
    with torch.no_grad():
        pixels = batch["pixel_values"].to(weight_dtype)
        latents = base.vae.encode(pixels).latent_dist.sample(generator=generator)
        latents = latents * base.vae.config.scaling_factor
        noise = torch.randn(latents.shape, generator=generator, device=latents.device, dtype=latents.dtype)
        timesteps = torch.randint(
            0,
            noise_scheduler.config.num_train_timesteps,
            (latents.shape[0],),
            generator=generator,
            device=latents.device,
        ).long()
        noisy = noise_scheduler.add_noise(latents, noise, timesteps)
        text = base.text_encoder(batch["input_ids"])[0]
    down, mid = controlnet(
        noisy,
        timesteps,
        encoder_hidden_states=text,
        controlnet_cond=batch["conditioning_pixel_values"].to(weight_dtype),
        return_dict=False,
    )
    prediction = base.unet(
        noisy,
        timesteps,
        encoder_hidden_states=text,
        down_block_additional_residuals=[d.to(weight_dtype) for d in down],
        mid_block_additional_residual=mid.to(weight_dtype),
    ).sample
    kind = noise_scheduler.config.prediction_type
    if kind == "epsilon":
        target = noise
    elif kind == "v_prediction":
        target = noise_scheduler.get_velocity(latents, noise, timesteps)
    else:
        raise DiffusionError(f"unsupported prediction type '{kind}' in the base model's scheduler config")
    return functional.mse_loss(prediction.float(), target.float())

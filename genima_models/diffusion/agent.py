"""GENIMA's diffusion agent at inference: current camera images + instruction -> per-camera target images.

The trained ControlNet drives the frozen base model in diffusers' `StableDiffusionControlNetPipeline` with
SD-Turbo's sampler: Euler (`EulerDiscreteScheduler`) with "trailing" timestep spacing, no classifier-free
guidance (guidance scale 0), a configurable number of steps (GENIMA's evaluation uses 10). The four
camera images are tiled 2x2 as in training; the generated tiled image is cut back into per-camera images
at each camera's own size. Every call starts from the same seed, so equal inputs give equal outputs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import cv2
import numpy as np
import torch
from diffusers import ControlNetModel, EulerDiscreteScheduler, StableDiffusionControlNetPipeline

from genima_data.render.compose import untile_2x2
from genima_models.act.policy import resolve_device
from genima_models.diffusion.checkpoints import resolve_checkpoint
from genima_models.diffusion.config import DiffusionConfig, DiffusionError
from genima_models.diffusion.data import check_prompt, tile_images, to_unit_tensor
from genima_models.diffusion.models import BaseModels, load_base, load_controlnet, resolve_base

GENIMA_INFERENCE_STEPS = 10  # GENIMA's controller/cfgs/eval_genima.yaml: num_diffusion_steps


class DiffusionAgent:
    """Draws target spheres into the current camera images; load one with `DiffusionAgent.load`."""

    def __init__(
        self,
        pipeline: StableDiffusionControlNetPipeline,
        config: DiffusionConfig,
        *,
        steps: int = GENIMA_INFERENCE_STEPS,
        seed: int = 0,
    ) -> None:
        if steps < 1:
            raise DiffusionError(f"inference needs at least 1 step, got {steps}", field="steps")
        self.pipeline = pipeline
        self.config = config
        self.steps = steps
        self.seed = seed

    @classmethod
    def load(
        cls,
        checkpoint: str | Path,
        *,
        steps: int = GENIMA_INFERENCE_STEPS,
        seed: int = 0,
        device: str | torch.device | None = None,
        dtype: torch.dtype | None = None,
        download: bool = False,
    ) -> DiffusionAgent:
        """The agent of a run directory or checkpoint (see `checkpoints.resolve_checkpoint`).

        Defaults: the GPU in half precision when there is one, otherwise the CPU in full precision. The base
        model is read from local files only unless `download`.
        """
        device = resolve_device(device)  # a bad device fails before gigabytes of weights are read
        found = resolve_checkpoint(checkpoint)
        base_model = resolve_base(found.config, found.run_dir)
        base = load_base(base_model, variant=found.config.base_variant, download=download)
        controlnet = load_controlnet(found.controlnet_dir)
        return cls.from_models(
            base, controlnet, found.config, steps=steps, seed=seed, device=device, dtype=dtype
        )

    @classmethod
    def from_models(
        cls,
        base: BaseModels,
        controlnet: ControlNetModel,
        config: DiffusionConfig,
        *,
        steps: int = GENIMA_INFERENCE_STEPS,
        seed: int = 0,
        device: str | torch.device | None = None,
        dtype: torch.dtype | None = None,
    ) -> DiffusionAgent:
        """The agent of models in memory (see `load` for the device and precision defaults)."""
        device = resolve_device(device)
        dtype = dtype or (torch.float16 if device.type == "cuda" else torch.float32)
        pipeline = StableDiffusionControlNetPipeline(
            vae=base.vae,
            text_encoder=base.text_encoder,
            tokenizer=base.tokenizer,
            unet=base.unet,
            controlnet=controlnet,
            scheduler=EulerDiscreteScheduler.from_config(base.scheduler_config, timestep_spacing="trailing"),
            safety_checker=None,
            feature_extractor=None,
            requires_safety_checker=False,
        )
        pipeline.to(device, dtype)
        pipeline.set_progress_bar_config(disable=True)
        return cls(pipeline, config, steps=steps, seed=seed)

    @property
    def device(self) -> torch.device:
        return self.pipeline.device

    def generate_tiled(
        self, observations: Sequence[Mapping[str, np.ndarray]], instructions: Sequence[str]
    ) -> np.ndarray:
        """(B, R, R, 3) uint8 tiled target images for a batch of observations (camera -> uint8 HxWx3)."""
        if len(observations) != len(instructions):
            raise DiffusionError(f"{len(observations)} observations but {len(instructions)} instructions")
        prompts = [self.config.prompt(instruction) for instruction in instructions]
        for prompt in prompts:
            check_prompt(self.pipeline.tokenizer, prompt)
        conditioning = torch.stack([to_unit_tensor(tile_images(obs, self.config)) for obs in observations])
        # one generator per sample: a sample's result does not depend on the batch it is in
        generators = [torch.Generator(device=self.device).manual_seed(self.seed) for _ in prompts]
        images = self.pipeline(
            prompt=prompts,
            image=conditioning.to(self.device, self.pipeline.dtype),
            height=self.config.resolution,
            width=self.config.resolution,
            num_inference_steps=self.steps,
            guidance_scale=0.0,
            generator=generators,
            output_type="np",
        ).images
        return np.clip(np.rint(images * 255), 0, 255).astype(np.uint8)

    def untile(self, tiled: np.ndarray, sizes: Mapping[str, tuple[int, int]]) -> dict[str, np.ndarray]:
        """Per-camera images of a generated (R, R, 3) tiling, resized to each camera's (H, W)."""
        expected = (self.config.resolution, self.config.resolution, 3)
        if tiled.shape != expected:
            raise DiffusionError(
                f"tiled image is {tiled.shape}, the agent works at {expected} "
                f"({self.config.tile_size} px tiles)",
                field="tile_size",
            )
        tiles = untile_2x2(tiled, order=self.config.tile_order)
        return {cam: _resize(tiles[cam], sizes[cam]) for cam in self.config.cameras}

    def generate(self, observation: Mapping[str, np.ndarray], instruction: str) -> dict[str, np.ndarray]:
        """Target image of every tiled camera, at the size of its observation (uint8 HxWx3)."""
        tiled = self.generate_tiled([observation], [instruction])[0]
        return self.untile(tiled, {cam: observation[cam].shape[:2] for cam in self.config.cameras})


def _resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    if image.shape[:2] == tuple(size):
        return np.ascontiguousarray(image)
    shrink = size[0] * size[1] < image.shape[0] * image.shape[1]
    interpolation = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    return cv2.resize(image, (size[1], size[0]), interpolation=interpolation)

"""Run a trained ACT controller: camera target images + proprio + instruction -> chunk of robot commands.

`ACTPolicy.predict` returns the (chunk, dof + 1) chunk in robot units: absolute joint positions in radians
(denormalised with the checkpoint's statistics) and gripper_open thresholded at 0.5 to 0 or 1.
`ACTPolicy.act` returns one command per control step, either executing each chunk open-loop or, with
``temporal_ensemble=k``, averaging every chunk's prediction for the current step with ACT's weights
``exp(-k * i)`` (i = 0 for the oldest prediction).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from genima_data.errors import GenimaDataError
from genima_models.act.checkpoint import locate_checkpoint
from genima_models.act.model import ACTModel
from genima_models.data import stack_camera_images
from genima_models.errors import TrainingDataError

GRIPPER_THRESHOLD = 0.5


class DeviceError(GenimaDataError):
    """The requested torch device does not exist on this machine or in this torch build."""


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def available_devices() -> list[str]:
    """Devices this torch can run on here: cpu, every CUDA GPU, Apple's mps."""
    devices = ["cpu"]
    if torch.cuda.is_available():
        devices += [f"cuda:{index}" for index in range(torch.cuda.device_count())]
    if torch.backends.mps.is_available():
        devices.append("mps")
    return devices


def resolve_device(device: str | torch.device | None) -> torch.device:
    """`device` checked against this machine (None: the GPU if any, else the CPU); a one-line error names
    what is available when it is unusable."""
    if device is None:
        return default_device()
    available = available_devices()
    # a bare type ('cuda') is usable when any device of that type is; torch ignores a CPU's index
    usable = {*available, *(name.split(":")[0] for name in available)}
    try:
        parsed = torch.device(device)
    except RuntimeError:  # not a device string at all ("foo")
        parsed = None
    if parsed is None or (parsed.type != "cpu" and str(parsed) not in usable):
        raise DeviceError(
            f"'{device}' is not available on this machine (available: {', '.join(available)})",
            field="--device",
        )
    return parsed


class ACTPolicy:
    """A loaded ACT model in evaluation mode; see the module docstring."""

    def __init__(
        self,
        model: ACTModel,
        *,
        device: str | torch.device | None = None,
        temporal_ensemble: float | None = None,
    ):
        self.device = resolve_device(device)
        self.model = model.to(self.device).eval()
        self.temporal_ensemble = temporal_ensemble
        self.reset()

    @classmethod
    def from_checkpoint(
        cls,
        path: str | Path,
        *,
        preset: str | None = None,
        device: str | torch.device | None = None,
        temporal_ensemble: float | None = None,
    ) -> ACTPolicy:
        """Load a checkpoint directory or the latest checkpoint of a training run."""
        model = ACTModel.from_pretrained(locate_checkpoint(path), preset=preset)
        return cls(model, device=device, temporal_ensemble=temporal_ensemble)

    @property
    def cameras(self) -> list[str]:
        return self.model.config.cameras

    @property
    def chunk_size(self) -> int:
        return self.model.config.chunk_size

    @torch.no_grad()
    def predict_batch(
        self, images: torch.Tensor, proprio: torch.Tensor, instructions: Sequence[str]
    ) -> torch.Tensor:
        """(B, cameras, 3, H, W) uint8 images, (B, dof + 1) proprio -> (B, chunk, dof + 1) joints in radians
        and the gripper-open probability (not thresholded)."""
        out = self.model(
            images.to(self.device).float() / 255, proprio.to(self.device).float(), list(instructions)
        )
        joints = self.model.denormalise_joints(out.joints)
        return torch.cat([joints, torch.sigmoid(out.gripper_logit)[..., None]], -1)

    def _chunk(self, images: Mapping[str, np.ndarray], proprio: np.ndarray, instruction: str) -> np.ndarray:
        missing = [cam for cam in self.cameras if cam not in images]
        if missing:
            raise TrainingDataError(f"no image for camera(s) {missing} (the policy reads {self.cameras})")
        proprio = np.asarray(proprio, np.float32).reshape(-1)
        if len(proprio) != self.model.config.dof + 1:
            raise TrainingDataError(
                f"proprio has {len(proprio)} values, expected {self.model.config.dof + 1} "
                "[gripper_open, joints]"
            )
        stacked = stack_camera_images([images[cam] for cam in self.cameras], self.model.config.image_size)
        chunk = self.predict_batch(
            torch.from_numpy(stacked)[None], torch.from_numpy(proprio)[None], [instruction]
        )
        return chunk[0].cpu().numpy()

    def predict(self, images: Mapping[str, np.ndarray], proprio: np.ndarray, instruction: str) -> np.ndarray:
        """Images per camera (HxWx3 uint8 sphere targets), proprio [gripper_open, joints] -> (chunk, dof + 1)
        float32: joint positions (rad) and gripper_open in {0, 1}."""
        return threshold_gripper(self._chunk(images, proprio, instruction))

    def reset(self) -> None:
        """Forget earlier chunks (call at the start of each episode)."""
        self._step = 0
        self._history: list[tuple[int, np.ndarray]] = []  # (step the chunk was predicted at, chunk)

    def act(self, images: Mapping[str, np.ndarray], proprio: np.ndarray, instruction: str) -> np.ndarray:
        """The (dof + 1,) command for the current control step; advances the step counter."""
        step, self._step = self._step, self._step + 1
        if self.temporal_ensemble is None:
            if step % self.chunk_size == 0:
                self._history = [(step, self._chunk(images, proprio, instruction))]
            start, chunk = self._history[0]
            return threshold_gripper(chunk[step - start])
        self._history.append((step, self._chunk(images, proprio, instruction)))
        self._history = [(s, c) for s, c in self._history if step - s < self.chunk_size]
        predictions = np.stack([c[step - s] for s, c in self._history])  # oldest first
        weights = np.exp(-self.temporal_ensemble * np.arange(len(predictions)))
        return threshold_gripper((weights[:, None] * predictions).sum(0) / weights.sum())


def threshold_gripper(actions: np.ndarray) -> np.ndarray:
    """[..., joints, gripper probability] -> the same with gripper_open 1.0 above 0.5, else 0.0."""
    out = np.array(actions, dtype=np.float32, copy=True)
    out[..., -1] = (out[..., -1] > GRIPPER_THRESHOLD).astype(np.float32)
    return out

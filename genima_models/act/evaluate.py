"""Offline evaluation of an ACT controller on held-out episodes: error per step of the predicted chunk.

For every frame of the evaluated episodes the policy predicts a chunk (latent zero, no augmentation,
on-the-fly backgrounds seeded by sample), compared with the recorded future: joint L1 (mean absolute error
over joints, rad), joint L2 (Euclidean norm of the joint error, rad) and gripper accuracy (open/closed at
0.5), each per chunk step over the steps that are not padding.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.table import Table

from genima_data.progress import progress_bar
from genima_models.act.checkpoint import STATE_FILE, locate_checkpoint, read_trainer_state
from genima_models.act.policy import GRIPPER_THRESHOLD, ACTPolicy
from genima_models.data import DEFAULT_VAL_FRACTION, ACTDataset, TargetMode


@dataclass
class ACTEvaluation:
    """Per-chunk-step errors; index k is the prediction for t + k + 1."""

    checkpoint: str
    dataset: str
    split: str
    episodes: list[str]
    samples: int
    joint_l1: list[float]
    joint_l2: list[float]
    gripper_accuracy: list[float]
    counts: list[int]
    policy: str = "ACT"  # what was evaluated: the controller alone, or the chained GENIMA policy

    def mean(self, values: list[float]) -> float:
        """Mean over every evaluated (sample, step) pair, weighting steps by how many were not padding."""
        return float(np.average(values, weights=self.counts)) if sum(self.counts) else float("nan")

    def to_dict(self) -> dict[str, Any]:
        return {
            "policy": self.policy,
            "checkpoint": self.checkpoint,
            "dataset": self.dataset,
            "split": self.split,
            "episodes": self.episodes,
            "samples": self.samples,
            "mean": {
                "joint_l1_rad": self.mean(self.joint_l1),
                "joint_l2_rad": self.mean(self.joint_l2),
                "gripper_accuracy": self.mean(self.gripper_accuracy),
            },
            "per_step": [
                {"step": k + 1, "joint_l1_rad": l1, "joint_l2_rad": l2, "gripper_accuracy": acc, "count": n}
                for k, (l1, l2, acc, n) in enumerate(
                    zip(self.joint_l1, self.joint_l2, self.gripper_accuracy, self.counts, strict=True)
                )
            ],
        }

    def renderable(self) -> Table:
        table = Table(
            title=f"{self.policy} offline evaluation: {self.split} split, {len(self.episodes)} episode(s), "
            f"{self.samples} samples",
            caption=f"{self.checkpoint} on {self.dataset}",
        )
        for name in ("chunk step", "joint L1 (rad)", "joint L2 (rad)", "gripper acc.", "samples"):
            table.add_column(name, justify="right")
        for row in self.to_dict()["per_step"]:
            table.add_row(
                f"t+{row['step']}",
                f"{row['joint_l1_rad']:.4f}",
                f"{row['joint_l2_rad']:.4f}",
                f"{row['gripper_accuracy']:.3f}",
                str(row["count"]),
            )
        table.add_section()
        table.add_row(
            "all",
            f"{self.mean(self.joint_l1):.4f}",
            f"{self.mean(self.joint_l2):.4f}",
            f"{self.mean(self.gripper_accuracy):.3f}",
            str(sum(self.counts)),
            style="bold",
        )
        return table


class ChunkErrors:
    """Per-chunk-step sums of joint L1, joint L2 and gripper agreement over the steps that are not padding."""

    def __init__(self, chunk_size: int) -> None:
        self.sums = np.zeros((3, chunk_size))
        self.counts = np.zeros(chunk_size)

    def add(self, predicted: np.ndarray, actual: np.ndarray, valid: np.ndarray) -> None:
        """(B, chunk, dof + 1) predicted and recorded [joints, gripper_open]; (B, chunk) bool not-padding."""
        error = predicted[..., :-1] - actual[..., :-1]
        correct = (predicted[..., -1] > GRIPPER_THRESHOLD) == (actual[..., -1] > GRIPPER_THRESHOLD)
        for k, values in enumerate((np.abs(error).mean(-1), np.linalg.norm(error, axis=-1), correct)):
            self.sums[k] += (values * valid).sum(0)
        self.counts += valid.sum(0)

    def evaluation(self, **run: Any) -> ACTEvaluation:
        """The report; `run` holds ACTEvaluation's checkpoint, dataset, split, episodes and samples."""
        means = self.sums / np.maximum(self.counts, 1)
        return ACTEvaluation(
            **run,
            joint_l1=means[0].tolist(),
            joint_l2=means[1].tolist(),
            gripper_accuracy=means[2].tolist(),
            counts=self.counts.astype(int).tolist(),
        )


def evaluate_act(
    checkpoint: str | Path,
    data: str | Path,
    *,
    split: str = "val",
    batch_size: int = 16,
    num_workers: int = 0,
    device: str | None = None,
    targets: TargetMode = "auto",
    texture_folder: Path | None = None,
    progress: bool = False,
) -> ACTEvaluation:
    """Evaluate a checkpoint (or a training run's latest) on `split` of `data`; the val split is the one the
    run held out (same fraction and seed) unless the dataset's manifest lists splits."""
    path = locate_checkpoint(checkpoint)
    policy = ACTPolicy.from_checkpoint(path, device=device)
    state = read_trainer_state(path) if (path / STATE_FILE).exists() else {}
    config = policy.model.config
    dataset = ACTDataset(
        data,
        split=split,
        cameras=config.cameras,
        chunk_size=config.chunk_size,
        image_size=config.image_size,
        targets=targets,
        texture_folder=texture_folder,
        val_fraction=state.get("val_fraction", DEFAULT_VAL_FRACTION),
        split_seed=state.get("split_seed", 0),
        random_textures=False,
    )
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, num_workers=num_workers)
    errors = ChunkErrors(config.chunk_size)
    with progress_bar(len(loader), "evaluating ACT", enabled=progress) as advance:
        for batch in loader:
            predicted = policy.predict_batch(batch["images"], batch["proprio"], batch["instruction"])
            errors.add(predicted.cpu().numpy(), batch["actions"].numpy(), ~batch["is_pad"].numpy())
            advance(1)
    return errors.evaluation(
        checkpoint=str(path),
        dataset=str(data),
        split=split,
        episodes=dataset.episode_ids,
        samples=len(dataset),
    )

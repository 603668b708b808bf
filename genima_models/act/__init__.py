"""GENIMA's ACT controller: model (`ACTModel`), training (`train_act`), inference (`ACTPolicy`) and offline
evaluation (`evaluate_act`). Imports torch; ``genima-train`` imports this lazily."""

from genima_models.act.config import PRESETS, ACTConfig, TrainConfig, preset_configs
from genima_models.act.evaluate import ACTEvaluation, evaluate_act
from genima_models.act.model import ACTModel
from genima_models.act.policy import ACTPolicy
from genima_models.act.train import TrainResult, train_act

__all__ = [
    "PRESETS",
    "ACTConfig",
    "ACTEvaluation",
    "ACTModel",
    "ACTPolicy",
    "TrainConfig",
    "TrainResult",
    "evaluate_act",
    "preset_configs",
    "train_act",
]

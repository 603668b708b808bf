"""Errors of the training side, rendered as one line by `genima-train` like genima-data's."""

from __future__ import annotations

from genima_data.errors import GenimaDataError


class TrainingDataError(GenimaDataError):
    """A dataset cannot feed a model: missing targets or cameras, episodes too short for the chunk."""


class CheckpointError(GenimaDataError):
    """A checkpoint is missing, incomplete, or belongs to another preset or architecture."""

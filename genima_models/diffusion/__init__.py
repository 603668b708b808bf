"""GENIMA's diffusion agent: SD-Turbo + ControlNet fine-tuning, inference and the sphere-localisation metric.

Modules: `config` (run configuration and presets, no torch), `models` (base pipeline, tiny preset,
ControlNet), `data` (training pairs from a genima-data store), `augment`, `train`, `checkpoints`, `agent`
(inference) and `evaluate` (sphere-localisation metric).
"""

import os

# library warnings (e.g. transformers' torchvision fallback notice) would bury our progress and results;
# set the variables yourself to see them
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")

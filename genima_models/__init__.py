"""genima_models: GENIMA's two stages (ControlNet diffusion agent, ACT controller) over genima-data stores.

Needs the ``[train]`` extra (torch, diffusers, transformers, accelerate, safetensors). Submodules import
torch; this package's top level does not, so ``genima-train --help`` works without it.
"""

__version__ = "0.1.0"

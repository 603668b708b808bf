"""The frozen base pipeline (tokenizer, text encoder, VAE, UNet, scheduler) and the trainable ControlNet.

`load_base` is the one loading path: `from_pretrained` on a Hugging Face id (``stabilityai/sd-turbo``, the
`genima` preset) or on a local directory in the same layout. The `tiny` preset builds small models from
configs in code (`build_tiny_base`), saves them in the run directory with `save_base` and from then on
loads them through `load_base` like any other base model, so tests exercise the real loading path.
"""

from __future__ import annotations

import json
import warnings
from collections import Counter
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

import diffusers
import torch
import transformers
from diffusers import (
    AutoencoderKL,
    ControlNetModel,
    DiffusionPipeline,
    EulerDiscreteScheduler,
    UNet2DConditionModel,
)
from tokenizers.pre_tokenizers import ByteLevel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

from genima_models.diffusion.config import PROMPT_TEMPLATE, DiffusionConfig, DiffusionError

diffusers.utils.logging.disable_progress_bar()  # per-file loading bars would bury our progress bar
transformers.utils.logging.disable_progress_bar()

TINY_SEED = 0
TINY_MAX_TOKENS = 77  # CLIP's context length, as in SD-Turbo
CONTROLNET_SUBFOLDER = "controlnet"
# SD-Turbo's scheduler (scheduler/scheduler_config.json of stabilityai/sd-turbo)
SD_TURBO_SCHEDULER: dict[str, Any] = {
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "num_train_timesteps": 1000,
    "prediction_type": "epsilon",
    "timestep_spacing": "trailing",
    "steps_offset": 1,
    "interpolation_type": "linear",
    "use_karras_sigmas": False,
}


@dataclass
class BaseModels:
    """The frozen parts of the pipeline and the noise-schedule configuration they were trained with."""

    tokenizer: CLIPTokenizer
    text_encoder: CLIPTextModel
    vae: AutoencoderKL
    unet: UNet2DConditionModel
    scheduler_config: dict[str, Any]


def resolve_base(config: DiffusionConfig, run_dir: Path | None) -> str:
    """Local path of the base model when it lives in (or relative to) the run directory, else as given."""
    if run_dir is not None and (Path(run_dir) / config.base_model).is_dir():
        return str(Path(run_dir) / config.base_model)
    return config.base_model


def load_base(base_model: str, *, variant: str | None = None, download: bool = False) -> BaseModels:
    """Load the base pipeline's components with `from_pretrained`; a one-line error when weights are absent.

    A Hugging Face id is read from the local cache only, unless `download` lets `from_pretrained` fetch
    what is missing (as ACT's ``--download-weights``): an offline run fails at once instead of retrying.
    """
    try:
        return _load_base(base_model, variant=variant, local_files_only=not download)
    except (OSError, ValueError) as exc:
        raise _missing_weights(base_model, exc, downloaded=download) from None


def fetch_base(config: DiffusionConfig, run_dir: Path) -> None:
    """Download the base model of `config` into the Hugging Face cache, where `load_base` then finds it.

    Nothing to fetch for a local copy or the tiny preset (its base is built and saved in the run).
    """
    base_model = resolve_base(config, run_dir)
    if config.preset == "tiny" or Path(base_model).is_dir():
        return
    try:
        DiffusionPipeline.download(base_model, variant=config.base_variant)
    except (OSError, ValueError) as exc:
        raise _missing_weights(base_model, exc, downloaded=True) from None


def _load_base(base_model: str, *, variant: str | None, local_files_only: bool) -> BaseModels:
    kwargs: dict[str, Any] = {"local_files_only": local_files_only}
    weights = {**kwargs, "variant": variant} if variant else kwargs
    with warnings.catch_warnings():
        # diffusers' load_config passes huggingface_hub an argument it deprecated: noise on every load
        warnings.filterwarnings("ignore", message="The `local_dir_use_symlinks` argument is deprecated")
        scheduler = EulerDiscreteScheduler.load_config(base_model, subfolder="scheduler", **kwargs)
    return BaseModels(
        tokenizer=CLIPTokenizer.from_pretrained(base_model, subfolder="tokenizer", **kwargs),
        text_encoder=CLIPTextModel.from_pretrained(base_model, subfolder="text_encoder", **weights),
        vae=AutoencoderKL.from_pretrained(base_model, subfolder="vae", **weights),
        unet=UNet2DConditionModel.from_pretrained(base_model, subfolder="unet", **weights),
        scheduler_config=dict(scheduler),
    )


def _missing_weights(base_model: str, exc: Exception, *, downloaded: bool) -> DiffusionError:
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    elsewhere = (
        f"fetch it where there is network (`huggingface-cli download {base_model}`) and point --base-model "
        "at the local copy"
    )
    if Path(base_model).is_dir():
        problem = f"the local copy is incomplete ({reason})"
    elif downloaded:
        problem = f"it could not be downloaded ({reason}); {elsewhere}"
    else:
        problem = f"it is not in the local Hugging Face cache; pass --download-weights, or {elsewhere}"
    return DiffusionError(f"cannot load the base model '{base_model}': {problem}", field="base_model")


def save_base(base: BaseModels, directory: Path) -> None:
    """Write the base models in the diffusers layout `load_base` reads (one subfolder per component)."""
    directory = Path(directory)
    base.tokenizer.save_pretrained(directory / "tokenizer")
    base.text_encoder.save_pretrained(directory / "text_encoder")
    base.vae.save_pretrained(directory / "vae")
    base.unet.save_pretrained(directory / "unet")
    EulerDiscreteScheduler.from_config(base.scheduler_config).save_pretrained(directory / "scheduler")
    model_index = {
        "_class_name": "StableDiffusionPipeline",
        "tokenizer": ["transformers", "CLIPTokenizer"],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "vae": ["diffusers", "AutoencoderKL"],
        "unet": ["diffusers", "UNet2DConditionModel"],
        "scheduler": ["diffusers", "EulerDiscreteScheduler"],
    }
    (directory / "model_index.json").write_text(json.dumps(model_index, indent=2) + "\n")


def _learn_merges(words: list[str]) -> list[tuple[str, str]]:
    """Byte-pair merges that turn each word into one token (most frequent pair first, ties by name)."""
    pieces = [(*word[:-1], word[-1] + "</w>") for word in words]
    merges: list[tuple[str, str]] = []
    while True:
        pairs = Counter(pair for piece in pieces for pair in pairwise(piece))
        if not pairs:
            return merges
        best = min(pairs, key=lambda pair: (-pairs[pair], pair))
        merges.append(best)
        pieces = [_merge(piece, best) for piece in pieces]


def _merge(piece: tuple[str, ...], pair: tuple[str, str]) -> tuple[str, ...]:
    out: list[str] = []
    for symbol in piece:
        if out and (out[-1], symbol) == pair:
            out[-1] += symbol
        else:
            out.append(symbol)
    return tuple(out)


def tiny_tokenizer() -> CLIPTokenizer:
    """A CLIP tokenizer over the 256 byte-level symbols plus BPE merges learnt from the prompt template.

    Words of the template become single tokens, anything else is spelled out symbol by symbol, so every
    instruction is representable and the 77-token limit bites at realistic lengths. Deterministic.
    """
    symbols = sorted(ByteLevel.alphabet())
    merges = _learn_merges(PROMPT_TEMPLATE.replace("'{instruction}'", "").split())
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for token in [*symbols, *(s + "</w>" for s in symbols), *(a + b for a, b in merges)]:
        vocab.setdefault(token, len(vocab))
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=TINY_MAX_TOKENS)


def build_tiny_base() -> BaseModels:
    """Small randomly initialised (seeded) models with SD-Turbo's structure: runs on a CPU in seconds."""
    torch.manual_seed(TINY_SEED)
    tokenizer = tiny_tokenizer()
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(tokenizer),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            max_position_embeddings=TINY_MAX_TOKENS,
            bos_token_id=0,
            eos_token_id=1,
            pad_token_id=1,
        )
    )
    unet = UNet2DConditionModel(
        sample_size=32,
        block_out_channels=(32, 64),
        layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=32,
        attention_head_dim=(2, 4),
        use_linear_projection=True,  # as SD 2.x
        norm_num_groups=8,
    )
    vae = AutoencoderKL(
        block_out_channels=(8, 16, 16, 16),  # four levels: 8x downsampling like SD's VAE
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=8,
        sample_size=256,
    )
    return BaseModels(tokenizer, text_encoder, vae, unet, dict(SD_TURBO_SCHEDULER))


def controlnet_from_unet(unet: UNet2DConditionModel, config: DiffusionConfig) -> ControlNetModel:
    """A ControlNet initialised from the base UNet's encoder weights (GENIMA's initialisation)."""
    return ControlNetModel.from_unet(
        unet, conditioning_embedding_out_channels=tuple(config.controlnet_conditioning_channels)
    )


def load_controlnet(directory: Path, **kwargs: Any) -> ControlNetModel:
    """Load a ControlNet saved with `save_pretrained`; a one-line error for anything else."""
    directory = Path(directory)
    config_file = directory / "config.json"
    try:
        class_name = json.loads(config_file.read_text()).get("_class_name")
    except (OSError, ValueError, AttributeError):
        class_name = None
    if class_name != "ControlNetModel":
        found = f"a {class_name}" if class_name else "no readable config.json"
        raise DiffusionError(f"not a ControlNet checkpoint ({found})", file=directory)
    try:
        return ControlNetModel.from_pretrained(directory, **kwargs)
    except (OSError, ValueError, RuntimeError) as exc:
        reason = str(exc).splitlines()[0]
        raise DiffusionError(f"cannot load the ControlNet: {reason}", file=directory) from None

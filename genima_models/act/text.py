"""The instruction encoder: CLIP's text transformer (frozen) and its tokenizer.

The ``genima`` preset loads ``openai/clip-vit-base-patch32`` with ``from_pretrained`` when the weights are
on this machine. The ``tiny`` preset (and the offline fallback) uses a character-level `CLIPTokenizer` whose
vocabulary is written here in code — the 256 byte-level symbols with and without CLIP's end-of-word mark —
so it needs no download, and a `CLIPTextModel` built from a config.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from tokenizers.pre_tokenizers import ByteLevel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

from genima_models.act.config import ACTConfig
from genima_models.errors import CheckpointError

START_TOKEN, END_TOKEN = "<|startoftext|>", "<|endoftext|>"
TOKENIZER_FILES = ("tokenizer.json", "vocab.json")  # what save_pretrained writes (fast / slow tokenizers)
END_OF_WORD = "</w>"


def char_tokenizer() -> CLIPTokenizer:
    """A CLIP tokenizer with no merges: every word becomes its characters (514 ids, no download)."""
    symbols = sorted(ByteLevel.alphabet())
    vocab = {s: i for i, s in enumerate(symbols)}
    vocab.update({s + END_OF_WORD: len(symbols) + i for i, s in enumerate(symbols)})
    vocab[START_TOKEN] = len(vocab)
    vocab[END_TOKEN] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=[])


def build_text_encoder(
    config: ACTConfig, *, pretrained: bool, local_files_only: bool = True
) -> tuple[CLIPTokenizer, CLIPTextModel]:
    """Tokenizer and CLIP text model for `config`; records the model's config in ``config.text_config``.

    With `pretrained`, ``config.text_encoder`` is loaded via ``from_pretrained`` (from the local cache only
    unless `local_files_only` is False); if that fails the model is randomly initialised, with a warning.
    Without it the architecture comes from ``config.text_config`` (checkpoints, the tiny preset).
    """
    if pretrained and config.text_encoder:
        try:
            tokenizer = CLIPTokenizer.from_pretrained(config.text_encoder, local_files_only=local_files_only)
            model = CLIPTextModel.from_pretrained(config.text_encoder, local_files_only=local_files_only)
        except OSError as exc:
            warnings.warn(
                f"CLIP text encoder '{config.text_encoder}' is not available offline ({exc}); using a "
                "randomly initialised one with a character-level tokenizer",
                stacklevel=2,
            )
            tokenizer = char_tokenizer()
            model = CLIPTextModel(_text_config_for(tokenizer, CLIPTextConfig()))
    elif config.text_config is not None:
        tokenizer = char_tokenizer()
        model = CLIPTextModel(CLIPTextConfig.from_dict(config.text_config))
    else:
        tokenizer = char_tokenizer()
        model = CLIPTextModel(_text_config_for(tokenizer, CLIPTextConfig()))
    config.text_config = model.config.to_dict()
    model.requires_grad_(False)
    return tokenizer, model.eval()


def _text_config_for(tokenizer: CLIPTokenizer, base: CLIPTextConfig) -> CLIPTextConfig:
    """`base` with the vocabulary and special tokens of `tokenizer`."""
    base.vocab_size = len(tokenizer)
    base.bos_token_id = tokenizer.convert_tokens_to_ids(START_TOKEN)
    base.eos_token_id = base.pad_token_id = tokenizer.convert_tokens_to_ids(END_TOKEN)
    return base


def load_tokenizer(directory: Path) -> CLIPTokenizer:
    """The tokenizer a checkpoint saved (local files only); a one-line error when it is missing or broken."""
    directory = Path(directory)
    # from_pretrained on a folder without vocabulary files quietly returns an empty tokenizer
    if not any((directory / name).is_file() for name in TOKENIZER_FILES):
        raise CheckpointError(f"missing tokenizer (no {' or '.join(TOKENIZER_FILES)})", file=directory)
    try:
        return CLIPTokenizer.from_pretrained(directory, local_files_only=True)
    except Exception as exc:  # tokenizers raises bare Exception; transformers KeyError, TypeError, ValueError
        reason = f"{type(exc).__name__}: {exc}".splitlines()[0]
        raise CheckpointError(f"unreadable tokenizer ({reason})", file=directory) from None

import json

import pytest

torch = pytest.importorskip("torch")

from genima_models.diffusion.config import DiffusionError, preset_config  # noqa: E402
from genima_models.diffusion.data import check_prompt  # noqa: E402
from genima_models.diffusion.models import (  # noqa: E402
    build_tiny_base,
    controlnet_from_unet,
    load_base,
    load_controlnet,
    save_base,
    tiny_tokenizer,
)


def test_tiny_tokenizer_is_clip_shaped_and_keeps_template_words_whole():
    tokenizer = tiny_tokenizer()
    assert tokenizer.model_max_length == 77
    prompt = preset_config("tiny").prompt("reach the red target")
    tokens = tokenizer.convert_ids_to_tokens(tokenizer(prompt).input_ids)
    assert tokens[0] == "<|startoftext|>" and tokens[-1] == "<|endoftext|>"
    assert tokens[1:8] == [
        w + "</w>" for w in ["tiled", "perspectives", "of", "a", "robot", "arm", "executing"]
    ]
    assert tiny_tokenizer().get_vocab() == tokenizer.get_vocab()  # deterministic: same ids every time


def test_prompt_over_the_token_limit_is_a_one_line_error_naming_the_episode():
    tokenizer = tiny_tokenizer()
    prompt = preset_config("tiny").prompt("pick up the " + "very " * 40 + "red block")
    with pytest.raises(DiffusionError, match=r"episode e7: instruction: prompt is \d+ tokens.*at most 77"):
        check_prompt(tokenizer, prompt, episode="e7")
    check_prompt(tokenizer, preset_config("tiny").prompt("slide the block to the pink target"))


def test_base_round_trips_through_the_diffusers_layout(tmp_path):
    base = build_tiny_base()
    save_base(base, tmp_path / "base")
    loaded = load_base(str(tmp_path / "base"))
    for name in ("unet", "vae", "text_encoder"):
        saved, back = getattr(base, name).state_dict(), getattr(loaded, name).state_dict()
        assert all(torch.equal(saved[k], back[k]) for k in saved), name
    assert loaded.scheduler_config["timestep_spacing"] == "trailing"
    assert loaded.scheduler_config["prediction_type"] == "epsilon"
    assert loaded.tokenizer.get_vocab() == base.tokenizer.get_vocab()


def test_missing_base_weights_offline_are_a_one_line_error(tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(DiffusionError) as err:
        load_base("stabilityai/sd-turbo", variant="fp16")
    message = str(err.value)
    assert message.startswith("base_model: cannot load the base model 'stabilityai/sd-turbo'")
    assert "huggingface-cli download stabilityai/sd-turbo" in message and "\n" not in message
    with pytest.raises(DiffusionError, match="cannot load the base model"):
        load_base(str(tmp_path))  # an empty local directory


def test_controlnet_starts_as_a_copy_of_the_unet_encoder():
    base = build_tiny_base()
    controlnet = controlnet_from_unet(base.unet, preset_config("tiny"))
    unet, net = base.unet.state_dict(), controlnet.state_dict()
    shared = [k for k in unet if k.startswith(("down_blocks.", "mid_block.", "conv_in.", "time_embedding."))]
    assert shared and all(torch.equal(unet[k], net[k]) for k in shared)
    zero_convs = [k for k in net if k.startswith(("controlnet_down_blocks", "controlnet_mid_block"))]
    assert zero_convs and all(not net[k].any() for k in zero_convs)  # residuals start at zero


def test_a_checkpoint_that_is_not_a_controlnet_is_refused(tmp_path):
    base = build_tiny_base()
    base.unet.save_pretrained(tmp_path / "unet")
    with pytest.raises(DiffusionError, match=r"unet: not a ControlNet checkpoint \(a UNet2DConditionModel\)"):
        load_controlnet(tmp_path / "unet")
    with pytest.raises(DiffusionError, match="no readable config.json"):
        load_controlnet(tmp_path)
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.json").write_text(json.dumps({"_class_name": "ControlNetModel"}))
    with pytest.raises(DiffusionError, match="cannot load the ControlNet"):
        load_controlnet(tmp_path / "broken")


def test_base_model_is_read_from_the_local_cache_only_unless_download_is_asked(monkeypatch):
    import genima_models.diffusion.models as models

    attempts = []

    def not_cached(base_model, *, variant, local_files_only):
        attempts.append(local_files_only)
        raise OSError("not cached")

    monkeypatch.setattr(models, "_load_base", not_cached)
    with pytest.raises(DiffusionError, match="not in the local Hugging Face cache; pass --download-weights"):
        load_base("stabilityai/sd-turbo", variant="fp16")
    assert attempts == [True]  # no hub request, so no retries offline
    with pytest.raises(DiffusionError, match="could not be downloaded"):
        load_base("stabilityai/sd-turbo", variant="fp16", download=True)
    assert attempts == [True, False]

import json
import shutil

import pytest

torch = pytest.importorskip("torch")

from transformers import ResNetConfig, ResNetModel  # noqa: E402

from genima_models.act.backbone import FiLMResNet, FrozenBatchNorm2d  # noqa: E402
from genima_models.act.config import ACTConfig, preset_configs  # noqa: E402
from genima_models.act.model import ACTModel  # noqa: E402
from genima_models.act.text import char_tokenizer  # noqa: E402
from genima_models.errors import CheckpointError  # noqa: E402
from tests.conftest import ACT_TEST_CAMERAS  # noqa: E402

pytestmark = pytest.mark.train


def batch(size: int = 3, image: int = 64):
    g = torch.Generator().manual_seed(1)
    return {
        "images": torch.rand(size, len(ACT_TEST_CAMERAS), 3, image, image, generator=g),
        "proprio": torch.rand(size, 8, generator=g),
        "actions": torch.rand(size, 20, 8, generator=g),
        "is_pad": torch.zeros(size, 20, dtype=torch.bool),
        "instructions": ["reach the red target", "touch the red ball", "reach the red target"][:size],
    }


def test_forward_predicts_a_chunk_of_joints_and_gripper_logits(make_act_model):
    model, b = make_act_model(), batch()
    out = model(b["images"], b["proprio"], b["instructions"], b["actions"], b["is_pad"])
    assert out.joints.shape == (3, 20, 7) and out.gripper_logit.shape == (3, 20)
    assert out.mu.shape == out.logvar.shape == (3, 8)
    inference = model.eval()(b["images"], b["proprio"], b["instructions"])
    assert inference.mu is None and inference.joints.shape == (3, 20, 7)


def test_normalisation_round_trip_uses_the_dataset_statistics(make_act_model):
    model = make_act_model()
    joints = torch.randn(5, 20, 7, dtype=torch.float32)
    torch.testing.assert_close(model.denormalise_joints(model.normalise_joints(joints)), joints)
    mean = torch.linspace(-1, 1, 7)
    torch.testing.assert_close(model.normalise_joints(mean), torch.zeros(7))
    torch.testing.assert_close(model.normalise_joints(mean + torch.linspace(0.1, 0.7, 7)), torch.ones(7))


def test_padded_steps_do_not_count_in_the_loss(make_act_model):
    model, b = make_act_model(), batch()
    model.eval()  # latent zero and no dropout: identical predictions for both calls
    b["is_pad"][:, 12:] = True
    out = model(b["images"], b["proprio"], b["instructions"])
    garbage = b["actions"].clone()
    garbage[:, 12:] = 1e3
    clean, dirty = model.loss(out, b["actions"], b["is_pad"]), model.loss(out, garbage, b["is_pad"])
    for key in ("l1", "bce", "loss"):
        torch.testing.assert_close(clean[key], dirty[key])
    unmasked = model.loss(out, garbage, torch.zeros_like(b["is_pad"]))
    assert unmasked["l1"] > 10 * clean["l1"]


def test_loss_combines_l1_bce_and_kl_with_genima_weights(make_act_model):
    model, b = make_act_model(), batch()
    out = model(b["images"], b["proprio"], b["instructions"], b["actions"], b["is_pad"])
    losses = model.loss(out, b["actions"], b["is_pad"])
    torch.testing.assert_close(losses["loss"], losses["l1"] + 0.05 * losses["bce"] + 10 * losses["kl"])
    assert losses["kl"] > 0


def test_film_resnet_equals_plain_resnet_until_film_is_trained():
    """Guards the hand-written forward against changes in transformers' ResNet internals."""
    torch.manual_seed(0)
    resnet = ResNetModel(ResNetConfig(embedding_size=8, hidden_sizes=[8, 16, 32, 64], layer_type="basic"))
    resnet.eval()
    pixels = torch.rand(2, 3, 64, 64)
    expected = resnet(pixels).last_hidden_state
    film = FiLMResNet(resnet, text_dim=4, film_stages=[2, 3, 4])
    torch.testing.assert_close(film(pixels, torch.randn(2, 4)), expected)
    with torch.no_grad():
        film.film["3"].bias.fill_(0.5)
    assert not torch.allclose(film(pixels, torch.randn(2, 4)), expected)


def test_batch_norm_is_frozen_during_training(make_act_model):
    model, b = make_act_model(), batch()
    frozen = [m for m in model.backbones.modules() if isinstance(m, FrozenBatchNorm2d)]
    assert frozen and not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    before = frozen[0].running_mean.clone()
    model.train()
    out = model(b["images"] * 5, b["proprio"], b["instructions"], b["actions"], b["is_pad"])
    model.loss(out, b["actions"], b["is_pad"])["loss"].backward()
    torch.testing.assert_close(frozen[0].running_mean, before)
    assert not any(p.requires_grad for p in model.text_encoder.parameters())


def test_instructions_condition_the_prediction(make_act_model):
    model, b = make_act_model().eval(), batch(2)
    with torch.no_grad():
        for linear in model.backbones["front"].film.values():
            linear.weight.normal_()
    same = [b["images"][:1].repeat(2, 1, 1, 1, 1), b["proprio"][:1].repeat(2, 1)]
    out = model(*same, ["reach the red target", "open the drawer"])
    assert not torch.allclose(out.joints[0], out.joints[1])


def test_checkpoint_reload_predicts_identically(tmp_path, make_act_model):
    model, b = make_act_model(seed=3).eval(), batch()
    model.save_pretrained(tmp_path / "ckpt")
    assert {p.name for p in (tmp_path / "ckpt").iterdir()} >= {
        "config.json",
        "model.safetensors",
        "normalisation.json",
        "tokenizer",
    }
    reloaded = ACTModel.from_pretrained(tmp_path / "ckpt", preset="tiny").eval()
    args = (b["images"], b["proprio"], b["instructions"])
    torch.testing.assert_close(reloaded(*args).joints, model(*args).joints, rtol=0, atol=0)
    torch.testing.assert_close(reloaded.joint_std, model.joint_std)
    stats = json.loads((tmp_path / "ckpt" / "normalisation.json").read_text())
    assert stats["count"] == 100 and len(stats["joint_mean"]) == 7


def test_checkpoint_of_another_preset_is_refused(tmp_path, make_act_model):
    make_act_model().save_pretrained(tmp_path / "ckpt")
    with pytest.raises(CheckpointError, match="trained with preset 'tiny', not 'genima'"):
        ACTModel.from_pretrained(tmp_path / "ckpt", preset="genima")


def test_weights_that_do_not_fit_the_config_name_the_tensor(tmp_path, make_act_model):
    make_act_model().save_pretrained(tmp_path / "ckpt")
    config_path = tmp_path / "ckpt" / "config.json"
    config = json.loads(config_path.read_text())
    config["ff_dim"] = 128
    config_path.write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=r"model.safetensors: encoder.layers.0.linear1.weight: shape"):
        ACTModel.from_pretrained(tmp_path / "ckpt")


def test_a_directory_without_config_is_not_a_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="no config.json"):
        ACTModel.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text('{"format": "diffusers"}')
    with pytest.raises(CheckpointError, match="not an ACT checkpoint"):
        ACTConfig.load(tmp_path / "config.json")


def test_character_tokenizer_needs_no_download_and_survives_saving(tmp_path):
    tokenizer = char_tokenizer()
    ids = tokenizer(["Reach it"]).input_ids[0]
    assert tokenizer.convert_ids_to_tokens(ids) == [
        "<|startoftext|>", "r", "e", "a", "c", "h</w>", "i", "t</w>", "<|endoftext|>"
    ]  # fmt: skip
    tokenizer.save_pretrained(tmp_path)
    assert type(tokenizer).from_pretrained(tmp_path, local_files_only=True)(["Reach it"]).input_ids[0] == ids


def test_genima_preset_matches_the_paper():
    config, train = preset_configs("genima")
    assert (config.hidden_dim, config.enc_layers, config.dec_layers, config.heads, config.ff_dim) == (
        256, 4, 6, 8, 2048
    )  # fmt: skip
    assert (config.latent_dim, config.kl_weight, config.chunk_size, config.dropout) == (32, 10.0, 20, 0.1)
    assert config.backbone["depths"] == [2, 2, 2, 2] and config.backbone["layer_type"] == "basic"
    assert config.backbone_weights == "microsoft/resnet-18"
    assert config.text_encoder == "openai/clip-vit-base-patch32" and config.film_stages == [2, 3, 4]
    assert (train.lr, train.lr_backbone, train.weight_decay) == (1e-5, 1e-5, 1e-4)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda tok: shutil.rmtree(tok), "missing tokenizer"),
        (lambda tok: (tok / "tokenizer.json").write_text("{}"), "unreadable tokenizer"),
        (lambda tok: (tok / "tokenizer.json").write_text("garbage"), "unreadable tokenizer"),
    ],
    ids=["missing", "empty-json", "not-json"],
)
def test_checkpoint_with_missing_or_corrupt_tokenizer_is_a_checkpoint_error(
    act_run, tmp_path, damage, message
):
    from genima_models.act.checkpoint import checkpoint_dirs

    checkpoint = tmp_path / "step"
    shutil.copytree(checkpoint_dirs(act_run)[-1], checkpoint)
    damage(checkpoint / "tokenizer")
    with pytest.raises(CheckpointError, match=message) as err:
        ACTModel.from_pretrained(checkpoint)
    assert err.value.file == str(checkpoint / "tokenizer")


def test_checkpoint_with_another_models_tokenizer_is_a_checkpoint_error(act_run, tmp_path):
    from genima_models.act.checkpoint import checkpoint_dirs

    checkpoint = tmp_path / "step"
    shutil.copytree(checkpoint_dirs(act_run)[-1], checkpoint)
    shutil.rmtree(checkpoint / "tokenizer")
    bigger = char_tokenizer()
    bigger.add_tokens(["<extra>"])
    bigger.save_pretrained(checkpoint / "tokenizer")
    with pytest.raises(CheckpointError, match="tokenizer has 515 tokens, the text encoder 514"):
        ACTModel.from_pretrained(checkpoint)

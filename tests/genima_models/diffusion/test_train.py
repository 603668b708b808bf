import json

import pytest

torch = pytest.importorskip("torch")

from diffusers import ControlNetModel  # noqa: E402

from genima_models.diffusion.checkpoints import checkpoints, resolve_checkpoint  # noqa: E402
from genima_models.diffusion.config import CONFIG_FILE, DiffusionConfig, DiffusionError  # noqa: E402
from genima_models.diffusion.train import train_diffusion  # noqa: E402

from .conftest import TILE  # noqa: E402


def _weights(path):
    return ControlNetModel.from_pretrained(path).state_dict()


def test_run_writes_metrics_and_a_reloadable_controlnet(tiny_run):
    rows = [json.loads(line) for line in (tiny_run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]
    for row in rows:
        assert row["loss"] > 0 and row["lr"] == 1e-5 and row["samples_per_s"] > 0
    controlnet_dir = tiny_run / "checkpoint-2" / "controlnet"
    assert (controlnet_dir / "config.json").is_file()
    assert (controlnet_dir / "diffusion_pytorch_model.safetensors").is_file()
    assert json.loads((controlnet_dir / "config.json").read_text())["_class_name"] == "ControlNetModel"
    config = DiffusionConfig.load(tiny_run / "checkpoint-2")
    assert config.preset == "tiny" and config.tile_size == TILE and config.learning_rate == 1e-5
    found = resolve_checkpoint(tiny_run)
    assert found.controlnet_dir == controlnet_dir and found.step == 2 and found.run_dir == tiny_run
    assert (tiny_run / "base" / "unet" / "config.json").is_file()


def test_training_changes_the_controlnet_only(tiny_run, tmp_path):
    from genima_models.diffusion.models import controlnet_from_unet, load_base

    base = load_base(str(tiny_run / "base"))
    torch.manual_seed(0)
    initial = controlnet_from_unet(base.unet, DiffusionConfig.load(tiny_run)).state_dict()
    trained = _weights(tiny_run / "checkpoint-2" / "controlnet")
    assert any(not torch.equal(initial[k], trained[k]) for k in initial)


def test_resumed_run_equals_an_uninterrupted_one(pairs_dataset, tiny_run, tmp_path):
    resumed = tmp_path / "resumed"
    train_diffusion(pairs_dataset, resumed, preset="tiny", steps=1, tile_size=TILE, progress=False)
    train_diffusion(pairs_dataset, resumed, preset="tiny", steps=2, resume=True, progress=False)
    straight, again = (
        _weights(tiny_run / "checkpoint-2" / "controlnet"),
        _weights(resumed / "checkpoint-2" / "controlnet"),
    )
    assert all(torch.equal(straight[k], again[k]) for k in straight)
    losses = [json.loads(line)["loss"] for line in (resumed / "metrics.jsonl").read_text().splitlines()]
    expected = [json.loads(line)["loss"] for line in (tiny_run / "metrics.jsonl").read_text().splitlines()]
    assert losses == expected


def test_old_checkpoints_are_pruned_and_interrupted_metrics_rows_dropped(pairs_dataset, tmp_path):
    out = tmp_path / "run"
    train_diffusion(
        pairs_dataset, out, preset="tiny", steps=3, tile_size=TILE, checkpoint_every=1, progress=False
    )
    assert [step for step, _ in checkpoints(out)] == [2, 3]
    with (out / "metrics.jsonl").open("a") as f:
        f.write('{"step": 4, "loss": 1.0}\n{"step": 5, "lo')  # a later run killed mid-line
    train_diffusion(pairs_dataset, out, preset="tiny", steps=4, resume=True, progress=False)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4] and "lr" in rows[-1]


def test_reusing_a_run_directory_needs_resume_and_the_same_preset(pairs_dataset, tiny_run):
    with pytest.raises(DiffusionError, match="already holds a diffusion run: pass --resume"):
        train_diffusion(pairs_dataset, tiny_run, preset="tiny", steps=3, progress=False)
    with pytest.raises(DiffusionError, match="trained with preset 'tiny', not 'genima'"):
        train_diffusion(pairs_dataset, tiny_run, preset="genima", resume=True, progress=False)
    with pytest.raises(DiffusionError, match="already at step 2; pass a larger --steps"):
        train_diffusion(pairs_dataset, tiny_run, preset="tiny", resume=True, progress=False)
    assert (tiny_run / CONFIG_FILE).is_file()


def test_a_dataset_without_targets_fails_before_anything_is_written(demo_store_dir, tmp_path):
    from genima_data.errors import StoreError

    out = tmp_path / "run"
    with pytest.raises(StoreError, match="no .*diffusion targets"):
        train_diffusion(demo_store_dir / "sample.zarr", out, preset="tiny", steps=2, targets="stored")
    assert not out.exists()

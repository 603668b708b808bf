import json
import shutil

import pytest

torch = pytest.importorskip("torch")

from genima_models.act.checkpoint import checkpoint_dirs, read_trainer_state  # noqa: E402
from genima_models.act.train import read_metrics, train_act  # noqa: E402
from genima_models.errors import CheckpointError  # noqa: E402
from tests.conftest import ACT_TEST_CAMERAS  # noqa: E402

pytestmark = pytest.mark.train
FAST = {"preset": "tiny", "cameras": ACT_TEST_CAMERAS, "batch_size": 4, "progress": False}


def test_tiny_model_overfits_and_logs_every_component(act_store_dir, tmp_path):
    result = train_act(
        act_store_dir / "sample.zarr", tmp_path / "run", steps=60, log_every=10, augment=False, **FAST
    )
    rows = read_metrics(tmp_path / "run" / "metrics.jsonl")
    assert [r["step"] for r in rows] == [10, 20, 30, 40, 50, 60]
    assert set(rows[0]) >= {"step", "loss", "l1", "bce", "kl", "lr", "samples_per_s"}
    assert rows[0]["lr"] == 1e-3 and rows[0]["samples_per_s"] > 0
    assert rows[-1]["loss"] < rows[0]["loss"] / 2
    assert rows[-1]["l1"] < 0.8 * rows[0]["l1"]
    assert result.checkpoint == checkpoint_dirs(tmp_path / "run")[-1]
    assert read_trainer_state(result.checkpoint)["step"] == 60


def test_resume_continues_from_the_latest_checkpoint_and_drops_later_metrics(act_store_dir, tmp_path):
    data, out = act_store_dir / "sample_h5", tmp_path / "run"
    train_act(data, out, steps=6, save_every=3, log_every=1, **FAST)
    shutil.rmtree(checkpoint_dirs(out)[-1])  # as if the run died after the step-3 checkpoint
    assert [r["step"] for r in read_metrics(out / "metrics.jsonl")] == [1, 2, 3, 4, 5, 6]
    step3 = (checkpoint_dirs(out)[-1] / "model.safetensors").read_bytes()
    result = train_act(data, out, steps=8, resume=True, **FAST)
    assert [r["step"] for r in read_metrics(out / "metrics.jsonl")] == [1, 2, 3, 4, 5, 6, 7, 8]
    assert result.steps == 8 and read_trainer_state(result.checkpoint)["step"] == 8
    assert (result.checkpoint / "model.safetensors").read_bytes() != step3
    state = torch.load(result.checkpoint / "optimizer.pt", weights_only=True)
    assert state["state"][0]["step"] == 8  # AdamW's counters continued from the checkpoint


def test_existing_run_is_not_overwritten_without_resume(act_run, act_store_dir):
    with pytest.raises(CheckpointError, match="already holds a training run; pass --resume"):
        train_act(act_store_dir / "sample.zarr", act_run, steps=1, **FAST)


def test_resume_with_another_preset_is_refused(act_run, act_store_dir):
    with pytest.raises(CheckpointError, match="trained with preset 'tiny', not 'genima'"):
        train_act(act_store_dir / "sample.zarr", act_run, preset="genima", resume=True, progress=False)


def test_resume_with_other_cameras_is_refused(act_run, act_store_dir):
    with pytest.raises(CheckpointError, match=r"trained on cameras \['front', 'wrist'\]"):
        train_act(
            act_store_dir / "sample.zarr", act_run, **{**FAST, "cameras": ["front"]}, resume=True, steps=5
        )


def test_checkpoint_records_the_training_episodes_and_settings(act_run):
    state = read_trainer_state(checkpoint_dirs(act_run)[-1])
    assert state["train_episodes"] == ["episode0", "episode1"]  # episode2 is the held-out episode
    assert state["train"]["batch_size"] == 4 and state["train"]["steps"] == 4
    config = json.loads((checkpoint_dirs(act_run)[-1] / "config.json").read_text())
    assert config["preset"] == "tiny" and config["cameras"] == ACT_TEST_CAMERAS

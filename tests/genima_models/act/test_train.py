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


def _copy_run(act_run, tmp_path):
    """A private copy of the shared `act_run` (tests below modify it)."""
    out = tmp_path / "run"
    shutil.copytree(act_run, out)
    return out


def test_out_holding_another_kind_of_run_or_user_files_is_refused_untouched(act_store_dir, tmp_path):
    from genima_models.run_dir import RunDirectoryError

    user = tmp_path / "mine"
    user.mkdir()
    (user / "metrics.jsonl").write_text('{"step": 5, "loss": 1.0}\n')
    diffusion_run = tmp_path / "dref"
    diffusion_run.mkdir()
    (diffusion_run / "genima_diffusion.json").write_text("{}\n")
    (diffusion_run / "metrics.jsonl").write_text('{"step": 5, "loss": 1.0}\n')
    for folder in (user, diffusion_run):
        before = {p.name: p.read_bytes() for p in folder.iterdir()}
        for resume in (False, True):
            with pytest.raises(RunDirectoryError, match="is not empty and holds no ACT run"):
                train_act(act_store_dir / "sample.zarr", folder, steps=1, resume=resume, **FAST)
        assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    afile = tmp_path / "afile.txt"
    afile.write_text("mine\n")
    with pytest.raises(RunDirectoryError, match="is not a directory"):
        train_act(act_store_dir / "sample.zarr", afile, steps=1, **FAST)
    assert afile.read_text() == "mine\n"
    (tmp_path / "empty").mkdir()  # an empty folder is as good as a new one
    assert train_act(act_store_dir / "sample.zarr", tmp_path / "empty", steps=1, **FAST).checkpoint.is_dir()


def test_resume_with_new_learning_rates_uses_and_records_them(act_run, act_store_dir, tmp_path):
    out = _copy_run(act_run, tmp_path)
    result = train_act(
        act_store_dir / "sample.zarr",
        out,
        steps=6,
        resume=True,
        lr=1e-5,
        lr_backbone=1e-6,
        log_every=1,
        **FAST,
    )
    resumed = [r for r in read_metrics(out / "metrics.jsonl") if r["step"] > 4]
    assert [(r["lr"], r["lr_backbone"]) for r in resumed] == [(1e-5, 1e-6)] * 2
    groups = torch.load(result.checkpoint / "optimizer.pt", weights_only=True)["param_groups"]
    assert [g["lr"] for g in groups] == [1e-5, 1e-6]
    train = read_trainer_state(result.checkpoint)["train"]
    assert (train["lr"], train["lr_backbone"]) == (1e-5, 1e-6)


def test_resume_removes_leftovers_of_interrupted_checkpoint_writes(act_run, act_store_dir, tmp_path):
    out = _copy_run(act_run, tmp_path)
    torn = out / "checkpoints" / ".tmp-step-00000006.123.abcdef01"
    shutil.copytree(checkpoint_dirs(out)[-1], torn)  # a checkpoint write killed before its rename
    (out / ".tmp-metrics.jsonl.123.abcdef01").write_text("{}\n")
    train_act(act_store_dir / "sample.zarr", out, steps=5, resume=True, **FAST)
    assert not torn.exists() and not list(out.glob(".tmp-*"))


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda saved: {"step": saved["step"]}, "trainer state lacks the run's training settings"),
        (lambda saved: {**saved, "train": {"bogus": 1}}, "unusable training settings"),
        (lambda saved: {**saved, "step": "four"}, "'step' must be a non-negative integer"),
        (lambda saved: [1, 2], "trainer state is not a JSON object"),
    ],
    ids=["no-train", "unknown-setting", "bad-step", "not-an-object"],
)
def test_damaged_trainer_state_is_a_checkpoint_error_naming_the_file(
    act_run, act_store_dir, tmp_path, damage, message
):
    out = _copy_run(act_run, tmp_path)
    state = checkpoint_dirs(out)[-1] / "trainer_state.json"
    state.write_text(json.dumps(damage(json.loads(state.read_text()))))
    with pytest.raises(CheckpointError, match=message) as err:
        train_act(act_store_dir / "sample.zarr", out, steps=6, resume=True, **FAST)
    assert err.value.file == str(state)


@pytest.mark.parametrize(
    ("option", "value", "bound"),
    [
        ("steps", 0, "greater than 0"),
        ("steps", -3, "greater than 0"),
        ("batch_size", 0, "greater than 0"),
        ("epochs", 0, "greater than 0"),
        ("save_every", 0, "greater than 0"),
        ("lr", -1e-3, "greater than or equal to 0"),
    ],
)
def test_non_positive_steps_or_batch_size_are_refused_before_training(
    act_store_dir, tmp_path, option, value, bound
):
    from genima_data.errors import GenimaDataError

    with pytest.raises(GenimaDataError, match=f"{option}: Input should be {bound}"):
        train_act(act_store_dir / "sample.zarr", tmp_path / "run", **{**FAST, option: value})
    assert not (tmp_path / "run").exists()

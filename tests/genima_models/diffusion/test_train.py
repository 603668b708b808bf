import json
import shutil

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


def _copy_run(tiny_run, tmp_path):
    """A private copy of the shared `tiny_run` (tests below modify it)."""
    out = tmp_path / "run"
    shutil.copytree(tiny_run, out)
    return out


def test_out_holding_another_kind_of_run_or_user_files_is_refused_untouched(pairs_dataset, tmp_path):
    from genima_models.run_dir import RunDirectoryError

    user = tmp_path / "mine"
    user.mkdir()
    (user / "metrics.jsonl").write_text('{"step": 5, "loss": 1.0}\n')
    act_run = tmp_path / "actK"
    (act_run / "checkpoints" / "step-00000010").mkdir(parents=True)
    (act_run / "checkpoints" / "step-00000010" / "trainer_state.json").write_text('{"step": 10}\n')
    (act_run / "metrics.jsonl").write_text('{"step": 5, "loss": 1.0}\n')
    for folder in (user, act_run):
        before = sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))
        for resume in (False, True):
            with pytest.raises(RunDirectoryError, match="is not empty and holds no diffusion run"):
                train_diffusion(pairs_dataset, folder, preset="tiny", steps=1, resume=resume, progress=False)
        assert sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) == before
        assert (folder / "metrics.jsonl").read_text() == '{"step": 5, "loss": 1.0}\n'
    afile = tmp_path / "afile.txt"
    afile.write_text("mine\n")
    with pytest.raises(RunDirectoryError, match="is not a directory"):
        train_diffusion(pairs_dataset, afile, preset="tiny", steps=1, progress=False)
    assert afile.read_text() == "mine\n"


def test_resume_removes_leftovers_of_interrupted_checkpoint_writes(pairs_dataset, tiny_run, tmp_path):
    out = _copy_run(tiny_run, tmp_path)
    torn = out / ".tmp-checkpoint-3.123.abcdef01"
    shutil.copytree(out / "checkpoint-2", torn)  # a checkpoint write killed before its rename
    train_diffusion(pairs_dataset, out, preset="tiny", steps=3, resume=True, progress=False)
    assert not torn.exists() and not list(out.glob(".tmp-*"))


@pytest.mark.parametrize("name", ["optimizer.pt", "trainer_state.json"])
def test_damaged_checkpoint_file_is_a_one_line_checkpoint_error(pairs_dataset, tiny_run, tmp_path, name):
    from genima_models.errors import CheckpointError

    out = _copy_run(tiny_run, tmp_path)
    damaged = out / "checkpoint-2" / name
    damaged.write_bytes(b"garbage\x00\x01")
    with pytest.raises(CheckpointError) as err:
        train_diffusion(pairs_dataset, out, preset="tiny", steps=3, resume=True, progress=False)
    assert err.value.file == str(damaged) and "\n" not in str(err.value)


def test_resume_refuses_settings_it_would_ignore_and_takes_a_new_learning_rate(
    pairs_dataset, tiny_run, tmp_path
):
    out = _copy_run(tiny_run, tmp_path)
    with pytest.raises(
        DiffusionError, match=r"tile_size: a resumed run keeps the tile_size it was started with"
    ):
        train_diffusion(
            pairs_dataset, out, preset="tiny", steps=3, resume=True, tile_size=2 * TILE, progress=False
        )
    train_diffusion(
        pairs_dataset,
        out,
        preset="tiny",
        steps=3,
        resume=True,
        learning_rate=1e-3,
        log_every=1,
        progress=False,
    )
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["step"] == 3 and rows[-1]["lr"] == pytest.approx(1e-3)

import json
import subprocess
import sys

import pytest

pytest.importorskip("torch")

from tests.conftest import ACT_FRAMES

pytestmark = pytest.mark.train


def test_act_trains_and_eval_act_reports_errors_from_the_command_line(act_store_dir, tmp_path, run_train_cli):
    data, out = act_store_dir / "sample.zarr", tmp_path / "run"
    args = ["act", "--data", data, "--preset", "tiny", "--out", out, "--steps", 4, "--batch-size", 4]
    trained = run_train_cli(*args, "--cameras", "front,wrist", "--log-every", 2)
    assert trained.exit_code == 0, trained.stderr
    assert "trained 4 steps" in trained.stdout and "step-00000004" in trained.stdout
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [2, 4]

    as_json = run_train_cli("eval-act", "--checkpoint", out, "--data", data, "--json")
    assert as_json.exit_code == 0, as_json.stderr
    report = json.loads(as_json.stdout)
    assert report["episodes"] == ["episode2"] and report["samples"] == ACT_FRAMES - 1
    assert [row["step"] for row in report["per_step"]] == list(range(1, 21))
    table = run_train_cli("eval-act", "--checkpoint", out, "--data", data, "--report", tmp_path / "r.json")
    assert table.exit_code == 0 and "joint L1 (rad)" in table.stdout and "t+20" in table.stdout
    assert json.loads((tmp_path / "r.json").read_text())["per_step"] == report["per_step"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--cameras", "front,top"], "cameras: camera(s) ['top'] not in the dataset"),
        (["--preset", "huge"], "unknown preset 'huge'; choose from genima, tiny"),
        (["--targets", "maybe"], "unknown target mode 'maybe'"),
        (["--mixed-precision", "fp8"], "unknown mixed precision 'fp8'"),
    ],
)
def test_bad_training_input_is_one_line_and_exit_1(act_store_dir, tmp_path, run_train_cli, extra, message):
    base = ["act", "--data", act_store_dir / "sample_h5", "--out", tmp_path / "run", "--preset", "tiny"]
    result = run_train_cli(*base, *extra)
    assert result.exit_code == 1
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_existing_run_and_foreign_checkpoint_are_refused(act_run, act_store_dir, tmp_path, run_train_cli):
    data = act_store_dir / "sample.zarr"
    again = run_train_cli("act", "--data", data, "--out", act_run, "--preset", "tiny", "--steps", 1)
    assert again.exit_code == 1 and "pass --resume" in again.stderr
    other = run_train_cli("act", "--data", data, "--out", act_run, "--preset", "genima", "--resume")
    assert other.exit_code == 1 and "trained with preset 'tiny', not 'genima'" in other.stderr
    missing = run_train_cli("eval-act", "--checkpoint", tmp_path, "--data", data)
    assert missing.exit_code == 1 and "no ACT checkpoint here" in missing.stderr
    no_data = run_train_cli("eval-act", "--checkpoint", act_run, "--data", tmp_path / "nope.zarr")
    assert no_data.exit_code == 1 and "no such dataset" in no_data.stderr


def test_help_works_without_importing_torch():
    code = (
        "import sys\nfrom genima_models.cli import main\n"
        "try: main(['act', '--help'])\nexcept SystemExit: pass\n"
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "--preset" in result.stdout and "--resume" in result.stdout


def test_subcommands_and_help_list_act_and_eval_act_as_available(run_train_cli):
    listed = run_train_cli("subcommands")
    state = {line.split()[0]: line for line in listed.stdout.splitlines()}
    assert "(available)" in state["act"] and "(available)" in state["eval-act"]
    helped = run_train_cli("--help")
    assert helped.exit_code == 0 and "act" in helped.stdout and "eval-act" in helped.stdout


def test_out_that_is_a_file_or_a_dataset_is_refused_in_one_line(act_store_dir, tmp_path, run_train_cli):
    import shutil

    store = tmp_path / "s.zarr"
    shutil.copytree(act_store_dir / "sample.zarr", store)
    before = sorted(str(p.relative_to(store)) for p in store.rglob("*"))
    afile = tmp_path / "afile.txt"
    afile.write_text("mine\n")
    for kind, extra in (("act", []), ("diffusion", ["--tile-size", "32"])):
        for out, message in ((afile, "afile.txt: is not a directory"), (store, "s.zarr: is not empty")):
            result = run_train_cli(
                kind, "--data", store, "--out", out, "--preset", "tiny", "--steps", 1, *extra
            )
            assert result.exit_code == 1, result.stderr
            assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert sorted(str(p.relative_to(store)) for p in store.rglob("*")) == before
    assert afile.read_text() == "mine\n"


def test_eval_act_unknown_split_names_the_dataset_in_one_line(act_run, act_store_dir, run_train_cli):
    data = act_store_dir / "sample.zarr"
    result = run_train_cli("eval-act", "--checkpoint", act_run, "--data", data, "--split", "test")
    assert result.exit_code == 1
    assert f"{data}: splits: no split 'test'" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("device", ["foo", "cuda:99"])
def test_unavailable_device_is_one_line_naming_device_and_what_is_available(
    act_run, act_store_dir, run_train_cli, device
):
    result = run_train_cli(
        "eval-act", "--checkpoint", act_run, "--data", act_store_dir / "sample.zarr", "--device", device
    )
    assert result.exit_code == 1 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert f"--device: '{device}' is not available on this machine (available: cpu" in result.stderr


def _diffusion_args(act_store_dir, out, *extra):
    return ["diffusion", "--data", act_store_dir / "sample.zarr", "--out", out, "--steps", 1, *extra]


def test_fp16_without_a_gpu_is_refused_before_the_run_directory_is_written(
    act_store_dir, tmp_path, run_train_cli, monkeypatch
):
    import torch

    from genima_models.diffusion.config import check_mixed_precision, preset_config

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    out = tmp_path / "run"
    args = _diffusion_args(
        act_store_dir, out, "--preset", "tiny", "--tile-size", 16, "--mixed-precision", "fp16"
    )
    result = run_train_cli(*args)
    assert result.exit_code == 1 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "mixed_precision: fp16 needs a CUDA GPU" in result.stderr and not out.exists()
    check_mixed_precision(preset_config("tiny", mixed_precision="bf16"), cuda=False)  # bf16 runs on CPUs


def test_download_weights_fetches_the_base_model_before_the_run_starts(
    act_store_dir, tmp_path, run_train_cli, monkeypatch
):
    from diffusers import DiffusionPipeline

    fetched = []

    def unreachable(name, **kwargs):
        fetched.append((name, kwargs.get("variant")))
        raise OSError("no network")

    monkeypatch.setattr(DiffusionPipeline, "download", unreachable)
    out = tmp_path / "run"
    result = run_train_cli(*_diffusion_args(act_store_dir, out, "--preset", "genima", "--download-weights"))
    assert fetched == [("stabilityai/sd-turbo", "fp16")]
    assert result.exit_code == 1 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "'stabilityai/sd-turbo': it could not be downloaded (no network)" in result.stderr
    assert not out.exists()

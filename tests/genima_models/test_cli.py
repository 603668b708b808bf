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

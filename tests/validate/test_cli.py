"""`genima-data validate`: exit 0 ready / 1 errors / 2 unreadable, one-line findings, JSON, options."""

from __future__ import annotations

import json

import numpy as np

from tests.validate.conftest import episode_file, read_array, set_array

JOINTS = "robot/joint_positions"


def put_nan_joint(dataset, episode_id="episode1", frame=7, joint=2):
    q = read_array(dataset, episode_id, JOINTS)
    q[frame, joint] = np.nan
    set_array(dataset, episode_id, JOINTS, q)


def test_demo_is_accepted_with_exit_zero(demo_copy, run_cli):
    result = run_cli("validate", demo_copy)
    assert result.exit_code == 0, result.stdout
    assert "GENIMA-ready: 0 error(s), 0 warning(s)" in result.stdout


def test_one_nan_joint_is_rejected_with_one_line_naming_file_episode_field_and_frame(demo_copy, run_cli):
    put_nan_joint(demo_copy)
    result = run_cli("validate", demo_copy)
    assert result.exit_code == 1
    (line,) = [line for line in result.stdout.splitlines() if line.startswith("error")]
    assert line == (
        f"error   [finite] {episode_file(demo_copy, 'episode1')}: episode episode1: robot/joint_positions: "
        "NaN at frame 7 (joint panda_joint3)"
    )
    assert "NOT GENIMA-ready: 1 error(s)" in result.stdout


def test_unreadable_dataset_exits_two_with_one_line(tmp_path, demo_copy, run_cli):
    missing = run_cli("validate", tmp_path / "nothing.zarr")
    assert missing.exit_code == 2 and missing.stderr.strip().splitlines() == [
        f"error: {tmp_path / 'nothing.zarr'}: no such dataset"
    ]
    manifest = demo_copy / ("zarr.json" if demo_copy.suffix == ".zarr" else "manifest.json")
    manifest.write_text("{not json")
    malformed = run_cli("validate", demo_copy)
    assert malformed.exit_code == 2 and len(malformed.stderr.strip().splitlines()) == 1
    assert str(manifest) in malformed.stderr and "Traceback" not in malformed.stderr


def test_incomplete_dataset_exits_two(tmp_path, manifest, make_episode, run_cli):
    from genima_data.store import create_dataset

    create_dataset(tmp_path / "partial.zarr", manifest).write_episode(make_episode(0))  # never committed
    result = run_cli("validate", tmp_path / "partial.zarr")
    assert result.exit_code == 2 and "dataset is incomplete" in result.stderr


def test_json_report_lists_the_finding_with_its_frames(demo_copy, tmp_path, run_cli):
    put_nan_joint(demo_copy, frame=3)
    result = run_cli("validate", demo_copy, "--json", tmp_path / "report.json")
    report = json.loads((tmp_path / "report.json").read_text())
    assert result.exit_code == report["exit_code"] == 1
    (finding,) = [f for f in report["findings"] if f["severity"] == "error"]
    assert (finding["check"], finding["episode"], finding["field"], finding["frames"]) == (
        "finite",
        "episode1",
        JOINTS,
        [3],
    )


def test_strict_turns_warnings_into_failure(demo_copy, run_cli):
    from tests.validate.conftest import edit_meta

    edit_meta(demo_copy, "episode0", success=None)
    assert run_cli("validate", demo_copy).exit_code == 0
    strict = run_cli("validate", demo_copy, "--strict")
    assert strict.exit_code == 1 and "--strict: warnings count" in strict.stdout


def test_checks_option_runs_only_the_named_checks(demo_copy, run_cli):
    put_nan_joint(demo_copy)
    assert run_cli("validate", demo_copy, "--checks", "joint_limits,gripper_range").exit_code == 0
    assert run_cli("validate", demo_copy, "--checks", "finite").exit_code == 1


def test_thresholds_are_options(demo_copy, run_cli):
    assert run_cli("validate", demo_copy, "--horizon", "30").exit_code == 1  # 24 frames < 33
    assert run_cli("validate", demo_copy, "-o", "horizon=30", "--min-length", "10").exit_code == 0


def test_unknown_check_or_option_exits_two_with_one_line(demo_copy, run_cli):
    bad_check = run_cli("validate", demo_copy, "--checks", "finite,nope")
    assert bad_check.exit_code == 2 and "unknown check(s) nope" in bad_check.stderr
    bad_option = run_cli("validate", demo_copy, "-o", "nope=1")
    assert bad_option.exit_code == 2 and bad_option.stderr.startswith("error: nope: unknown option")


def test_list_checks_names_every_check(run_cli):
    result = run_cli("validate", "--list-checks")
    assert result.exit_code == 0
    for name in ("finite", "timestamps", "frozen_frames", "duplicates", "calibration"):
        assert name in result.stdout

"""`genima-data render-targets` and `genima-data preview`: exit codes, messages, files."""

from __future__ import annotations

import json

from genima_data.store import open_dataset


def test_render_targets_writes_targets_and_a_report(run_cli, demo_copy, tmp_path):
    result = run_cli("render-targets", demo_copy, "--random-bg", "procedural", "--json", tmp_path / "r.json")
    assert result.exit_code == 0, result.stderr
    assert "rendered 3 episodes, skipped 0" in " ".join(result.stdout.split())
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["rendered"] == ["episode0", "episode1", "episode2"]
    assert report["record"]["config"]["horizon"] == 20
    with open_dataset(demo_copy) as ds, ds.episode("episode0") as ep:
        assert ep.target_names == ["front", "left_shoulder", "right_shoulder", "wrist"]
        assert "targets/wrist/rnd_bg" in ep


def test_rerun_skips_and_a_changed_config_exits_1_with_one_line(run_cli, demo_h5):
    assert run_cli("render-targets", demo_h5, "--cameras", "front,wrist").exit_code == 0
    again = run_cli("render-targets", demo_h5, "--cameras", "front", "--cameras", "wrist")
    assert again.exit_code == 0 and "skipped 3 already done" in " ".join(again.stdout.split())
    changed = run_cli("render-targets", demo_h5, "--cameras", "front", "--set", "horizon=4")
    assert changed.exit_code == 1
    assert changed.stderr.count("\n") == 1 and "Traceback" not in changed.stderr
    assert "targets/front/rgb" in changed.stderr and "--overwrite" in changed.stderr
    replaced = run_cli("render-targets", demo_h5, "--cameras", "front", "--set", "horizon=4", "--overwrite")
    assert replaced.exit_code == 0


def test_config_file_and_overrides_reach_the_record(run_cli, demo_h5, tmp_path):
    (tmp_path / "t.yaml").write_text("horizon: 8\ncamera_scales:\n  front: 5.0\n")
    result = run_cli(
        "render-targets", demo_h5, "--config", tmp_path / "t.yaml", "--set", "camera_scales.wrist=2",
        "--cameras", "front", "--json", tmp_path / "r.json",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    config = json.loads((tmp_path / "r.json").read_text())["record"]["config"]
    assert config["horizon"] == 8 and config["camera_scales"] == {"front": 5.0, "wrist": 2}


def test_bad_config_exits_1_naming_file_and_field(run_cli, demo_h5, tmp_path):
    (tmp_path / "t.yaml").write_text("radius_m: -1\n")
    result = run_cli("render-targets", demo_h5, "--config", tmp_path / "t.yaml")
    assert result.exit_code == 1
    assert f"{tmp_path / 't.yaml'}: radius_m:" in " ".join(result.stderr.split())


def test_missing_dataset_is_a_one_line_error(run_cli, tmp_path):
    result = run_cli("render-targets", tmp_path / "absent.zarr")
    assert result.exit_code != 0 and "no such dataset" in result.stderr and "Traceback" not in result.stderr


def test_export_png_writes_genima_folders(run_cli, demo_h5, tmp_path):
    result = run_cli("render-targets", demo_h5, "--export-png", tmp_path / "png")
    assert result.exit_code == 0, result.stderr
    episode = (
        tmp_path
        / "png"
        / "genima-demo_rgb_rendered"
        / "reach_target"
        / "variation0"
        / "episodes"
        / "episode0"
    )
    assert (episode / "front_rgb" / "23.png").exists() and (
        episode / "tiled_rgb_rendered" / "22.png"
    ).exists()


def test_preview_writes_a_png_of_the_first_episode_by_default(run_cli, demo_h5, tmp_path):
    result = run_cli("preview", demo_h5, "--out", tmp_path / "sheet.png", "--frames", "2")
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / "sheet.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    bad = run_cli("preview", demo_h5, "--episode", "episode7", "--out", tmp_path / "x.png")
    assert bad.exit_code == 1 and "no episode 'episode7'" in bad.stderr


def test_a_bad_episode_fails_alone_and_exits_1(run_cli, tmp_path):
    from genima_data.demo import demo_episode, demo_manifest
    from genima_data.store import create_dataset

    ds = create_dataset(tmp_path / "d_h5", demo_manifest(32))
    ds.write_episode(demo_episode(0, frames=1, size=32))  # no future frame to draw
    ds.write_episode(demo_episode(1, frames=6, size=32))
    ds.commit()
    result = run_cli("render-targets", tmp_path / "d_h5", "--cameras", "front")
    assert result.exit_code == 1
    stderr = " ".join(result.stderr.split())
    assert (
        f"failed {tmp_path / 'd_h5' / 'episodes' / 'episode0.h5'}: episode episode0: length: episode has 1"
        in stderr
    )
    with open_dataset(tmp_path / "d_h5") as done, done.episode("episode1") as ep:
        assert ep.target_names == ["front"]


def test_preview_of_an_unknown_camera_is_a_one_line_error_not_an_internal_error(run_cli, demo_h5, tmp_path):
    result = run_cli("preview", demo_h5, "--cameras", "nosuch", "--out", tmp_path / "p.png")
    assert result.exit_code == 1, result.stderr
    assert "cameras ['nosuch'] are not in the manifest" in " ".join(result.stderr.split())
    assert "Traceback" not in result.stderr and not (tmp_path / "p.png").exists()

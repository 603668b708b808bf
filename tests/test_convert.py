import json

import pytest

from genima_data.convert import convert
from genima_data.errors import FormatError, GenimaDataError, StoreError
from genima_data.store import open_dataset
from tests.conftest import assert_episodes_equal


def assert_datasets_equal(a_path, b_path):
    a, b = open_dataset(a_path), open_dataset(b_path)
    assert a.manifest.identity() == b.manifest.identity()
    assert a.manifest.episodes == b.manifest.episodes
    for eid in a.episode_ids:
        with a.episode(eid) as x, b.episode(eid) as y:
            assert_episodes_equal(x, y)


@pytest.mark.parametrize("workers", [1, 2])
def test_zarr_to_hdf5_to_zarr_is_bit_exact(demo_store_dir, tmp_path, workers):
    src = demo_store_dir / "sample.zarr"
    h5 = tmp_path / "h5"
    back = tmp_path / "back.zarr"
    first = convert(src, h5, to="hdf5", workers=workers)
    assert first.written == ["episode0", "episode1", "episode2"] and first.ok
    convert(h5, back, workers=workers)
    assert open_dataset(back).backend == "zarr"
    assert_datasets_equal(src, h5)
    assert_datasets_equal(src, back)


def test_rerun_skips_complete_episodes(demo_store_dir, tmp_path):
    dst = tmp_path / "out.zarr"
    convert(demo_store_dir / "sample_h5", dst, episodes=["episode0"])
    again = convert(demo_store_dir / "sample_h5", dst)
    assert again.skipped == ["episode0"] and again.written == ["episode1", "episode2"]
    assert_datasets_equal(demo_store_dir / "sample_h5", dst)


def test_destination_format_must_be_known(demo_store_dir, tmp_path):
    with pytest.raises(FormatError, match="pass --to"):
        convert(demo_store_dir / "sample.zarr", tmp_path / "out.xyz")


def test_unknown_source_format_is_reported(tmp_path):
    (tmp_path / "junk").mkdir()
    with pytest.raises(FormatError, match="cannot tell the format; pass --from"):
        convert(tmp_path / "junk", tmp_path / "out.zarr")


def test_cli_convert_writes_a_json_report(demo_store_dir, tmp_path, run_cli):
    report = tmp_path / "report.json"
    result = run_cli(
        "convert",
        demo_store_dir / "sample.zarr",
        tmp_path / "h5",
        "--to",
        "hdf5",
        "--workers",
        "2",
        "--json",
        report,
    )
    assert result.exit_code == 0, result.stderr
    assert "wrote 3" in result.stdout
    data = json.loads(report.read_text())
    assert data["written"] == ["episode0", "episode1", "episode2"] and data["committed"]


def test_cli_convert_refuses_a_different_dataset_at_the_destination(demo_store_dir, tmp_path, run_cli):
    dst = tmp_path / "out.zarr"
    assert run_cli("convert", demo_store_dir / "sample.zarr", dst).exit_code == 0
    other = tmp_path / "other.zarr"
    assert run_cli("demo", other, "--episodes", "1", "--frames", "4", "--size", "16").exit_code == 0
    result = run_cli("convert", other, dst)
    assert result.exit_code == 1
    assert "already holds a different dataset" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_one_line_error_without_debug_and_traceback_with_it(tmp_path, run_cli):
    missing = tmp_path / "nope"
    plain = run_cli("convert", missing, tmp_path / "out.zarr")
    assert plain.exit_code == 1
    assert plain.stderr.strip() == f"error: {missing}: no such file or directory"
    with pytest.raises(GenimaDataError):
        run_cli("--debug", "convert", missing, tmp_path / "out.zarr")


# --- conversion machinery on RLBench sources (branch rlbench) ----------------------------------------------
def many_episode_rlbench_copy(rlbench_dir, root, copies=3):
    """The RLBench fixture with each episode folder repeated under new indices (3 x `copies` episodes)."""
    import shutil

    shutil.copytree(rlbench_dir, root)
    episodes = root / "reach_target/variation0/episodes"
    for k in range(1, copies):
        for e in (3, 8, 9):
            shutil.copytree(episodes / f"episode{e}", episodes / f"episode{10 * k + e}")
    return root


def complete_zarr_episodes(store) -> list[str]:
    episodes = store / "episodes"
    if not episodes.is_dir():
        return []
    return sorted(
        p.name for p in episodes.iterdir() if (p / "zarr.json").exists() and not p.name.startswith(".")
    )


def test_sigkilled_conversion_resumes_to_the_uninterrupted_result(rlbench_dir, tmp_path, run_cli):
    import os
    import signal
    import subprocess
    import sys
    import time

    src = many_episode_rlbench_copy(rlbench_dir, tmp_path / "src")
    reference, dst = tmp_path / "reference.zarr", tmp_path / "killed.zarr"
    assert convert(src, reference).ok
    total = len(open_dataset(reference).episode_ids)
    command = [
        sys.executable,
        "-c",
        "from genima_data.cli import main; main()",
        "convert",
        src,
        dst,
        "-w",
        "2",
    ]
    proc = subprocess.Popen(
        command, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 120
    while len(complete_zarr_episodes(dst)) < 2 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    os.killpg(proc.pid, signal.SIGKILL)  # the whole conversion, pool workers included: a crash
    proc.wait()
    done = complete_zarr_episodes(dst)
    assert 2 <= len(done) < total, f"kill came too late to test anything ({len(done)} of {total} done)"
    with pytest.raises(StoreError, match="incomplete"):
        open_dataset(dst)
    rerun = run_cli("convert", src, dst, "-w", "2")
    assert rerun.exit_code == 0, rerun.stderr
    assert f"wrote {total - len(done)}, skipped {len(done)} already complete" in rerun.stdout
    assert_datasets_equal(reference, dst)
    assert complete_zarr_episodes(dst) == sorted(open_dataset(reference).episode_ids)
    assert not [p for p in (dst / "episodes").iterdir() if p.name.startswith(".tmp-")]


@pytest.mark.parametrize("workers", [1, 2])
def test_first_bad_episode_stops_the_run_and_nothing_is_committed(rlbench_dir, tmp_path, workers):
    import shutil

    src = tmp_path / "src"
    shutil.copytree(rlbench_dir, src)
    bad = src / "reach_target/variation0/episodes/episode8/front_rgb/3.png"
    bad.write_bytes(b"\x89PNG broken")
    dst = tmp_path / "out.zarr"
    with pytest.raises(GenimaDataError) as err:
        convert(src, dst, workers=workers)
    assert (
        str(err.value) == f"{bad}: episode reach_target_v0_e8: cameras/front/rgb: "
        "PNG is corrupt or truncated (cannot decode it)"
    )
    assert "reach_target_v0_e8" not in complete_zarr_episodes(dst)
    if workers == 1:  # in order: the episode after the bad one never started
        assert complete_zarr_episodes(dst) == ["reach_target_v0_e3"]
    assert not [p for p in (dst / "episodes").iterdir() if p.name.startswith(".tmp-")]
    with pytest.raises(StoreError, match="incomplete"):
        open_dataset(dst)
    skipping = convert(src, dst, skip_invalid=True, workers=workers)
    assert list(skipping.failed) == ["reach_target_v0_e8"] and not skipping.ok
    assert open_dataset(dst).episode_ids == ["reach_target_v0_e3", "reach_target_v0_e9"]


def test_unknown_reader_or_writer_option_is_a_one_line_error(demo_store_dir, tmp_path, run_cli):
    result = run_cli(
        "convert",
        demo_store_dir / "sample.zarr",
        tmp_path / "lr",
        "--to",
        "lerobot",
        "--writer-opt",
        "gop2=1",
    )
    assert result.exit_code == 1
    line = result.stderr.replace("\n", " ")
    assert (
        "format 'lerobot' writer: got an unexpected keyword argument 'gop2' (options: image_codec, crf,"
        in line
    )
    assert " gop," in line  # the options it does take are listed
    assert not (tmp_path / "lr").exists()


@pytest.mark.parametrize("to", ["hdf5", "zarr"])
def test_converted_targets_keep_their_render_record_so_rerendering_is_not_refused(demo_copy, tmp_path, to):
    from genima_data.render.pipeline import render_targets, stored_record

    render_targets(demo_copy, random_bg="procedural")
    dst = tmp_path / f"converted.{to}"
    convert(demo_copy, dst, to=to)
    src_ds, dst_ds = open_dataset(demo_copy), open_dataset(dst)
    for eid in src_ds.episode_ids:
        with src_ds.episode(eid) as a, dst_ds.episode(eid) as b:
            targets = [p for p in a.paths() if p.startswith("targets/")]
            assert targets and all(stored_record(b, p) == stored_record(a, p) is not None for p in targets)
    rerun = render_targets(dst, random_bg="procedural")  # same config: nothing to redo, nothing refused
    assert not rerun.rendered

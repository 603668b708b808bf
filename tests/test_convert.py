import json

import pytest

from genima_data.convert import convert
from genima_data.errors import FormatError, GenimaDataError
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
    assert (
        "format 'lerobot' writer: got an unexpected keyword argument 'gop2' (options: image_codec, crf, gop"
        in (result.stderr.replace("\n", " "))
    )
    assert not (tmp_path / "lr").exists()

import json
import shutil

from genima_data import __version__


def test_info_json_summarises_the_dataset(demo_store_dir, run_cli):
    result = run_cli("info", demo_store_dir / "sample.zarr", "--json")
    assert result.exit_code == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["episodes"] == 3 and info["frames"] == 72
    assert info["backend"] == "zarr"
    assert [c["name"] for c in info["cameras"]] == ["front", "left_shoulder", "right_shoulder", "wrist"]
    assert info["cameras"][3]["pose"] == "per-frame"
    assert info["codecs"] == {"image": "gradient-zstd", "array": "blosc-lz4"}
    assert info["streams"]["cameras/front/rgb"] == "(32, 32, 3) uint8"
    assert info["size_bytes"] > 0


def test_info_tables_name_cameras_and_codecs(demo_store_dir, run_cli):
    result = run_cli("info", demo_store_dir / "sample_h5")
    assert result.exit_code == 0
    for text in ("genima-demo", "left_shoulder", "blosc-lz4", "32x32", "reach_target"):
        assert text in result.stdout


def test_info_names_indexed_episodes_missing_on_disk(demo_copy, run_cli):
    victim = demo_copy / "episodes" / ("episode2" if demo_copy.suffix == ".zarr" else "episode2.h5")
    shutil.rmtree(victim) if victim.is_dir() else victim.unlink()
    assert json.loads(run_cli("info", demo_copy, "--json").stdout)["missing_episodes"] == ["episode2"]
    assert "3 (1 missing on disk: episode2; see validate)" in " ".join(
        run_cli("info", demo_copy).stdout.split()
    )


def test_schema_check_detects_stale_files(tmp_path, run_cli):
    assert run_cli("schema", "--out", tmp_path).exit_code == 0
    assert run_cli("schema", "--check", "--out", tmp_path).exit_code == 0
    (tmp_path / "manifest.schema.json").write_text("{}")
    stale = run_cli("schema", "--check", "--out", tmp_path)
    assert stale.exit_code == 1 and "manifest" in stale.stderr


def test_version_and_usage_errors(run_cli):
    assert __version__ in run_cli("--version").stdout
    assert run_cli("convert").exit_code == 2  # missing arguments: click's usage error

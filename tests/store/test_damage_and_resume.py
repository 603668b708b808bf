"""Damaged stores, odd names and resumed writes: one-line errors, and nothing kept or lost silently."""

import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from genima_data.calibration import attach_calibration
from genima_data.convert import convert
from genima_data.demo import build_demo
from genima_data.episode import Episode, LazyFrames
from genima_data.errors import GenimaDataError, SchemaError, StoreError
from genima_data.store import create_dataset, open_dataset
from tests.conftest import assert_episodes_equal

BACKENDS = ["zarr", "hdf5"]
SAMPLE = {"zarr": "sample.zarr", "hdf5": "sample_h5"}


def store_path(tmp_path: Path, backend: str, name: str = "ds") -> Path:
    return tmp_path / (f"{name}.zarr" if backend == "zarr" else name)


def copy_sample(demo_store_dir: Path, tmp_path: Path, backend: str) -> Path:
    path = store_path(tmp_path, backend, "copy")
    shutil.copytree(demo_store_dir / SAMPLE[backend], path)
    return path


# ------------------------------------------------------------------------------------------- names
def test_zarr_camera_and_extras_named_c_are_read_back(tmp_path, manifest, make_episode):
    cameras = [
        cam.model_copy(update={"name": "c"}) if cam.name == "front" else cam for cam in manifest.cameras
    ]
    renamed = manifest.model_copy(update={"cameras": cameras})
    ep = make_episode(0)
    arrays = {k.replace("cameras/front/", "cameras/c/"): v for k, v in ep.arrays.items()}
    arrays["extras/c"] = np.arange(ep.length, dtype=np.int16)
    ds = create_dataset(tmp_path / "c.zarr", renamed)
    ds.write_episode(Episode(meta=ep.meta, arrays=arrays))
    ds.commit()
    with open_dataset(tmp_path / "c.zarr").episode("episode0") as back:
        assert "cameras/c/rgb" in back and "extras/c" in back
        assert np.array_equal(back["cameras/c/rgb"][:], arrays["cameras/c/rgb"])
        assert np.array_equal(back["extras/c"][:], arrays["extras/c"])


def test_zarr_refuses_names_its_layout_uses(tmp_path, manifest, make_episode):
    ds = create_dataset(tmp_path / "r.zarr", manifest)
    ep = make_episode(0)
    named = Episode(meta=ep.meta.model_copy(update={"episode_id": "zarr.json"}), arrays=ep.arrays)
    with pytest.raises(StoreError, match="'zarr.json' is reserved by the zarr layout; rename the episode"):
        ds.write_episode(named)
    extra = ep.with_arrays({"extras/zarr.json": np.zeros(ep.length)})
    with pytest.raises(StoreError, match="extras/zarr.json: 'zarr.json' is reserved"):
        ds.write_episode(extra)
    assert ds.episodes_on_disk() == []


# ------------------------------------------------------------------------------------------- commits
@pytest.mark.parametrize("backend", BACKENDS)
def test_commit_refuses_an_episode_copied_under_another_name(demo_store_dir, tmp_path, backend):
    path = copy_sample(demo_store_dir, tmp_path, backend)
    original = open_dataset(path).episode_path("episode0")
    copy = original.with_name(original.name.replace("episode0", "episode0_copy"))
    (shutil.copytree if original.is_dir() else shutil.copy)(original, copy)
    ds = create_dataset(path, open_dataset(path).manifest, append=True)
    with pytest.raises(StoreError, match="holds episode 'episode0' under the name 'episode0_copy'"):
        ds.commit()
    assert open_dataset(path).episode_ids == ["episode0", "episode1", "episode2"]  # still readable


@pytest.mark.parametrize("backend", BACKENDS)
def test_writing_an_episode_that_exists_needs_replace(tmp_path, manifest, make_episode, backend):
    ds = create_dataset(store_path(tmp_path, backend), manifest)
    ds.write_episode(make_episode(0, frames=12))
    shorter = make_episode(0, frames=8)
    with pytest.raises(StoreError, match="episode episode0: episode already exists"):
        ds.write_episode(shorter)
    ds.write_episode(shorter, replace=True)
    ds.commit()
    assert open_dataset(ds.path).manifest.episodes[0].length == 8


@pytest.mark.parametrize("backend", BACKENDS)
def test_episode_metadata_that_fails_the_schema_is_refused(tmp_path, manifest, make_episode, backend):
    ep = make_episode(0)
    bad = Episode(meta=ep.meta.model_copy(update={"instruction": None}), arrays=ep.arrays)
    ds = create_dataset(store_path(tmp_path, backend), manifest)
    with pytest.raises(SchemaError, match="episode episode0: instruction"):
        ds.write_episode(bad)
    assert ds.episodes_on_disk() == []


@pytest.mark.parametrize("backend", BACKENDS)
def test_zero_width_array_is_refused_before_anything_is_written(tmp_path, manifest, make_episode, backend):
    ep = make_episode(0).with_arrays({"extras/empty": np.zeros((12, 0), np.float32)})
    ds = create_dataset(store_path(tmp_path, backend), manifest)
    with pytest.raises(StoreError, match=r"extras/empty: shape \(12, 0\) has an axis of length 0"):
        ds.write_episode(ep)
    assert ds.episodes_on_disk() == []


# ------------------------------------------------------------------------------------------- resuming
@pytest.mark.parametrize("backend", BACKENDS)
def test_resume_refuses_episodes_of_another_dataset_with_the_same_manifest(demo_store_dir, tmp_path, backend):
    other_seed = tmp_path / "seed1.zarr"
    build_demo(other_seed, episodes=3, frames=24, size=32, seed=1)
    destination = copy_sample(demo_store_dir, tmp_path, backend)
    with pytest.raises(StoreError, match="episode episode0: destination already holds a different episode"):
        convert(other_seed, destination, to=backend)
    with pytest.raises(StoreError, match=r"differs in seed\)"):
        build_demo(destination, episodes=3, frames=24, size=32, seed=1)
    with open_dataset(destination).episode("episode0") as kept:
        assert kept.meta.seed == 0


def test_resume_over_the_same_source_still_skips_complete_episodes(demo_store_dir, tmp_path):
    destination = tmp_path / "out_h5"
    first = convert(demo_store_dir / "sample.zarr", destination, to="hdf5")
    again = convert(demo_store_dir / "sample.zarr", destination, to="hdf5")
    assert first.written == again.skipped == ["episode0", "episode1", "episode2"]
    assert again.written == []


@pytest.mark.parametrize("backend", BACKENDS)
def test_resumed_write_with_another_codec_is_refused(tmp_path, manifest, backend):
    path = store_path(tmp_path, backend)
    create_dataset(path, manifest, image_codec="blosc-zstd")
    with pytest.raises(StoreError, match="started with image codec 'blosc-zstd', not 'gradient-zstd'"):
        create_dataset(path, manifest, image_codec="gradient-zstd")
    create_dataset(path, manifest)  # without a codec option: resumes with the codecs it was started with


def test_convert_into_its_own_source_is_refused(demo_store_dir, tmp_path):
    path = copy_sample(demo_store_dir, tmp_path, "zarr")
    with pytest.raises(GenimaDataError, match="the destination is the source"):
        convert(path, path)


@pytest.mark.parametrize("backend", BACKENDS)
def test_manifest_change_is_refused_while_a_write_is_pending(demo_store_dir, tmp_path, backend):
    path = copy_sample(demo_store_dir, tmp_path, backend)
    create_dataset(path, open_dataset(path).manifest, append=True)  # an append that never committed
    front = open_dataset(path).manifest.camera("front")
    with pytest.raises(StoreError, match="a write to this dataset is in progress or was interrupted"):
        attach_calibration(path, [front])


# ------------------------------------------------------------------------------------------- damage
def corrupt_zarr_shard(path: Path) -> Path:
    shard = path / "episodes/episode1/cameras/front/rgb/c.0.0.0.0"
    with open(shard, "r+b") as f:
        f.seek(20)
        f.write(b"\0" * 200)
    return shard


def corrupt_hdf5_chunk(path: Path) -> Path:
    file = path / "episodes/episode1.h5"
    with h5py.File(file, "r") as f:
        info = f["cameras/front/rgb"].id.get_chunk_info(2)
    with open(file, "r+b") as f:
        f.seek(info.byte_offset)
        f.write(b"\xff" * info.size)
    return file


CORRUPT = {"zarr": corrupt_zarr_shard, "hdf5": corrupt_hdf5_chunk}


@pytest.mark.parametrize("backend", BACKENDS)
def test_corrupt_image_chunk_is_a_one_line_error_naming_episode_and_field(demo_store_dir, tmp_path, backend):
    path = copy_sample(demo_store_dir, tmp_path, backend)
    damaged = CORRUPT[backend](path)
    with pytest.raises(StoreError) as err, open_dataset(path).episode("episode1") as ep:
        ep["cameras/front/rgb"][:]
    assert str(err.value).startswith(str(damaged))
    assert "episode episode1: cameras/front/rgb: " in str(err.value)
    assert "the file is truncated or corrupt" in str(err.value)


@pytest.mark.parametrize("backend", BACKENDS)
def test_skip_invalid_skips_an_episode_with_a_corrupt_chunk(demo_store_dir, tmp_path, backend, run_cli):
    path = copy_sample(demo_store_dir, tmp_path, backend)
    CORRUPT[backend](path)
    result = run_cli("convert", path, tmp_path / "out.zarr", "--to", "zarr", "--skip-invalid")
    assert result.exit_code == 1
    assert "episode1" in result.stdout + result.stderr and "internal error" not in result.stderr
    assert open_dataset(tmp_path / "out.zarr").episode_ids == ["episode0", "episode2"]
    with (
        open_dataset(path).episode("episode0") as a,
        open_dataset(tmp_path / "out.zarr").episode("episode0") as b,
    ):
        assert_episodes_equal(a, b)


def test_malformed_array_metadata_names_its_file(demo_store_dir, tmp_path, run_cli):
    path = copy_sample(demo_store_dir, tmp_path, "zarr")
    node = path / "episodes/episode0/timestamps/zarr.json"
    node.write_text('{"zarr_format": 3, "node_type": ')
    result = run_cli("convert", path, tmp_path / "out_h5", "--to", "hdf5")
    assert result.exit_code == 1
    assert f"{node}: episode episode0: malformed zarr metadata" in result.stderr.replace("\n", "")


@pytest.mark.parametrize("damage", ["not utf-8", "a directory"])
def test_unreadable_hdf5_manifest_is_a_one_line_error(demo_store_dir, tmp_path, run_cli, damage):
    path = copy_sample(demo_store_dir, tmp_path, "hdf5")
    manifest = path / "manifest.json"
    if damage == "a directory":
        manifest.unlink()
        manifest.mkdir()
    else:
        manifest.write_bytes(b"\xff\xfe\x00")
    result = run_cli("validate", path)
    assert result.exit_code == 2
    assert f"{manifest}: cannot read the manifest" in result.stderr.replace("\n", "")


# ------------------------------------------------------------------------------------------- outputs
def test_a_report_never_replaces_a_directory(demo_store_dir, tmp_path, run_cli):
    victim = copy_sample(demo_store_dir, tmp_path, "zarr")
    before = sorted(p.relative_to(victim) for p in victim.rglob("*"))
    result = run_cli("stats", victim, "--no-store", "--json", victim)
    assert result.exit_code == 1
    assert f"{victim}: is a directory; give a file name for this output" in result.stderr.replace("\n", "")
    assert sorted(p.relative_to(victim) for p in victim.rglob("*")) == before


def test_an_output_the_file_system_refuses_is_a_one_line_error(demo_store_dir, tmp_path, run_cli):
    (tmp_path / "a_file").write_text("x")
    out = tmp_path / "a_file" / "report.json"
    result = run_cli("validate", demo_store_dir / "sample.zarr", "--json", out)
    assert result.exit_code == 2
    assert "internal error" not in result.stderr and f"error: {tmp_path / 'a_file'}: " in result.stderr
    result = run_cli("convert", demo_store_dir / "sample.zarr", tmp_path / "a_file" / "out", "--to", "hdf5")
    assert result.exit_code == 1
    assert "internal error" not in result.stderr and f"error: {tmp_path / 'a_file'}" in result.stderr


def test_validate_refuses_a_negative_horizon(demo_store_dir, run_cli):
    result = run_cli("validate", demo_store_dir / "sample.zarr", "--horizon", "-5")
    assert result.exit_code == 2 and "horizon" in result.stderr.lower()


def test_convert_structure_error_names_the_source_episode_file(demo_store_dir, tmp_path, run_cli):
    path = copy_sample(demo_store_dir, tmp_path, "zarr")
    node = path / "episodes/episode1/robot/joint_positions/zarr.json"
    meta = json.loads(node.read_text())
    meta["data_type"] = "float64"
    node.write_text(json.dumps(meta))
    result = run_cli("convert", path, tmp_path / "out_h5", "--to", "hdf5")
    assert result.exit_code == 1
    line = result.stderr.replace("\n", "")
    assert (
        f"{path / 'episodes' / 'episode1'}: episode episode1: robot/joint_positions: dtype is float64" in line
    )


# ------------------------------------------------------------------------------------------- indexing
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    "index",
    [[3, 1], [1, 1], [-1, 0], np.array([5, 2, 5]), [], "mask"],
    ids=["unsorted", "repeated", "negative", "array", "empty", "mask"],
)
def test_frame_lists_select_the_same_frames_in_every_backend_and_in_lazy_frames(
    demo_store_dir, backend, index
):
    with open_dataset(demo_store_dir / SAMPLE[backend]).episode("episode0") as ep:
        for path in ("cameras/front/rgb", "robot/joint_positions"):
            whole = np.asarray(ep[path][:])
            selection = (np.arange(len(whole)) % 3 == 0) if isinstance(index, str) else index
            expected = whole[np.asarray(selection, dtype=bool if isinstance(index, str) else np.int64)]
            assert np.array_equal(ep[path][selection], expected), path
            lazy = LazyFrames(lambda t, whole=whole: whole[t], len(whole), whole.shape[1:], whole.dtype)
            assert np.array_equal(lazy[selection], expected), path
        assert np.array_equal(
            ep["cameras/front/rgb"][[3, 1], 0], np.asarray(ep["cameras/front/rgb"][:])[[3, 1], 0]
        )


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("left", ["empty folders", "a temporary marker"])
def test_a_run_killed_before_its_first_marker_resumes(demo_store_dir, tmp_path, backend, left):
    destination = store_path(tmp_path, backend, "early")
    (destination / "episodes").mkdir(parents=True)  # what a kill between mkdir and the marker leaves
    if left == "a temporary marker":
        (destination / ".tmp-zarr.json.123.abcdef01").write_text('{"half": ')
    result = convert(demo_store_dir / SAMPLE["zarr"], destination, to=backend)
    assert result.written == ["episode0", "episode1", "episode2"]
    assert not list(destination.glob(".tmp-*"))
    with (
        open_dataset(destination).episode("episode1") as ep,
        open_dataset(demo_store_dir / SAMPLE["zarr"]).episode("episode1") as original,
    ):
        assert_episodes_equal(ep, original)


def test_a_folder_with_user_files_is_still_not_a_destination(tmp_path, manifest):
    (tmp_path / "mine" / "sub").mkdir(parents=True)
    (tmp_path / "mine" / "sub" / "notes.txt").write_text("keep")
    with pytest.raises(StoreError, match="destination exists and is not a zarr dataset"):
        create_dataset(tmp_path / "mine", manifest, backend="zarr")
    assert (tmp_path / "mine" / "sub" / "notes.txt").read_text() == "keep"

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import h5py
import numpy as np
import pytest

from genima_data.episode import LazyFrames
from genima_data.errors import CodecUnavailableError, SchemaError, StoreError
from genima_data.store import create_dataset, detect_backend, open_dataset
from genima_data.store.zarr import ZarrArraySource
from tests.conftest import assert_episodes_equal

BACKENDS = ["zarr", "hdf5"]


def store_path(tmp_path: Path, backend: str, name: str = "ds") -> Path:
    return tmp_path / (f"{name}.zarr" if backend == "zarr" else name)


def rich_episode(make_episode, index=0):
    """A demo episode plus every optional stream kind: depth, mask, poses, extras of odd dtypes."""
    ep = make_episode(index)
    T = ep.length
    rng = np.random.default_rng(index)
    return ep.with_arrays(
        {
            "cameras/front/depth": rng.uniform(0.1, 3.0, (T, 32, 32)).astype(np.float32),
            "cameras/front/mask": rng.integers(0, 1 << 24, (T, 32, 32)).astype(np.int32),
            "robot/ee_pose": np.repeat(np.eye(4)[None], T, 0),
            "robot/link_poses": rng.normal(size=(T, 7, 4, 4)),
            "robot/joint_velocities": rng.normal(size=(T, 7)).astype(np.float32),
            "extras/touch": rng.integers(-5, 5, (T, 6)).astype(np.int64),
            "extras/flags": rng.integers(0, 2, (T,)).astype(bool),
            "targets/front/rgb": np.zeros((T, 32, 32, 3), np.uint8),  # all zero: zarr skips fill-value chunks
        }
    )


@pytest.mark.parametrize("backend", BACKENDS)
def test_round_trip_is_bit_exact(tmp_path, manifest, make_episode, backend):
    path = store_path(tmp_path, backend)
    episodes = [rich_episode(make_episode, i) for i in range(2)]
    ds = create_dataset(path, manifest)
    for ep in episodes:
        ds.write_episode(ep)
    ds.commit()
    reopened = open_dataset(path)
    assert reopened.backend == backend
    assert reopened.episode_ids == ["episode0", "episode1"]
    assert reopened.manifest.identity() == manifest.identity()
    for ep in episodes:
        with reopened.episode(ep.episode_id) as back:
            assert_episodes_equal(ep, back)


@pytest.mark.parametrize("backend", BACKENDS)
def test_single_frame_reads_match_whole_array_reads(tmp_path, manifest, make_episode, backend):
    path = store_path(tmp_path, backend)
    ds = create_dataset(path, manifest)
    ep = rich_episode(make_episode)
    ds.write_episode(ep)
    ds.commit()
    r = open_dataset(path)
    for key in ("cameras/front/rgb", "cameras/front/depth", "cameras/front/mask", "targets/front/rgb"):
        for t in (0, 5, ep.length - 1, -1):
            assert np.array_equal(r.read_frame("episode0", key, t), np.asarray(ep[key])[t]), (key, t)


def test_zarr_fast_frame_path_agrees_with_zarr_python(tmp_path, manifest, make_episode):
    path = store_path(tmp_path, "zarr")
    ds = create_dataset(path, manifest)
    ds.write_episode(rich_episode(make_episode))
    ds.commit()
    with open_dataset(path).episode("episode0") as ep:
        for key in ("cameras/front/rgb", "cameras/front/depth", "targets/front/rgb", "robot/link_poses"):
            source = ep[key]
            assert isinstance(source, ZarrArraySource)
            assert source._direct is not None, f"{key} should take the direct path"
            for t in range(source.shape[0]):
                assert np.array_equal(source[t], source.array[t])
            assert np.array_equal(source[2:5], source.array[2:5])
            assert np.array_equal(np.asarray(source), source.array[...])


@pytest.mark.parametrize("codec", ["gradient-zstd", "zstd", "gzip", "blosc-lz4", "blosc-zstd", "none"])
def test_zarr_direct_frame_writes_are_what_zarr_python_reads(tmp_path, manifest, make_episode, codec):
    path = store_path(tmp_path, "zarr")
    ds = create_dataset(path, manifest, image_codec=codec)
    source = rich_episode(make_episode)
    ds.write_episode(source)
    ds.commit()
    with open_dataset(path).episode("episode0") as ep:
        for key in ("cameras/front/rgb", "cameras/front/depth", "cameras/front/mask", "targets/front/rgb"):
            assert np.array_equal(ep[key].array[...], np.asarray(source[key])), (codec, key)


def test_zarr_arrays_with_nested_chunk_keys_still_take_the_direct_path(tmp_path):
    import zarr
    from zarr.storage import LocalStore

    frames = np.random.default_rng(0).integers(0, 255, (4, 8, 8, 3), dtype=np.uint8)
    store = tmp_path / "rgb"
    zarr.create_array(
        LocalStore(store),
        shape=frames.shape,
        dtype=frames.dtype,
        chunks=(1, 8, 8, 3),
        chunk_key_encoding={"name": "default", "separator": "/"},
    )[:] = frames
    assert (store / "c/2/0/0/0").exists()
    source = ZarrArraySource(
        store, json.loads((store / "zarr.json").read_text()), file="f", episode="e", field="x"
    )
    assert source._direct is not None
    assert all(np.array_equal(source[t], frames[t]) for t in range(4))


@pytest.mark.parametrize("backend", BACKENDS)
def test_opening_an_episode_loads_no_array_data(tmp_path, manifest, make_episode, backend):
    path = store_path(tmp_path, backend)
    ds = create_dataset(path, manifest)
    ds.write_episode(make_episode())
    ds.commit()
    with open_dataset(path).episode("episode0") as ep:
        assert not any(isinstance(ep[k], np.ndarray) for k in ep.paths())
        assert ep["cameras/front/rgb"].shape == (12, 32, 32, 3)


@pytest.mark.parametrize("backend", BACKENDS)
def test_append_adds_episodes_and_merges_tasks(tmp_path, manifest, make_episode, backend):
    path = store_path(tmp_path, backend)
    ds = create_dataset(path, manifest)
    ds.write_episode(make_episode(0))
    ds.commit()
    more = manifest.model_copy(
        update={
            "tasks": [
                *manifest.tasks,
                manifest.tasks[0].model_copy(
                    update={"name": "push_button", "instructions": ["push the button"]}
                ),
            ]
        }
    )
    ds = create_dataset(path, more, append=True)
    assert ds.has_episode("episode0")
    ds.write_episode(make_episode(1))
    ds.commit()
    r = open_dataset(path)
    assert r.episode_ids == ["episode0", "episode1"]
    assert [t.name for t in r.manifest.tasks] == ["reach_target", "push_button"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_destination_holding_a_different_dataset_is_refused(tmp_path, manifest, make_episode, backend):
    path = store_path(tmp_path, backend)
    ds = create_dataset(path, manifest)
    ds.write_episode(make_episode())
    ds.commit()
    other = manifest.model_copy(update={"name": "something-else", "fps": 30.0})
    with pytest.raises(StoreError, match="already holds a different dataset.*differs in name, fps"):
        create_dataset(path, other)
    assert open_dataset(path).episode_ids == ["episode0"]


def test_non_dataset_directory_is_not_overwritten(tmp_path, manifest):
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "cat.png").write_bytes(b"x")
    with pytest.raises(StoreError, match="exists and is not a hdf5 dataset"):
        create_dataset(tmp_path / "photos", manifest)


CRASHING_WRITER = textwrap.dedent("""
    import os, signal, sys
    from genima_data.demo import demo_episode, demo_manifest
    from genima_data.episode import LazyFrames
    from genima_data.store import create_dataset

    path, kill_at = sys.argv[1], int(sys.argv[2])
    ds = create_dataset(path, demo_manifest(size=32))
    for i in range(4):
        ep = demo_episode(i, frames=12, size=32)
        if i == kill_at:
            rgb = ep["cameras/front/rgb"]
            def load(t, rgb=rgb):
                if t == 6:
                    os.kill(os.getpid(), signal.SIGKILL)  # die mid-episode, like a killed job
                return rgb[t]
            ep = ep.with_arrays({"cameras/front/rgb": LazyFrames(load, 12, rgb.shape[1:], rgb.dtype)})
        if not ds.has_episode(ep.episode_id):
            ds.write_episode(ep)
    ds.commit()
""")


@pytest.mark.parametrize("backend", BACKENDS)
def test_killed_write_never_looks_valid_and_resumes_to_the_same_result(tmp_path, backend):
    def run(path, kill_at):
        return subprocess.run(
            [sys.executable, "-c", CRASHING_WRITER, str(path), str(kill_at)], capture_output=True, text=True
        )

    crashed, clean = store_path(tmp_path, backend, "crashed"), store_path(tmp_path, backend, "clean")
    assert run(crashed, 2).returncode == -9
    with pytest.raises(StoreError, match="incomplete.*re-run the command"):
        open_dataset(crashed)
    leftovers = [p.name for p in (crashed / "episodes").iterdir()]
    assert any(name.startswith(".tmp-") for name in leftovers), leftovers

    assert run(crashed, -1).returncode == 0
    assert run(clean, -1).returncode == 0
    a, b = open_dataset(crashed), open_dataset(clean)
    assert a.episode_ids == b.episode_ids == [f"episode{i}" for i in range(4)]
    assert not any(p.name.startswith(".tmp-") for p in (crashed / "episodes").iterdir())
    for eid in a.episode_ids:
        with a.episode(eid) as x, b.episode(eid) as y:
            assert_episodes_equal(x, y)


def test_truncated_episode_file_gets_a_one_line_error(demo_store_dir, tmp_path, run_cli):
    import shutil

    path = tmp_path / "ds"
    shutil.copytree(demo_store_dir / "sample_h5", path)
    victim = path / "episodes" / "episode1.h5"
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])
    with pytest.raises(StoreError) as err:
        open_dataset(path).episode("episode1")
    assert str(err.value).startswith(f"{victim}: episode episode1: episode file is truncated or corrupt")
    result = run_cli("info", path)  # info reads the first episode only: still fine
    assert result.exit_code == 0


def test_missing_manifest_is_reported(tmp_path, run_cli):
    (tmp_path / "empty").mkdir()
    result = run_cli("info", tmp_path / "empty")
    assert result.exit_code == 1
    assert "not a genima-data dataset" in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_malformed_manifest_names_file_and_field(demo_store_dir, tmp_path, run_cli):
    import shutil

    path = tmp_path / "ds"
    shutil.copytree(demo_store_dir / "sample_h5", path)
    doc = json.loads((path / "manifest.json").read_text())
    doc["cameras"][0]["K"][0][0] = -100.0
    (path / "manifest.json").write_text(json.dumps(doc))
    with pytest.raises(SchemaError, match=r"manifest.json: cameras.0.K: .*focal lengths must be positive"):
        open_dataset(path)
    (path / "manifest.json").write_text("{not json")
    result = run_cli("info", path)
    assert result.exit_code == 1
    assert str(path / "manifest.json") in result.stderr and "Invalid JSON" in result.stderr


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    ("field", "bad", "message"),
    [
        ("robot/joint_positions", lambda a: a[:-1], "has 11 frames, expected 12"),
        ("robot/joint_positions", lambda a: a.astype(np.float64), "dtype is float64, expected float32"),
        ("cameras/front/rgb", lambda a: a[..., 0], r"shape is \(12, 32, 32\)"),
        ("robot/gripper_open", None, "required array is missing"),
    ],
)
def test_structurally_bad_episode_is_refused_and_nothing_is_written(
    tmp_path, manifest, make_episode, backend, field, bad, message
):
    path = store_path(tmp_path, backend)
    ds = create_dataset(path, manifest)
    ep = make_episode()
    arrays = dict(ep.arrays)
    if bad is None:
        del arrays[field]
    else:
        arrays[field] = bad(np.asarray(arrays[field]))
    ep.arrays = arrays
    with pytest.raises(StoreError, match=f"^episode episode0: {field}: {message}"):
        ds.write_episode(ep)
    assert not ds.has_episode("episode0")
    assert not any(p.name.startswith(".tmp-") for p in (path / "episodes").iterdir())


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("values", [np.array(["grasp"] * 12), np.array([b"x"] * 12), np.full(12, None)])
def test_text_in_an_extras_array_is_a_one_line_error_not_a_crash(
    tmp_path, manifest, make_episode, backend, values
):
    path = store_path(tmp_path, backend)
    ds = create_dataset(path, manifest)
    ep = make_episode().with_arrays({"extras/phase": values})
    with pytest.raises(StoreError, match=r"^episode episode0: extras/phase: dtype \S+ cannot be stored"):
        ds.write_episode(ep)
    assert not ds.has_episode("episode0")


def test_unknown_camera_is_refused(tmp_path, manifest, make_episode):
    ds = create_dataset(tmp_path / "ds", manifest)
    ep = make_episode().with_arrays({"cameras/belly/rgb": np.zeros((12, 32, 32, 3), np.uint8)})
    with pytest.raises(StoreError, match="cameras/belly/rgb: camera 'belly' is not in the manifest"):
        ds.write_episode(ep)


def test_missing_hdf5_plugin_names_the_package(demo_store_dir):
    code = textwrap.dedent(f"""
        import sys
        sys.modules["hdf5plugin"] = None  # as if it were not installed
        from genima_data.cli import main
        main(["info", {str(demo_store_dir / "sample_h5")!r}])
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 1
    assert "blosc (HDF5 filter 32001)" in result.stderr and "pip install hdf5plugin" in result.stderr
    assert "Traceback" not in result.stderr


def test_unregistered_zarr_codec_names_the_field(demo_store_dir, tmp_path):
    import shutil

    path = tmp_path / "s.zarr"
    shutil.copytree(demo_store_dir / "sample.zarr", path)
    node = path / "episodes/episode0/cameras/front/rgb/zarr.json"
    meta = json.loads(node.read_text())
    meta["codecs"][-1] = {"name": "numcodecs.lzf", "configuration": {}}
    node.write_text(json.dumps(meta))
    with pytest.raises(
        CodecUnavailableError, match="cameras/front/rgb: compressed with codec 'numcodecs.lzf'.*numcodecs"
    ):
        open_dataset(path).episode("episode0")


def test_missing_zarr_shard_reads_as_fill_value_not_garbage(demo_store_dir, tmp_path):
    import shutil

    path = tmp_path / "s.zarr"
    shutil.copytree(demo_store_dir / "sample.zarr", path)
    os.remove(path / "episodes/episode0/cameras/front/rgb/c.0.0.0.0")
    frame = open_dataset(path).read_frame("episode0", "cameras/front/rgb", 3)
    assert frame.shape == (32, 32, 3) and not frame.any()


def test_truncated_zarr_shard_is_an_error_naming_the_file(demo_store_dir, tmp_path):
    import shutil

    path = tmp_path / "s.zarr"
    shutil.copytree(demo_store_dir / "sample.zarr", path)
    shard = path / "episodes/episode0/cameras/front/rgb/c.0.0.0.0"
    shard.write_bytes(shard.read_bytes()[:-10])
    message = r"c\.0\.0\.0\.0: episode episode0: cameras/front/rgb: shard index is truncated or corrupt"
    with pytest.raises(StoreError, match=message):
        open_dataset(path).read_frame("episode0", "cameras/front/rgb", 3)


@pytest.mark.parametrize("backend", BACKENDS)
def test_add_arrays_appends_targets_and_refuses_silent_overwrite(tmp_path, manifest, make_episode, backend):
    path = store_path(tmp_path, backend)
    ds = create_dataset(path, manifest)
    ep = make_episode()
    ds.write_episode(ep)
    ds.commit()
    target = np.full((12, 32, 32, 3), 7, np.uint8)
    writer = open_dataset(path, mode="a")
    writer.add_arrays("episode0", {"targets/front/rgb": target})
    with pytest.raises(StoreError, match="already exist"):
        writer.add_arrays("episode0", {"targets/front/rgb": target})
    writer.add_arrays("episode0", {"targets/front/rgb": target + 1}, replace=True)
    with open_dataset(path).episode("episode0") as back:
        assert np.array_equal(back["targets/front/rgb"][...], target + 1)
        assert_episodes_equal(ep, _without(back, "targets/front/rgb"))


def _without(ep, key):
    arrays = {k: v for k, v in ep.arrays.items() if k != key}
    return type(ep)(meta=ep.meta, arrays=arrays)


def test_read_only_dataset_refuses_writes(demo_store_dir, make_episode):
    ds = open_dataset(demo_store_dir / "sample.zarr")
    with pytest.raises(StoreError, match="read-only"):
        ds.write_episode(make_episode())


def test_backend_is_detected_from_content(demo_store_dir):
    assert detect_backend(demo_store_dir / "sample.zarr") == "zarr"
    assert detect_backend(demo_store_dir / "sample_h5") == "hdf5"
    assert detect_backend(demo_store_dir) is None


def test_hdf5_images_are_chunked_one_frame_per_chunk(demo_store_dir):
    with h5py.File(demo_store_dir / "sample_h5" / "episodes" / "episode0.h5") as f:
        assert f["cameras/front/rgb"].chunks == (1, 32, 32, 3)
        assert f["cameras/front/rgb"].attrs["codec"] == "gradient-zstd"


def test_hdf5_episode_files_are_written_and_rewritten_in_the_compact_1_10_format(
    tmp_path, manifest, make_episode
):
    ds = create_dataset(tmp_path / "ds", manifest)
    ds.write_episode(make_episode())
    path = tmp_path / "ds" / "episodes" / "episode0.h5"
    superblock = []
    with h5py.File(path) as f:
        superblock.append(f.id.get_create_plist().get_version()[0])
    ds.add_arrays("episode0", {"extras/score": np.zeros(12, np.float32)})  # rewrites the file
    with h5py.File(path) as f:
        superblock.append(f.id.get_create_plist().get_version()[0])
    assert superblock == [3, 3]  # HDF5 1.10's superblock; the 1.8 default writes version 0


def test_lazy_source_is_copied_in_bounded_blocks(tmp_path, manifest, make_episode, monkeypatch):
    import genima_data.store.base as base

    monkeypatch.setattr(base, "COPY_BLOCK_BYTES", 2 * 32 * 32 * 3)  # two frames per block
    seen: list[int] = []
    ep = make_episode()
    rgb = np.asarray(ep["cameras/front/rgb"])

    def load(t):
        seen.append(t)
        return rgb[t]

    ep = ep.with_arrays({"cameras/front/rgb": LazyFrames(load, 12, rgb.shape[1:], rgb.dtype)})
    ds = create_dataset(tmp_path / "ds", manifest)
    ds.write_episode(ep)
    assert seen == list(range(12))  # each frame decoded once, in order


def test_read_frame_of_a_missing_array_names_episode_and_field(demo_copy):
    with pytest.raises(StoreError) as err:
        open_dataset(demo_copy).read_frame("episode0", "cameras/nowhere/rgb", 0)
    message = str(err.value)
    assert "episode0" in message and "cameras/nowhere/rgb" in message and "\n" not in message


def test_random_reads_over_more_episodes_than_kept_ready_return_the_right_frames(demo_copy, monkeypatch):
    from genima_data.store import base

    monkeypatch.setattr(base, "FRAME_HANDLE_CACHE", 1)  # every switch of episode evicts (and closes) one
    ds = open_dataset(demo_copy)
    expected = {}
    for eid in ds.episode_ids:
        with ds.episode(eid) as ep:
            expected[eid] = np.asarray(ep["cameras/front/rgb"][...])
    for t, eid in enumerate(ds.episode_ids * 3):
        assert np.array_equal(ds.read_frame(eid, "cameras/front/rgb", t % 5), expected[eid][t % 5])
    assert len(ds._open) == 1
    ds.close()


def test_hdf5_frame_handles_keep_no_chunk_cache(tmp_path, manifest, make_episode):
    # HDF5's default 1 MiB cache per dataset grew a loader by ~600 MiB over 64 open episodes, for no speed
    path = store_path(tmp_path, "hdf5")
    ds = create_dataset(path, manifest)
    ds.write_episode(make_episode())
    ds.commit()
    reader = open_dataset(path)
    reader.read_frame("episode0", "cameras/front/rgb", 3)
    handle = reader._open["episode0"]
    assert handle._file.id.get_access_plist().get_cache()[2] == 0

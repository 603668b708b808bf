"""The zarr store's direct chunk layer writes exactly what zarr-python would, and reads what it wrote."""

from __future__ import annotations

import json
import os
import pickle

import numcodecs
import numpy as np
import pytest
import zarr
from zarr.storage import LocalStore

from genima_data.errors import StoreError
from genima_data.store import create_dataset, open_dataset, zstd_frames
from genima_data.store.base import iter_blocks
from genima_data.store.codecs import get_codec
from genima_data.store.gradient import encode_gradient
from genima_data.store.zarr_chunks import (
    CHUNK_SEPARATOR,
    NODE,
    DirectArray,
    _read_shard_index,
    array_metadata,
)

RNG = np.random.default_rng(0)
FRAMES = RNG.integers(0, 255, (6, 16, 12, 3), dtype=np.uint8)
DEPTH = RNG.uniform(0.5, 2.0, (6, 16, 12)).astype(np.float32)
JOINTS = RNG.normal(size=(37, 7))


def _zarr_python_array(root, data, chunk_rows, codec):
    """The same array written by zarr-python: one shard of one-row chunks, or chunks of `chunk_rows`."""
    sharded = chunk_rows == 1
    chunks = (1, *data.shape[1:]) if sharded else (chunk_rows, *data.shape[1:])
    array = zarr.create_array(
        LocalStore(root),
        shape=data.shape,
        dtype=data.dtype,
        chunks=chunks,
        shards=data.shape if sharded else None,
        chunk_key_encoding={"name": "default", "separator": CHUNK_SEPARATOR},
        **get_codec(codec, "zarr").zarr_kwargs(data.shape, data.dtype.itemsize),
    )
    array[...] = data
    return json.loads((root / NODE).read_text())


def _direct_array(root, data, chunk_rows, codec):
    meta = array_metadata(data.shape, data.dtype, chunk_rows, get_codec(codec, "zarr"), {})
    root.mkdir(parents=True)
    (root / NODE).write_text(json.dumps(meta))
    direct = DirectArray.for_array(root, meta)
    assert direct is not None
    direct.write(data)
    return meta


CASES = [
    ("rgb gradient-zstd", FRAMES, 1, "gradient-zstd"),
    ("rgb blosc-lz4", FRAMES, 1, "blosc-lz4"),
    ("depth blosc-zstd (shuffled float32)", DEPTH, 1, "blosc-zstd"),
    ("joints blosc-zstd, partial last chunk", JOINTS, 10, "blosc-zstd"),
    ("joints uncompressed", JOINTS, 10, "none"),
]


# gradient residuals are compressed with zstd's match finder tuned for them, which zarr-python's codec
# cannot express: those chunks differ in bytes (zarr-python still reads them exactly, and the test after
# next checks what they hold)
RESIDUAL_CODECS = {"gradient-zstd"}


@pytest.mark.parametrize(("name", "data", "chunk_rows", "codec"), CASES, ids=[c[0] for c in CASES])
def test_direct_writes_match_zarr_python_in_metadata_files_and_bytes(tmp_path, name, data, chunk_rows, codec):
    theirs = _zarr_python_array(tmp_path / "theirs", data, chunk_rows, codec)
    ours = _direct_array(tmp_path / "ours", data, chunk_rows, codec)
    assert ours == theirs
    files = sorted(p.name for p in (tmp_path / "theirs").iterdir() if p.name != NODE)
    assert files == sorted(p.name for p in (tmp_path / "ours").iterdir() if p.name != NODE)
    assert np.array_equal(zarr.open_array(LocalStore(tmp_path / "ours", read_only=True), mode="r")[...], data)
    if codec not in RESIDUAL_CODECS:
        for file in files:
            assert (tmp_path / "ours" / file).read_bytes() == (tmp_path / "theirs" / file).read_bytes(), file


@pytest.mark.parametrize(("name", "data", "chunk_rows", "codec"), CASES, ids=[c[0] for c in CASES])
def test_direct_reads_of_zarr_python_arrays_are_exact(tmp_path, name, data, chunk_rows, codec):
    meta = _zarr_python_array(tmp_path / "a", data, chunk_rows, codec)
    direct = DirectArray.for_array(tmp_path / "a", meta)
    assert direct is not None
    assert all(np.array_equal(direct.row(t), data[t]) for t in range(len(data)))
    assert np.array_equal(direct.rows(3, len(data) - 1), data[3:-1])
    assert direct.rows(2, 2).shape == (0, *data.shape[1:])


def test_gradient_shards_hold_residual_tuned_zstd_frames_that_numcodecs_reads(tmp_path, make_episode):
    frames = make_episode(frames=5)["cameras/front/rgb"][:]
    _direct_array(tmp_path / "a", frames, 1, "gradient-zstd")
    path = str(tmp_path / "a" / CHUNK_SEPARATOR.join("c0000"))  # the one shard
    fd = os.open(path, os.O_RDONLY)
    try:
        chunks = [os.pread(fd, nbytes, offset) for offset, nbytes in _read_shard_index(fd, path, len(frames))]
    finally:
        os.close(fd)
    residuals = [r.tobytes() for r in encode_gradient(frames, colour=True)]
    assert chunks == [zstd_frames.compress(r, 1, residuals=True) for r in residuals]
    assert [bytes(numcodecs.Zstd().decode(c)) for c in chunks] == residuals


def test_image_streams_are_one_shard_per_episode_not_one_file_per_frame(tmp_path, manifest, make_episode):
    ds = create_dataset(tmp_path / "ds.zarr", manifest)
    episode = make_episode()
    ds.write_episode(episode)
    ds.commit()
    stream = tmp_path / "ds.zarr/episodes/episode0/cameras/front/rgb"
    assert sorted(p.name for p in stream.iterdir()) == ["c.0.0.0.0", NODE]
    array = zarr.open_array(LocalStore(stream, read_only=True), mode="r")
    assert array.shards == array.shape and array.chunks == (1, *array.shape[1:])
    assert np.array_equal(array[...], episode["cameras/front/rgb"][:])


def test_empty_shard_entries_read_as_the_fill_value(tmp_path):
    frames = FRAMES.copy()
    frames[2] = 0  # zarr-python leaves chunks equal to the fill value out of the shard
    meta = _zarr_python_array(tmp_path / "a", frames, 1, "zstd")
    direct = DirectArray.for_array(tmp_path / "a", meta)
    assert not direct.row(2).any() and np.array_equal(direct.row(3), frames[3])


class _CountingSource:
    """A lazy (T, H, W, 3) source that records how it was indexed."""

    def __init__(self, frames):
        self.frames, self.shape, self.dtype, self.calls = frames, frames.shape, frames.dtype, []

    def __getitem__(self, index):
        self.calls.append(index)
        return self.frames[index]


def test_lazy_sources_are_read_in_blocks_not_frame_by_frame(tmp_path, manifest, make_episode):
    # render-targets hands the store lazily rendered streams: one call per frame renders one frame per call
    ds = create_dataset(tmp_path / "ds.zarr", manifest)
    ds.write_episode(make_episode())
    ds.commit()
    source = _CountingSource(np.full((12, 32, 32, 3), 9, np.uint8))
    open_dataset(tmp_path / "ds.zarr", mode="a").add_arrays("episode0", {"targets/front/rgb": source})
    assert source.calls == [slice(0, 12)]
    frame = open_dataset(tmp_path / "ds.zarr").read_frame("episode0", "targets/front/rgb", 5)
    assert frame.shape == (32, 32, 3) and (frame == 9).all()


def test_blocks_start_on_chunk_boundaries():
    data = np.zeros((100, 1 << 17), np.uint8)  # 128 KiB rows: 64 per default block
    starts = [start for start, _, _ in iter_blocks(data, align=24)]
    assert starts == [0, 48, 96]


def test_reads_spanning_several_shards_and_empty_chunks_are_exact(tmp_path):
    frames = FRAMES.copy()
    frames[4] = 0  # left out of its shard by zarr-python
    array = zarr.create_array(
        LocalStore(tmp_path / "a"),
        shape=frames.shape,
        dtype=frames.dtype,
        chunks=(1, *frames.shape[1:]),
        shards=(4, *frames.shape[1:]),  # frames 0-3 and 4-5 in two shard files
        chunk_key_encoding={"name": "default", "separator": CHUNK_SEPARATOR},
    )
    array[...] = frames
    direct = DirectArray.for_array(tmp_path / "a", json.loads((tmp_path / "a" / NODE).read_text()))
    assert direct is not None and direct.shard_rows == 4
    assert np.array_equal(direct.rows(1, 6), frames[1:6])
    assert np.array_equal(direct.row(5), frames[5])


def test_a_shard_file_zarr_left_out_reads_as_the_fill_value(tmp_path):
    frames = FRAMES.copy()
    frames[4:] = 0  # the second shard holds only the fill value: zarr-python writes no file for it
    array = zarr.create_array(
        LocalStore(tmp_path / "a"),
        shape=frames.shape,
        dtype=frames.dtype,
        chunks=(1, *frames.shape[1:]),
        shards=(4, *frames.shape[1:]),
        chunk_key_encoding={"name": "default", "separator": CHUNK_SEPARATOR},
    )
    array[...] = frames
    assert not (tmp_path / "a" / "c.1.0.0.0").exists()
    direct = DirectArray.for_array(tmp_path / "a", json.loads((tmp_path / "a" / NODE).read_text()))
    assert np.array_equal(direct.rows(2, 6), frames[2:6]) and not direct.row(5).any()


def test_a_shard_interrupted_by_a_failing_encode_is_closed_and_never_reads_as_valid(tmp_path, monkeypatch):
    meta = array_metadata(FRAMES.shape, FRAMES.dtype, 1, get_codec("gradient-zstd", "zarr"), {})
    (tmp_path / "a").mkdir()
    direct = DirectArray.for_array(tmp_path / "a", meta)
    encode, calls = direct._encode, []

    def fail_on_third_frame(rows):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("encoder failed")
        return encode(rows)

    monkeypatch.setattr(direct, "_encode", fail_on_third_frame)
    with pytest.raises(RuntimeError, match="encoder failed") as failure:
        direct.write(FRAMES)
    assert failure.tb is not None  # the traceback keeps the writer's frame alive: only closing frees the file
    shard = os.path.realpath(tmp_path / "a" / "c.0.0.0.0")
    if os.path.isdir("/proc/self/fd"):  # Linux: no descriptor of ours still points at the shard
        open_files = {os.path.realpath(f"/proc/self/fd/{fd}") for fd in os.listdir("/proc/self/fd")}
        assert shard not in open_files
    with pytest.raises(StoreError, match=r"c\.0\.0\.0\.0: shard index is truncated or corrupt"):
        DirectArray.for_array(tmp_path / "a", meta).row(0)


def _open_shards(root) -> list[str]:
    """Shard files under `root` this process holds a descriptor of (Linux)."""
    paths = (os.path.realpath(f"/proc/self/fd/{fd}") for fd in os.listdir("/proc/self/fd"))
    inside = os.path.realpath(root)
    return sorted(p for p in paths if p.startswith(inside) and os.path.basename(p).startswith("c."))


linux_only = pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="lists descriptors in /proc")


def _zarr_store(path, manifest, episodes):
    ds = create_dataset(path, manifest)
    for episode in episodes:
        ds.write_episode(episode)
    ds.commit()
    return path


@linux_only
def test_frame_reads_keep_each_shard_open_once_and_close_releases_it(tmp_path, manifest, make_episode):
    episode = make_episode()
    reader = open_dataset(_zarr_store(tmp_path / "d.zarr", manifest, [episode]))
    for t in (3, 0, 5, 3):
        frame = reader.read_frame("episode0", "cameras/front/rgb", t)
        assert np.array_equal(frame, episode["cameras/front/rgb"][t])
    assert len(_open_shards(tmp_path / "d.zarr")) == 1  # one descriptor, reused by every read
    reader.close()
    assert _open_shards(tmp_path / "d.zarr") == []


@linux_only
def test_evicted_frame_handles_close_their_shard_files(tmp_path, manifest, make_episode, monkeypatch):
    from genima_data.store import base

    monkeypatch.setattr(base, "FRAME_HANDLE_CACHE", 2)
    reader = open_dataset(_zarr_store(tmp_path / "d.zarr", manifest, [make_episode(i) for i in range(4)]))
    for eid in reader.episode_ids:
        reader.read_frame(eid, "cameras/front/rgb", 1)
    assert len(_open_shards(tmp_path / "d.zarr")) == 2
    reader.close()


@linux_only
def test_lazy_episode_reads_hold_no_file_open(tmp_path, manifest, make_episode):
    # a user may keep many lazy episodes; descriptors held by each would run out
    episode = make_episode()
    lazy = open_dataset(_zarr_store(tmp_path / "d.zarr", manifest, [episode])).episode("episode0")
    assert np.array_equal(lazy["cameras/front/rgb"][2], episode["cameras/front/rgb"][2])
    assert _open_shards(tmp_path / "d.zarr") == []


def test_a_pickled_frame_source_reads_through_files_of_its_own(tmp_path):
    meta = array_metadata(FRAMES.shape, FRAMES.dtype, 1, get_codec("gradient-zstd", "zarr"), {})
    (tmp_path / "a").mkdir()
    DirectArray.for_array(tmp_path / "a", meta).write(FRAMES)
    direct = DirectArray.for_array(tmp_path / "a", meta, keep_open=True)
    assert np.array_equal(direct.row(1), FRAMES[1])
    copy = pickle.loads(pickle.dumps(direct))  # a descriptor number means nothing in another process
    direct.close()
    assert np.array_equal(copy.row(4), FRAMES[4]) and np.array_equal(direct.row(2), FRAMES[2])

"""Smoke test of bench/store_io.py at minimal size, so the benchmark cannot rot (timings are not checked)."""

from __future__ import annotations

import re
import weakref

import numpy as np
import pytest

pytest.importorskip("PIL")
store_io = pytest.importorskip("bench.store_io")


def test_bench_runs_every_layout_and_reads_back_bit_exact(tmp_path, capsys):
    args = ["--sizes", "16", "--kinds", "sim", "--episodes", "2", "--frames", "3", "--reads", "4"]
    suites = store_io.main([*args, "--repeats", "1", "--workdir", str(tmp_path), "--markdown"])
    (suite,) = suites
    layouts = {(m.layout, m.codec) for m in suite.measurements}
    expected = {("png", "PIL")} | {(b, c) for b, codecs in store_io.STORE_CODECS.items() for c in codecs}
    assert layouts == expected
    assert all(m.lossless and m.size_bytes > 0 for m in suite.measurements)
    assert sum(m.default for m in suite.measurements) == 2  # one default per back-end
    out = capsys.readouterr().out
    assert "sim frames, 16x16, 6 frames" in out and "| sim | 16² | zarr | gradient-zstd (default) |" in out
    markdown = [line for line in out.splitlines() if line.startswith("| ")]
    cells = {len(re.split(r"(?<!\\)\|", line)) for line in markdown}
    assert len(markdown) == 8 and len(cells) == 1  # header and rows split into the same columns
    assert list(tmp_path.iterdir()) == []  # the bench cleans up after itself


def test_natural_frames_are_a_moving_camera_sequence():
    pytest.importorskip("skimage")
    frames = store_io.natural_sequence(32, 4, index=1)
    assert frames.shape == (4, 32, 32, 3) and frames.dtype == np.uint8
    steps = np.abs(np.diff(frames.astype(np.int16), axis=0)).mean(axis=(1, 2, 3))
    assert np.all(steps > 0) and np.all(steps < 40)  # consecutive frames differ, but only a little


def test_read_picks_never_repeat_a_frame_or_hit_the_warm_up_frame():
    # a repeated pick would be served from HDF5's chunk cache and flatter the store against PNG
    patterns = store_io.read_patterns(episodes=3, frames=5, reads=12, seed=0)
    for picks in patterns.values():
        assert len(set(picks)) == len(picks) == 12
        assert all(t != 0 for _, t in picks)


@pytest.mark.parametrize("keep", [False, True])
def test_reads_release_each_frame_unless_asked_to_keep_them(keep):
    frames, seen = [], []  # weak references to every frame returned; frames alive at each read

    def read(episode_id, t):
        seen.append(sum(ref() is not None for ref in frames))
        frame = np.zeros(3)
        frames.append(weakref.ref(frame))
        return frame

    store_io.read_picks(read, [("e", t) for t in range(5)], keep)
    assert seen == ([0, 1, 2, 3, 4] if keep else [0, 0, 0, 0, 0])

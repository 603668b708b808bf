"""Statistics: exact values against numpy on pooled samples, exact merging, the stored document, the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from genima_data.demo import demo_episode, demo_manifest
from genima_data.robots import ur5e
from genima_data.stats import (
    DatasetStats,
    FieldStats,
    Histogram,
    StatsError,
    compute_stats,
    load_stats,
    sample_frames,
    save_stats,
    stats_path,
)
from genima_data.store import create_dataset, open_dataset

JOINTS = "robot/joint_positions"


def pooled(path, array: str, episodes=None) -> np.ndarray:
    with open_dataset(path) as ds:
        return np.concatenate([ds.episode(e).load(array) for e in episodes or ds.episode_ids]).astype(
            np.float64
        )


def build(path, name: str, seeds: range, *, robot=None, size: int = 32):
    manifest = demo_manifest(size).model_copy(update={"name": name})
    if robot is not None:
        manifest = manifest.model_copy(update={"robot": robot})
    ds = create_dataset(path, manifest)
    for i in seeds:
        episode = demo_episode(i, frames=24, size=size)
        if robot is not None:
            q = episode.load(JOINTS)[:, : robot.dof]
            action = np.concatenate([q, episode.load("robot/gripper_open")[:, None]], axis=1)
            episode = episode.with_arrays({JOINTS: q, "action/joint_positions": action})
        ds.write_episode(episode)
    ds.commit()
    return path


def test_summaries_equal_numpy_on_the_pooled_samples(demo_store_dir):
    path = demo_store_dir / "sample.zarr"
    stats = compute_stats(path)
    joints = pooled(path, JOINTS)
    fs = stats.field(JOINTS)
    assert fs.count.tolist() == [len(joints)] * 7
    assert np.array_equal(fs.min, joints.min(0)) and np.array_equal(fs.max, joints.max(0))
    assert np.array_equal(fs.q01, np.quantile(joints, 0.01, axis=0))  # exact, not approximately
    assert np.array_equal(fs.q99, np.quantile(joints, 0.99, axis=0))
    np.testing.assert_allclose(fs.mean, joints.mean(0), rtol=1e-13)
    np.testing.assert_allclose(fs.std, joints.std(0), rtol=1e-12)
    assert list(stats.fields) == [JOINTS, "robot/gripper_open", "action/joint_positions"]
    assert stats.field("action/joint_positions").channels[-1] == "gripper_open"


def test_stats_of_a_union_equal_the_merge_of_the_parts_exactly(demo_store_dir):
    path = demo_store_dir / "sample.zarr"
    union = compute_stats(path, episodes=["episode0", "episode1", "episode2"])
    a = compute_stats(path, episodes=["episode2"])
    b = compute_stats(path, episodes=["episode1", "episode0"])
    for merged in (a.merge(b), b.merge(a)):
        assert merged.to_dict() == union.to_dict()  # every float identical, quantiles included
        for name in union.fields:
            assert merged.fields[name].histograms == union.fields[name].histograms
        assert merged.images["front"].histograms == union.images["front"].histograms


def test_stats_of_two_datasets_merge_exactly(tmp_path):
    a = compute_stats(build(tmp_path / "a.zarr", "vendor-a", range(2)))
    b = compute_stats(build(tmp_path / "b_h5", "vendor-b", range(5, 7)))
    merged = a.merge(b)
    joints = np.concatenate([pooled(tmp_path / "a.zarr", JOINTS), pooled(tmp_path / "b_h5", JOINTS)])
    assert merged.datasets == ["vendor-a", "vendor-b"] and len(merged.episodes) == 4
    assert np.array_equal(merged.field(JOINTS).q01, np.quantile(joints, 0.01, axis=0))
    assert merged.field(JOINTS).histograms == FieldStats.of(JOINTS, [""] * 7, joints).histograms


def test_merging_the_same_episodes_twice_is_refused(demo_store_dir):
    stats = compute_stats(demo_store_dir / "sample.zarr", episodes=["episode0"])
    with pytest.raises(StatsError, match=r"episodes counted twice: \['genima-demo/episode0'\]"):
        stats.merge(stats)


def test_merging_robots_with_different_joints_is_refused(tmp_path):
    panda = compute_stats(build(tmp_path / "panda.zarr", "panda", range(1)))
    ur = compute_stats(build(tmp_path / "ur.zarr", "ur", range(1), robot=ur5e()))
    with pytest.raises(StatsError, match="robot/joint_positions: cannot merge statistics of channels"):
        panda.merge(ur)


def test_image_stats_count_every_pixel_of_the_sampled_frames(demo_store_dir):
    path = demo_store_dir / "sample_h5"
    stats = compute_stats(path, image_frames=3)
    frames = sample_frames(24, 3)
    assert frames.tolist() == [0, 12, 23]
    with open_dataset(path) as ds:
        pixels = np.concatenate(
            [ds.episode(e).load("cameras/wrist/rgb")[frames].reshape(-1, 3) for e in ds.episode_ids]
        ).astype(np.float64)
    wrist = stats.images["wrist"]
    assert wrist.channels == ("r", "g", "b")
    assert wrist.count.tolist() == [3 * 3 * 32 * 32] * 3
    assert np.array_equal(wrist.q99, np.quantile(pixels, 0.99, axis=0))
    np.testing.assert_allclose(wrist.mean, pixels.mean(0), rtol=1e-13)


def test_non_finite_samples_are_counted_apart_and_never_skew_the_summaries():
    h = Histogram.of(np.array([1.0, np.nan, 2.0, np.inf, 3.0], np.float32))
    assert (h.count, h.non_finite, h.mean, h.quantile(0.5)) == (3, 2, 2.0, 2.0)
    assert Histogram.of(np.array([np.nan])).summary()["mean"] is None


@settings(max_examples=60, deadline=None)
@given(
    samples=arrays(np.float32, st.integers(1, 300), elements=st.floats(-10, 10, width=32)),
    cuts=st.lists(st.integers(0, 300), max_size=4),
)
def test_histogram_merge_of_any_partition_is_the_histogram_of_the_whole(samples, cuts):
    parts = np.split(samples, sorted(c % (len(samples) + 1) for c in cuts))
    merged = Histogram.merge_all([Histogram.of(p) for p in parts])
    whole = Histogram.of(samples)
    assert merged == whole
    pooled_samples = samples.astype(np.float64)
    for q in (0.01, 0.5, 0.99):
        assert merged.quantile(q) == np.quantile(pooled_samples, q)
    assert merged.values[0] == pooled_samples.min() and merged.values[-1] == pooled_samples.max()


def test_stored_stats_load_back_mergeable_and_go_stale_when_episodes_change(tmp_path):
    path = build(tmp_path / "d.zarr", "d", range(2))
    stats = compute_stats(path)
    save_stats(path, stats)
    loaded = load_stats(path)
    assert loaded is not None and loaded.to_dict() == stats.to_dict()
    assert loaded.field(JOINTS).histograms == stats.field(JOINTS).histograms
    ds = create_dataset(path, open_dataset(path).manifest, append=True)
    ds.write_episode(demo_episode(9, frames=24, size=32))
    ds.commit()
    assert load_stats(path) is None  # covers 2 of the 3 episodes now


def test_a_truncated_stats_document_is_a_one_line_error(tmp_path):
    path = build(tmp_path / "d.zarr", "d", range(1))
    save_stats(path, compute_stats(path))
    stats_path(path).write_bytes(stats_path(path).read_bytes()[:100])
    with pytest.raises(StatsError, match="stats.npz: unreadable stats document"):
        DatasetStats.load(stats_path(path))


def test_stats_cli_writes_json_and_stores_the_document(demo_copy, run_cli, tmp_path):
    out = tmp_path / "stats.json"
    result = run_cli("stats", demo_copy, "--json", out)
    assert result.exit_code == 0, result.stderr
    doc = json.loads(out.read_text())
    assert doc["episodes"] == 3 and doc["frames"] == 72
    assert doc["fields"][JOINTS]["channels"][0] == "panda_joint1"
    assert set(doc["fields"][JOINTS]) >= {"count", "min", "max", "mean", "std", "q01", "q99"}
    assert [e["episode_id"] for e in doc["per_episode"]] == ["episode0", "episode1", "episode2"]
    assert "robot/joint_positions (72 samples)" in result.stdout
    assert load_stats(demo_copy).to_dict() == doc


def test_stats_cli_on_a_missing_dataset_is_one_line_and_exit_1(run_cli, tmp_path):
    result = run_cli("stats", tmp_path / "nope.zarr")
    assert result.exit_code == 1
    assert result.stderr.strip().endswith("nope.zarr: no such dataset")
    assert "Traceback" not in result.stderr

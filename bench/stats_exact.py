"""Exact mergeable statistics (genima_data.stats) against numpy on the pooled samples.

    python bench/stats_exact.py [EPISODES] [FRAMES]

Baseline: concatenate every episode's (T, 8) joints and call np.min/max/mean/std/quantile (exact, but not
mergeable: a new episode means recomputing over everything). Ours: one exact histogram per episode and
channel, merged into the dataset's, summaries from the merged histogram; then the incremental case, adding
one episode to existing statistics. Also reports the size of the histograms against the raw samples.
Prints a side-by-side table; numbers depend on the machine (run it alone).
"""

from __future__ import annotations

import sys
import time

import numpy as np

from genima_data.stats import FieldStats

CHANNELS = [f"j{i}" for i in range(7)] + ["gripper_open"]


def episodes(count: int, frames: int, seed: int = 0) -> list[np.ndarray]:
    """Smooth float32 joint trajectories with a binary gripper, like teleoperation logs."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        joints = np.cumsum(rng.normal(0, 0.01, (frames, 7)), axis=0) + rng.uniform(-1, 1, 7)
        gripper = (np.sin(np.linspace(0, 3, frames) + rng.uniform(0, 3)) > 0).astype(np.float64)
        out.append(np.column_stack([joints, gripper]).astype(np.float32))
    return out


def timed(fn, repeats: int = 3) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def baseline(parts: list[np.ndarray]) -> dict:
    pooled = np.concatenate(parts).astype(np.float64)
    return {
        "min": pooled.min(0),
        "max": pooled.max(0),
        "mean": pooled.mean(0),
        "std": pooled.std(0),
        "q01": np.quantile(pooled, 0.01, axis=0),
        "q99": np.quantile(pooled, 0.99, axis=0),
    }


def ours(per_episode: list[FieldStats]) -> FieldStats:
    merged = FieldStats.merge_all(per_episode)
    merged.to_dict()  # every summary computed
    return merged


def main(count: int, frames: int) -> None:
    parts = episodes(count, frames)
    t_base, reference = timed(lambda: baseline(parts))
    t_episode, per_episode = timed(lambda: [FieldStats.of("joints", CHANNELS, p) for p in parts])
    t_merge, merged = timed(lambda: ours(per_episode))
    extra = FieldStats.of("joints", CHANNELS, episodes(1, frames, seed=1)[0])
    t_add, _ = timed(lambda: ours([merged, extra]))
    t_base_add, _ = timed(lambda: baseline([*parts, episodes(1, frames, seed=1)[0]]))
    assert np.array_equal(merged.q01, reference["q01"]) and np.array_equal(merged.q99, reference["q99"])
    raw_bytes = sum(p.nbytes for p in parts)
    hist_bytes = sum(h.values.nbytes + h.counts.nbytes for h in merged.histograms)
    print(f"{count} episodes x {frames} frames x {len(CHANNELS)} channels ({raw_bytes / 1e6:.1f} MB float32)")
    print(f"{'':44s} {'numpy pooled':>14s} {'exact histograms':>17s} {'ratio':>7s}")
    rows = [
        ("all statistics from scratch (s)", t_base, t_episode + t_merge),
        ("  of which per-episode histograms (s)", float("nan"), t_episode),
        ("add one episode to existing statistics (s)", t_base_add, t_add),
    ]
    for name, a, b in rows:
        ratio = f"{a / b:6.2f}x" if np.isfinite(a) else "      -"
        print(f"{name:44s} {a:14.4f} {b:17.4f} {ratio}")
    print(
        f"dataset histograms: {hist_bytes / 1e6:.1f} MB ({hist_bytes / raw_bytes:.2f}x the float32 samples)"
    )
    print("q01/q99 identical to np.quantile on the pooled samples: yes")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 500, int(sys.argv[2]) if len(sys.argv) > 2 else 300)

"""Train/validation splits by episode, stratified by task and variation, reproducible from a seed.

    splits = split_dataset("delivery.zarr", val_fraction=0.1, seed=0)   # recorded in Manifest.splits

The validation set holds ``round(n * val_fraction)`` episodes (at least one, and at least one episode stays
in training). They are allotted to the (task, variation) strata in proportion to their sizes (largest
remainder; ties broken by the seed), so every stratum is represented as closely as whole episodes allow,
and never take a task's last training episode: when the tasks have too few episodes to spare that many,
it is an error naming the shortfall, never a smaller (or empty) validation set. Within a stratum the
episodes are drawn by a permutation seeded from the seed and the stratum's name, so the same dataset,
fraction and seed give the same split on any machine. Training code (`genima_models`) reads
``Manifest.splits``.
"""

from __future__ import annotations

import math
import zlib
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from genima_data.errors import GenimaDataError
from genima_data.schema import EpisodeSummary, natural_key
from genima_data.store import open_dataset

Stratum = tuple[str, int | None]


def _stratum_name(stratum: Stratum) -> str:
    task, variation = stratum
    return task if variation is None else f"{task}/variation{variation}"


def _val_counts(strata: dict[Stratum, list[str]], n_val: int, seed: int) -> dict[Stratum, int]:
    """Validation episodes per stratum: proportional, largest remainder, a task's last episode kept."""
    total = sum(len(ids) for ids in strata.values())
    quota = {s: len(ids) * n_val / total for s, ids in strata.items()}
    counts = {s: math.floor(q) for s, q in quota.items()}
    train_left = Counter()
    for (task, variation), ids in strata.items():
        train_left[task] += len(ids) - counts[(task, variation)]
    tiebreak = dict(zip(strata, np.random.default_rng(seed).permutation(len(strata)), strict=True))
    order = sorted(strata, key=lambda s: (-(quota[s] - counts[s]), tiebreak[s]))
    missing = n_val - sum(counts.values())
    for stratum in order:
        if missing == 0:
            break
        if counts[stratum] < len(strata[stratum]) and train_left[stratum[0]] > 1:
            counts[stratum] += 1
            train_left[stratum[0]] -= 1
            missing -= 1
    return counts


def _require_allotted(counts: dict[Stratum, int], n_val: int, n: int, val_fraction: float) -> None:
    """A clear error, not a smaller (or empty) validation set, when tasks have too few episodes to spare."""
    allotted = sum(counts.values())
    if allotted < n_val:
        tasks = len({task for task, _ in counts})
        raise GenimaDataError(
            f"{val_fraction} of {n} episodes asks for {n_val} validation episode(s), but only {allotted} can "
            f"be taken without removing the last training episode of one of the {tasks} task(s); record "
            "more episodes per task or split without stratifying (--no-stratify)",
            field="val",
        )


def plan_split(
    episodes: Sequence[EpisodeSummary], *, val_fraction: float = 0.1, seed: int = 0, stratify: bool = True
) -> dict[str, list[str]]:
    """``{"train": [...], "val": [...]}`` episode ids (natural order); see the module docstring."""
    if not 0 < val_fraction < 1:
        raise GenimaDataError(f"must be between 0 and 1 (exclusive), got {val_fraction}", field="val")
    if len(episodes) < 2:
        raise GenimaDataError(f"need at least 2 episodes to split, the dataset has {len(episodes)}")
    strata: dict[Stratum, list[str]] = {}
    for e in sorted(episodes, key=lambda e: natural_key(e.episode_id)):
        key = (e.task, e.variation) if stratify else ("all", None)
        strata.setdefault(key, []).append(e.episode_id)
    n_val = min(max(1, round(len(episodes) * val_fraction)), len(episodes) - 1)
    counts = _val_counts(strata, n_val, seed)
    _require_allotted(counts, n_val, len(episodes), val_fraction)
    val: list[str] = []
    for stratum, count in counts.items():
        ids = strata[stratum]
        rng = np.random.default_rng([seed, zlib.crc32(_stratum_name(stratum).encode())])
        val += [ids[i] for i in rng.permutation(len(ids))[:count]]
    chosen = set(val)
    train = [e.episode_id for e in episodes if e.episode_id not in chosen]
    return {"train": sorted(train, key=natural_key), "val": sorted(val, key=natural_key)}


def split_dataset(
    path: str | Path, *, val_fraction: float = 0.1, seed: int = 0, stratify: bool = True
) -> dict[str, list[str]]:
    """Plan a split of the dataset's episodes and record it in its manifest (``splits``), atomically."""
    with open_dataset(path) as ds:  # read-only first: refuses an uncommitted dataset
        summaries = ds.manifest.episodes
    try:
        splits = plan_split(summaries, val_fraction=val_fraction, seed=seed, stratify=stratify)
    except GenimaDataError as exc:
        raise exc.located(file=path) from None
    with open_dataset(path, "a") as ds:
        ds.update_manifest(splits={**ds.manifest.splits, **splits})
    return splits


def split_table_rows(episodes: Sequence[EpisodeSummary], splits: dict[str, list[str]]) -> list[tuple]:
    """(stratum, train count, val count) per task/variation, for display."""
    where = {eid: name for name, ids in splits.items() for eid in ids}
    rows: dict[str, Counter] = {}
    for e in sorted(episodes, key=lambda e: (e.task, e.variation or -1)):
        rows.setdefault(_stratum_name((e.task, e.variation)), Counter())[where.get(e.episode_id)] += 1
    return [(name, c["train"], c["val"]) for name, c in rows.items()]

"""Splits: by episode, stratified by task and variation, reproducible, recorded in the manifest."""

from __future__ import annotations

import pytest

from genima_data.errors import GenimaDataError
from genima_data.schema import EpisodeSummary
from genima_data.splits import plan_split, split_dataset
from genima_data.store import open_dataset


def summaries(counts: dict[tuple[str, int | None], int]) -> list[EpisodeSummary]:
    out = []
    for (task, variation), n in counts.items():
        out += [
            EpisodeSummary(episode_id=f"{task}_v{variation}_{i}", task=task, variation=variation, length=30)
            for i in range(n)
        ]
    return out


def test_split_is_a_partition_of_the_episodes():
    episodes = summaries({("a", 0): 17, ("b", 1): 6})
    splits = plan_split(episodes, val_fraction=0.2, seed=3)
    train, val = set(splits["train"]), set(splits["val"])
    assert not train & val
    assert train | val == {e.episode_id for e in episodes}
    assert len(val) == round(23 * 0.2)


def test_same_seed_gives_the_same_split_whatever_the_listing_order():
    episodes = summaries({("a", 0): 20, ("a", 1): 20})
    first = plan_split(episodes, val_fraction=0.1, seed=7)
    assert plan_split(list(reversed(episodes)), val_fraction=0.1, seed=7) == first
    assert plan_split(episodes, val_fraction=0.1, seed=8) != first


def test_validation_episodes_are_allotted_in_proportion_to_each_task_and_variation():
    episodes = summaries({("pick", 0): 50, ("pick", 1): 30, ("place", 0): 20})
    val = plan_split(episodes, val_fraction=0.1, seed=0)["val"]
    per_stratum = {
        prefix: sum(v.startswith(prefix) for v in val) for prefix in ("pick_v0", "pick_v1", "place")
    }
    assert per_stratum == {"pick_v0": 5, "pick_v1": 3, "place": 2}


def test_one_episode_per_variation_still_gives_a_validation_set():
    episodes = summaries({("reach", v): 1 for v in range(40)})
    val = plan_split(episodes, val_fraction=0.1, seed=0)["val"]
    assert len(val) == 4


def test_a_task_never_loses_its_last_training_episode():
    episodes = summaries({("big", 0): 3, ("single", 0): 1})
    for seed in range(20):
        splits = plan_split(episodes, val_fraction=0.5, seed=seed)
        assert "single_v0_0" in splits["train"]
        assert len(splits["val"]) == 2


def test_one_episode_per_task_is_an_error_not_an_empty_validation_set():
    # every episode is its task's last training episode: stratifying cannot spare one
    episodes = summaries({(f"task{i}", None): 1 for i in range(10)})
    with pytest.raises(
        GenimaDataError, match=r"val: .*asks for 1 validation episode\(s\), but only 0 can be taken"
    ):
        plan_split(episodes, val_fraction=0.1, seed=0)
    assert len(plan_split(episodes, val_fraction=0.1, seed=0, stratify=False)["val"]) == 1


def test_fraction_outside_zero_one_is_refused():
    with pytest.raises(GenimaDataError, match=r"val: must be between 0 and 1 \(exclusive\), got 1.5"):
        plan_split(summaries({("a", 0): 4}), val_fraction=1.5)


def test_split_is_recorded_in_the_manifest_and_survives_reopening(demo_copy):
    splits = split_dataset(demo_copy, val_fraction=0.34, seed=0)
    with open_dataset(demo_copy) as ds:
        assert ds.manifest.splits == splits
        assert sorted(splits["train"] + splits["val"]) == ds.episode_ids
    assert len(splits["val"]) == 1


def test_split_cli_prints_counts_and_records_the_split(demo_copy, run_cli):
    result = run_cli("split", demo_copy, "--val", "0.34", "--seed", "1")
    assert result.exit_code == 0, result.stderr
    assert "reach_target/variation0" in result.stdout
    with open_dataset(demo_copy) as ds:
        assert len(ds.manifest.splits["val"]) == 1 and len(ds.manifest.splits["train"]) == 2


def test_split_cli_with_a_bad_fraction_is_one_line_and_exit_1(demo_copy, run_cli):
    result = run_cli("split", demo_copy, "--val", "0")
    assert result.exit_code == 1
    assert "val: must be between 0 and 1" in result.stderr and "Traceback" not in result.stderr

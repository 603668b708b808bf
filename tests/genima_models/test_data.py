import os
import pickle
import shutil

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from genima_data.demo import build_demo  # noqa: E402
from genima_data.schema import EpisodeSummary  # noqa: E402
from genima_data.stats import FieldStats  # noqa: E402
from genima_data.store import open_dataset  # noqa: E402
from genima_models.data import (  # noqa: E402
    ACTDataset,
    FrameIndex,
    JointStats,
    StoreHandle,
    episode_split,
)
from genima_models.errors import TrainingDataError  # noqa: E402
from tests.conftest import ACT_FRAMES, target_pixel  # noqa: E402

pytestmark = pytest.mark.train


def _robot(path, episode_id):
    with open_dataset(path) as ds, ds.episode(episode_id) as ep:
        return ep.load("robot/joint_positions"), ep.load("robot/gripper_open")


def test_sample_holds_frame_t_images_proprio_and_next_chunk_in_robot_units(act_store):
    ds = ACTDataset(act_store, split="all", image_size=None)
    episode_id, t = ds.index.locate(ACT_FRAMES - 1 + 2)  # frame 2 of the second episode
    sample = ds[ACT_FRAMES - 1 + 2]
    joints, gripper = _robot(act_store, episode_id)
    assert (episode_id, t, sample["t"]) == ("episode1", 2, 2)
    assert sample["images"].shape == (4, 3, 32, 32) and sample["images"].dtype == np.uint8
    assert [int(sample["images"][c, 0, 0, 0]) for c in range(4)] == [target_pixel(c, 2) for c in range(4)]
    np.testing.assert_array_equal(sample["proprio"], np.r_[gripper[2], joints[2]])
    np.testing.assert_array_equal(sample["actions"][:, :7], joints[3:23])
    np.testing.assert_array_equal(sample["actions"][:, 7], gripper[3:23])
    assert not sample["is_pad"].any()
    with open_dataset(act_store) as store, store.episode("episode1") as ep:
        assert sample["instruction"] == ep.meta.instruction


def test_chunk_past_the_episode_end_is_padded_and_masked(act_store):
    ds = ACTDataset(act_store, split="all")
    last = ACT_FRAMES - 2  # last sample frame: one future frame left
    sample = ds[last]
    joints, _ = _robot(act_store, "episode0")
    assert sample["t"] == last
    assert sample["is_pad"].tolist() == [False] + [True] * 19
    np.testing.assert_array_equal(sample["actions"][:, :7], np.repeat(joints[-1:], 20, axis=0))
    mid = ds[ACT_FRAMES - 1 - 20]  # chunk ends exactly at the last frame
    assert not mid["is_pad"].any()


def test_every_frame_with_a_future_is_one_sample():
    index = FrameIndex({"a": 3, "b": 0, "c": 2})
    assert len(index) == 5
    assert [index.locate(i) for i in range(5)] == [("a", 0), ("a", 1), ("a", 2), ("c", 0), ("c", 1)]
    with pytest.raises(IndexError):
        index.locate(5)


def test_images_are_resized_to_the_preset_size(act_store):
    sample = ACTDataset(act_store, split="all", image_size=64, cameras=["wrist"])[0]
    assert sample["images"].shape == (1, 3, 64, 64)
    assert int(sample["images"][0, 0, 10, 10]) == target_pixel(3, 0)


def _summaries(ids):
    return [EpisodeSummary(episode_id=e, task="reach_target", length=30) for e in ids]


def test_split_is_deterministic_disjoint_and_covers_every_episode(manifest):
    ids = [f"ep{i}" for i in range(20)]
    m = manifest.with_episodes(_summaries(ids))
    train, val = episode_split(m, "train"), episode_split(m, "val")
    assert len(val) == 2 and not set(train) & set(val) and sorted(train + val) == sorted(ids)
    assert episode_split(m, "val") == val  # same seed, same split
    assert episode_split(m, "val", seed=1) != val


def test_manifest_splits_win_and_the_other_side_is_their_complement(manifest):
    m = manifest.with_episodes(_summaries(["a", "b", "c"])).model_copy(update={"splits": {"val": ["b"]}})
    assert episode_split(m, "val") == ["b"]
    assert episode_split(m, "train") == ["a", "c"]
    with pytest.raises(TrainingDataError, match="no split 'test'"):
        episode_split(m, "test")
    bad = m.model_copy(update={"splits": {"val": ["zz"]}})
    with pytest.raises(TrainingDataError, match="splits.val"):
        episode_split(bad, "val")


def test_joint_stats_are_exact_over_every_training_frame(act_store):
    ds = ACTDataset(act_store, split="train")
    frames = np.concatenate([_robot(act_store, e)[0] for e in ds.episode_ids]).astype(np.float64)
    stats = ds.joint_stats()
    assert stats.count == len(frames) == len(ds.episode_ids) * ACT_FRAMES
    np.testing.assert_allclose(stats.mean, frames.mean(0), rtol=1e-12)
    np.testing.assert_allclose(stats.std, np.maximum(frames.std(0), 1e-2), rtol=1e-12)
    assert stats.mean.shape == (7,)  # joints only: the gripper is not normalised


def test_a_joint_that_never_moves_gets_the_floor_std():
    moving = FieldStats.of("robot/joint_positions", ["a", "b"], np.r_[np.zeros((5, 2)), np.ones((5, 2))])
    still = FieldStats.of("robot/joint_positions", ["a"], np.full((4, 1), 0.3))
    np.testing.assert_allclose(JointStats.from_field(moving).std, [0.5, 0.5])
    assert JointStats.from_field(still).std[0] == pytest.approx(1e-2)


def test_dataloader_workers_open_their_own_handles_and_yield_the_same_samples(act_store):
    ds = ACTDataset(act_store, split="all", cameras=["front", "wrist"])
    ds.store.get()  # a handle in the parent must not travel to the workers
    assert pickle.loads(pickle.dumps(ds.store))._store is None
    serial = list(torch.utils.data.DataLoader(ds, batch_size=8))
    parallel = list(torch.utils.data.DataLoader(_WithWorkerPid(ds), batch_size=8, num_workers=2))
    assert len({int(pid) for b in parallel for pid in b["pid"]} - {os.getpid()}) == 2
    assert len(serial) == len(parallel)
    for a, b in zip(serial, parallel, strict=True):
        assert torch.equal(a["images"], b["images"]) and torch.equal(a["actions"], b["actions"])
        assert a["episode"] == b["episode"]


class _WithWorkerPid(torch.utils.data.Dataset):
    """Samples plus the id of the process whose store handle read them."""

    def __init__(self, ds):
        self.ds = ds

    def __len__(self):
        return len(self.ds)

    def __getitem__(self, i):
        return {**self.ds[i], "pid": self.ds.store._pid}


def test_store_handle_reopens_in_a_new_process(act_store):
    handle = StoreHandle(act_store)
    first = handle.get()
    assert handle.get() is first
    handle._pid = -1  # as seen from a forked child
    assert handle.get() is not first


def test_unknown_camera_is_named_with_the_available_ones(act_store):
    with pytest.raises(TrainingDataError, match=r"\['top'\] not in the dataset.*'front'"):
        ACTDataset(act_store, cameras=["front", "top"])


def test_episode_shorter_than_the_chunk_is_named(act_store):
    with pytest.raises(TrainingDataError, match="episode episode0: length: has 24 frames, shorter than one"):
        ACTDataset(act_store, split="all", chunk_size=30)


def test_prerendered_mode_without_targets_names_episode_and_stream(demo_copy):
    with pytest.raises(TrainingDataError, match="episode episode0: targets/front/rnd_bg: no pre-rendered"):
        ACTDataset(demo_copy, split="all", targets="prerendered")


def test_no_targets_and_nothing_to_render_from_is_a_clear_error(act_store_dir, tmp_path):
    """Without stored targets, on-the-fly rendering needs poses or a known robot model."""
    path = tmp_path / "norobot.zarr"
    shutil.copytree(act_store_dir / "sample.zarr", path)
    with open_dataset(path, mode="a") as ds:
        robot = ds.manifest.robot.model_copy(update={"model": "unknown_arm"})
        ds.update_manifest(robot=robot.model_dump(mode="json"))
    with pytest.raises(
        TrainingDataError, match="targets/front/rnd_bg: no pre-rendered targets and cannot render"
    ):
        ACTDataset(path, split="all", targets="on-the-fly")


def test_on_the_fly_targets_draw_spheres_on_a_new_texture_per_read(demo_copy):
    training = ACTDataset(demo_copy, split="all", cameras=["front"])
    first, second = training[3]["images"], training[3]["images"]
    assert first.shape == (1, 3, 32, 32) and not np.array_equal(first, second)
    evaluation = ACTDataset(demo_copy, split="all", cameras=["front"], random_textures=False)
    np.testing.assert_array_equal(evaluation[3]["images"], evaluation[3]["images"])
    assert not np.array_equal(evaluation[3]["images"], evaluation[4]["images"])


def test_stored_targets_are_used_where_present_and_the_rest_is_rendered(act_store_dir, tmp_path):
    path = tmp_path / "partial.zarr"
    build_demo(path, episodes=2, frames=ACT_FRAMES, size=32).close()
    with open_dataset(path, mode="a") as ds:
        ds.add_arrays("episode0", {"targets/front/rnd_bg": np.full((ACT_FRAMES, 32, 32, 3), 7, np.uint8)})
    ds = ACTDataset(path, split="all", cameras=["front"], random_textures=False)
    assert int(ds[0]["images"].max()) == 7  # episode0: stored
    assert ds[ACT_FRAMES - 1]["images"].std() > 10  # episode1: rendered on a texture


def test_on_the_fly_rendering_works_in_dataloader_workers(demo_copy):
    ds = ACTDataset(demo_copy, split="all", cameras=["front", "wrist"], random_textures=False)
    serial = next(iter(torch.utils.data.DataLoader(ds, batch_size=6)))
    parallel = next(iter(torch.utils.data.DataLoader(ds, batch_size=6, num_workers=2)))
    assert torch.equal(serial["images"], parallel["images"])


def test_unknown_split_error_names_the_dataset_file(act_store):
    with pytest.raises(TrainingDataError, match="no split 'test'") as err:
        ACTDataset(act_store, split="test")
    assert err.value.file == str(act_store)

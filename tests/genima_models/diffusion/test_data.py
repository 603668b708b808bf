import numpy as np
import pytest

torch = pytest.importorskip("torch")

from genima_data.errors import StoreError  # noqa: E402
from genima_data.store import open_dataset  # noqa: E402
from genima_models.diffusion.config import DiffusionError, preset_config  # noqa: E402
from genima_models.diffusion.data import DiffusionPairs, StepBatchSampler  # noqa: E402
from genima_models.diffusion.models import tiny_tokenizer  # noqa: E402

from .conftest import CAMERAS, RED, TILE  # noqa: E402


def _config(**overrides):
    return preset_config("tiny", tile_size=TILE, **overrides)


def _pairs(path, augment=False, **overrides):
    return DiffusionPairs(path, _config(**overrides), tiny_tokenizer(), augment=augment)


def _tile(tensor: torch.Tensor, row: int, col: int) -> np.ndarray:
    """One tile of a (3, 2T, 2T) tensor in [0, 1] as uint8 HWC."""
    tile = tensor[:, row * TILE : (row + 1) * TILE, col * TILE : (col + 1) * TILE]
    return np.rint(tile.permute(1, 2, 0).numpy() * 255).astype(np.uint8)


def test_samples_are_tiled_pairs_in_the_models_ranges(pairs_dataset):
    pairs = _pairs(pairs_dataset)
    assert len(pairs) == 2 * 5  # frames 0 … T-2 of each 6-frame episode
    sample = pairs[0]
    assert sample["conditioning_pixel_values"].shape == (3, 2 * TILE, 2 * TILE)
    assert sample["pixel_values"].shape == (3, 2 * TILE, 2 * TILE)
    assert sample["conditioning_pixel_values"].min() >= 0 and sample["conditioning_pixel_values"].max() <= 1
    assert -1 <= sample["pixel_values"].min() < 0 < sample["pixel_values"].max() <= 1
    assert sample["input_ids"].shape == (77,) and sample["input_ids"].dtype == torch.long


def test_tiles_follow_genima_order_and_a_configured_order(pairs_dataset):
    with open_dataset(pairs_dataset) as ds, ds.episode("episode0") as ep:
        frames = {cam: ep.frame(f"cameras/{cam}/rgb", 1) for cam in CAMERAS}
        target_front = ep.frame("targets/front/rgb", 1)
    sample = _pairs(pairs_dataset)[1]
    conditioning, target = sample["conditioning_pixel_values"], (sample["pixel_values"] + 1) / 2
    for (row, col), cam in zip(
        [(0, 0), (0, 1), (1, 0), (1, 1)], ["wrist", "front", "right_shoulder", "left_shoulder"], strict=True
    ):
        assert np.abs(_tile(conditioning, row, col).astype(int) - frames[cam]).max() <= 1, cam
    assert np.abs(_tile(target, 0, 1).astype(int) - target_front).max() <= 1
    assert tuple(_tile(target, 0, 1)[12, 14]) == RED
    swapped = _pairs(pairs_dataset, tile_order=(("front", "wrist"), ("left_shoulder", "right_shoulder")))[1]
    assert np.abs(_tile(swapped["conditioning_pixel_values"], 0, 0).astype(int) - frames["front"]).max() <= 1


def test_prompt_keeps_the_instruction(pairs_dataset):
    with open_dataset(pairs_dataset) as ds, ds.episode("episode0") as ep:
        instruction = ep.meta.instruction
    text = tiny_tokenizer().decode(_pairs(pairs_dataset)[0]["input_ids"], skip_special_tokens=True)
    assert text.startswith("tiled perspectives of a robot arm executing")
    assert text.replace(" ", "").endswith(f"'{instruction}'".replace(" ", ""))  # GENIMA's script drops it
    assert (
        _config().prompt("open the drawer") == "tiled perspectives of a robot arm executing 'open the drawer'"
    )


def test_augmentation_shifts_both_images_alike_and_jitters_only_the_conditioning(pairs_copy):
    with open_dataset(pairs_copy, "a") as ds:  # targets identical to the observations
        for eid in ds.episode_ids:
            with ds.episode(eid) as ep:
                arrays = {f"targets/{c}/rgb": ep.load(f"cameras/{c}/rgb") for c in CAMERAS}
            ds.add_arrays(eid, arrays, replace=True)
        ds.commit()
    plain = _pairs(pairs_copy)[(3, 0)]
    shifted = _pairs(pairs_copy, augment=True, color_jitter=(0, 0, 0, 0))[(3, 0)]
    assert torch.allclose((shifted["pixel_values"] + 1) / 2, shifted["conditioning_pixel_values"], atol=1e-6)
    assert not torch.equal(shifted["conditioning_pixel_values"], plain["conditioning_pixel_values"])
    jittered = _pairs(pairs_copy, augment=True)
    sample, again = jittered[(3, 0)], jittered[(3, 0)]
    assert torch.equal(sample["pixel_values"], shifted["pixel_values"])  # target: shift only
    assert not torch.allclose(
        (sample["pixel_values"] + 1) / 2, sample["conditioning_pixel_values"], atol=1e-3
    )
    assert torch.equal(sample["conditioning_pixel_values"], again["conditioning_pixel_values"])  # seeded
    assert not torch.equal(jittered[(3, 1)]["conditioning_pixel_values"], sample["conditioning_pixel_values"])


def test_dataset_without_targets_is_a_one_line_error_when_stored_ones_are_required(demo_store_dir):
    with pytest.raises(StoreError, match=r"sample\.zarr: targets: dataset has no .*diffusion targets"):
        _pairs(demo_store_dir / "sample.zarr", targets="stored")


def test_targets_rendered_on_the_fly_equal_the_ones_render_targets_stores(demo_copy):
    from genima_data.render.pipeline import render_targets

    on_the_fly = _pairs(demo_copy, targets="auto")  # no targets in the store yet: rendered
    assert on_the_fly.on_the_fly
    render_targets(demo_copy, random_bg=None)
    stored = _pairs(demo_copy, targets="stored")
    assert not stored.on_the_fly
    for index in (0, len(stored) - 1):
        expected, drawn = stored[index], on_the_fly[index]
        assert torch.equal(drawn["pixel_values"], expected["pixel_values"])
        assert torch.equal(drawn["conditioning_pixel_values"], expected["conditioning_pixel_values"])
        changed = (drawn["pixel_values"] + 1) / 2 - drawn["conditioning_pixel_values"]
        assert changed.abs().amax(0).gt(0.1).sum() > 4  # the spheres are drawn in


def test_no_targets_and_nothing_to_render_them_from_is_a_one_line_error(demo_copy):
    with open_dataset(demo_copy, "a") as ds:  # an unknown robot: no forward kinematics for the spheres
        ds.update_manifest(robot=ds.manifest.robot.model_copy(update={"model": "unknown_arm"}).model_dump())
    with pytest.raises(
        StoreError,
        match=r"episode episode0: targets/wrist/rgb: dataset has no diffusion targets and they cannot be "
        r"rendered on the fly: .*unknown_arm",
    ) as err:
        _pairs(demo_copy)
    assert "\n" not in str(err.value)


def test_targets_of_another_size_than_the_observation_are_refused(pairs_copy):
    with open_dataset(pairs_copy, "a") as ds:
        ds.add_arrays("episode1", {"targets/front/rgb": np.zeros((6, 16, 16, 3), np.uint8)}, replace=True)
        ds.commit()
    with pytest.raises(
        StoreError, match=r"episode episode1: targets/front/rgb: target images are \(16, 16\)"
    ):
        _pairs(pairs_copy)


def test_over_long_instruction_and_unknown_camera_are_refused(pairs_copy):
    with pytest.raises(StoreError, match=r"tile_order: camera\(s\) \['overhead'\]"):
        _pairs(pairs_copy, tile_order=(("overhead", "front"), ("right_shoulder", "left_shoulder")))
    with pytest.raises(DiffusionError, match=r"episode episode0: instruction: prompt is \d+ tokens"):
        _pairs(pairs_copy, prompt_template="{instruction} " + "and again " * 40)
    with pytest.raises(StoreError, match=r"no episode\(s\) \['nope'\]"):
        _pairs(pairs_copy, episodes=["nope"])


def test_step_batches_are_fixed_per_step_and_cover_each_epoch():
    full = StepBatchSampler(10, 3, seed=1, start_step=0, end_step=6)
    resumed = StepBatchSampler(10, 3, seed=1, start_step=4, end_step=6)
    batches = list(full)
    assert list(resumed) == batches[4:]
    first_epoch = [i for batch in batches[:3] for i, epoch in batch if epoch == 0]
    assert len(set(first_epoch)) == 9 and all(e == 1 for _, e in batches[3])  # 3 full batches, then epoch 1
    ranks = [StepBatchSampler(10, 2, seed=1, start_step=0, end_step=2, rank=r, world=2) for r in (0, 1)]
    per_rank = [[i for batch in sampler for i, _ in batch] for sampler in ranks]
    assert not set(per_rank[0]) & set(per_rank[1]) and len(per_rank[0]) == 4


def test_dataloader_workers_read_the_same_samples_as_the_main_process(pairs_dataset):
    pairs = _pairs(pairs_dataset)
    expected = [pairs[i]["pixel_values"] for i in range(len(pairs))]  # the parent has episodes open now
    loader = torch.utils.data.DataLoader(pairs, batch_size=None, num_workers=2)
    assert all(torch.equal(got["pixel_values"], want) for got, want in zip(loader, expected, strict=True))
    pairs.close()

"""render_targets: what lands in the store, the record next to it, resume, crash safety, config changes."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from genima_data.demo import demo_episode, demo_manifest
from genima_data.episode import Episode
from genima_data.errors import GenimaDataError
from genima_data.render.compose import TextureSource
from genima_data.render.pipeline import RECORD_ATTR, frame_rng, render_targets, stored_record, targets_record
from genima_data.render.targets import TargetConfig, TargetError, TargetRenderer
from genima_data.store import create_dataset, open_dataset

CAMERAS = ["front", "left_shoulder", "right_shoulder", "wrist"]


def arrays(path, kind="rgb"):
    with open_dataset(path) as ds:
        out = {}
        for eid in ds.episode_ids:
            with ds.episode(eid) as ep:
                out.update({(eid, c): np.asarray(ep[f"targets/{c}/{kind}"][...]) for c in ep.target_names})
        return out


def test_targets_in_the_store_are_the_spheres_over_the_observations(demo_copy):
    config = TargetConfig(supersample=2)
    result = render_targets(demo_copy, config=config, random_bg="procedural", seed=5)
    assert result.ok and result.rendered == ["episode0", "episode1", "episode2"]
    assert result.cameras == CAMERAS
    with open_dataset(demo_copy) as ds, ds.episode("episode1") as ep:
        renderer = TargetRenderer(ds.manifest, config)
        for cam in CAMERAS:
            stored = np.asarray(ep[f"targets/{cam}/rgb"][...])
            assert stored.shape == ep[f"cameras/{cam}/rgb"].shape and stored.dtype == np.uint8
            for t in (0, 11, 23):
                target = renderer.render(ep, t, cam)
                assert np.array_equal(stored[t], target.over(ep.frame(f"cameras/{cam}/rgb", t)))
                rnd = ep.frame(f"targets/{cam}/rnd_bg", t)
                rng = frame_rng(5, "episode1", cam, t)
                background = TextureSource(seed=5).sample(rng, rnd.shape[:2])
                assert np.array_equal(rnd[target.alpha == 0], background[target.alpha == 0])


def test_each_target_array_records_the_config_it_was_made_with(demo_h5):
    config = TargetConfig(horizon=7)
    render_targets(demo_h5, config=config, random_bg="procedural", seed=2)
    with open_dataset(demo_h5) as ds, ds.episode("episode0") as ep:
        rgb = json.loads(ep["targets/front/rgb"].attrs[RECORD_ATTR])
        rnd = json.loads(stored_record(ep, "targets/wrist/rnd_bg"))
    assert TargetConfig.parse(rgb["config"]) == config
    assert "background" not in rgb
    assert rnd["background"] == {"kind": "procedural", "seed": 2, "bank": 64}
    assert rnd["config"] == rgb["config"] and rgb["renderer"].startswith("genima-data spheres")


def test_rerun_skips_episodes_that_already_have_these_targets(demo_copy):
    first = render_targets(demo_copy)
    before = arrays(demo_copy)
    again = render_targets(demo_copy)
    assert first.rendered == ["episode0", "episode1", "episode2"]
    assert again.rendered == [] and again.skipped == ["episode0", "episode1", "episode2"]
    after = arrays(demo_copy)
    assert before.keys() == after.keys() and all(np.array_equal(before[k], after[k]) for k in before)


def test_adding_random_backgrounds_later_renders_only_those(demo_h5):
    render_targets(demo_h5, cameras=["front"])
    result = render_targets(demo_h5, cameras=["front"], random_bg="procedural")
    assert result.rendered == ["episode0", "episode1", "episode2"]
    with open_dataset(demo_h5) as ds, ds.episode("episode2") as ep:
        assert ep.target_names == ["front"] and "targets/front/rnd_bg" in ep


def test_a_different_config_never_silently_mixes_with_existing_targets(demo_h5):
    render_targets(demo_h5)
    before = arrays(demo_h5)
    with pytest.raises(TargetError) as info:
        render_targets(demo_h5, config=TargetConfig(horizon=5))
    message = str(info.value)
    assert "episode episode0: targets/front/rgb" in message and "pass --overwrite" in message
    assert "\n" not in message
    after = arrays(demo_h5)
    assert all(np.array_equal(before[k], after[k]) for k in before), "nothing may change before the error"
    replaced = render_targets(demo_h5, config=TargetConfig(horizon=5), overwrite=True)
    assert replaced.rendered == ["episode0", "episode1", "episode2"]
    with open_dataset(demo_h5) as ds, ds.episode("episode0") as ep:
        assert json.loads(stored_record(ep, "targets/front/rgb"))["config"]["horizon"] == 5


def test_overwriting_rgb_with_a_new_config_refuses_to_leave_old_random_backgrounds(demo_h5):
    render_targets(demo_h5, random_bg="procedural")
    with pytest.raises(TargetError, match="targets/front/rnd_bg: .* render them again with --random-bg"):
        render_targets(demo_h5, config=TargetConfig(horizon=3), overwrite=True)


def test_another_background_source_counts_as_another_config(demo_h5):
    render_targets(demo_h5, random_bg="procedural", seed=1)
    with pytest.raises(TargetError, match="another config or background"):
        render_targets(demo_h5, random_bg="procedural", seed=2)


def test_targets_use_a_fast_codec_unless_told_otherwise(demo_copy, tmp_path):
    store_codec = tmp_path / ("store_codec" + demo_copy.suffix)
    shutil.copytree(demo_copy, store_codec)
    render_targets(demo_copy, cameras=["front"])
    render_targets(store_codec, cameras=["front"], codec=None)
    with open_dataset(demo_copy) as ds:
        assert ds.codecs()["targets/front/rgb"] == "blosc-lz4"
    with open_dataset(store_codec) as ds:
        assert ds.codecs()["targets/front/rgb"] == ds.manifest.storage.codecs["image"]
    assert arrays(demo_copy).keys() == arrays(store_codec).keys()
    assert all(
        np.array_equal(a, b)
        for a, b in zip(arrays(demo_copy).values(), arrays(store_codec).values(), strict=True)
    )


def test_an_unknown_codec_fails_before_writing(demo_h5):
    with pytest.raises(GenimaDataError, match="codec"):
        render_targets(demo_h5, codec="snappy-9000")
    with open_dataset(demo_h5) as ds, ds.episode("episode0") as ep:
        assert ep.target_names == []


def test_cameras_can_be_chosen(demo_h5):
    result = render_targets(demo_h5, cameras=["wrist", "front"])
    assert result.cameras == ["wrist", "front"]
    with open_dataset(demo_h5) as ds, ds.episode("episode0") as ep:
        assert ep.target_names == ["front", "wrist"]


def test_a_camera_not_in_the_manifest_is_named_in_the_error(demo_h5):
    with pytest.raises(
        TargetError, match=r"sample_h5: cameras: cameras \['overhead'\] are not in the manifest"
    ):
        render_targets(demo_h5, cameras=["overhead"])


def test_unknown_episode_is_an_error(demo_h5):
    with pytest.raises(TargetError, match="no episodes \\['episode9'\\]"):
        render_targets(demo_h5, episodes=["episode9"])


def test_record_changes_with_every_setting_that_changes_pixels():
    base = targets_record(TargetConfig())
    assert targets_record(TargetConfig()) == base
    for changed in (TargetConfig(horizon=19), TargetConfig(supersample=2), TargetConfig(radius_m=0.02)):
        assert targets_record(changed) != base
    assert targets_record(TargetConfig(), TextureSource(seed=1)) != targets_record(
        TargetConfig(), TextureSource()
    )


def test_parallel_workers_write_the_same_targets(demo_store_dir, tmp_path):
    one, two = tmp_path / "one.zarr", tmp_path / "two.zarr"
    shutil.copytree(demo_store_dir / "sample.zarr", one)
    shutil.copytree(demo_store_dir / "sample.zarr", two)
    render_targets(one, random_bg="procedural", workers=1)
    render_targets(two, random_bg="procedural", workers=2)
    a, b = arrays(one, "rnd_bg"), arrays(two, "rnd_bg")
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


CRASHING_RENDER = textwrap.dedent("""
    import os, signal, sys
    from genima_data.render import pipeline

    original = pipeline.TargetStream._frames
    def dying(self, start, stop):
        if self.layers.episode.episode_id == sys.argv[2] and self.layers.camera == "right_shoulder":
            os.kill(os.getpid(), signal.SIGKILL)  # die while the store copies this episode's targets in
        return original(self, start, stop)
    pipeline.TargetStream._frames = dying
    pipeline.render_targets(sys.argv[1], random_bg="procedural")
""")


def test_killed_render_resumes_to_the_same_targets(demo_copy, tmp_path):
    clean = tmp_path / ("clean" + demo_copy.suffix)
    shutil.copytree(demo_copy, clean)
    killed = subprocess.run([sys.executable, "-c", CRASHING_RENDER, str(demo_copy), "episode1"])
    assert killed.returncode == -9
    with open_dataset(demo_copy) as ds:  # the dataset stays readable; episode0 finished, episode1 did not
        with ds.episode("episode0") as ep:
            assert "targets/wrist/rnd_bg" in ep
        with ds.episode("episode1") as ep:
            assert "targets/wrist/rnd_bg" not in ep
    resumed = render_targets(demo_copy, random_bg="procedural")
    assert "episode0" in resumed.skipped and "episode1" in resumed.rendered
    render_targets(clean, random_bg="procedural")
    for kind in ("rgb", "rnd_bg"):
        a, b = arrays(demo_copy, kind), arrays(clean, kind)
        assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def test_killed_render_leaves_no_leftovers_once_rerun(demo_copy):
    killed = subprocess.run([sys.executable, "-c", CRASHING_RENDER, str(demo_copy), "episode1"])
    assert killed.returncode == -9
    assert list(demo_copy.rglob(".tmp-*")), "the kill left a half-written target behind"
    render_targets(demo_copy, random_bg="procedural")
    assert not list(demo_copy.rglob(".tmp-*"))


def dataset_without(tmp_path, array: str):
    """A two-episode HDF5 dataset whose episode1 lacks `array`."""
    ds = create_dataset(tmp_path / "d_h5", demo_manifest(32))
    ds.write_episode(demo_episode(0, frames=24, size=32))
    full = demo_episode(1, frames=24, size=32)
    ds.write_episode(Episode(meta=full.meta, arrays={k: v for k, v in full.arrays.items() if k != array}))
    ds.commit()
    return tmp_path / "d_h5"


def test_a_camera_without_rgb_in_one_episode_fails_that_episode_not_silently_drops_it(tmp_path):
    dataset = dataset_without(tmp_path, "cameras/front/rgb")
    result = render_targets(dataset)
    assert result.rendered == ["episode0"] and list(result.failed) == ["episode1"]
    assert result.failed["episode1"].startswith(
        f"{dataset / 'episodes' / 'episode1.h5'}: episode episode1: cameras/front/rgb: no RGB stream"
    )
    with open_dataset(dataset) as ds, ds.episode("episode0") as ep:
        assert ep.target_names == CAMERAS


def test_a_failed_episode_names_the_file_it_lives_in(tmp_path):
    dataset = dataset_without(tmp_path, "cameras/wrist/extrinsics")  # the wrist camera has no pose
    result = render_targets(dataset, cameras=["wrist"])
    assert result.failed["episode1"].startswith(
        f"{dataset / 'episodes' / 'episode1.h5'}: episode episode1: cameras/wrist/extrinsics: camera 'wrist'"
    )

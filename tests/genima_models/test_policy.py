import json
from types import SimpleNamespace

import numpy as np
import pytest

pytest.importorskip("torch")

from genima_data.render.compose import TextureSource, random_background_target
from genima_data.render.targets import TargetConfig
from genima_data.store import open_dataset
from genima_models.act.policy import ACTPolicy
from genima_models.data import robot_sample
from genima_models.diffusion.agent import DiffusionAgent
from genima_models.diffusion.config import DiffusionError, preset_config
from genima_models.diffusion.models import build_tiny_base, controlnet_from_unet
from genima_models.policy import (
    GenimaPolicy,
    evaluate_policy,
    generated_spheres,
    rlbench_rollouts,
    run_episode,
)
from tests.render.sphere_drawing import draw_striped_sphere

pytestmark = pytest.mark.train

TILE = 32
CAMERAS = ("front", "left_shoulder", "right_shoulder", "wrist")


def _agent(tile_order=None) -> DiffusionAgent:
    config = preset_config("tiny", tile_size=TILE, tile_order=tile_order)
    base = build_tiny_base()
    return DiffusionAgent.from_models(
        base, controlnet_from_unet(base.unet, config), config, steps=1, device="cpu"
    )


@pytest.fixture(scope="module")
def chained(act_run) -> GenimaPolicy:
    """Tiny diffusion agent (untrained) chained with the tiny ACT run over front and wrist."""
    return GenimaPolicy(_agent(), ACTPolicy.from_checkpoint(act_run, device="cpu"), seed=0)


def _frame(path, episode: str, t: int):
    """Observation, proprio, recorded chunk, padding and instruction of frame t."""
    with open_dataset(path) as ds, ds.episode(episode) as ep:
        observation = {cam: ep.frame(f"cameras/{cam}/rgb", t) for cam in CAMERAS}
        joints, gripper = ep.load("robot/joint_positions"), ep.load("robot/gripper_open")
        instruction = ep.meta.instruction
    proprio, actions, is_pad = robot_sample(joints.astype(np.float32), gripper.astype(np.float32), t, 20)
    return observation, proprio, actions, is_pad, instruction


def test_chain_returns_a_20_by_8_chunk_of_joint_positions_and_gripper_state(chained, act_store_dir):
    observation, proprio, *_, instruction = _frame(act_store_dir / "sample.zarr", "episode0", 3)
    chunk = chained.predict(observation, proprio, instruction, np.random.default_rng(1))
    assert chunk.shape == (20, 8) and chunk.dtype == np.float32 and np.isfinite(chunk).all()
    assert set(np.unique(chunk[:, -1])) <= {0.0, 1.0}
    again = chained.predict(observation, proprio, instruction, np.random.default_rng(1))
    assert np.array_equal(chunk, again)  # seeded generation and backgrounds
    generated, inputs = chained.controller_images(observation, instruction, np.random.default_rng(1))
    assert sorted(generated) == sorted(CAMERAS) and sorted(inputs) == ["front", "wrist"]
    assert all(inputs[cam].shape == observation[cam].shape for cam in inputs)


def test_generated_spheres_are_moved_onto_a_random_background_without_the_scene():
    rng = np.random.default_rng(0)
    observation = np.clip(rng.normal(120, 10, (64, 64, 3)), 0, 255).astype(np.uint8)
    generated = observation.copy()
    colour = TargetConfig().sphere_colours()["joint1"]
    draw_striped_sphere(generated, (30.0, 34.0), 8, colour, np.eye(3))
    layer = generated_spheres(generated, observation, TargetConfig())
    v, u = np.mgrid[0:64, 0:64]
    disc = (u - 30) ** 2 + (v - 34) ** 2 <= 7**2
    assert layer.alpha[disc].min() == 1 and layer.alpha[(u - 30) ** 2 + (v - 34) ** 2 > 10**2].max() == 0
    assert np.array_equal(layer.sphere_rgb[disc], generated[disc])  # stripes included
    texture = TextureSource(seed=0).sample(rng, (64, 64))
    composed = random_background_target(layer, texture, np.random.default_rng(2))
    outside = layer.alpha == 0
    assert np.array_equal(composed[outside], texture[outside])  # the redrawn scene is gone
    weight = np.random.default_rng(2).uniform(0.7, 1.0)
    expected = np.rint(weight * generated[disc] + (1 - weight) * texture[disc].astype(float))
    assert np.abs(composed[disc] - expected).max() <= 1


def test_offline_evaluation_compares_each_chunk_with_the_recorded_future(chained, act_store_dir):
    data = act_store_dir / "sample.zarr"
    result = evaluate_policy(chained, data, ["episode2"], frame_stride=10)
    assert result.samples == 3 and result.episodes == ["episode2"]  # t = 0, 10, 20 of 24 frames
    assert result.policy.startswith("GENIMA") and len(result.joint_l1) == 20
    # t+1 … t+3 exist for all three frames; t+4 … t+13 for t = 0 and 10; t+14 … t+20 for t = 0 only
    assert result.counts[:3] == [3, 3, 3] and result.counts[3] == 2 and result.counts[13:] == [1] * 7
    l1 = np.zeros(20)
    for i, t in enumerate((0, 10, 20)):
        observation, proprio, actions, is_pad, instruction = _frame(data, "episode2", t)
        chunk = chained.predict(observation, proprio, instruction, np.random.default_rng([0, i]))
        l1 += np.where(is_pad, 0, np.abs(chunk[:, :-1] - actions[:, :-1]).mean(-1))
    assert np.allclose(result.joint_l1, l1 / np.maximum(result.counts, 1), atol=1e-5)
    assert result.to_dict()["mean"]["joint_l1_rad"] > 0


@pytest.fixture(scope="module")
def diffusion_run(act_store_dir, tmp_path_factory):
    from genima_models.diffusion.train import train_diffusion

    out = tmp_path_factory.mktemp("genima") / "diffusion"
    train_diffusion(
        act_store_dir / "sample.zarr", out, preset="tiny", steps=1, tile_size=TILE, progress=False
    )
    return out


def test_eval_genima_scores_the_act_runs_held_out_episodes(
    diffusion_run, act_run, act_store_dir, run_train_cli
):
    args = ["--diffusion-checkpoint", diffusion_run, "--act-checkpoint", act_run]
    data = ["--data", act_store_dir / "sample.zarr", "--frame-stride", 11, "--steps", 1]
    result = run_train_cli("eval-genima", *args, *data, "--json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["episodes"] == ["episode2"] and report["samples"] == 3  # eval-act's val split
    assert [row["step"] for row in report["per_step"]] == list(range(1, 21))
    bad = run_train_cli("eval-genima", *args, *data, "--background", "sky")
    assert bad.exit_code != 0 and bad.stderr.count("\n") == 1 and "unknown background 'sky'" in bad.stderr


def test_controller_cameras_the_agent_does_not_draw_are_refused(act_run):
    agent = _agent(tile_order=(("overhead", "front"), ("right_shoulder", "left_shoulder")))
    with pytest.raises(DiffusionError, match=r"cameras: the controller reads camera\(s\) \['wrist'\]"):
        GenimaPolicy(agent, ACTPolicy.from_checkpoint(act_run, device="cpu"))


class _ScriptedTask:
    """An RLBench task environment's interface: reset() and step(action); succeeds after `success_at`."""

    def __init__(self, success_at: int | None) -> None:
        self.success_at = success_at
        self.actions: list[np.ndarray] = []

    def _obs(self):
        images = {f"{cam}_rgb": np.full((32, 32, 3), 90, np.uint8) for cam in CAMERAS}
        return SimpleNamespace(gripper_open=1.0, joint_positions=np.zeros(7), **images)

    def reset(self):
        return ["reach the red target"], self._obs()

    def step(self, action):
        self.actions.append(np.asarray(action))
        done = self.success_at is not None and len(self.actions) >= self.success_at
        return self._obs(), 1.0 if done else 0.0, done


def test_rollout_replans_every_execution_horizon_and_stops_at_success_or_the_step_budget(chained):
    deterministic = GenimaPolicy(chained.agent, chained.controller, background="generated")
    task = _ScriptedTask(success_at=25)
    rollout = run_episode(deterministic, task, max_steps=100, execution_horizon=10)
    assert rollout.success and rollout.steps == 25 and len(task.actions) == 25
    assert all(action.shape == (8,) for action in task.actions)
    assert np.array_equal(task.actions[0], task.actions[10])  # the same observation again: replanned
    assert not np.array_equal(task.actions[0], task.actions[1])  # within a chunk: its next step
    timeout = run_episode(chained, _ScriptedTask(success_at=None), max_steps=15, execution_horizon=20)
    assert not timeout.success and timeout.steps == 15


def test_rlbench_rollouts_without_rlbench_name_what_to_install(chained, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "rlbench", None)  # as on machines without it
    with pytest.raises(
        DiffusionError, match="rlbench: RLBench rollouts need rlbench .*PyRep and CoppeliaSim"
    ):
        rlbench_rollouts(chained, "reach_target", episodes=1)


def test_rlbench_rollout_runs_in_the_simulator(chained):
    pytest.importorskip(
        "rlbench", reason="RLBench rollouts need rlbench, PyRep and CoppeliaSim (not installed)"
    )
    (rollout,) = rlbench_rollouts(chained, "reach_target", episodes=1, max_steps=20)
    assert 0 < rollout.steps <= 20


def _without_wrist(src, dst):
    """A copy of dataset `src` whose manifest and episodes have no wrist camera."""
    import shutil

    shutil.copytree(src, dst)
    with open_dataset(dst, "a") as ds:
        kept = [c.model_dump(mode="json") for c in ds.manifest.cameras if c.name != "wrist"]
        ds.update_manifest(cameras=kept)
    for stream in [*dst.glob("episodes/*/cameras/wrist"), *dst.glob("episodes/*/targets/wrist")]:
        shutil.rmtree(stream)
    return dst


@pytest.mark.parametrize("command", ["eval-diffusion", "eval-genima"])
def test_eval_on_a_dataset_without_a_tiled_camera_is_one_line_naming_the_camera(
    command, diffusion_run, act_run, act_store_dir, tmp_path, run_train_cli
):
    data = _without_wrist(act_store_dir / "sample.zarr", tmp_path / "nowrist.zarr")
    args = {
        "eval-diffusion": ["--ground-truth"],
        "eval-genima": ["--diffusion-checkpoint", diffusion_run, "--act-checkpoint", act_run, "--steps", 1],
    }[command]
    result = run_train_cli(command, "--data", data, "--frame-stride", 11, *args)
    assert result.exit_code == 1 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert f"{data}: cameras: camera(s) ['wrist'] not in the dataset" in result.stderr

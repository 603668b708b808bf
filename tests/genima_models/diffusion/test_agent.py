import numpy as np
import pytest

torch = pytest.importorskip("torch")

from diffusers import EulerDiscreteScheduler  # noqa: E402

from genima_models.diffusion.agent import DiffusionAgent  # noqa: E402
from genima_models.diffusion.config import DiffusionError  # noqa: E402

from .conftest import CAMERAS, TILE, observation  # noqa: E402


@pytest.fixture(scope="module")
def agent(tiny_run):
    return DiffusionAgent.load(tiny_run, steps=2, seed=3)


def test_agent_uses_sd_turbo_sampling(agent):
    scheduler = agent.pipeline.scheduler
    assert isinstance(scheduler, EulerDiscreteScheduler)
    assert scheduler.config.timestep_spacing == "trailing"
    assert agent.device.type == "cpu" and agent.pipeline.dtype == torch.float32


def test_generated_targets_are_per_camera_images_at_camera_size(agent, pairs_dataset):
    obs = observation(pairs_dataset)
    generated = agent.generate(obs, "reach the red target")
    assert sorted(generated) == sorted(CAMERAS)
    for cam, image in generated.items():
        assert image.shape == obs[cam].shape and image.dtype == np.uint8
    tiled = agent.generate_tiled([obs, obs], ["reach the red target"] * 2)
    assert tiled.shape == (2, 2 * TILE, 2 * TILE, 3) and tiled.dtype == np.uint8
    assert np.array_equal(tiled[0], tiled[1])  # each sample starts from the seed


def test_generation_is_seeded(agent, tiny_run, pairs_dataset):
    obs = observation(pairs_dataset)
    first = agent.generate_tiled([obs], ["reach the red target"])
    assert np.array_equal(first, agent.generate_tiled([obs], ["reach the red target"]))
    other = DiffusionAgent(agent.pipeline, agent.config, steps=2, seed=4)
    assert not np.array_equal(first, other.generate_tiled([obs], ["reach the red target"]))


def test_bad_inputs_are_one_line_errors(agent, pairs_dataset, tmp_path):
    with pytest.raises(
        DiffusionError, match=r"tile_size: tiled image is \(128, 128, 3\), the agent works at \(64, 64, 3\)"
    ):
        agent.untile(np.zeros((128, 128, 3), np.uint8), {cam: (32, 32) for cam in CAMERAS})
    obs = observation(pairs_dataset)
    with pytest.raises(DiffusionError, match=r"instruction: prompt is \d+ tokens"):
        agent.generate(obs, "stack " * 80)
    with pytest.raises(DiffusionError, match=r"no image for camera\(s\) \['wrist'\]"):
        agent.generate({k: v for k, v in obs.items() if k != "wrist"}, "reach")
    with pytest.raises(DiffusionError, match="at least 1 step"):
        DiffusionAgent(agent.pipeline, agent.config, steps=0)
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(DiffusionError, match="not a ControlNet checkpoint"):
        DiffusionAgent.load(tmp_path)


def test_agent_on_a_device_this_machine_lacks_fails_before_loading_weights(tiny_run, monkeypatch):
    import genima_models.diffusion.agent as agent_module
    from genima_models.act.policy import DeviceError

    monkeypatch.setattr(agent_module, "load_base", lambda *a, **k: pytest.fail("weights loaded"))
    with pytest.raises(DeviceError, match="--device: 'foo' is not available"):
        DiffusionAgent.load(tiny_run, device="foo")

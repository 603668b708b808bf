import numpy as np
import pytest

torch = pytest.importorskip("torch")

from genima_models.act.policy import ACTPolicy  # noqa: E402
from genima_models.errors import TrainingDataError  # noqa: E402
from tests.conftest import ACT_TEST_CAMERAS  # noqa: E402

pytestmark = pytest.mark.train
IMAGES = {cam: np.full((32, 32, 3), 100, np.uint8) for cam in ACT_TEST_CAMERAS}
PROPRIO = np.r_[1.0, np.zeros(7)].astype(np.float32)


def constant_policy(make_act_model, gripper_logit: float, **kwargs) -> ACTPolicy:
    """A policy whose heads output zero joints (normalised) and a fixed gripper logit."""
    model = make_act_model()
    with torch.no_grad():
        model.joint_head.weight.zero_()
        model.joint_head.bias.zero_()
        model.gripper_head.weight.zero_()
        model.gripper_head.bias.fill_(gripper_logit)
    return ACTPolicy(model, device="cpu", **kwargs)


def test_predict_returns_a_chunk_in_robot_units(make_act_model):
    chunk = constant_policy(make_act_model, 5.0).predict(IMAGES, PROPRIO, "reach the red target")
    assert chunk.shape == (20, 8) and chunk.dtype == np.float32
    np.testing.assert_allclose(
        chunk[:, :7], np.tile(np.linspace(-1, 1, 7), (20, 1)), atol=1e-6
    )  # denormalised
    assert (chunk[:, 7] == 1.0).all()
    closed = constant_policy(make_act_model, -5.0).predict(IMAGES, PROPRIO, "reach the red target")
    assert (closed[:, 7] == 0.0).all()


def test_missing_camera_or_wrong_proprio_is_named(make_act_model):
    policy = constant_policy(make_act_model, 0.0)
    with pytest.raises(TrainingDataError, match=r"no image for camera\(s\) \['wrist'\]"):
        policy.predict({"front": IMAGES["front"]}, PROPRIO, "x")
    with pytest.raises(TrainingDataError, match="proprio has 7 values, expected 8"):
        policy.predict(IMAGES, PROPRIO[:7], "x")


def scripted(policy: ACTPolicy) -> list[np.ndarray]:
    """Make the n-th prediction a chunk whose joints all equal n, with gripper probability 0.6 - n/10."""
    calls = []

    def chunk(images, proprio, instruction):
        n = len(calls)
        calls.append(n)
        return np.tile(np.r_[np.full(7, float(n)), 0.6 - n / 10], (policy.chunk_size, 1)).astype(np.float32)

    policy._chunk = chunk  # type: ignore[method-assign]
    return calls


def test_without_ensembling_each_chunk_is_executed_open_loop(make_act_model):
    policy = constant_policy(make_act_model, 0.0)
    calls = scripted(policy)
    actions = [policy.act(IMAGES, PROPRIO, "x") for _ in range(45)]
    assert len(calls) == 3  # steps 0, 20 and 40
    assert [a[0] for a in actions[::20]] == [0.0, 1.0, 2.0]
    policy.reset()
    assert policy.act(IMAGES, PROPRIO, "x")[0] == 3.0 and len(calls) == 4


def test_temporal_ensembling_weights_older_predictions_more(make_act_model):
    policy = constant_policy(make_act_model, 0.0, temporal_ensemble=0.5)
    scripted(policy)
    actions = [policy.act(IMAGES, PROPRIO, "x") for _ in range(3)]
    weights = np.exp(-0.5 * np.arange(3))
    assert actions[0][0] == 0.0
    assert actions[2][0] == pytest.approx((weights * [0, 1, 2]).sum() / weights.sum())
    gripper = (weights * [0.6, 0.5, 0.4]).sum() / weights.sum()
    assert actions[2][7] == float(gripper > 0.5)


def test_ensemble_forgets_chunks_that_no_longer_cover_the_step(make_act_model):
    policy = constant_policy(make_act_model, 0.0, temporal_ensemble=0.0)
    scripted(policy)
    actions = [policy.act(IMAGES, PROPRIO, "x") for _ in range(25)]
    assert actions[24][0] == pytest.approx(np.mean(np.arange(5, 25)))  # the 20 chunks that reach step 24


def test_policy_loads_the_latest_checkpoint_of_a_run(act_run):
    policy = ACTPolicy.from_checkpoint(act_run, preset="tiny", device="cpu")
    assert policy.cameras == ACT_TEST_CAMERAS
    chunk = policy.predict(IMAGES, PROPRIO, "reach the red target")
    assert chunk.shape == (20, 8) and set(np.unique(chunk[:, 7])) <= {0.0, 1.0}
    assert np.all(np.abs(chunk[:, :7]) < 3.5)  # radians, within the Panda's joint range


@pytest.mark.parametrize("device", ["foo", "cuda:99"])
def test_policy_on_a_device_this_machine_lacks_is_a_one_line_error(make_act_model, device):
    from genima_models.act.policy import DeviceError

    with pytest.raises(DeviceError, match=rf"^--device: '{device}' is not available .*available: cpu"):
        ACTPolicy(make_act_model(), device=device)

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from genima_data.store import open_dataset  # noqa: E402
from genima_models.act.evaluate import evaluate_act  # noqa: E402
from tests.conftest import ACT_FRAMES  # noqa: E402

pytestmark = pytest.mark.train


def test_errors_per_chunk_step_match_a_hand_computation(act_store_dir, tmp_path, make_act_model):
    model = make_act_model()
    with torch.no_grad():  # predictions: the joint mean, gripper probability 0.5 (closed)
        for head in (model.joint_head, model.gripper_head):
            head.weight.zero_()
            head.bias.zero_()
    model.save_pretrained(tmp_path / "ckpt")
    data = act_store_dir / "sample.zarr"
    result = evaluate_act(tmp_path / "ckpt", data, split="all", batch_size=32, device="cpu")

    mean = np.linspace(-1, 1, 7)
    l1, l2, acc, counts = (np.zeros(20) for _ in range(4))
    with open_dataset(data) as ds:
        for eid in ds.episode_ids:
            with ds.episode(eid) as ep:
                joints, gripper = ep.load("robot/joint_positions"), ep.load("robot/gripper_open")
            for t in range(ACT_FRAMES - 1):
                for k in range(min(20, ACT_FRAMES - 1 - t)):
                    error = joints[t + 1 + k] - mean
                    l1[k] += np.abs(error).mean()
                    l2[k] += np.linalg.norm(error)
                    acc[k] += gripper[t + 1 + k] <= 0.5
                    counts[k] += 1
    assert result.counts == counts.astype(int).tolist()
    assert result.counts[0] == 3 * 23 and result.counts[-1] == 3 * 4  # padding shrinks the late steps
    np.testing.assert_allclose(result.joint_l1, l1 / counts, rtol=1e-5)
    np.testing.assert_allclose(result.joint_l2, l2 / counts, rtol=1e-5)
    np.testing.assert_allclose(result.gripper_accuracy, acc / counts, rtol=1e-9)
    report = result.to_dict()
    assert len(report["per_step"]) == 20 and report["samples"] == 3 * 23
    assert report["mean"]["joint_l1_rad"] == pytest.approx(l1.sum() / counts.sum())


def test_default_split_is_the_episode_the_run_held_out(act_run, act_store_dir):
    result = evaluate_act(act_run, act_store_dir / "sample.zarr", device="cpu")
    assert result.episodes == ["episode2"] and result.samples == ACT_FRAMES - 1
    assert all(np.isfinite(result.joint_l1)) and all(0 <= a <= 1 for a in result.gripper_accuracy)

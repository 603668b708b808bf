import numpy as np
import pytest

from genima_data.episode import Episode, LazyFrames, is_image_path, spec_for
from genima_data.errors import FormatError
from genima_data.schema import EpisodeMeta


def frames_source(calls: list[int]) -> LazyFrames:
    def load(t: int) -> np.ndarray:
        calls.append(t)
        return np.full((4, 5, 3), t, dtype=np.uint8)

    return LazyFrames(load, 6, (4, 5, 3), np.uint8)


def test_lazy_frames_decode_only_what_is_indexed():
    calls: list[int] = []
    frames = frames_source(calls)
    assert frames.shape == (6, 4, 5, 3)
    assert frames[2][0, 0, 0] == 2
    assert calls == [2]
    assert frames[-1][0, 0, 0] == 5
    block = frames[1:4]
    assert block.shape == (3, 4, 5, 3) and list(block[:, 0, 0, 0]) == [1, 2, 3]
    assert frames[[0, 5]][:, 0, 0, 0].tolist() == [0, 5]
    assert frames[2, 1, 1].tolist() == [2, 2, 2]
    assert frames[1:3, 0, 0, 0].tolist() == [1, 2]


def test_lazy_frames_out_of_range_raises_index_error():
    with pytest.raises(IndexError):
        frames_source([])[6]


def test_lazy_frames_with_wrong_frame_size_name_the_frame():
    frames = LazyFrames(
        lambda t: np.zeros((3, 3, 3), np.uint8),
        2,
        (4, 4, 3),
        np.uint8,
        describe=lambda t: f"front_rgb/{t}.png",
    )
    with pytest.raises(
        FormatError, match=r"^front_rgb/1.png: frame 1 has shape \(3, 3, 3\).*expected \(4, 4, 3\)"
    ):
        frames[1]


def test_episode_lists_cameras_and_targets():
    meta = EpisodeMeta(episode_id="e", task="t", length=2)
    ep = Episode(
        meta,
        {
            "cameras/front/rgb": np.zeros((2, 1, 1, 3), np.uint8),
            "cameras/wrist/extrinsics": np.zeros((2, 4, 4)),
            "targets/front/rgb": np.zeros((2, 1, 1, 3), np.uint8),
        },
    )
    assert ep.camera_names == ["front", "wrist"]
    assert ep.target_names == ["front"]
    assert ep.load("cameras/wrist/extrinsics").shape == (2, 4, 4)
    with pytest.raises(KeyError, match="no array 'robot/ee_pose'"):
        ep["robot/ee_pose"]


def test_specs_cover_the_logical_tree():
    assert spec_for("cameras/left_shoulder/rgb").image
    assert is_image_path("targets/front/rnd_bg")
    assert not is_image_path("cameras/wrist/extrinsics")
    assert spec_for("extras/gripper_touch_forces").dtype is None
    assert spec_for("robot/unknown") is None

"""GENIMA sphere targets: target frames, where spheres land, colours, sizes, configs and bad input."""

from __future__ import annotations

import numpy as np
import pytest

from genima_data.demo import demo_episode, demo_manifest, look_at
from genima_data.errors import GenimaDataError, SchemaError
from genima_data.geometry.kinematics import load_kinematics
from genima_data.render.targets import (
    GENIMA_CAMERA_SCALES,
    TargetConfig,
    TargetError,
    TargetRenderer,
    target_frame,
    target_frames,
)
from genima_data.robots import ur5e
from genima_data.schema import Camera

SIZE = 96


@pytest.fixture(scope="module")
def episode():
    return demo_episode(0, frames=24, size=SIZE)


@pytest.fixture(scope="module")
def manifest():
    return demo_manifest(SIZE)


def with_overhead(manifest):
    K = manifest.cameras[0].K
    overhead = Camera(
        name="overhead",
        width=SIZE,
        height=SIZE,
        K=K,
        T_world_camera=look_at((0.3, 0, 1.6), (0.3, 0, 0), (1, 0, 0)).tolist(),
    )
    return manifest.model_copy(update={"cameras": [*manifest.cameras, overhead]})


@pytest.mark.parametrize(
    "t,length,horizon,expected",
    [
        (0, 100, 20, 20),
        (79, 100, 20, 98),
        (90, 100, 20, 98),
        (99, 100, 20, 98),
        (2, 5, 20, 3),
        (0, 2, 20, 0),
        (0, 1, 20, 0),
        (4, 10, 0, 4),
    ],
)
def test_target_frame_is_genimas_clamped_future_frame(t, length, horizon, expected):
    assert target_frame(t, length, horizon) == expected
    assert target_frames(length, horizon)[t] == expected


def dilate(mask: np.ndarray, steps: int) -> np.ndarray:
    padded = np.pad(mask, steps)
    h, w = mask.shape
    span = range(2 * steps + 1)
    return np.any([padded[dy : dy + h, dx : dx + w] for dy in span for dx in span], axis=0)


def project(K, T_world_camera, point):
    p = np.linalg.inv(T_world_camera) @ np.append(point, 1.0)
    uv = K @ (p[:3] / p[2])
    return uv[:2], p[2] > 0


def test_sphere_centres_are_the_camera_projection_of_the_future_joints(episode, manifest):
    renderer = TargetRenderer(manifest)
    kin = load_kinematics(manifest.robot)
    q = episode.load("robot/joint_positions").astype(np.float64)
    joints, tool = kin.joint_frames(q), kin.ee_pose(q)
    checked = 0
    for cam in manifest.cameras:
        K = np.asarray(cam.K)
        for t in (0, 5, 17, 23):
            target = target_frame(t, episode.length, 20)
            T_wc = (
                episode.load("cameras/wrist/extrinsics")[t]
                if cam.name == "wrist"
                else np.asarray(cam.T_world_camera)
            )
            centres = renderer.sphere_centres(episode, t, cam.name)
            points = {
                "gripper": tool[target, :3, 3],
                **{f"joint{j}": joints[target, j, :3, 3] for j in (1, 3, 5)},
            }
            for name, point in points.items():
                uv, in_front = project(K, T_wc, point)
                inside = in_front and (-0.5 <= uv[0] < SIZE - 0.5) and (-0.5 <= uv[1] < SIZE - 0.5)
                if not inside:
                    assert centres[name] is None
                    continue
                assert np.hypot(*(np.array(centres[name]) - uv)) < 0.5
                checked += 1
    assert checked > 30


def test_rendered_spheres_are_centred_on_the_projected_joints(episode, manifest):
    renderer = TargetRenderer(manifest, TargetConfig(horizon=0))
    checked = 0
    for cam in ("front", "left_shoulder", "right_shoulder"):
        for target in renderer.render_episode(episode, cam):
            for index, name in enumerate(target.names):
                mask = target.sphere_id == index
                others = dilate((target.sphere_id >= 0) & ~mask, 2)
                if target.centres[name] is None or mask.sum() < 20 or (mask & others).any():
                    continue  # off-image or touching another sphere (partly hidden): centroid is biased
                if mask[0].any() or mask[-1].any() or mask[:, 0].any() or mask[:, -1].any():
                    continue
                v, u = np.nonzero(mask)
                assert np.hypot(u.mean() - target.centres[name][0], v.mean() - target.centres[name][1]) < 0.5
                checked += 1
    assert checked > 50


def test_spheres_sit_on_the_arm_in_the_demo_images(episode, manifest):
    # with horizon 0 the spheres mark the current pose: the pixels under them show the (grey/white) arm
    renderer = TargetRenderer(manifest, TargetConfig(horizon=0))
    hits = total = 0
    for cam in ("front", "left_shoulder", "right_shoulder"):
        for t in range(0, episode.length, 4):
            target = renderer.render(episode, t, cam)
            centres = [c for c in target.centres.values() if c is not None]
            image = episode.frame(f"cameras/{cam}/rgb", t).astype(int)
            for u, v in centres:
                pixel = image[round(v), round(u)]
                greyish = (
                    np.ptp(pixel) < 40
                )  # arm links are grey/white, hand dark grey; table and sky are not
                hits += bool(greyish)
                total += 1
    assert total > 40 and hits / total > 0.8


def test_overhead_shows_only_the_gripper_sphere(episode, manifest):
    renderer = TargetRenderer(with_overhead(manifest))
    target = renderer.render(episode, 3, "overhead")
    assert target.names == ("gripper",)
    assert set(np.unique(target.sphere_id)) == {-1, 0}
    assert set(renderer.sphere_centres(episode, 3, "overhead")) == {"gripper"}


def colours_in(target):
    return {tuple(c) for c in target.sphere_rgb[target.alpha == 1]}


def test_gripper_sphere_is_yellow_when_closed_and_cyan_when_open(episode, manifest):
    gripper = episode.load("robot/gripper_open")
    renderer = TargetRenderer(manifest, TargetConfig(horizon=0))
    closed_t = int(np.flatnonzero(gripper <= 0.1)[0])
    closed = renderer.render(episode, closed_t, "front")
    opened = renderer.render(episode, 0, "front")
    assert (255, 255, 0) in colours_in(closed) and (5, 206, 235) not in colours_in(closed)
    assert (5, 206, 235) in colours_in(opened) and (255, 255, 0) not in colours_in(opened)
    side = renderer.render(episode, 0, "left_shoulder")
    assert {(154, 0, 0), (43, 207, 62), (132, 104, 240), (5, 206, 235), (0, 0, 0)} == colours_in(side)


def test_sphere_radius_follows_the_camera_scale(episode, manifest):
    assert GENIMA_CAMERA_SCALES == {
        "wrist": 3.0,
        "front": 8.0,
        "left_shoulder": 6.5,
        "right_shoulder": 6.5,
        "overhead": 6.5,
    }
    big = TargetRenderer(manifest, TargetConfig(joints=[])).render(episode, 0, "front")
    small = TargetRenderer(manifest, TargetConfig(joints=[], camera_scales={"front": 4.0})).render(
        episode, 0, "front"
    )
    assert (big.sphere_id == 0).sum() / (small.sphere_id == 0).sum() == pytest.approx(4.0, rel=0.15)


def test_render_episode_equals_rendering_frame_by_frame(episode, manifest):
    renderer = TargetRenderer(manifest, TargetConfig(supersample=2))
    for target in renderer.render_episode(episode, "wrist"):
        if target.t % 7:
            continue
        single = renderer.render(episode, target.t, "wrist")
        assert np.array_equal(single.sphere_rgb, target.sphere_rgb)
        assert np.array_equal(single.alpha, target.alpha)
        assert single.target_t == target.target_t == min(target.t + 20, episode.length - 2)


def test_short_episode_targets_its_second_to_last_frame(manifest):
    short = demo_episode(1, frames=5, size=SIZE)
    renderer = TargetRenderer(manifest)
    first, last = renderer.render(short, 0, "front"), renderer.render(short, 3, "front")
    assert first.target_t == last.target_t == 3
    assert np.array_equal(first.sphere_rgb, last.sphere_rgb)  # static camera, same target pose


def test_single_frame_episode_is_rejected(manifest):
    one = demo_episode(1, frames=1, size=SIZE)
    with pytest.raises(
        TargetError, match=r"episode episode1: length: episode has 1 frame; targets need at least 2"
    ):
        TargetRenderer(manifest).render(one, 0, "front")


def test_no_link_poses_and_no_usable_robot_model_is_a_one_line_error(episode, manifest):
    robot = manifest.robot.model_copy(update={"model": "urdf", "urdf": "missing/robot.urdf"})
    broken = manifest.model_copy(update={"robot": robot})
    with pytest.raises(GenimaDataError) as info:
        TargetRenderer(broken).render(episode, 0, "front")
    assert "episode episode0" in str(info.value) and "\n" not in str(info.value)


def test_recorded_link_poses_need_no_robot_model(episode, manifest):
    kin = load_kinematics(manifest.robot)
    q = episode.load("robot/joint_positions").astype(np.float64)
    recorded = episode.with_arrays({"robot/link_poses": kin.joint_frames(q), "robot/ee_pose": kin.ee_pose(q)})
    other_robot = manifest.model_copy(update={"robot": ur5e()})  # FK would put the spheres elsewhere
    from_fk = TargetRenderer(manifest).render(episode, 4, "front")
    from_record = TargetRenderer(other_robot).render(recorded, 4, "front")
    assert np.array_equal(from_fk.sphere_rgb, from_record.sphere_rgb)


def test_joint_beyond_the_robot_is_rejected(episode, manifest):
    config = TargetConfig(joints=[9], colours={"joints": {9: [1, 2, 3]}})
    with pytest.raises(
        TargetError, match="joints: config asks for joints \\[9\\] but the robot has 7 joint frames"
    ):
        TargetRenderer(manifest, config).render(episode, 0, "front")


def test_unknown_camera_is_rejected(episode, manifest):
    with pytest.raises(TargetError, match="camera 'side' is not in the manifest"):
        TargetRenderer(manifest).render(episode, 0, "side")


def test_config_round_trips_through_yaml(tmp_path):
    config = TargetConfig(horizon=12, joints=[3], camera_scales={"front": 5.0}, supersample=3)
    text = config.to_yaml(tmp_path / "targets.yaml")
    assert TargetConfig.from_yaml(tmp_path / "targets.yaml") == config
    assert "horizon: 12" in text
    assert config.fingerprint() != TargetConfig().fingerprint()


def test_partial_yaml_keeps_genima_defaults(tmp_path):
    (tmp_path / "c.yaml").write_text("horizon: 5\ncolours:\n  gripper_closed: [250, 250, 10]\n")
    config = TargetConfig.from_yaml(tmp_path / "c.yaml")
    assert config.horizon == 5 and config.joints == [1, 3, 5]
    assert config.colours.gripper_closed == [250, 250, 10] and config.colours.gripper_open == [5, 206, 235]


@pytest.mark.parametrize(
    "text,field",
    [
        ("radius_m: 0\n", "radius_m"),
        ("horizon: -1\n", "horizon"),
        ("joints: [1, 2]\n", None),
        ("sphere_size: 3\n", "sphere_size"),
        ("colours:\n  gripper_open: [300, 0, 0]\n", "colours.gripper_open.0"),
    ],
    ids=["zero-radius", "negative-horizon", "joint-without-colour", "unknown-key", "colour-out-of-range"],
)
def test_bad_config_is_a_one_line_error_naming_the_field(tmp_path, text, field):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(SchemaError) as info:
        TargetConfig.from_yaml(path)
    message = str(info.value)
    assert message.startswith(str(path)) and "\n" not in message
    if field:
        assert f": {field}: " in message


def test_unreadable_yaml_is_a_one_line_error(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("horizon: [1, 2\n")
    with pytest.raises(SchemaError, match="invalid YAML"):
        TargetConfig.from_yaml(path)
    with pytest.raises(SchemaError, match="cannot read target config"):
        TargetConfig.from_yaml(tmp_path / "absent.yaml")


def test_sphere_colours_name_every_colour_a_target_can_hold():
    assert TargetConfig().sphere_colours() == {
        "gripper_open": (5, 206, 235),
        "gripper_closed": (255, 255, 0),
        "joint1": (154, 0, 0),
        "joint3": (43, 207, 62),
        "joint5": (132, 104, 240),
    }


def with_nan(episode, path, frame, column=0):
    values = np.array(episode.load(path))
    values.reshape(len(values), -1)[frame, column] = np.nan
    return episode.with_arrays({path: values})


def test_nan_joints_at_a_target_frame_are_an_error_naming_field_and_frame(manifest, episode):
    # GENIMA's targets would silently lose spheres at that frame
    broken = with_nan(episode, "robot/joint_positions", 21, column=2)
    with pytest.raises(TargetError, match=r"episode episode0: robot/joint_positions: NaN or inf at frame 21"):
        TargetRenderer(manifest).render(broken, 0, "front")


def test_nan_gripper_state_at_a_target_frame_is_an_error(manifest, episode):
    broken = with_nan(episode, "robot/gripper_open", 22)
    with pytest.raises(TargetError, match=r"robot/gripper_open: NaN or inf at frame 22"):
        TargetRenderer(manifest).render(broken, 0, "front")


def test_nan_camera_pose_is_an_error_naming_the_extrinsics(manifest, episode):
    broken = with_nan(episode, "cameras/wrist/extrinsics", 3)
    renderer = TargetRenderer(manifest)
    renderer.render(broken, 3, "front")  # a static camera does not use them
    with pytest.raises(TargetError, match=r"cameras/wrist/extrinsics: NaN or inf at frame 3"):
        renderer.render(broken, 0, "wrist")


def test_nan_joints_at_frames_no_target_shows_still_render(manifest, episode):
    # with horizon 20 and 24 frames, targets show frames 20..22 only
    broken = with_nan(episode, "robot/joint_positions", 5)
    target = TargetRenderer(manifest).render(broken, 0, "front")
    assert np.array_equal(target.sphere_rgb, TargetRenderer(manifest).render(episode, 0, "front").sphere_rgb)

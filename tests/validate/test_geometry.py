"""Geometric checks fire on crafted bad copies of the demo (which is geometrically consistent)."""

from __future__ import annotations

import numpy as np

from genima_data.demo import look_at
from genima_data.geometry.kinematics import franka_panda_kinematics
from genima_data.geometry.transforms import make_transform
from genima_data.store import open_dataset
from genima_data.validate import Severity, ValidateOptions
from genima_data.validate.geometry import _target_frames
from tests.validate.conftest import findings_of, read_array, set_array, update_camera

EPISODE = "episode1"
GEOMETRY_CHECKS = [
    "target_joints_visible",
    "poses_match_fk",
    "static_cameras_still",
    "wrist_camera_follows_link",
]
LOOKING_AT_THE_SKY = look_at((0.0, 0.0, 3.0), (0.0, 0.1, 10.0))


def fk(dataset):
    q = read_array(dataset, EPISODE, "robot/joint_positions")
    return franka_panda_kinematics(), q


def shifted(T: np.ndarray, offset) -> np.ndarray:
    out = np.array(T, dtype=np.float64)
    out[..., :3, 3] += offset
    return out


def set_robot(dataset, **changes) -> None:
    ds = open_dataset(dataset, "a")
    ds.update_manifest(robot={**ds.manifest.robot.model_dump(mode="json"), **changes})


def test_demo_passes_the_geometric_checks(zarr_copy):
    for check in GEOMETRY_CHECKS:
        assert findings_of(zarr_copy, check) == [], check


# ---------------------------------------------------------------- target_joints_visible
def test_target_frame_is_t_plus_horizon_clamped_to_the_second_last_frame():
    assert _target_frames(24, 20).tolist() == [20, 21, 22, 22] + [22] * 20
    assert _target_frames(5, 20).tolist() == [3, 3, 3, 3, 3]  # episodes shorter than the horizon
    assert _target_frames(1, 20).tolist() == [0]


def test_targets_outside_every_camera_are_errors_naming_each_target(zarr_copy):
    for name in ("front", "left_shoulder", "right_shoulder"):
        update_camera(zarr_copy, name, T_world_camera=LOOKING_AT_THE_SKY.tolist())
    for episode in ("episode0", "episode1", "episode2"):
        set_array(zarr_copy, episode, "cameras/wrist/extrinsics", np.tile(LOOKING_AT_THE_SKY, (24, 1, 1)))
    findings = [f for f in findings_of(zarr_copy, "target_joints_visible") if f.episode == EPISODE]
    assert [f.severity for f in findings] == [Severity.error] * 4
    assert [f.field for f in findings] == ["robot/ee_pose", *["robot/link_poses"] * 3]
    assert (
        "gripper tool centre at the target frame (t + 20) is behind or outside every camera"
        in findings[0].message
    )
    assert [f.message.split(" at ")[0] for f in findings[1:]] == ["the joint 1", "the joint 3", "the joint 5"]
    assert all(f.frames == tuple(range(24)) for f in findings)


def test_recorded_link_poses_are_what_must_be_visible(zarr_copy):
    kin, q = fk(zarr_copy)
    far_away = shifted(kin.joint_frames(q), [0.0, 30.0, 0.0])  # recorded joints far to the side
    set_array(zarr_copy, EPISODE, "robot/link_poses", far_away)
    findings = [f for f in findings_of(zarr_copy, "target_joints_visible") if f.episode == EPISODE]
    assert [f.message.split(" at ")[0] for f in findings] == ["the joint 1", "the joint 3", "the joint 5"]


def test_no_recorded_poses_and_no_robot_model_is_reported_per_episode(zarr_copy):
    set_robot(zarr_copy, model="mystery_arm")
    findings = findings_of(zarr_copy, "target_joints_visible")
    assert len(findings) == 3 and all(f.severity == Severity.error for f in findings)
    assert (
        "no forward kinematics" in findings[0].message
        and "unknown robot model 'mystery_arm'" in findings[0].message
    )


# ---------------------------------------------------------------- poses_match_fk
def test_recorded_poses_equal_to_fk_pass(zarr_copy):
    kin, q = fk(zarr_copy)
    set_array(zarr_copy, EPISODE, "robot/link_poses", kin.joint_frames(q))
    set_array(zarr_copy, EPISODE, "robot/ee_pose", kin.ee_pose(q))
    assert findings_of(zarr_copy, "poses_match_fk") == []


def test_link_poses_in_another_joint_order_are_an_error_with_the_distance(zarr_copy):
    kin, q = fk(zarr_copy)
    set_array(zarr_copy, EPISODE, "robot/link_poses", kin.joint_frames(q)[:, ::-1])
    (finding,) = findings_of(zarr_copy, "poses_match_fk")
    assert finding.severity == Severity.error and finding.field == "robot/link_poses"
    assert finding.episode == EPISODE and finding.frames == tuple(range(24))
    assert "cm from forward kinematics of robot/joint_positions (joint 0)" in finding.message


def test_ee_pose_tolerance_is_configurable(zarr_copy):
    kin, q = fk(zarr_copy)
    set_array(zarr_copy, EPISODE, "robot/ee_pose", shifted(kin.ee_pose(q), [0.0, 0.0, 0.01]))
    assert findings_of(zarr_copy, "poses_match_fk") == []  # 1 cm is within the default 3 cm
    (finding,) = findings_of(zarr_copy, "poses_match_fk", options=ValidateOptions(fk_tolerance_m=0.005))
    assert (
        finding.field == "robot/ee_pose"
        and "up to 1.0 cm" in finding.message
        and "beyond 0.5 cm" in finding.message
    )


def test_ee_pose_is_compared_in_the_base_frame(zarr_copy):
    base = make_transform(np.eye(3), [-0.3, 0.0, 0.75])
    set_robot(zarr_copy, T_world_base=base.tolist())
    kin, q = fk(zarr_copy)
    world = kin.with_base(base).ee_pose(q)
    set_array(zarr_copy, EPISODE, "robot/ee_pose", world)  # a world-frame pose stored where base belongs
    (finding,) = findings_of(zarr_copy, "poses_match_fk")
    assert finding.field == "robot/ee_pose" and "up to 8" in finding.message
    set_array(zarr_copy, EPISODE, "robot/ee_pose", kin.ee_pose(q))  # the base-frame pose
    assert findings_of(zarr_copy, "poses_match_fk") == []


def test_wrong_number_of_link_poses_is_an_error(zarr_copy):
    kin, q = fk(zarr_copy)
    set_array(zarr_copy, EPISODE, "robot/link_poses", kin.joint_frames(q)[:, :5])
    (finding,) = findings_of(zarr_copy, "poses_match_fk")
    assert "has 5 frames per time step, the robot has 7 joints" in finding.message


def test_recorded_poses_without_a_robot_model_warn_that_fk_cannot_be_compared(zarr_copy):
    kin, q = fk(zarr_copy)
    set_array(zarr_copy, EPISODE, "robot/link_poses", kin.joint_frames(q))
    set_robot(zarr_copy, model="mystery_arm")
    (finding,) = findings_of(zarr_copy, "poses_match_fk")
    assert finding.severity == Severity.warning
    assert "cannot compare recorded poses with forward kinematics" in finding.message


# ---------------------------------------------------------------- static_cameras_still
def test_static_camera_extrinsics_that_move_are_an_error_listing_the_frames(zarr_copy):
    front = open_dataset(zarr_copy).manifest.camera("front").T_world_camera_array()
    extrinsics = np.tile(front, (24, 1, 1))
    set_array(zarr_copy, EPISODE, "cameras/front/extrinsics", extrinsics)
    assert findings_of(zarr_copy, "static_cameras_still") == []
    extrinsics[5:8, 0, 3] += 0.01
    set_array(zarr_copy, EPISODE, "cameras/front/extrinsics", extrinsics)
    (finding,) = findings_of(zarr_copy, "static_cameras_still")
    assert finding.field == "cameras/front/extrinsics" and finding.frames == (5, 6, 7)
    assert "moves up to 1.00 cm / 0.00° from the manifest's T_world_camera" in finding.message


def test_static_camera_extrinsics_must_match_the_manifest_pose(zarr_copy):
    front = open_dataset(zarr_copy).manifest.camera("front").T_world_camera_array()
    set_array(
        zarr_copy, EPISODE, "cameras/front/extrinsics", np.tile(shifted(front, [0, 0, 0.05]), (24, 1, 1))
    )
    (finding,) = findings_of(zarr_copy, "static_cameras_still")
    assert finding.frames == tuple(range(24)) and "5.00 cm" in finding.message


# ---------------------------------------------------------------- wrist_camera_follows_link
def test_wrist_camera_that_jumps_off_its_link_is_an_error(zarr_copy):
    wrist = read_array(zarr_copy, EPISODE, "cameras/wrist/extrinsics")
    wrist[9, 2, 3] += 0.05
    set_array(zarr_copy, EPISODE, "cameras/wrist/extrinsics", wrist)
    (finding,) = findings_of(zarr_copy, "wrist_camera_follows_link")
    assert finding.frames == (9,) and finding.field == "cameras/wrist/extrinsics"
    assert "in the frame of 'panda_hand' (forward kinematics)" in finding.message


def test_wrist_camera_must_match_its_manifest_hand_eye_calibration(zarr_copy):
    wrong = look_at((0.0, 0.1, 0.0), (0.0, 0.0, 0.3), up=(1, 0, 0))
    update_camera(zarr_copy, "wrist", T_link_camera=wrong.tolist())
    findings = [f for f in findings_of(zarr_copy, "wrist_camera_follows_link") if f.episode == EPISODE]
    assert len(findings) == 1 and "from the manifest's T_link_camera" in findings[0].message


def test_camera_on_the_ee_link_follows_the_recorded_ee_pose_with_a_tight_tolerance(zarr_copy):
    kin, q = fk(zarr_copy)
    tcp = kin.ee_pose(q)
    update_camera(zarr_copy, "wrist", mount="panda_grasptarget")
    set_array(zarr_copy, EPISODE, "robot/ee_pose", tcp)
    set_array(
        zarr_copy,
        EPISODE,
        "cameras/wrist/extrinsics",
        tcp @ look_at((0.05, 0, -0.08), (0, 0, 0.1), (1, 0, 0)),
    )
    assert [f for f in findings_of(zarr_copy, "wrist_camera_follows_link") if f.episode == EPISODE] == []
    wobble = tcp.copy()
    wobble[::2, 0, 3] += 0.005  # every other recorded gripper pose 5 mm off
    set_array(zarr_copy, EPISODE, "robot/ee_pose", wobble)
    (finding,) = [f for f in findings_of(zarr_copy, "wrist_camera_follows_link") if f.episode == EPISODE]
    assert "'panda_grasptarget' (robot/ee_pose)" in finding.message


def test_wrist_camera_without_kinematics_warns_that_it_cannot_be_followed(zarr_copy):
    set_robot(zarr_copy, model="mystery_arm")
    findings = findings_of(zarr_copy, "wrist_camera_follows_link")
    assert len(findings) == 3 and all(f.severity == Severity.warning for f in findings)
    assert "cannot follow mount link 'panda_hand'" in findings[0].message

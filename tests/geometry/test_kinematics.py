from pathlib import Path

import numpy as np
import pytest
import yourdfpy

from genima_data.errors import GeometryError
from genima_data.formats.rlbench_pickle import load_pickle
from genima_data.geometry.kinematics import (
    PANDA_MODIFIED_DH,
    UR5E_STANDARD_DH,
    fit_base_pose,
    franka_panda_kinematics,
    link_poses_or_fk,
    load_kinematics,
    shipped_urdf,
    ur5e_kinematics,
    urdf_kinematics,
)
from genima_data.geometry.transforms import (
    invert_transform,
    make_transform,
    pose_to_matrix,
    rotation_about_axis,
    rotation_angle,
)
from genima_data.robots import franka_panda, ur5e
from tests.conftest import RLBENCH_SAMPLE

BUILTINS = {"franka_panda": franka_panda_kinematics, "ur5e": ur5e_kinematics}
RLBENCH_TEST_DATA = Path(__file__).resolve().parents[1] / "data" / "rlbench"


def random_joints(kin, n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-np.pi, np.pi, (n, kin.dof))


def base_pose() -> np.ndarray:
    return make_transform(rotation_about_axis([0.2, 0.1, 1.0], 0.7), [-0.3, 0.05, 0.75])


# ---------------------------------------------------------------------- DH against URDF references
@pytest.mark.parametrize("model", BUILTINS)
def test_builtin_dh_matches_yourdfpy_on_the_shipped_urdf(model):
    kin = BUILTINS[model]()
    urdf = yourdfpy.URDF.load(str(shipped_urdf(model)), load_meshes=False)
    assert urdf.actuated_joint_names == kin.joint_names
    q = random_joints(kin, 40)
    ours = kin.link_poses(q)
    for i, config in enumerate(q):
        urdf.update_cfg(config)
        for link in kin.link_names:
            reference = urdf.get_transform(link, urdf.base_link)
            assert np.abs(ours[link][i][:3, 3] - reference[:3, 3]).max() < 1e-6, link
            assert np.abs(ours[link][i][:3, :3] - reference[:3, :3]).max() < 1e-9, link


@pytest.mark.parametrize("model", BUILTINS)
def test_urdf_kinematics_matches_the_builtin_dh_model(model):
    builtin = BUILTINS[model](base_pose())
    from_urdf = urdf_kinematics(shipped_urdf(model), builtin.joint_names, builtin.ee_link, base_pose())
    q = random_joints(builtin, 200, seed=1)
    assert from_urdf.link_names == builtin.link_names
    assert np.abs(from_urdf.joint_frames(q) - builtin.joint_frames(q)).max() < 1e-9
    assert np.abs(from_urdf.ee_pose(q) - builtin.ee_pose(q)).max() < 1e-9


def textbook_modified_dh(q: np.ndarray) -> np.ndarray:
    """Franka's tool-centre pose by Craig's formula, one matrix product per joint (test reference)."""
    T = np.eye(4)
    for (a, d, alpha), theta in zip(PANDA_MODIFIED_DH, q, strict=True):
        ca, sa, ct, st = np.cos(alpha), np.sin(alpha), np.cos(theta), np.sin(theta)
        T = T @ np.array(
            [[ct, -st, 0, a], [st * ca, ct * ca, -sa, -d * sa], [st * sa, ct * sa, ca, d * ca], [0, 0, 0, 1]]
        )
    flange_to_tcp = make_transform(rotation_about_axis([0, 0, 1], -np.pi / 4), [0, 0, 0.107 + 0.1034])
    return T @ flange_to_tcp


def textbook_standard_dh(q: np.ndarray) -> np.ndarray:
    """UR5e's tool0 pose by the standard DH formula (test reference)."""
    T = np.eye(4)
    for (d, a, alpha), theta in zip(UR5E_STANDARD_DH, q, strict=True):
        ca, sa, ct, st = np.cos(alpha), np.sin(alpha), np.cos(theta), np.sin(theta)
        T = T @ np.array(
            [[ct, -st * ca, st * sa, a * ct], [st, ct * ca, -ct * sa, a * st], [0, sa, ca, d], [0, 0, 0, 1]]
        )
    return T


@pytest.mark.parametrize(
    ("model", "reference"), [("franka_panda", textbook_modified_dh), ("ur5e", textbook_standard_dh)]
)
def test_tool_pose_matches_the_textbook_dh_formula(model, reference):
    kin = BUILTINS[model]()
    q = random_joints(kin, 25, seed=2)
    expected = np.stack([reference(config) for config in q])
    assert np.abs(kin.ee_pose(q) - expected).max() < 1e-12


def test_published_zero_poses():
    # Panda at zero: flange 0.926 m up, tool centre 0.1034 m below it, 0.088 m forward
    assert np.allclose(franka_panda_kinematics().ee_pose(np.zeros(7))[:3, 3], [0.088, 0.0, 0.8226])
    # UR5e at zero: arm stretched along -x
    assert np.allclose(ur5e_kinematics().ee_pose(np.zeros(6))[:3, 3], [-0.8172, -0.2329, 0.0628])


# ---------------------------------------------------------------------- batching, base pose, links
def test_base_pose_is_applied_to_every_output():
    q = random_joints(franka_panda_kinematics(), 10)
    at_origin, placed = franka_panda_kinematics(), franka_panda_kinematics(base_pose())
    assert np.allclose(placed.joint_frames(q), base_pose() @ at_origin.joint_frames(q))
    assert np.allclose(placed.link_pose(q, "panda_hand"), base_pose() @ at_origin.link_pose(q, "panda_hand"))


def test_fk_batches_over_any_leading_shape():
    kin = franka_panda_kinematics()
    q = random_joints(kin, 12).reshape(3, 4, 7)
    frames = kin.joint_frames(q)
    assert frames.shape == (3, 4, 7, 4, 4)
    assert np.allclose(frames[1, 2], kin.joint_frames(q[1, 2]))
    assert kin.ee_pose(q[0, 0]).shape == (4, 4)


def test_joint_frames_sit_on_their_joint_axes():
    kin = franka_panda_kinematics()
    q = random_joints(kin, 5)
    q_moved = q.copy()
    q_moved[:, 3] += 0.4
    frames, moved = kin.joint_frames(q), kin.joint_frames(q_moved)
    # turning joint 4 leaves its own frame's origin and z axis in place, and moves what comes after it
    assert np.allclose(frames[:, 3, :3, 3], moved[:, 3, :3, 3])
    assert np.allclose(frames[:, 3, :3, 2], moved[:, 3, :3, 2])
    assert not np.allclose(frames[:, 4, :3, 3], moved[:, 4, :3, 3])


def test_wrong_number_of_joints_is_a_geometry_error():
    with pytest.raises(GeometryError, match=r"expected \(\.\.\., 7\)"):
        franka_panda_kinematics().ee_pose(np.zeros((5, 6)))


def test_unknown_link_is_a_geometry_error_listing_the_links():
    with pytest.raises(GeometryError, match="no link 'gripper'.*panda_hand"):
        franka_panda_kinematics().link_pose(np.zeros(7), "gripper")


def test_fit_base_pose_recovers_the_base_from_recorded_positions():
    kin = franka_panda_kinematics()
    q = random_joints(kin, 30)
    recorded = kin.with_base(base_pose()).joint_frames(q)[..., :3, 3]
    T_world_base, residuals = fit_base_pose(kin, q, recorded)
    assert np.allclose(T_world_base, base_pose(), atol=1e-9)
    assert residuals.shape == (30, 7) and residuals.max() < 1e-9


# ---------------------------------------------------------------------- load_kinematics and bad input
def test_load_kinematics_builds_the_builtin_models_at_the_robot_base():
    kin = load_kinematics(franka_panda(base_pose()))
    assert kin.name == "franka_panda" and kin.ee_link == "panda_grasptarget"
    assert np.allclose(kin.T_world_base, base_pose())
    assert load_kinematics(ur5e()).dof == 6


def test_robot_joint_offsets_are_added_to_the_recorded_joints_before_fk():
    offsets = [0.0, 0.1, 0.0, 0.07, 0.0, -0.2, 0.0]
    kin = load_kinematics(franka_panda(base_pose()).model_copy(update={"joint_offsets": offsets}))
    q = random_joints(kin, 10)
    assert np.array_equal(kin.joint_frames(q), franka_panda_kinematics(base_pose()).joint_frames(q + offsets))
    assert np.array_equal(kin.with_ee_link("panda_hand").joint_offsets, offsets)


def test_joint_offsets_of_the_wrong_length_are_refused():
    with pytest.raises(ValueError, match="joint_offsets has 2 entries for 7 joints"):
        franka_panda().model_validate({**franka_panda().model_dump(), "joint_offsets": [0.0, 0.1]})
    with pytest.raises(GeometryError, match="7 joints but 2 joint offsets"):
        franka_panda_kinematics().with_joint_offsets([0.0, 0.1])


def test_unknown_robot_model_is_a_one_line_error_naming_the_field():
    robot = franka_panda().model_copy(update={"model": "kuka_iiwa"})
    with pytest.raises(GeometryError) as err:
        load_kinematics(robot)
    assert str(err.value).startswith(
        "robot.model: unknown robot model 'kuka_iiwa'; built in: franka_panda, ur5e"
    )
    assert "\n" not in str(err.value)


def test_builtin_model_with_the_wrong_joint_count_is_rejected():
    robot = franka_panda().model_copy(
        update={
            "joint_names": ["a", "b"],
            "joint_lower": [-1, -1],
            "joint_upper": [1, 1],
            "joint_velocity_limits": None,
        }
    )
    with pytest.raises(GeometryError, match="has 7 joints, the manifest lists 2"):
        load_kinematics(robot)


def test_urdf_robot_is_read_relative_to_the_dataset_root(tmp_path):
    (tmp_path / "robot").mkdir()
    (tmp_path / "robot" / "arm.urdf").write_text(shipped_urdf("ur5e").read_text())
    robot = ur5e().model_copy(update={"model": "urdf", "urdf": "robot/arm.urdf"})
    kin = load_kinematics(robot, root=tmp_path)
    q = random_joints(kin, 5)
    assert np.allclose(kin.ee_pose(q), ur5e_kinematics().ee_pose(q))


def test_urdf_that_fails_to_parse_is_a_one_line_error_naming_the_file(tmp_path):
    broken = tmp_path / "broken.urdf"
    broken.write_text(shipped_urdf("ur5e").read_text()[:900])
    with pytest.raises(GeometryError) as err:
        urdf_kinematics(broken, ["shoulder_pan_joint"])
    message = str(err.value)
    assert message.startswith(f"{broken}: robot.urdf: cannot parse URDF")
    assert "\n" not in message


def test_missing_urdf_file_is_reported(tmp_path):
    with pytest.raises(GeometryError, match="URDF file not found"):
        urdf_kinematics(tmp_path / "nope.urdf", ["j1"])


def test_urdf_without_the_manifest_joints_lists_what_it_has(tmp_path):
    with pytest.raises(GeometryError, match=r"no movable joints \['joint_a'\].*shoulder_pan_joint"):
        urdf_kinematics(shipped_urdf("ur5e"), ["joint_a"])


def test_urdf_with_two_parents_for_a_link_is_rejected(tmp_path):
    text = shipped_urdf("ur5e").read_text().replace('<child link="tool0"/>', '<child link="wrist_3_link"/>')
    path = tmp_path / "loop.urdf"
    path.write_text(text)
    with pytest.raises(GeometryError, match="two parent joints"):
        urdf_kinematics(path, ["shoulder_pan_joint"])


# ---------------------------------------------------------------------- recorded poses or FK
def test_fk_supplies_link_and_ee_poses_when_none_were_recorded(manifest, make_episode):
    episode = make_episode(0, frames=5)
    links, ee = link_poses_or_fk(manifest, episode)
    kin = load_kinematics(manifest.robot)
    q = episode.load("robot/joint_positions")
    assert links.shape == (5, 7, 4, 4) and np.allclose(links, kin.joint_frames(q))
    assert np.allclose(ee, kin.ee_pose(q))


def test_recorded_link_poses_win_and_recorded_ee_pose_is_taken_from_the_base_frame(manifest, make_episode):
    manifest = manifest.model_copy(update={"robot": franka_panda(base_pose())})
    recorded_links = np.tile(np.eye(4), (5, 7, 1, 1))
    recorded_links[..., 0, 3] = np.arange(7)
    ee_in_base = np.tile(make_transform(np.eye(3), [0.4, 0.0, 0.3]), (5, 1, 1))
    episode = make_episode(0, frames=5).with_arrays(
        {"robot/link_poses": recorded_links, "robot/ee_pose": ee_in_base}
    )
    links, ee = link_poses_or_fk(manifest, episode)
    assert np.array_equal(links, recorded_links)
    assert np.allclose(ee, base_pose() @ ee_in_base)


def test_no_recorded_poses_and_no_robot_model_is_an_error_naming_the_episode(manifest, make_episode):
    manifest = manifest.model_copy(
        update={"robot": franka_panda().model_copy(update={"model": "mystery_arm"})}
    )
    with pytest.raises(GeometryError) as err:
        link_poses_or_fk(manifest, make_episode(0, frames=5))
    message = str(err.value)
    assert message.startswith("episode episode0: robot/link_poses: no recorded robot/link_poses")
    assert "unknown robot model 'mystery_arm'" in message


def test_recorded_poses_need_no_robot_model(manifest, make_episode):
    manifest = manifest.model_copy(
        update={"robot": franka_panda().model_copy(update={"model": "mystery_arm"})}
    )
    arrays = {
        "robot/link_poses": np.tile(np.eye(4), (5, 7, 1, 1)),
        "robot/ee_pose": np.tile(np.eye(4), (5, 1, 1)),
    }
    links, ee = link_poses_or_fk(manifest, make_episode(0, frames=5).with_arrays(arrays))
    assert links.shape == (5, 7, 4, 4) and ee.shape == (5, 4, 4)


# ---------------------------------------------------------------------- real RLBench recordings
def rlbench_pickles() -> list[Path]:
    bundled = sorted(RLBENCH_TEST_DATA.glob("*.pkl"))
    shared = sorted(RLBENCH_SAMPLE.glob("reach_target/variation*/episodes/*/low_dim_obs.pkl"))
    return bundled + [p for p in shared if p.stat().st_size != 262144]  # the sample's truncated file


def load_rlbench(path: Path) -> dict[str, np.ndarray]:
    observations = load_pickle(path)._observations
    return {
        "q": np.array([o.joint_positions for o in observations], dtype=np.float64),
        "joint_poses": pose_to_matrix(np.array([o.misc["joint_poses"] for o in observations])),
        "gripper_matrix": np.array([o.gripper_matrix for o in observations], dtype=np.float64),
        "wrist": np.array([o.misc["wrist_camera_extrinsics"] for o in observations], dtype=np.float64),
    }


@pytest.fixture(scope="module")
def rlbench() -> dict[str, np.ndarray]:
    """RLBench recordings concatenated: the two bundled ones, plus the shared sample when present."""
    episodes = [load_rlbench(p) for p in rlbench_pickles()]
    return {key: np.concatenate([e[key] for e in episodes]) for key in episodes[0]}


def test_rlbench_joint_poses_lie_within_1_7_cm_of_panda_fk_with_a_fitted_base(rlbench):
    kin = franka_panda_kinematics()
    T_world_base, residuals = fit_base_pose(kin, rlbench["q"], rlbench["joint_poses"][..., :3, 3])
    assert np.allclose(T_world_base[:3, 3], [-0.245, -0.006, 0.752], atol=0.01)
    assert residuals.mean(axis=0).max() < 0.01  # per joint, on average under a centimetre
    assert residuals.max() < 0.0175  # measured 1.70 cm worst case over the 49 readable sample episodes


def test_rlbench_gripper_matrix_is_fks_tool_centre_turned_half_a_turn_about_z(rlbench):
    kin = franka_panda_kinematics()
    T_world_base, _ = fit_base_pose(kin, rlbench["q"], rlbench["joint_poses"][..., :3, 3])
    tcp = kin.with_base(T_world_base).ee_pose(rlbench["q"])
    distance = np.linalg.norm(tcp[:, :3, 3] - rlbench["gripper_matrix"][:, :3, 3], axis=1)
    assert distance.mean() < 0.012 and distance.max() < 0.025  # measured 9.9 mm mean, 23 mm worst
    # RLBench's tip frame has x and y reversed relative to Franka's TCP frame
    relative = invert_transform(tcp)[:, :3, :3] @ rlbench["gripper_matrix"][:, :3, :3]
    assert rotation_angle(relative @ rotation_about_axis([0, 0, 1], np.pi)).max() < np.deg2rad(4.5)


def test_rlbench_panda_is_franka_dh_with_joint_4_turned_by_4_degrees(rlbench):
    # Measured: with q4 + 3.98° and an upright base, FK reproduces all seven recorded joint positions and
    # axes to ~1.5 mm / 0.3°; the discrepancy of the plain DH model is CoppeliaSim's joint-4 zero, not noise.
    q = rlbench["q"].copy()
    q[:, 3] += np.deg2rad(3.98)
    kin = franka_panda_kinematics()
    base = (rlbench["joint_poses"][:, 0, :3, 3] - kin.joint_frames(q)[:, 0, :3, 3]).mean(axis=0)
    frames = kin.with_base(make_transform(np.eye(3), base)).joint_frames(q)
    distance = np.linalg.norm(frames[..., :3, 3] - rlbench["joint_poses"][..., :3, 3], axis=-1)
    assert distance.max() < 0.002
    axis_error = np.arccos(
        np.clip(np.sum(frames[..., :3, 2] * rlbench["joint_poses"][..., :3, 2], -1), -1, 1)
    )
    assert axis_error.max() < np.deg2rad(0.3)
    # and the wrist camera is rigidly attached to RLBench's gripper tip frame
    wrist_in_tip = invert_transform(rlbench["gripper_matrix"]) @ rlbench["wrist"]
    assert np.ptp(wrist_in_tip[:, :3, 3], axis=0).max() < 1e-4


def test_bundled_rlbench_pickles_exist_for_ci():
    assert {p.name for p in RLBENCH_TEST_DATA.glob("*.pkl")} == {
        "reach_target_v0_e9.pkl",
        "reach_target_v4_e3.pkl",
    }


@pytest.mark.skipif(not RLBENCH_SAMPLE.exists(), reason="shared RLBench sample not available")
def test_shared_rlbench_sample_is_included_when_present():
    assert len(rlbench_pickles()) == 2 + 49

import filecmp
import pickle
import shutil

import numpy as np
import pytest

from genima_data.convert import convert
from genima_data.demo import build_demo
from genima_data.episode import Episode, LazyFrames
from genima_data.errors import FormatError
from genima_data.formats import detect_format
from genima_data.formats import rlbench_layout as layout
from genima_data.formats.rlbench import (
    COMMITTED_MARKER,
    PENDING_MARKER,
    RLBenchReader,
    RLBenchWriter,
    matrix_to_pose7,
    pose7_to_matrix,
)
from genima_data.formats.rlbench_images import depth_from_png, read_png_rgb
from genima_data.formats.rlbench_pickle import dumps_pickle, load_pickle
from genima_data.store import create_dataset, open_dataset
from tests.conftest import RLBENCH_TEST_DATA, load_with_fake_rlbench, synthetic_rlbench_frame
from tests.test_convert import assert_datasets_equal

EPISODES = ["reach_target_v0_e3", "reach_target_v0_e8", "reach_target_v0_e9"]
DESCRIPTIONS = ["reach the red target", "touch the red ball with the panda gripper", "reach the red sphere"]
OPENCV_FROM_RLBENCH = np.diag([-1.0, -1.0, 1.0, 1.0])


def episode_dir(root, episode=3, variation=0):
    return root / "reach_target" / f"variation{variation}" / "episodes" / f"episode{episode}"


def raw_demo(root, episode=3):
    return load_pickle(episode_dir(root, episode) / "low_dim_obs.pkl")


def one_line_error(excinfo) -> str:
    message = str(excinfo.value)
    assert len(message.splitlines()) == 1
    return message


def cli_error(result) -> str:
    """The CLI's one error line (stderr also carries the progress bar)."""
    lines = result.stderr.strip().splitlines()
    assert [line for line in lines if line.startswith("error:")] == lines[-1:]
    return lines[-1]


# ------------------------------------------------------------------------------------------------ reader
def test_episodes_are_named_by_task_variation_and_index_in_natural_order(rlbench_dir):
    reader = RLBenchReader(rlbench_dir)
    assert detect_format(rlbench_dir) == "rlbench"
    assert reader.episode_ids == EPISODES
    meta = reader.episode("reach_target_v0_e8").meta
    assert (meta.task, meta.variation, meta.length, meta.success) == ("reach_target", 0, 38, True)
    assert meta.instruction == DESCRIPTIONS[0]
    assert meta.source.format == "rlbench" and meta.source.index == 8
    assert meta.source.path == "reach_target/variation0/episodes/episode8"
    assert reader.manifest.tasks[0].instructions == DESCRIPTIONS
    assert reader.manifest.fps == 20.0


def test_robot_fields_are_mapped_from_the_observations(rlbench_dir):
    raw = raw_demo(rlbench_dir)
    with RLBenchReader(rlbench_dir).episode("reach_target_v0_e3") as ep:
        T = ep.length
        q = np.stack([o.joint_positions for o in raw])
        assert np.array_equal(ep.load("robot/joint_positions"), q.astype(np.float32))
        assert np.array_equal(
            ep.load("robot/joint_velocities"), np.stack([o.joint_velocities for o in raw]).astype(np.float32)
        )
        assert np.array_equal(
            ep.load("robot/joint_forces"), np.stack([o.joint_forces for o in raw]).astype(np.float32)
        )
        assert np.array_equal(
            ep.load("robot/gripper_open"), np.array([o.gripper_open for o in raw], np.float32)
        )
        T_world_base = np.array(RLBenchReader(rlbench_dir).manifest.robot.T_world_base)
        gripper_world = np.stack([o.gripper_matrix for o in raw])
        assert np.allclose(T_world_base @ ep.load("robot/ee_pose"), gripper_world, atol=1e-12)  # base frame
        assert np.array_equal(ep.load("timestamps"), np.arange(T) / 20.0)
        assert np.array_equal(ep.load("extras/rlbench/gripper_pose"), np.stack([o.gripper_pose for o in raw]))
        assert np.array_equal(
            ep.load("extras/rlbench/task_low_dim_state"), np.stack([o.task_low_dim_state for o in raw])
        )


def test_link_poses_are_the_recorded_joint_poses_as_matrices(rlbench_dir):
    raw = raw_demo(rlbench_dir)
    with RLBenchReader(rlbench_dir).episode("reach_target_v0_e3") as ep:
        link_poses = ep.load("robot/link_poses")
    poses = np.array([o.misc["joint_poses"] for o in raw])  # (T, 7, 7)
    assert link_poses.shape == (40, 7, 4, 4)
    assert np.array_equal(link_poses[..., :3, 3], poses[..., :3])
    # rotating a vector by the matrix equals rotating it by the quaternion (x, y, z, w)
    v = np.array([0.3, -0.2, 0.9])
    q, w = poses[..., 3:6], poses[..., 6:7]
    by_quaternion = v + 2 * w * np.cross(q, v) + 2 * np.cross(q, np.cross(q, v))
    assert np.allclose(link_poses[..., :3, :3] @ v, by_quaternion, atol=1e-6)


def test_pose_matrix_conversion_inverts_up_to_quaternion_sign():
    rng = np.random.default_rng(1)
    q = rng.normal(size=(200, 4))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    poses = np.concatenate([rng.normal(size=(200, 3)), q], axis=1)
    back = matrix_to_pose7(pose7_to_matrix(poses))
    sign = np.sign(poses[:, 6:7])
    assert np.allclose(back[:, 3:] * sign, poses[:, 3:], atol=1e-12) and back[:, 6].min() >= 0


def test_frame_zero_action_holds_the_state_and_is_marked_missing(rlbench_dir):
    raw = raw_demo(rlbench_dir)
    with RLBenchReader(rlbench_dir).episode("reach_target_v0_e3") as ep:
        action = ep.load("action/joint_positions")
        missing = ep.load("extras/rlbench/missing/misc/joint_position_action")
        source = ep.load("extras/rlbench/misc/joint_position_action")
    recorded = np.stack([o.misc["joint_position_action"] for o in raw[1:]])
    assert np.array_equal(action[1:], recorded.astype(np.float32))
    assert np.array_equal(
        action[0], np.append(raw[0].joint_positions, raw[0].gripper_open).astype(np.float32)
    )
    assert missing.tolist() == [2] + [0] * 39  # 2: the key is absent from frame 0's misc
    assert np.array_equal(source[1:], recorded)  # float64 kept: float32 cannot hold these values


def test_robot_base_is_joint_one_frame_lowered_by_d1(rlbench_dir):
    joint1 = raw_demo(rlbench_dir)[0].misc["joint_poses"][0]
    T = np.array(RLBenchReader(rlbench_dir).manifest.robot.T_world_base)
    assert np.allclose(T[:3, 3], joint1[:3] - [0, 0, 0.333])
    assert np.array_equal(T[:3, :3], np.eye(3))  # joint 1's recorded frame does not turn with q1


def test_cameras_are_converted_to_opencv_static_into_the_manifest_wrist_per_frame(rlbench_dir):
    raw = raw_demo(rlbench_dir)
    reader = RLBenchReader(rlbench_dir)
    cameras = {c.name: c for c in reader.manifest.cameras}
    assert sorted(cameras) == ["front", "left_shoulder", "overhead", "right_shoulder", "wrist"]
    front = cameras["front"]
    assert (front.width, front.height, front.mount) == (128, 128, "world")
    K_rlbench = raw[0].misc["front_camera_intrinsics"]
    assert front.K_array[0, 0] == -K_rlbench[0, 0] > 0 and front.K_array[0, 2] == K_rlbench[0, 2] - 0.5
    assert np.array_equal(
        front.T_world_camera_array(), raw[0].misc["front_camera_extrinsics"] @ OPENCV_FROM_RLBENCH
    )
    assert front.depth_range == (raw[0].misc["front_camera_near"], raw[0].misc["front_camera_far"])
    wrist = cameras["wrist"]
    assert wrist.mount == reader.manifest.robot.ee_link == "panda_grasptarget"
    assert wrist.T_world_camera is None
    with reader.episode("reach_target_v0_e3") as ep:
        wrist_poses = ep.load("cameras/wrist/extrinsics")
        assert not any(p.startswith("cameras/front/extrinsics") for p in ep.paths())
    assert np.array_equal(
        wrist_poses, np.stack([o.misc["wrist_camera_extrinsics"] for o in raw]) @ OPENCV_FROM_RLBENCH
    )


def test_wrist_camera_rides_on_the_ee_link_and_rendering_uses_its_recorded_poses(rlbench_dir):
    from genima_data.geometry.camera import camera_poses

    reader = RLBenchReader(rlbench_dir)
    wrist, T_world_base = reader.manifest.camera("wrist"), np.array(reader.manifest.robot.T_world_base)
    with reader.episode("reach_target_v0_e8") as ep:
        recorded = ep.load("cameras/wrist/extrinsics")
        from_link = T_world_base @ ep.load("robot/ee_pose") @ wrist.T_link_camera_array()
        assert np.array_equal(camera_poses(reader.manifest, ep, "wrist"), recorded)
    # T_link_camera comes from episode 3's first frame and holds in every frame of another episode
    assert np.allclose(from_link, recorded, atol=1e-5)


def test_manifest_camera_projects_the_gripper_where_rlbench_does(rlbench_dir):
    raw = raw_demo(rlbench_dir)
    front = RLBenchReader(rlbench_dir).manifest.camera("front")
    p = raw[10].gripper_matrix[:3, 3]
    # RLBench's projection (data README): p_c = R^T (p - C), u = K00 x/z + K02, v = K11 y/z + K12
    E, K = raw[10].misc["front_camera_extrinsics"], raw[10].misc["front_camera_intrinsics"]
    pc = E[:3, :3].T @ (p - E[:3, 3])
    u_rlbench, v_rlbench = K[0, 0] * pc[0] / pc[2] + K[0, 2], K[1, 1] * pc[1] / pc[2] + K[1, 2]
    T = front.T_world_camera_array()
    x = T[:3, :3].T @ (p - T[:3, 3])
    uv = (front.K_array @ (x / x[2]))[:2]
    assert x[2] > 0
    assert np.allclose(uv, [u_rlbench - 0.5, v_rlbench - 0.5], atol=1e-9)


def test_images_are_read_lazily_and_decoded_the_rlbench_way(rlbench_dir):
    with RLBenchReader(rlbench_dir).episode("reach_target_v0_e9") as ep:
        assert isinstance(ep["cameras/front/rgb"], LazyFrames) and ep["cameras/front/rgb"].shape == (
            24,
            128,
            128,
            3,
        )
        assert "cameras/overhead/depth" not in ep  # only the folders that exist
        expected = synthetic_rlbench_frame("front", 6)
        assert np.array_equal(ep.frame("cameras/front/rgb", 6), expected["rgb"])
        assert np.array_equal(ep.frame("cameras/front/mask", 6), expected["mask"])
        depth = ep.frame("cameras/front/depth", 6)
        assert depth.dtype == np.float32 and np.abs(depth - expected["depth"]).max() < 3e-7
        near, far = (
            raw_demo(rlbench_dir, 9)[6].misc["front_camera_near"],
            raw_demo(rlbench_dir, 9)[6].misc["front_camera_far"],
        )
        packed = read_png_rgb(episode_dir(rlbench_dir, 9) / "front_depth" / "6.png")
        assert np.array_equal(depth, depth_from_png(packed, near, far))


# ------------------------------------------------------------------------------------------------ round trip
@pytest.mark.parametrize("store", ["s1.zarr", "s1_h5"])
def test_rlbench_to_store_to_rlbench_to_store_is_exact(rlbench_dir, tmp_path, store):
    first, exported, second = tmp_path / store, tmp_path / "exported", tmp_path / ("s2" + store[2:])
    assert convert(rlbench_dir, first, to=None if store.endswith(".zarr") else "hdf5").written == EPISODES
    assert convert(first, exported, to="rlbench").written == EPISODES
    assert detect_format(exported) == "rlbench"
    convert(exported, second, to=None if store.endswith(".zarr") else "hdf5")
    assert_datasets_equal(first, second)
    for e in (3, 8, 9):
        src, dst = episode_dir(rlbench_dir, e), episode_dir(exported, e)
        assert (dst / "low_dim_obs.pkl").read_bytes() == (src / "low_dim_obs.pkl").read_bytes()
        for folder in (p for p in src.iterdir() if p.is_dir()):
            assert sorted(p.name for p in (dst / folder.name).iterdir()) == sorted(
                p.name for p in folder.iterdir()
            )
        for t in (0, 5):
            for cam, kind in (("front", "rgb"), ("wrist", "mask"), ("left_shoulder", "rgb")):
                a, b = (read_png_rgb(d / f"{cam}_{kind}" / f"{t}.png") for d in (src, dst))
                assert np.array_equal(a, b), (cam, kind)
    descriptions = "reach_target/variation0/variation_descriptions.pkl"
    assert (exported / descriptions).read_bytes() == (rlbench_dir / descriptions).read_bytes()


def test_edited_store_arrays_win_over_kept_rlbench_source_values(rlbench_dir, tmp_path):
    store = tmp_path / "s.zarr"
    convert(rlbench_dir, store)
    ds = open_dataset(store, mode="a")
    with ds.episode("reach_target_v0_e9") as ep:
        action = ep.load("action/joint_positions")
    action[5, 0] = 1.25
    ds.add_arrays("reach_target_v0_e9", {"action/joint_positions": action}, replace=True)
    convert(store, tmp_path / "out", to="rlbench", episodes=["reach_target_v0_e9"])
    written = load_pickle(episode_dir(tmp_path / "out", 9) / "low_dim_obs.pkl")
    original = raw_demo(rlbench_dir, 9)
    assert written[5].misc["joint_position_action"][0] == 1.25
    assert np.array_equal(
        written[6].misc["joint_position_action"], original[6].misc["joint_position_action"].astype(np.float32)
    )
    assert "joint_position_action" not in written[0].misc


def test_edited_ee_pose_exports_as_the_world_frame_gripper_matrix(rlbench_dir, tmp_path):
    store = tmp_path / "s_h5"
    convert(rlbench_dir, store, to="hdf5", episodes=["reach_target_v0_e9"])
    ds = open_dataset(store, mode="a")
    T_world_base = np.array(ds.manifest.robot.T_world_base)
    with ds.episode("reach_target_v0_e9") as ep:
        ee_pose = ep.load("robot/ee_pose")
    ee_pose[5, :3, 3] += [0.01, 0.0, -0.02]  # moved in the base frame
    ds.add_arrays("reach_target_v0_e9", {"robot/ee_pose": ee_pose}, replace=True)
    convert(store, tmp_path / "out", to="rlbench")
    written = load_pickle(episode_dir(tmp_path / "out", 9) / "low_dim_obs.pkl")
    original = raw_demo(rlbench_dir, 9)
    assert np.allclose(written[5].gripper_matrix, T_world_base @ ee_pose[5], atol=1e-12)
    assert not np.allclose(written[5].gripper_matrix, original[5].gripper_matrix, atol=1e-3)
    assert np.array_equal(written[6].gripper_matrix, original[6].gripper_matrix)
    with RLBenchReader(tmp_path / "out").episode("reach_target_v0_e9") as ep:
        assert np.allclose(ep.load("robot/ee_pose"), ee_pose, atol=1e-12)


@pytest.fixture
def demo_with_targets(tmp_path):
    """The demo dataset (not from RLBench) with synthetic rendered targets on every camera."""
    path = tmp_path / "demo_h5"
    ds = build_demo(path, episodes=2, frames=6, size=32)
    ds = open_dataset(path, mode="a")
    for eid in ds.episode_ids:
        with ds.episode(eid) as ep:
            targets = {}
            for cam in ep.camera_names:
                if f"cameras/{cam}/rgb" in ep:
                    rgb = ep.load(f"cameras/{cam}/rgb")
                    targets[f"targets/{cam}/rgb"] = 255 - rgb
                    targets[f"targets/{cam}/rnd_bg"] = rgb // 2
        ds.add_arrays(eid, targets)
    return path


def test_export_of_a_non_rlbench_dataset_writes_genima_target_folders(demo_with_targets, tmp_path):
    out = tmp_path / "train_data"
    result = convert(demo_with_targets, out, to="rlbench")
    assert result.written == ["episode0", "episode1"] and result.manifest is not None
    source = open_dataset(demo_with_targets)
    rendered, rnd_bg = tmp_path / "train_data_rgb_rendered", tmp_path / "train_data_rnd_bg"
    instructions = source.manifest.tasks[0].instructions
    for root in (out, rendered, rnd_bg):
        assert load_pickle(root / "reach_target/variation0/variation_descriptions.pkl") == instructions
    with source.episode("episode1") as ep:
        folder = layout.episode_folder(out, "reach_target", 0, 1)
        assert np.array_equal(read_png_rgb(folder / "front_rgb" / "3.png"), ep.frame("cameras/front/rgb", 3))
        assert not (folder / "front_depth").exists()
        target_folder = layout.episode_folder(rendered, "reach_target", 0, 1)
        assert np.array_equal(
            read_png_rgb(target_folder / "wrist_rgb" / "2.png"), ep.frame("targets/wrist/rgb", 2)
        )
        bg_folder = layout.episode_folder(rnd_bg, "reach_target", 0, 1)
        assert np.array_equal(
            read_png_rgb(bg_folder / "front_rgb" / "5.png"), ep.frame("targets/front/rnd_bg", 5)
        )
        assert (target_folder / "low_dim_obs.pkl").read_bytes() == (folder / "low_dim_obs.pkl").read_bytes()
        # GENIMA's diffusion loader: 2x2 tiles [wrist, front; right_shoulder, left_shoulder] for t < T-1
        tiles = sorted(p.name for p in (target_folder / "tiled_rgb_rendered").iterdir())
        assert tiles == [f"{t}.png" for t in range(5)]
        tiled = read_png_rgb(target_folder / "tiled_rgb_rendered" / "4.png")
        assert tiled.shape == (64, 64, 3)
        assert np.array_equal(tiled[:32, 32:], ep.frame("targets/front/rgb", 4))
        assert np.array_equal(tiled[32:, :32], ep.frame("targets/right_shoulder/rgb", 4))
        assert np.array_equal(
            read_png_rgb(target_folder / "tiled_rgb" / "0.png")[:32, :32], ep.frame("cameras/wrist/rgb", 0)
        )
        demo = load_pickle(folder / "low_dim_obs.pkl")
        plain = load_with_fake_rlbench(folder / "low_dim_obs.pkl")
        assert plain["classes"] == ["rlbench.backend.observation.Observation", "rlbench.demo.Demo"]
        assert plain["q2"] == demo[2].joint_positions.tolist() and "gripper_matrix" in plain["attributes2"]
        assert demo[3].joint_positions.dtype == np.float64
        assert np.array_equal(
            demo[3].joint_positions.astype(np.float32), ep.frame("robot/joint_positions", 3)
        )
        assert demo[3].misc["variation_index"] == 0 and demo[3].front_rgb is None
        assert np.allclose(
            demo[3].misc["front_camera_intrinsics"][0, 0], -source.manifest.camera("front").K[0][0]
        )


def test_exported_non_rlbench_dataset_reads_back_with_its_values(demo_with_targets, tmp_path):
    out = tmp_path / "exported"
    convert(demo_with_targets, out, to="rlbench", writer_options={"targets": False})
    assert not (tmp_path / "exported_rgb_rendered").exists()
    reader = RLBenchReader(out)
    source = open_dataset(demo_with_targets)
    assert reader.manifest.name == source.manifest.name and reader.manifest.fps == source.manifest.fps
    assert reader.manifest.cameras == source.manifest.cameras
    with source.episode("episode0") as a, reader.episode("reach_target_v0_e0") as b:
        for path in (
            "robot/joint_positions",
            "robot/gripper_open",
            "action/joint_positions",
            "cameras/wrist/extrinsics",
            "cameras/left_shoulder/rgb",
            "timestamps",
        ):
            assert np.array_equal(a.load(path), b.load(path)), path


def test_all_variations_layout_with_per_episode_files_round_trips(rlbench_copy, tmp_path):
    all_dir = rlbench_copy / "reach_target" / "all_variations" / "episodes"
    all_dir.parent.mkdir()
    shutil.move(rlbench_copy / "reach_target/variation0/episodes", all_dir)
    shutil.rmtree(rlbench_copy / "reach_target/variation0")
    for e, variation in ((3, 2), (8, 0), (9, 4)):
        (all_dir / f"episode{e}/variation_number.pkl").write_bytes(pickle.dumps(variation))
        (all_dir / f"episode{e}/variation_descriptions.pkl").write_bytes(
            pickle.dumps([f"reach {variation}", "x"])
        )
    reader = RLBenchReader(rlbench_copy)
    assert reader.episode_ids == ["reach_target_all_e3", "reach_target_all_e8", "reach_target_all_e9"]
    meta = reader.episode("reach_target_all_e9").meta
    assert (meta.variation, meta.instruction) == (4, "reach 4")
    store, out = tmp_path / "s.zarr", tmp_path / "out"
    convert(rlbench_copy, store)
    convert(store, out, to="rlbench")
    for name in ("low_dim_obs.pkl", "variation_number.pkl", "variation_descriptions.pkl"):
        assert filecmp.cmp(
            all_dir / "episode9" / name,
            out / "reach_target/all_variations/episodes/episode9" / name,
            shallow=False,
        )


def test_full_shared_sample_reads_and_round_trips(tmp_path):
    from tests.conftest import RLBENCH_SAMPLE

    if not RLBENCH_SAMPLE.exists():
        pytest.skip("the shared sample is not on this machine")
    result = convert(RLBENCH_SAMPLE, tmp_path / "all.zarr", skip_invalid=True)
    assert len(result.written) == 49 and list(result.failed) == ["reach_target_v1_e9"]
    assert "pickle is truncated" in result.failed["reach_target_v1_e9"]
    convert(tmp_path / "all.zarr", tmp_path / "back", to="rlbench")
    originals = sorted(RLBENCH_SAMPLE.glob("reach_target/*/episodes/*/low_dim_obs.pkl"))
    assert len(originals) == 50
    for path in originals:
        exported = tmp_path / "back" / path.relative_to(RLBENCH_SAMPLE)
        assert exported.exists() == ("variation1/episodes/episode9" not in str(path))
        assert not exported.exists() or exported.read_bytes() == path.read_bytes()


# ------------------------------------------------------------------------------------------------ writer
def test_export_refuses_a_foreign_non_empty_destination(rlbench_dir, tmp_path):
    store = tmp_path / "s.zarr"
    convert(rlbench_dir, store)
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(FormatError, match="destination exists and is not an RLBench export"):
        convert(store, tmp_path / "busy", to="rlbench")


def test_interrupted_export_is_not_read_as_a_dataset_and_resumes(rlbench_dir, tmp_path):
    store, out = tmp_path / "s.zarr", tmp_path / "out"
    convert(rlbench_dir, store)
    writer = RLBenchWriter(out, open_dataset(store).manifest)
    with open_dataset(store).episode(EPISODES[0]) as ep:
        writer.write_episode(ep)
    assert (out / PENDING_MARKER).exists() and not (out / COMMITTED_MARKER).exists()
    with pytest.raises(FormatError, match="interrupted and never finished"):
        RLBenchReader(out)
    again = convert(store, out, to="rlbench")
    assert again.skipped == EPISODES[:1] and again.written == EPISODES[1:]
    assert RLBenchReader(out).episode_ids == EPISODES


def test_writer_refuses_ids_it_cannot_place(rlbench_dir, tmp_path):
    writer = RLBenchWriter(tmp_path / "out", RLBenchReader(rlbench_dir).manifest)
    with pytest.raises(FormatError, match="cannot place this episode"):
        writer.has_episode("some episode")


def copy_with_meta(source, path, updates):
    """A copy of the store `source` with each episode's metadata updated by the next dict of `updates`."""
    src = open_dataset(source)
    dst = create_dataset(path, src.manifest.model_copy(update={"episodes": [], "storage": None}))
    for eid, update in zip(src.episode_ids, updates, strict=True):
        with src.episode(eid) as ep:
            arrays = {name: np.asarray(array[...]) for name, array in ep.arrays.items()}
            dst.write_episode(Episode(meta=ep.meta.model_copy(update=update), arrays=arrays))
    dst.commit()
    return path


def test_export_refuses_two_episodes_that_would_share_a_folder(demo_with_targets, tmp_path):
    # 'bar' is numbered episode0 of reach_target/variation0, the folder 'reach_target_v0_e0' names
    store = copy_with_meta(
        demo_with_targets, tmp_path / "ids_h5", [{"episode_id": "reach_target_v0_e0"}, {"episode_id": "bar"}]
    )
    out = tmp_path / "out"
    with pytest.raises(FormatError) as err:
        convert(store, out, to="rlbench")
    assert one_line_error(err) == (
        f"{out}: episode reach_target_v0_e0: goes to the same folder as episode 'bar' "
        "(reach_target/variation0/episodes/episode0); RLBench episode folders must be unique, so rename one "
        "of the two episodes"
    )
    assert not out.exists()


def test_export_refuses_a_rendered_target_folder_it_did_not_write(demo_with_targets, tmp_path):
    out, rendered = tmp_path / "ex", tmp_path / "ex_rgb_rendered"
    precious = rendered / "reach_target/variation0/episodes/episode0/precious.txt"
    precious.parent.mkdir(parents=True)
    precious.write_text("mine")
    (rendered / "other_task/variation3").mkdir(parents=True)
    with pytest.raises(FormatError) as err:
        convert(demo_with_targets, out, to="rlbench")
    assert one_line_error(err).startswith(f"{rendered}: destination exists and is not an RLBench export")
    assert not out.exists() and precious.read_text() == "mine"
    assert list((rendered / "other_task/variation3").iterdir()) == []
    # without targets the folder is not this export's business; the export's own target folders resume
    assert convert(demo_with_targets, out, to="rlbench", writer_options={"targets": False}).written
    assert precious.read_text() == "mine" and list((rendered / "other_task/variation3").iterdir()) == []
    shutil.rmtree(out)
    shutil.rmtree(rendered)
    convert(demo_with_targets, out, to="rlbench")
    assert convert(demo_with_targets, out, to="rlbench").skipped == ["episode0", "episode1"]


def test_store_to_rlbench_to_store_keeps_success_instruction_and_seed(demo_with_targets, tmp_path):
    updates = [
        {"success": False, "instruction": "push the cube", "seed": 7},
        {"success": None, "instruction": "lift the cube", "seed": None},
    ]
    store = copy_with_meta(demo_with_targets, tmp_path / "meta_h5", updates)
    convert(store, tmp_path / "ex", to="rlbench")
    back = tmp_path / "back.zarr"
    convert(tmp_path / "ex", back)
    for eid, update in zip(("reach_target_v0_e0", "reach_target_v0_e1"), updates, strict=True):
        meta = open_dataset(back).episode_meta(eid)
        assert {key: getattr(meta, key) for key in update} == update, eid


# ------------------------------------------------------------------------------------------------ bad input
def read_error(root, episode_id="reach_target_v0_e3") -> str:
    reader = RLBenchReader(root)
    with pytest.raises(FormatError) as err, reader.episode(episode_id) as ep:
        for path in ep.paths():
            ep.load(path)
    return one_line_error(err)


def test_missing_png_frame_is_named(rlbench_copy):
    (episode_dir(rlbench_copy) / "front_rgb" / "5.png").unlink()
    message = read_error(rlbench_copy)
    assert message == (
        f"{episode_dir(rlbench_copy) / 'front_rgb'}: episode reach_target_v0_e3: cameras/front/rgb: "
        "39 PNG frames for 40 observations in low_dim_obs.pkl; missing 5.png"
    )


def test_png_count_different_from_observation_count_is_named(rlbench_copy):
    extra = episode_dir(rlbench_copy) / "wrist_depth" / "40.png"
    shutil.copy(extra.with_name("0.png"), extra)
    message = read_error(rlbench_copy)
    assert message.endswith(
        "cameras/wrist/depth: 41 PNG frames for 40 observations in low_dim_obs.pkl; unexpected 40.png"
    )


def test_zero_padded_frame_names_are_refused(rlbench_copy):
    folder = episode_dir(rlbench_copy) / "overhead_rgb"
    (folder / "7.png").rename(folder / "007.png")
    assert "unexpected file '007.png' (RLBench names frames <t>.png, no zero padding)" in read_error(
        rlbench_copy
    )


def test_corrupt_png_fails_the_episode_and_leaves_nothing_partial(rlbench_copy, tmp_path, run_cli):
    bad = episode_dir(rlbench_copy, 8) / "wrist_rgb" / "7.png"
    bad.write_bytes(bad.read_bytes()[:100])
    out = tmp_path / "out.zarr"
    result = run_cli("convert", rlbench_copy, out)
    assert result.exit_code == 1
    assert (
        cli_error(result) == f"error: {bad}: episode reach_target_v0_e8: cameras/wrist/rgb: "
        "PNG is corrupt or truncated (cannot decode it)"
    )
    assert sorted(p.name for p in (out / "episodes").iterdir() if p.name != "zarr.json") == [
        "reach_target_v0_e3"
    ]


def test_unknown_camera_folder_is_named(rlbench_copy):
    folder = episode_dir(rlbench_copy) / "top_rgb"
    shutil.copytree(episode_dir(rlbench_copy) / "front_rgb", folder)
    message = read_error(rlbench_copy)
    assert message.startswith(f"{folder}: episode reach_target_v0_e3: cameras/top/rgb: unknown camera 'top'")


def test_image_size_different_from_the_manifest_is_named(rlbench_copy):
    from genima_data.formats.rlbench_images import encode_png_rgb

    folder = episode_dir(rlbench_copy, 9) / "left_shoulder_rgb"
    for png in folder.iterdir():
        png.write_bytes(encode_png_rgb(np.zeros((64, 64, 3), np.uint8)))
    message = read_error(rlbench_copy, "reach_target_v0_e9")
    assert "left_shoulder_rgb/0.png" in message and "images are 64x64, the manifest says 128x128" in message


def test_truncated_pickle_is_one_line_and_skip_invalid_converts_the_rest(tmp_path, run_cli):
    src = tmp_path / "src"
    shutil.copytree(RLBENCH_TEST_DATA, src)
    truncated = episode_dir(src, 9, variation=1) / "low_dim_obs.pkl"
    plain = run_cli("convert", src, tmp_path / "a.zarr")
    assert plain.exit_code == 1
    assert cli_error(plain).startswith(f"error: {truncated}: episode reach_target_v1_e9: pickle is truncated")
    skipping = run_cli("convert", src, tmp_path / "b.zarr", "--skip-invalid")
    assert skipping.exit_code == 1
    assert "wrote 3" in skipping.stdout and "failed 1" in skipping.stdout
    assert "failed reach_target_v1_e9" in skipping.stderr and "pickle is truncated" in skipping.stderr
    assert open_dataset(tmp_path / "b.zarr").episode_ids == EPISODES


def test_pickle_calling_os_system_in_a_dataset_runs_nothing(rlbench_copy, tmp_path, run_cli):
    import os

    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = episode_dir(rlbench_copy, 9) / "low_dim_obs.pkl"
    path.write_bytes(dumps_pickle([Payload()]))
    result = run_cli("convert", rlbench_copy, tmp_path / "out.zarr", "--skip-invalid")
    assert result.exit_code == 1
    assert f"refused to load global '{os.system.__module__}.system'" in result.stderr
    assert not marker.exists()


def test_non_list_variation_descriptions_are_named(rlbench_copy, tmp_path, run_cli):
    path = rlbench_copy / "reach_target/variation0/variation_descriptions.pkl"
    path.write_bytes(pickle.dumps("reach the red target"))
    result = run_cli("convert", rlbench_copy, tmp_path / "out.zarr")
    assert result.exit_code == 1
    assert cli_error(result) == (
        f"error: {path}: episode reach_target_v0_e3: variation_descriptions: "
        "holds a str, expected a list of strings"
    )


def test_static_camera_that_moves_is_refused_unless_declared_moving(rlbench_copy, tmp_path):
    from genima_data.formats.rlbench_pickle import dump_pickle

    path = episode_dir(rlbench_copy, 8) / "low_dim_obs.pkl"
    demo = load_pickle(path)
    for obs in demo:
        obs.misc["front_camera_extrinsics"] = obs.misc["front_camera_extrinsics"].copy()
        obs.misc["front_camera_extrinsics"][0, 3] += 0.01
    dump_pickle(demo, path)
    message = read_error(rlbench_copy, "reach_target_v0_e8")
    assert "misc.front_camera_extrinsics: camera 'front' is static in the manifest" in message
    assert "moving_cameras" in message
    reader = RLBenchReader(rlbench_copy, moving_cameras=["front"])
    assert reader.manifest.camera("front").T_world_camera is None
    with reader.episode("reach_target_v0_e8") as ep:
        assert np.allclose(
            ep.load("cameras/front/extrinsics")[:, 0, 3], demo[0].misc["front_camera_extrinsics"][0, 3]
        )


def modify_episode8(root, change):
    from genima_data.formats.rlbench_pickle import dump_pickle

    path = episode_dir(root, 8) / "low_dim_obs.pkl"
    demo = load_pickle(path)
    change(demo._observations)
    dump_pickle(demo, path)
    return path


def test_episode_without_a_camera_folder_the_others_have_is_named(rlbench_copy):
    shutil.rmtree(episode_dir(rlbench_copy, 8) / "overhead_rgb")
    assert read_error(rlbench_copy, "reach_target_v0_e8") == (
        f"{episode_dir(rlbench_copy, 8)}: episode reach_target_v0_e8: cameras/overhead/rgb: folder "
        "overhead_rgb/ is missing (other episodes of this dataset have it)"
    )
    with RLBenchReader(rlbench_copy).episode("reach_target_v0_e9") as ep:
        assert "cameras/overhead/rgb" in ep


@pytest.mark.parametrize(
    "field, change",
    [
        ("gripper_matrix", lambda obs: setattr(obs[4], "gripper_matrix", None)),
        (
            "misc.wrist_camera_extrinsics",
            lambda obs: obs[4].misc.__setitem__("wrist_camera_extrinsics", None),
        ),
        ("misc.joint_poses", lambda obs: obs[4].misc.__setitem__("joint_poses", None)),
    ],
)
def test_pose_missing_in_one_frame_is_named_not_stored_as_zeros(rlbench_copy, field, change):
    path = modify_episode8(rlbench_copy, change)
    assert read_error(rlbench_copy, "reach_target_v0_e8") == (
        f"{path}: episode reach_target_v0_e8: {field}: frame 4 holds None; a value is needed in every frame"
    )


def _joint_positions_cut(obs):
    for o in obs:
        o.joint_positions = o.joint_positions[:6]


@pytest.mark.parametrize(
    "change, error",
    [
        (
            _joint_positions_cut,
            "joint_positions: has 6 values per frame, the robot (Franka Emika Panda) has 7 joints",
        ),
        (
            lambda obs: obs[4].misc.pop("front_camera_extrinsics"),
            "misc.front_camera_extrinsics: frame 4 holds no value (the key is absent); a value is needed in "
            "every frame",
        ),
        (
            lambda obs: setattr(obs[5], "joint_positions", obs[5].joint_positions.astype(np.float32)),
            "joint_positions: frame 5 holds a float32 array of shape (7,) but frame 0 a float64 array of "
            "shape (7,); every frame needs the same type, shape and dtype",
        ),
        (
            lambda obs: setattr(obs[5], "joint_positions", list(obs[5].joint_positions)),
            "joint_positions: frame 5 holds a list but frame 0 a float64 array of shape (7,); every frame "
            "needs the same type, shape and dtype",
        ),
    ],
    ids=["six-joints", "absent-extrinsics", "float32-frame", "list-frame"],
)
def test_error_names_the_field_that_is_wrong_and_how(rlbench_copy, change, error):
    path = modify_episode8(rlbench_copy, change)
    assert read_error(rlbench_copy, "reach_target_v0_e8") == f"{path}: episode reach_target_v0_e8: {error}"


def test_unknown_options_are_named(rlbench_dir, tmp_path, run_cli):
    result = run_cli("convert", rlbench_dir, tmp_path / "out", "--to", "rlbench", "--codec", "zstd")
    assert result.exit_code == 1
    assert cli_error(result).startswith("error: format 'rlbench' writer: got an unexpected keyword argument")
    assert cli_error(result).endswith("'image_codec' (options: targets)")
    result = run_cli("convert", rlbench_dir, tmp_path / "o.zarr", "--reader-opt", "fsp=10")
    assert cli_error(result).endswith("'fsp' (options: fps, moving_cameras, camera_mounts)")


def test_export_with_two_workers_equals_the_serial_export(rlbench_dir, tmp_path):
    store = tmp_path / "s_h5"
    convert(rlbench_dir, store, to="hdf5")
    convert(store, tmp_path / "serial", to="rlbench")
    assert convert(store, tmp_path / "parallel", to="rlbench", workers=2).written == EPISODES
    for e in (3, 8, 9):
        a, b = episode_dir(tmp_path / "serial", e), episode_dir(tmp_path / "parallel", e)
        comparison = filecmp.dircmp(a, b)
        assert not comparison.left_only and not comparison.right_only and not comparison.diff_files
        assert all(not filecmp.dircmp(a / d, b / d).diff_files for d in comparison.common_dirs)


def test_poses_agree_with_the_geometry_contract(rlbench_dir):
    from genima_data.geometry.kinematics import link_poses_or_fk

    raw = raw_demo(rlbench_dir, 9)
    reader = RLBenchReader(rlbench_dir)
    with reader.episode("reach_target_v0_e9") as ep:
        links, ee_world = link_poses_or_fk(reader.manifest, ep)
    assert np.allclose(ee_world, np.stack([o.gripper_matrix for o in raw]), atol=1e-12)
    assert np.allclose(links[..., :3, 3], np.array([o.misc["joint_poses"] for o in raw])[..., :3], atol=1e-12)


def fk_miss_m(kinematics, q, recorded_link_poses) -> float:
    fk = kinematics.joint_frames(q)
    return float(np.linalg.norm(fk[..., :3, 3] - recorded_link_poses[..., :3, 3], axis=-1).max())


def test_fk_without_rlbench_joint_offset_misses_recorded_joints_by_centimetres(rlbench_dir):
    from genima_data.geometry.kinematics import load_kinematics

    reader = RLBenchReader(rlbench_dir)
    kinematics = load_kinematics(reader.manifest.robot)
    for episode_id in EPISODES:
        with reader.episode(episode_id) as ep:
            q, recorded = ep.load("robot/joint_positions"), ep.load("robot/link_poses")

        assert fk_miss_m(kinematics, q, recorded) < 2e-3
        assert fk_miss_m(kinematics.with_joint_offsets(np.zeros(7)), q, recorded) > 2e-2


def test_converted_rlbench_sample_passes_every_check(rlbench_dir, tmp_path):
    from genima_data.validate import validate_dataset

    convert(rlbench_dir, tmp_path / "rlbench.zarr")
    report = validate_dataset(tmp_path / "rlbench.zarr")
    assert [f.one_line() for f in report.errors] == []

import json

import cv2
import h5py
import numpy as np
import pytest
import yaml

from genima_data.convert import convert
from genima_data.demo import demo_cameras
from genima_data.errors import FormatError, StoreError
from genima_data.formats import detect_format
from genima_data.formats.aloha import AlohaReader, AlohaWriter
from genima_data.schema import Camera
from genima_data.store import open_dataset
from tests.conftest import psnr

CAMERAS = ("cam_high", "cam_left_wrist")
MIN_JPEG_PSNR_DB = 25.0  # JPEG quality 50 (ALOHA's), small noisy frames: 26.8 dB (fixture), 34-35.5 dB (demo)


def aloha_cameras(names=CAMERAS, size=32):
    template = demo_cameras(size)[0]
    return [Camera(**{**template.model_dump(), "name": name}) for name in names]


def write_calibration_yaml(path, cameras):
    path.write_text(yaml.safe_dump({"cameras": [c.model_dump(mode="json") for c in cameras]}))
    return path


def smooth_frames(rng, T, size=32):
    """Frames with structure (gradients and a moving square) plus noise, like a camera."""
    yy, xx = np.mgrid[0:size, 0:size]
    frames = np.empty((T, size, size, 3), np.uint8)
    for t in range(T):
        image = np.stack([xx * 6, yy * 6, (xx + yy) * 3], -1).astype(np.float64)
        image[4 + t % 20 : 12 + t % 20, 8:16] = (230, 40, 40)
        frames[t] = np.clip(image + rng.normal(0, 3, image.shape), 0, 255).astype(np.uint8)
    return frames


def write_aloha_episode(path, *, T=20, width=14, compress=False, sim=True, effort=True, seed=0, action=True):
    """An episode file laid out as ALOHA's recorders write it; returns what was written."""
    rng = np.random.default_rng(seed)
    qpos = rng.uniform(-1, 1, (T, width)).astype(np.float32)
    data = {
        "qpos": qpos,
        "qvel": rng.normal(0, 0.1, (T, width)).astype(np.float32),
        "effort": rng.normal(0, 1, (T, width)).astype(np.float32),
        "action": (qpos + 0.01).astype(np.float32),
        "images": {cam: smooth_frames(rng, T) for cam in CAMERAS},
    }
    with h5py.File(path, "w") as root:
        root.attrs["sim"] = sim
        obs = root.create_group("observations")
        images = obs.create_group("images")
        if compress:
            root.attrs["compress"] = True
            encoded = {
                cam: [cv2.imencode(".jpg", f, [int(cv2.IMWRITE_JPEG_QUALITY), 50])[1] for f in frames]
                for cam, frames in data["images"].items()
            }
            padded = max(len(e) for frames in encoded.values() for e in frames)
            for cam, frames in encoded.items():
                ds = images.create_dataset(cam, (T, padded), dtype="uint8", chunks=(1, padded))
                for t, e in enumerate(frames):
                    ds[t, : len(e)] = e.ravel()
            root.create_dataset("compress_len", data=[[len(e) for e in encoded[c]] for c in CAMERAS])
            data["decoded"] = {c: np.stack([cv2.imdecode(e, 1) for e in encoded[c]]) for c in CAMERAS}
        else:
            for cam, frames in data["images"].items():
                images.create_dataset(cam, data=frames, chunks=(1, *frames.shape[1:]))
        obs.create_dataset("qpos", data=data["qpos"])
        obs.create_dataset("qvel", data=data["qvel"])
        if effort:
            obs.create_dataset("effort", data=data["effort"])
        if action:
            root.create_dataset("action", data=data["action"])
    return data


@pytest.fixture
def aloha_dir(tmp_path):
    """Two raw-image ALOHA episodes (14-wide vectors) and a YAML calibration file for their cameras."""
    root = tmp_path / "sim_transfer_cube"
    root.mkdir()
    episodes = [write_aloha_episode(root / f"episode_{i}.hdf5", seed=i) for i in range(2)]
    calibration = write_calibration_yaml(tmp_path / "cams.yaml", aloha_cameras())
    return root, episodes, calibration


# ---------------------------------------------------------------- reading


def test_reads_the_left_arm_and_keeps_both_arms_in_extras(aloha_dir):
    root, episodes, calibration = aloha_dir
    reader = AlohaReader(root, calibration=calibration)
    assert detect_format(root) == "aloha"
    assert reader.episode_ids == ["episode_0", "episode_1"]
    assert reader.manifest.robot.model == "vx300s" and reader.manifest.robot.joint_names[0] == "left_waist"
    assert reader.manifest.fps == 50 and reader.manifest.tasks[0].name == "sim_transfer_cube"
    source = episodes[1]
    with reader.episode("episode_1") as ep:
        assert np.array_equal(ep.load("robot/joint_positions"), source["qpos"][:, :6])
        assert np.array_equal(ep.load("robot/gripper_open"), source["qpos"][:, 6])
        assert np.array_equal(ep.load("action/joint_positions"), source["action"][:, :7])
        assert np.array_equal(ep.load("robot/joint_velocities"), source["qvel"][:, :6])
        assert np.array_equal(ep.load("robot/joint_forces"), source["effort"][:, :6])
        assert np.array_equal(ep.load("timestamps"), np.arange(20) / 50)
        assert np.array_equal(ep.load("extras/observations.qpos"), source["qpos"])
        assert np.array_equal(ep.load("extras/action"), source["action"])
        assert np.array_equal(ep.load("cameras/cam_high/rgb"), source["images"]["cam_high"])
        assert ep.meta.extras["aloha"]["sim"] is True and ep.meta.source.index == 1


def test_right_arm_is_chosen_by_option(aloha_dir):
    root, episodes, calibration = aloha_dir
    reader = AlohaReader(root, calibration=calibration, arm="right", fps=25)
    assert reader.manifest.robot.joint_names[-1] == "right_wrist_rotate" and reader.manifest.fps == 25
    with reader.episode("episode_0") as ep:
        assert np.array_equal(ep.load("robot/joint_positions"), episodes[0]["qpos"][:, 7:13])
        assert np.array_equal(ep.load("robot/gripper_open"), episodes[0]["qpos"][:, 13])
        assert np.array_equal(ep.load("timestamps"), np.arange(20) / 25)


def test_jpeg_compressed_images_decode_as_aloha_stored_them(tmp_path):
    root = tmp_path / "real"
    root.mkdir()
    source = write_aloha_episode(root / "episode_3.hdf5", compress=True, sim=False)
    calibration = write_calibration_yaml(tmp_path / "cams.yaml", aloha_cameras())
    with AlohaReader(root, calibration=calibration).episode("episode_3") as ep:
        frames = ep.load("cameras/cam_left_wrist/rgb")
        assert np.array_equal(frames, source["decoded"]["cam_left_wrist"])  # padding ignored, no channel swap
        assert psnr(frames, source["images"]["cam_left_wrist"]) >= MIN_JPEG_PSNR_DB
        assert "extras/compress_len" not in ep


def test_single_arm_files_map_without_a_prefix(tmp_path):
    root = tmp_path / "one_arm"
    root.mkdir()
    source = write_aloha_episode(root / "episode_0.hdf5", width=7, effort=False)
    reader = AlohaReader(root, calibration=write_calibration_yaml(tmp_path / "c.yaml", aloha_cameras()))
    assert reader.manifest.robot.joint_names == [
        "waist",
        "shoulder",
        "elbow",
        "forearm_roll",
        "wrist_angle",
        "wrist_rotate",
    ]
    with reader.episode("episode_0") as ep:
        assert np.array_equal(ep.load("robot/gripper_open"), source["qpos"][:, 6])
        assert "robot/joint_forces" not in ep


# ---------------------------------------------------------------- round trips


def test_aloha_to_store_to_aloha_gives_back_the_same_vectors_and_images(aloha_dir, tmp_path):
    root, episodes, calibration = aloha_dir
    store = tmp_path / "store.zarr"
    convert(root, store, source_format="aloha", reader_options={"calibration": str(calibration)})
    back = tmp_path / "back"
    result = convert(store, back, to="aloha", workers=2)
    assert result.written == ["episode_0", "episode_1"]
    for i, source in enumerate(episodes):
        with h5py.File(back / f"episode_{i}.hdf5", "r") as h5:
            for name in ("qpos", "qvel", "effort"):
                assert np.array_equal(h5[f"observations/{name}"][()], source[name]), name
            assert np.array_equal(h5["action"][()], source["action"])
            assert h5.attrs["sim"] == True  # noqa: E712 - numpy bool
            for cam in CAMERAS:
                assert np.array_equal(h5[f"observations/images/{cam}"][()], source["images"][cam])


def test_store_to_aloha_to_store_is_exact_with_raw_images(demo_store_dir, tmp_path, run_cli):
    out = tmp_path / "aloha"
    assert run_cli("convert", demo_store_dir / "sample.zarr", out, "--to", "aloha").exit_code == 0
    assert sorted(p.name for p in out.glob("*.hdf5")) == [
        "episode_0.hdf5",
        "episode_1.hdf5",
        "episode_2.hdf5",
    ]
    result = run_cli("convert", out, tmp_path / "back.zarr")
    assert result.exit_code == 0, result.stderr
    from tests.test_convert import assert_datasets_equal

    assert_datasets_equal(demo_store_dir / "sample.zarr", tmp_path / "back.zarr")


def test_written_files_load_the_way_act_reads_them(demo_store_dir, tmp_path):
    convert(
        demo_store_dir / "sample.zarr", tmp_path / "aloha", to="aloha", writer_options={"image_codec": "jpeg"}
    )
    source = open_dataset(demo_store_dir / "sample.zarr")
    with h5py.File(tmp_path / "aloha/episode_1.hdf5", "r") as root, source.episode("episode1") as ep:
        # ACT's EpisodicDataset: attrs sim/compress, qpos/qvel/action rows, images decoded with cv2.imdecode
        assert root.attrs["compress"] and not root.attrs["sim"]
        qpos = root["/observations/qpos"][5]
        assert np.array_equal(
            qpos, np.append(ep.frame("robot/joint_positions", 5), ep.frame("robot/gripper_open", 5))
        )
        assert root["/observations/qvel"].shape == root["/action"].shape == (24, 8)
        image = cv2.imdecode(root["/observations/images/front"][5], 1)
        assert psnr(image, ep.frame("cameras/front/rgb", 5)) >= MIN_JPEG_PSNR_DB


def test_edited_joint_positions_replace_the_originals_when_written_back(aloha_dir, tmp_path):
    root, episodes, calibration = aloha_dir
    reader = AlohaReader(root, calibration=calibration)
    writer = AlohaWriter(tmp_path / "out", reader.manifest)
    with reader.episode("episode_0") as ep:
        edited = ep.load("robot/joint_positions") + np.float32(0.5)
        writer.write_episode(ep.with_arrays({"robot/joint_positions": edited}))
    writer.commit()
    with h5py.File(tmp_path / "out/episode_0.hdf5", "r") as h5:
        qpos = h5["observations/qpos"][()]
    assert np.array_equal(qpos[:, :6], edited)
    assert np.array_equal(qpos[:, 6:], episodes[0]["qpos"][:, 6:])  # gripper and right arm untouched


def test_interrupted_export_is_incomplete_until_rerun(demo_store_dir, tmp_path):
    out = tmp_path / "aloha"
    convert(demo_store_dir / "sample.zarr", out, to="aloha", episodes=["episode1"])
    (out / ".genima-pending.json").write_text("{}\n")  # as if the run had been killed before commit
    with pytest.raises(FormatError, match="ALOHA export is incomplete"):
        AlohaReader(out)
    again = convert(demo_store_dir / "sample.zarr", out, to="aloha")
    assert again.skipped == ["episode1"] and again.written == ["episode0", "episode2"]
    assert AlohaReader(out).episode_ids == ["episode_0", "episode_1", "episode_2"]


# ---------------------------------------------------------------- bad input


def test_missing_action_is_a_one_line_error_naming_file_episode_and_field(aloha_dir, run_cli, tmp_path):
    root, _, calibration = aloha_dir
    write_aloha_episode(root / "episode_1.hdf5", action=False)
    with pytest.raises(FormatError) as err:
        AlohaReader(root, calibration=calibration).episode("episode_1")
    assert str(err.value) == (
        f"{root / 'episode_1.hdf5'}: episode episode_1: /action: /action is missing (ACT/ALOHA episodes "
        "record the commanded joint positions there)"
    )
    strict = run_cli("convert", root, tmp_path / "a.zarr", "--from", "aloha", "--calibration", calibration)
    errors = [line for line in strict.stderr.splitlines() if line.startswith("error:")]
    assert strict.exit_code == 1 and len(errors) == 1 and "/action is missing" in errors[0]
    assert "Traceback" not in strict.stderr
    lenient = run_cli("convert", root, tmp_path / "b.zarr", "--calibration", calibration, "--skip-invalid")
    assert lenient.exit_code == 1 and "failed episode_1" in lenient.stderr.replace("\n", " ")
    assert open_dataset(tmp_path / "b.zarr").episode_ids == ["episode_0"]


def test_cameras_without_calibration_are_named(aloha_dir):
    root, _, _ = aloha_dir
    with pytest.raises(
        FormatError, match=r"cameras: no calibration for camera\(s\) \['cam_high', 'cam_left_wrist'\]"
    ):
        AlohaReader(root)
    reader = AlohaReader(root, cameras=[])
    with reader.episode("episode_0") as ep:
        assert ep.camera_names == []


def test_vectors_of_unknown_width_need_a_robot_description(tmp_path):
    root = tmp_path / "odd"
    root.mkdir()
    write_aloha_episode(root / "episode_0.hdf5", width=9)
    with pytest.raises(
        FormatError,
        match=r"^\S*odd/episode_0.hdf5: /observations/qpos: 9-wide vectors .* --reader-opt robot=",
    ):
        AlohaReader(root, cameras=[])
    robot = tmp_path / "robot.json"
    robot.write_text(
        json.dumps(
            {
                "name": "eight",
                "model": "urdf",
                "urdf": "eight.urdf",
                "joint_names": [f"j{i}" for i in range(8)],
                "joint_lower": [-1.0] * 8,
                "joint_upper": [1.0] * 8,
            }
        )
    )
    assert AlohaReader(root, cameras=[], robot=robot).manifest.robot.dof == 8


def test_corrupt_jpeg_frame_is_reported_with_its_index(tmp_path):
    root = tmp_path / "real"
    root.mkdir()
    write_aloha_episode(root / "episode_0.hdf5", compress=True)
    with h5py.File(root / "episode_0.hdf5", "a") as h5:
        h5["observations/images/cam_high"][4] = 0
    reader = AlohaReader(root, calibration=write_calibration_yaml(tmp_path / "c.yaml", aloha_cameras()))
    with (
        reader.episode("episode_0") as ep,
        pytest.raises(FormatError, match=r"cam_high frame 4: JPEG frame cannot"),
    ):
        ep.load("cameras/cam_high/rgb")


def test_truncated_file_is_reported_not_raised(aloha_dir):
    root, _, calibration = aloha_dir
    data = (root / "episode_1.hdf5").read_bytes()
    (root / "episode_1.hdf5").write_bytes(data[: len(data) // 3])
    with pytest.raises(FormatError, match=r"episode episode_1: not a readable HDF5 file"):
        AlohaReader(root, calibration=calibration).episode("episode_1")


def test_episode_ids_must_carry_distinct_numbers(demo_store_dir, tmp_path):
    source = open_dataset(demo_store_dir / "sample.zarr")
    writer = AlohaWriter(tmp_path / "out", source.manifest)
    with source.episode("episode1") as ep:
        renamed = ep.meta.model_copy(update={"episode_id": "take_one"})
        with pytest.raises(FormatError, match="episode id 'take_one' ends in no number"):
            writer.write_episode(ep.with_arrays({}, meta=renamed))
        writer.write_episode(ep)
        clash = ep.meta.model_copy(update={"episode_id": "other1"})
        with pytest.raises(FormatError, match=r"episode_1.hdf5 already holds episode 'episode1'"):
            writer.write_episode(ep.with_arrays({}, meta=clash))


def test_a_different_dataset_at_the_destination_is_refused(demo_store_dir, aloha_dir, tmp_path):
    root, _, calibration = aloha_dir
    convert(root, tmp_path / "out", to="aloha", reader_options={"calibration": str(calibration)})
    with pytest.raises(StoreError, match="already holds a different dataset"):
        convert(demo_store_dir / "sample.zarr", tmp_path / "out", to="aloha")


def test_episode_missing_a_camera_of_the_first_file_is_skipped_naming_the_dataset(
    aloha_dir, run_cli, tmp_path
):
    root, _, calibration = aloha_dir
    with h5py.File(root / "episode_1.hdf5", "a") as h5:
        del h5["observations/images/cam_left_wrist"]
    with pytest.raises(FormatError) as err:
        AlohaReader(root, calibration=calibration).episode("episode_1")
    assert str(err.value).startswith(
        f"{root / 'episode_1.hdf5'}: episode episode_1: /observations/images/cam_left_wrist: camera "
        "'cam_left_wrist' is missing"
    )
    lenient = run_cli("convert", root, tmp_path / "out.zarr", "--calibration", calibration, "--skip-invalid")
    assert lenient.exit_code == 1 and "Traceback" not in lenient.stderr
    assert "failed episode_1" in lenient.stderr.replace("\n", " ")
    assert open_dataset(tmp_path / "out.zarr").episode_ids == ["episode_0"]


def test_camera_absent_from_the_first_file_is_not_silently_dropped(aloha_dir):
    root, _, calibration = aloha_dir
    with h5py.File(root / "episode_1.hdf5", "a") as h5:
        h5["observations/images/cam_low"] = np.zeros((20, 32, 32, 3), np.uint8)
    with pytest.raises(
        FormatError, match=r"episode_1: /observations/images/cam_low: camera 'cam_low' is not"
    ):
        AlohaReader(root, calibration=calibration).episode("episode_1")
    chosen = AlohaReader(root, calibration=calibration, cameras=list(CAMERAS))  # an explicit choice drops it
    with chosen.episode("episode_1") as ep:
        assert ep.camera_names == sorted(CAMERAS)


def test_truncated_first_file_fails_only_its_own_episode(aloha_dir, tmp_path):
    root, _, calibration = aloha_dir
    data = (root / "episode_0.hdf5").read_bytes()
    (root / "episode_0.hdf5").write_bytes(data[: len(data) // 3])
    reader = AlohaReader(root, calibration=calibration)
    with pytest.raises(FormatError, match=r"episode_0.hdf5: episode episode_0: not a readable HDF5 file"):
        reader.episode("episode_0")
    result = convert(
        root, tmp_path / "out.zarr", reader_options={"calibration": str(calibration)}, skip_invalid=True
    )
    assert result.written == ["episode_1"]
    (root / "episode_1.hdf5").unlink()
    with pytest.raises(FormatError, match=r"^\S*episode_0.hdf5: not a readable HDF5 file"):
        AlohaReader(root, calibration=calibration)


def test_calibration_at_another_resolution_is_refused_naming_both_sizes(aloha_dir, tmp_path):
    root, _, _ = aloha_dir
    big = write_calibration_yaml(tmp_path / "big.yaml", aloha_cameras(size=64))
    with pytest.raises(FormatError) as err:
        AlohaReader(root, calibration=big)
    assert str(err.value) == (
        f"{big}: cameras.cam_high: camera 'cam_high' is calibrated at 64x64 but its images in {root} are "
        "32x32: the calibration belongs to another resolution"
    )


def test_misspelt_camera_option_is_refused_listing_the_cameras(aloha_dir):
    root, _, calibration = aloha_dir
    with pytest.raises(
        FormatError,
        match=r"cameras: unknown camera\(s\) \['cam_hihg'\] \(available: cam_high, cam_left_wrist\)",
    ):
        AlohaReader(root, calibration=calibration, cameras=["cam_hihg"])


def test_camera_with_fewer_frames_than_qpos_names_file_and_dataset(aloha_dir):
    root, episodes, calibration = aloha_dir
    with h5py.File(root / "episode_1.hdf5", "a") as h5:
        del h5["observations/images/cam_high"]
        h5["observations/images/cam_high"] = episodes[1]["images"]["cam_high"][:17]
    with pytest.raises(FormatError) as err:
        AlohaReader(root, calibration=calibration).episode("episode_1")
    assert str(err.value) == (
        f"{root / 'episode_1.hdf5'}: episode episode_1: /observations/images/cam_high: has 17 frames, "
        "/observations/qpos has 20"
    )


def test_episode_with_another_vector_width_fails_alone(aloha_dir):
    root, _, calibration = aloha_dir
    write_aloha_episode(root / "episode_1.hdf5", width=7)
    with pytest.raises(
        FormatError, match=r"episode_1: /observations/qpos: shape \(20, 7\), expected \(20, 14\)"
    ):
        AlohaReader(root, calibration=calibration).episode("episode_1")

import json

import av
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from genima_data.convert import convert
from genima_data.demo import demo_cameras, demo_episode
from genima_data.episode import LazyFrames
from genima_data.errors import FormatError, GenimaDataError, StoreError
from genima_data.formats.lerobot import LeRobotReader, LeRobotWriter
from genima_data.formats.lerobot_layout import INFO_PATH
from genima_data.formats.video import VideoSettings, VideoWriter
from genima_data.store import open_dataset
from tests.conftest import psnr

MIN_PSNR_DB = 35.0  # measured 37-38 dB on the 32x32 demo, 39-40 dB at 128x128 (libsvtav1, crf 30)


def lerobot_json(path, name="info.json"):
    return json.loads((path / "meta" / name).read_text())


def edit_info(path, edit):
    info = lerobot_json(path)
    edit(info)
    (path / INFO_PATH).write_text(json.dumps(info))


def make_foreign(path):
    """Drop genima-data's own additions: what a LeRobot dataset recorded elsewhere looks like."""
    (path / "meta" / "genima.json").unlink()
    (path / "meta" / "calibration.json").unlink()
    for file in (path / "meta" / "episodes").glob("*/*.parquet"):
        pq.write_table(pq.read_table(file).drop_columns(["genima/episode"]), file)


def write_calibration(path, cameras):
    path.write_text(json.dumps([c.model_dump(mode="json") for c in cameras]))
    return path


def write_lerobot_v21(root, episodes, *, state_names, robot_type, fps=10, cameras=("front",), task="pick"):
    """A LeRobot v2.1 dataset (one parquet and one MP4 per episode, JSON-lines metadata).

    `episodes`: list of dicts with 'state' (T, n), 'action' (T, n), 'frames' {camera: (T, H, W, 3)}.
    """
    meta = root / "meta"
    meta.mkdir(parents=True)
    height, width = next(iter(episodes[0]["frames"].values())).shape[1:3]
    features = {
        "observation.state": {"dtype": "float32", "shape": [len(state_names)], "names": state_names},
        "action": {"dtype": "float32", "shape": [len(state_names)], "names": state_names},
        **{
            f"observation.images.{cam}": {
                "dtype": "video",
                "shape": [height, width, 3],
                "names": ["height", "width", "channels"],
            }
            for cam in cameras
        },
        "timestamp": {"dtype": "float32", "shape": [1], "names": None},
        "frame_index": {"dtype": "int64", "shape": [1], "names": None},
        "episode_index": {"dtype": "int64", "shape": [1], "names": None},
        "index": {"dtype": "int64", "shape": [1], "names": None},
        "task_index": {"dtype": "int64", "shape": [1], "names": None},
    }
    total = 0
    episode_lines, stats_lines = [], []
    for index, episode in enumerate(episodes):
        T = len(episode["state"])
        data = root / f"data/chunk-000/episode_{index:06d}.parquet"
        data.parent.mkdir(parents=True, exist_ok=True)
        table = pa.table(
            {
                "observation.state": pa.array(
                    list(episode["state"].astype(np.float32)), pa.list_(pa.float32())
                ),
                "action": pa.array(list(episode["action"].astype(np.float32)), pa.list_(pa.float32())),
                "timestamp": pa.array(episode.get("timestamp", np.arange(T) / fps).astype(np.float32)),
                "frame_index": pa.array(np.arange(T)),
                "episode_index": pa.array(np.full(T, index)),
                "index": pa.array(np.arange(total, total + T)),
                "task_index": pa.array(np.zeros(T, np.int64)),
            }
        )
        pq.write_table(table, data)
        for cam, frames in episode["frames"].items():
            video = root / f"videos/chunk-000/observation.images.{cam}/episode_{index:06d}.mp4"
            video.parent.mkdir(parents=True, exist_ok=True)
            writer = VideoWriter(video, fps, width, height, VideoSettings())
            for frame in frames:
                writer.write(frame)
            writer.close()
        episode_lines.append({"episode_index": index, "tasks": [task], "length": T})
        stats_lines.append({"episode_index": index, "stats": {"observation.state": {"mean": [0.0]}}})
        total += T
    info = {
        "codebase_version": "v2.1",
        "robot_type": robot_type,
        "total_episodes": len(episodes),
        "total_frames": total,
        "total_tasks": 1,
        "total_videos": len(episodes) * len(cameras),
        "total_chunks": 1,
        "chunks_size": 1000,
        "fps": fps,
        "splits": {"train": f"0:{len(episodes)}"},
        "data_path": "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet",
        "video_path": "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4",
        "features": features,
    }
    (meta / "info.json").write_text(json.dumps(info, indent=4))
    (meta / "tasks.jsonl").write_text(json.dumps({"task_index": 0, "task": task}) + "\n")
    (meta / "episodes.jsonl").write_text("".join(json.dumps(line) + "\n" for line in episode_lines))
    (meta / "episodes_stats.jsonl").write_text("".join(json.dumps(line) + "\n" for line in stats_lines))
    return root


def demo_v21_episodes(count=2, frames=10, size=32):
    episodes = []
    for i in range(count):
        ep = demo_episode(i, frames=frames, size=size)
        state = np.concatenate([ep.load("robot/joint_positions"), ep.load("robot/gripper_open")[:, None]], 1)
        episodes.append(
            {
                "state": state,
                "action": ep.load("action/joint_positions"),
                "frames": {"front": ep.load("cameras/front/rgb")},
            }
        )
    return episodes


PANDA_STATE = [f"panda_joint{i}" for i in range(1, 8)] + ["gripper"]


# ---------------------------------------------------------------- round trips


def test_store_to_lerobot_to_store_keeps_numbers_exact_and_frames_above_35db(
    demo_store_dir, lerobot_demo, tmp_path
):
    back = tmp_path / "back.zarr"
    result = convert(lerobot_demo, back)
    assert result.source_format == "lerobot" and result.written == ["episode0", "episode1", "episode2"]
    src, dst = open_dataset(demo_store_dir / "sample.zarr"), open_dataset(back)
    assert dst.manifest.identity() == src.manifest.identity()
    for eid in src.episode_ids:
        with src.episode(eid) as a, dst.episode(eid) as b:
            assert a.meta == b.meta
            assert a.paths() == b.paths()
            for path in a.paths():
                x, y = a.load(path), b.load(path)
                assert x.dtype == y.dtype and x.shape == y.shape, path
                if path.endswith("/rgb"):
                    assert psnr(x, y) >= MIN_PSNR_DB, path
                else:
                    assert np.array_equal(x, y), path


def test_cli_converts_a_store_to_lerobot_and_back(demo_store_dir, tmp_path, run_cli):
    out = tmp_path / "lr"
    result = run_cli(
        "convert", demo_store_dir / "sample_h5", out, "--to", "lerobot", "--writer-opt", "image_codec=libx264"
    )
    assert result.exit_code == 0, result.stderr
    assert "wrote 3" in result.stdout
    assert lerobot_json(out)["features"]["observation.images.front"]["info"]["video.codec"] == "h264"
    back = run_cli("convert", out, tmp_path / "back_h5", "--to", "hdf5")
    assert back.exit_code == 0, back.stderr
    assert open_dataset(tmp_path / "back_h5").episode_ids == ["episode0", "episode1", "episode2"]


# ---------------------------------------------------------------- the v3.0 layout LeRobot reads


def test_written_dataset_has_the_lerobot_v3_layout(lerobot_demo):
    info = lerobot_json(lerobot_demo)
    assert info["codebase_version"] == "v3.0" and info["fps"] == 10 and info["robot_type"] == "franka_panda"
    assert info["total_episodes"] == 3 and info["total_frames"] == 72 and info["splits"] == {"train": "0:3"}
    state = info["features"]["observation.state"]
    assert state["dtype"] == "float32" and state["shape"] == [8] and state["names"][-1] == "gripper_open"
    for key in ("timestamp", "frame_index", "episode_index", "index", "task_index"):
        assert key in info["features"]
    video = info["features"]["observation.images.front"]
    assert video["dtype"] == "video" and video["shape"] == [32, 32, 3]
    assert video["info"]["video.codec"] == "av1" and video["info"]["video.pix_fmt"] == "yuv420p"

    data = pq.read_table(lerobot_demo / "data/chunk-000/file-000.parquet")
    assert data.num_rows == 72
    assert data["index"].to_pylist() == list(range(72))
    assert data["episode_index"].to_pylist() == [0] * 24 + [1] * 24 + [2] * 24
    assert data.schema.field("observation.state").type.list_size == 8

    episodes = pq.read_table(lerobot_demo / "meta/episodes/chunk-000/file-000.parquet").to_pylist()
    assert [e["dataset_from_index"] for e in episodes] == [0, 24, 48]
    assert [e["videos/observation.images.front/from_timestamp"] for e in episodes] == [0.0, 2.4, 4.8]
    assert [e["tasks"] for e in episodes] == [
        ["reach the red target"],
        ["touch the red ball"],
        ["reach the red target"],
    ]
    assert episodes[0]["stats/observation.state/count"] == [24]

    tasks = pq.read_table(lerobot_demo / "meta/tasks.parquet")
    pandas_meta = json.loads(tasks.schema.metadata[b"pandas"])
    assert pandas_meta["index_columns"] == ["task"]  # pandas (and so LeRobot) reads the task strings as index
    assert tasks["task"].to_pylist() == ["reach the red target", "touch the red ball"]

    stats = lerobot_json(lerobot_demo, "stats.json")
    assert stats["observation.state"]["count"] == [72]
    assert np.array(stats["observation.images.front"]["mean"]).shape == (3, 1, 1)
    cameras = lerobot_json(lerobot_demo, "calibration.json")["cameras"]
    assert [c["name"] for c in cameras] == ["front", "left_shoulder", "right_shoulder", "wrist"]


def test_dataset_statistics_pool_the_episodes_exactly(demo_store_dir, lerobot_demo):
    src = open_dataset(demo_store_dir / "sample.zarr")
    state = np.concatenate(
        [
            np.concatenate([ep.load("robot/joint_positions"), ep.load("robot/gripper_open")[:, None]], 1)
            for ep in src
        ]
    ).astype(np.float64)
    stats = lerobot_json(lerobot_demo, "stats.json")["observation.state"]
    np.testing.assert_allclose(stats["mean"], state.mean(0), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(stats["std"], state.std(0), rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(stats["min"], state.min(0))


def test_videos_have_a_keyframe_every_two_frames_for_seeking(lerobot_demo):
    with av.open(str(lerobot_demo / "videos/observation.images.front/chunk-000/file-000.mp4")) as video:
        keyframes = [frame.key_frame for frame in video.decode(video=0)]
    assert len(keyframes) == 72
    assert all(keyframes[::2])


def test_episodes_per_file_splits_data_and_videos_into_file_groups(demo_store_dir, tmp_path):
    out = tmp_path / "lr"
    convert(demo_store_dir / "sample.zarr", out, to="lerobot", writer_options={"episodes_per_file": 2})
    assert sorted(p.name for p in (out / "data/chunk-000").iterdir()) == [
        "file-000.parquet",
        "file-001.parquet",
    ]
    episodes = pq.read_table(out / "meta/episodes/chunk-000/file-001.parquet").to_pylist()
    assert episodes[0]["episode_index"] == 2 and episodes[0]["dataset_from_index"] == 48
    assert episodes[0]["videos/observation.images.wrist/from_timestamp"] == 0.0
    reader = LeRobotReader(out)
    with (
        reader.episode("episode2") as ep,
        open_dataset(demo_store_dir / "sample.zarr").episode("episode2") as ref,
    ):
        assert psnr(ep.load("cameras/wrist/rgb"), ref.load("cameras/wrist/rgb")) >= MIN_PSNR_DB
        assert np.array_equal(ep.load("robot/joint_positions"), ref.load("robot/joint_positions"))


def test_random_frame_access_decodes_the_frame_at_its_timestamp(lerobot_demo):
    video = lerobot_demo / "videos/observation.images.front/chunk-000/file-000.mp4"
    with av.open(str(video)) as container:
        decoded_in_order = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    with LeRobotReader(lerobot_demo).episode("episode1") as ep:
        frames = ep["cameras/front/rgb"]
        for t in (17, 3, 23, 0, 4, 5):  # backwards and forwards: seeks as well as sequential decoding
            assert np.array_equal(frames[t], decoded_in_order[24 + t]), t


# ---------------------------------------------------------------- crash safety and resuming


class FailingFrames(LazyFrames):
    def __init__(self, frames, fail_at):
        super().__init__(self._load, len(frames), frames.shape[1:], frames.dtype)
        self.frames, self.fail_at = frames, fail_at

    def _load(self, t):
        if t == self.fail_at:
            raise FormatError("corrupt frame", file=f"frame{t}.png")
        return self.frames[t]


def test_an_episode_failing_half_way_leaves_no_frames_behind(tmp_path):
    manifest_src = tmp_path / "src.zarr"
    from genima_data.demo import build_demo

    source = build_demo(manifest_src, episodes=3, frames=12, size=32)
    writer = LeRobotWriter(tmp_path / "lr", source.manifest)
    with (
        source.episode("episode0") as ep0,
        source.episode("episode1") as ep1,
        source.episode("episode2") as ep2,
    ):
        writer.write_episode(ep0)
        broken = ep1.with_arrays(
            {"cameras/front/rgb": FailingFrames(ep1.load("cameras/front/rgb"), fail_at=7)}
        )
        with pytest.raises(FormatError, match="corrupt frame"):
            writer.write_episode(broken)
        writer.write_episode(ep2)
    writer.commit()
    reader = LeRobotReader(tmp_path / "lr")
    assert reader.episode_ids == ["episode0", "episode2"]
    with reader.episode("episode2") as back, source.episode("episode2") as ref:
        assert psnr(back.load("cameras/front/rgb"), ref.load("cameras/front/rgb")) >= MIN_PSNR_DB
    with av.open(str(tmp_path / "lr/videos/observation.images.front/chunk-000/file-000.mp4")) as video:
        assert sum(1 for _ in video.decode(video=0)) == 24


def test_interrupted_write_resumes_keeping_closed_file_groups(demo_store_dir, tmp_path):
    source = open_dataset(demo_store_dir / "sample.zarr")
    out = tmp_path / "lr"
    writer = LeRobotWriter(out, source.manifest, episodes_per_file=1)
    for eid in ("episode0", "episode1"):
        with source.episode(eid) as ep:
            writer.write_episode(ep)
    del writer  # killed before commit: episode1's group is still open (temporary files only)
    with pytest.raises(FormatError, match="incomplete"):
        LeRobotReader(out)
    resumed = convert(
        demo_store_dir / "sample.zarr", out, to="lerobot", writer_options={"episodes_per_file": 1}
    )
    assert resumed.skipped == ["episode0", "episode1"] and resumed.written == ["episode2"]
    uninterrupted = tmp_path / "whole"
    convert(
        demo_store_dir / "sample.zarr", uninterrupted, to="lerobot", writer_options={"episodes_per_file": 1}
    )
    for name in ("info.json", "stats.json"):
        assert lerobot_json(out, name) == lerobot_json(uninterrupted, name)
    for rel in ("data/chunk-000/file-001.parquet", "meta/episodes/chunk-000/file-002.parquet"):
        assert pq.read_table(out / rel).equals(pq.read_table(uninterrupted / rel))
    assert not list(out.rglob(".tmp-*"))


def test_group_files_without_their_episode_metadata_are_redone(demo_store_dir, tmp_path):
    out = tmp_path / "lr"
    convert(demo_store_dir / "sample.zarr", out, to="lerobot", writer_options={"episodes_per_file": 2})
    # a crash after the group's data and videos were renamed into place, before its metadata was written
    (out / "meta/episodes/chunk-000/file-001.parquet").unlink()
    again = convert(
        demo_store_dir / "sample.zarr", out, to="lerobot", writer_options={"episodes_per_file": 2}
    )
    assert again.skipped == ["episode0", "episode1"] and again.written == ["episode2"]
    assert pq.read_table(out / "data/chunk-000/file-001.parquet").num_rows == 24


def test_a_different_dataset_at_the_destination_is_refused(lerobot_copy, tmp_path):
    from genima_data.demo import build_demo

    other = build_demo(tmp_path / "other.zarr", episodes=1, frames=4, size=16)
    with pytest.raises(StoreError, match="already holds a different dataset"):
        convert(other.path, lerobot_copy, to="lerobot")


def test_off_grid_timestamps_are_refused_unless_retimed(tmp_path):
    from genima_data.demo import demo_manifest

    episode = demo_episode(0, frames=12, size=32)
    jittered = episode.load("timestamps") + np.linspace(0, 0.02, 12)
    episode = episode.with_arrays({"timestamps": jittered})
    with pytest.raises(GenimaDataError, match=r"episode0: timestamps: frame 11 is at .* retime=true"):
        LeRobotWriter(tmp_path / "strict", demo_manifest(32)).write_episode(episode)
    writer = LeRobotWriter(tmp_path / "retimed", demo_manifest(32), retime=True)
    writer.write_episode(episode)
    writer.commit()
    with LeRobotReader(tmp_path / "retimed").episode("episode0") as back:
        assert np.array_equal(back.load("timestamps"), jittered)
    assert pq.read_table(tmp_path / "retimed/data/chunk-000/file-000.parquet")["timestamp"].to_pylist()[
        11
    ] == (pytest.approx(1.1))


# ---------------------------------------------------------------- LeRobot datasets from elsewhere


def test_reads_a_lerobot_v21_dataset(tmp_path):
    episodes = demo_v21_episodes(count=2, frames=10)
    root = write_lerobot_v21(tmp_path / "v21", episodes, state_names=PANDA_STATE, robot_type="franka_panda")
    calibration = write_calibration(tmp_path / "cams.json", demo_cameras(32))
    reader = LeRobotReader(root, calibration=calibration)
    assert reader.version == "v2.1"
    assert reader.episode_ids == ["episode_000000", "episode_000001"]
    assert reader.manifest.robot.model == "franka_panda" and [c.name for c in reader.manifest.cameras] == [
        "front"
    ]
    with reader.episode("episode_000001") as ep:
        assert ep.meta.instruction == "pick" and ep.meta.source.index == 1
        assert np.array_equal(
            ep.load("robot/joint_positions"), episodes[1]["state"][:, :7].astype(np.float32)
        )
        assert np.array_equal(ep.load("robot/gripper_open"), episodes[1]["state"][:, 7].astype(np.float32))
        assert np.array_equal(ep.load("timestamps"), np.arange(10) / 10)
        assert psnr(ep.load("cameras/front/rgb"), episodes[1]["frames"]["front"]) >= MIN_PSNR_DB
        assert "extras/observation.state" not in ep  # state = joints + gripper: nothing dropped


def test_v21_dataset_converts_to_a_store_through_the_cli(tmp_path, run_cli):
    root = write_lerobot_v21(
        tmp_path / "v21", demo_v21_episodes(), state_names=PANDA_STATE, robot_type="franka_panda"
    )
    cams = write_calibration(tmp_path / "cams.json", demo_cameras(32))
    result = run_cli("convert", root, tmp_path / "out.zarr", "--calibration", cams)
    assert result.exit_code == 0, result.stderr
    assert open_dataset(tmp_path / "out.zarr").episode_ids == ["episode_000000", "episode_000001"]


def test_bimanual_state_needs_an_arm_and_keeps_the_whole_vector(tmp_path):
    rng = np.random.default_rng(0)
    names = [
        f"{side}_{j}"
        for side in ("left", "right")
        for j in ("waist", "shoulder", "elbow", "forearm_roll", "wrist_angle", "wrist_rotate", "gripper")
    ]
    state = rng.uniform(-1, 1, (8, 14)).astype(np.float32)
    frames = rng.integers(0, 255, (8, 32, 32, 3), dtype=np.uint8)
    root = write_lerobot_v21(
        tmp_path / "aloha",
        [{"state": state, "action": state, "frames": {"front": frames}}],
        state_names=names,
        robot_type="aloha",
    )
    with pytest.raises(
        FormatError, match=r"2 gripper entries \['left_gripper', 'right_gripper'\].*arm=<prefix>"
    ):
        LeRobotReader(root, cameras=[])
    reader = LeRobotReader(root, arm="right", robot="vx300s", cameras=[])
    with reader.episode("episode_000000") as ep:
        assert np.array_equal(ep.load("robot/joint_positions"), state[:, 7:13])
        assert np.array_equal(ep.load("robot/gripper_open"), state[:, 13])
        assert np.array_equal(ep.load("extras/observation.state"), state)
        assert np.array_equal(ep.load("action/joint_positions"), state[:, 7:14])


# ---------------------------------------------------------------- bad input: one line, naming file and field


def test_names_null_in_the_state_feature_is_a_one_line_error(lerobot_copy, run_cli, tmp_path):
    edit_info(lerobot_copy, lambda info: info["features"]["observation.state"].update(names=None))
    with pytest.raises(FormatError, match=r"info.json: features.observation.state.names: names is null"):
        LeRobotReader(lerobot_copy)
    result = run_cli("convert", lerobot_copy, tmp_path / "out.zarr")
    assert result.exit_code == 1
    assert len(result.stderr.strip().splitlines()) == 1 and "names is null" in result.stderr
    assert not (tmp_path / "out.zarr").exists()


def test_missing_stats_are_reported_unless_allowed(lerobot_copy):
    (lerobot_copy / "meta/stats.json").unlink()
    with pytest.raises(FormatError, match=r"stats: normalisation statistics are missing \(meta/stats.json\)"):
        LeRobotReader(lerobot_copy)
    assert len(LeRobotReader(lerobot_copy, require_stats=False).episode_ids) == 3


def test_timestamps_off_the_frame_rate_name_episode_and_frame(lerobot_copy):
    data = lerobot_copy / "data/chunk-000/file-000.parquet"
    table = pq.read_table(data)
    stamps = table["timestamp"].to_numpy().copy()
    stamps[24 + 5] += 0.05  # episode1, frame 5
    pq.write_table(
        table.set_column(table.schema.get_field_index("timestamp"), "timestamp", pa.array(stamps)), data
    )
    reader = LeRobotReader(lerobot_copy)
    with pytest.raises(FormatError) as err:
        reader.episode("episode1")
    assert str(err.value) == (
        f"{data}: episode episode1: timestamp: timestamps do not match fps 10: frame 5 is 0.150000 s after "
        "frame 4, expected 0.100000 s ± 0.0001 s"
    )
    with reader.episode("episode0") as ep:  # the other episodes stay readable
        assert ep.length == 24


def test_video_span_shorter_than_the_episode_is_reported(lerobot_copy):
    path = lerobot_copy / "meta/episodes/chunk-000/file-000.parquet"
    table = pq.read_table(path)
    column = "videos/observation.images.wrist/to_timestamp"
    to = table[column].to_numpy().copy()
    to[0] -= 0.5
    pq.write_table(table.set_column(table.schema.get_field_index(column), column, pa.array(to)), path)
    with pytest.raises(
        FormatError, match=r"episode episode0: videos/observation.images.wrist/to_timestamp: .*beyond"
    ):
        LeRobotReader(lerobot_copy).episode("episode0")


def test_foreign_dataset_without_calibration_names_the_cameras(lerobot_copy, tmp_path):
    make_foreign(lerobot_copy)
    with pytest.raises(
        FormatError, match=r"no calibration for camera\(s\) \['front', 'left_shoulder'.*--calibration"
    ):
        LeRobotReader(lerobot_copy)
    cams = write_calibration(tmp_path / "cams.json", demo_cameras(32))
    reader = LeRobotReader(lerobot_copy, calibration=cams)
    assert reader.episode_ids == ["episode_000000", "episode_000001", "episode_000002"]
    with reader.episode("episode_000002") as ep:
        assert ep.meta.task == "lerobot" and ep.meta.instruction == "reach the red target"
        assert ep["extras/genima.cameras.wrist.extrinsics"].shape == (24, 16)


def test_unsupported_codebase_version_is_refused(lerobot_copy):
    edit_info(lerobot_copy, lambda info: info.update(codebase_version="v1.6"))
    with pytest.raises(FormatError, match=r"codebase_version: codebase_version 'v1.6' is not supported"):
        LeRobotReader(lerobot_copy)


def test_missing_video_file_is_reported_with_its_path(lerobot_copy):
    video = lerobot_copy / "videos/observation.images.front/chunk-000/file-000.mp4"
    video.unlink()
    with pytest.raises(FormatError, match="video file is missing"):
        LeRobotReader(lerobot_copy).episode("episode0")


def test_engine_ray_is_refused_for_a_single_process_format(demo_store_dir, tmp_path):
    with pytest.raises(FormatError, match="written by a single process"):
        convert(demo_store_dir / "sample.zarr", tmp_path / "lr", to="lerobot", engine="ray")
    assert not (tmp_path / "lr").exists()


def test_depth_and_sphere_targets_survive_the_round_trip(tmp_path):
    from genima_data.demo import demo_manifest

    episode = demo_episode(0, frames=12, size=32)
    rng = np.random.default_rng(1)
    depth = rng.uniform(0.3, 3.0, (12, 32, 32)).astype(np.float32)
    targets = np.zeros((12, 32, 32, 3), np.uint8)
    targets[:, 10:20, 10:20] = (5, 206, 235)
    episode = episode.with_arrays({"cameras/front/depth": depth, "targets/front/rgb": targets})
    writer = LeRobotWriter(tmp_path / "lr", demo_manifest(32))
    writer.write_episode(episode)
    writer.commit()
    features = lerobot_json(tmp_path / "lr")["features"]
    assert features["observation.targets.front.rgb"]["dtype"] == "video"
    assert features["genima.cameras.front.depth"]["shape"] == [32 * 32]
    with LeRobotReader(tmp_path / "lr").episode("episode0") as back:
        assert np.array_equal(back.load("cameras/front/depth"), depth)  # numeric columns: lossless
        assert psnr(back.load("targets/front/rgb"), targets) >= MIN_PSNR_DB


def truncate(path):
    path.write_bytes(path.read_bytes()[:300])


@pytest.mark.parametrize(
    "relative",
    ["data/chunk-000/file-000.parquet", "meta/episodes/chunk-000/file-000.parquet", "meta/tasks.parquet"],
)
def test_truncated_parquet_file_is_a_one_line_error_naming_it(lerobot_copy, relative, run_cli, tmp_path):
    truncate(lerobot_copy / relative)
    result = run_cli("convert", lerobot_copy, tmp_path / "out.zarr")
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.exit_code == 1 and "Traceback" not in result.stderr, result.stderr
    assert len(errors) == 1 and f"{lerobot_copy / relative}: " in errors[0]
    assert "unreadable parquet file" in errors[0]


def test_truncated_v21_episode_file_fails_only_its_episode(tmp_path, run_cli):
    root = write_lerobot_v21(
        tmp_path / "v21", demo_v21_episodes(), state_names=PANDA_STATE, robot_type="franka_panda"
    )
    truncate(root / "data/chunk-000/episode_000000.parquet")
    cams = write_calibration(tmp_path / "cams.json", demo_cameras(32))
    result = run_cli("convert", root, tmp_path / "out.zarr", "--calibration", cams, "--skip-invalid")
    assert result.exit_code == 1 and "Traceback" not in result.stderr
    assert "failed episode_000000" in result.stderr.replace("\n", " ")
    assert open_dataset(tmp_path / "out.zarr").episode_ids == ["episode_000001"]


def test_calibration_at_another_resolution_is_refused_naming_both_sizes(lerobot_copy, tmp_path):
    make_foreign(lerobot_copy)
    cams = write_calibration(tmp_path / "cams.json", demo_cameras(64))
    with pytest.raises(FormatError) as err:
        LeRobotReader(lerobot_copy, calibration=cams)
    assert str(err.value) == (
        f"{cams}: cameras.front: camera 'front' is calibrated at 64x64 but its images in {lerobot_copy} are "
        "32x32: the calibration belongs to another resolution"
    )


def test_misspelt_camera_option_is_refused_listing_the_cameras(lerobot_copy):
    with pytest.raises(FormatError, match=r"cameras: unknown camera\(s\) \['frnot'\] \(available: front, "):
        LeRobotReader(lerobot_copy, cameras=["frnot"])
    assert [c.name for c in LeRobotReader(lerobot_copy, cameras=["wrist"]).manifest.cameras] == ["wrist"]


def test_sphere_targets_on_procedural_backgrounds_come_back_above_35db(tmp_path):
    from genima_data.demo import build_demo
    from genima_data.render.pipeline import render_targets

    store = build_demo(tmp_path / "x.zarr", episodes=2, frames=24, size=128).path
    render_targets(store, random_bg="procedural")
    convert(store, tmp_path / "lr", to="lerobot")
    convert(tmp_path / "lr", tmp_path / "back.zarr")
    src, back = open_dataset(store), open_dataset(tmp_path / "back.zarr")
    targets = [p for p in src.episode("episode0").paths() if p.startswith("targets/")]
    assert {p.rsplit("/", 1)[1] for p in targets} == {"rgb", "rnd_bg"}
    for eid in src.episode_ids:
        with src.episode(eid) as a, back.episode(eid) as b:
            for path in targets:
                assert psnr(a.load(path), b.load(path)) >= MIN_PSNR_DB, (eid, path)


def test_resuming_from_another_seed_refuses_the_different_episodes(tmp_path):
    from genima_data.demo import build_demo

    seed0 = build_demo(tmp_path / "s.zarr", episodes=2, frames=4, size=16).path
    seed1 = build_demo(tmp_path / "s1.zarr", episodes=2, frames=4, size=16, seed=1).path
    out = tmp_path / "lr"
    convert(seed0, out, to="lerobot")
    info = (out / INFO_PATH).read_text()
    with pytest.raises(
        StoreError, match=r"already holds a different episode with this id \(differs in seed"
    ) as e:
        convert(seed1, out, to="lerobot")
    assert "meta/episodes/chunk-000/file-000.parquet" in str(e.value) and "episode0" in str(e.value)
    assert "\n" not in str(e.value)
    # the refused run leaves the committed dataset as it was, readable
    assert (out / INFO_PATH).read_text() == info
    assert LeRobotReader(out).episode_ids == ["episode0", "episode1"]
    assert convert(seed0, out, to="lerobot").skipped == ["episode0", "episode1"]
    # an interrupted export resumed from the other source is refused as well (no mixed episodes)
    cut = tmp_path / "cut"
    writer = LeRobotWriter(cut, open_dataset(seed0).manifest, episodes_per_file=1)
    with open_dataset(seed0).episode("episode0") as episode:
        writer.write_episode(episode)
    writer.write_episode(demo_episode(1, frames=4, size=16))  # closes episode0's group
    del writer
    with pytest.raises(StoreError, match="different episode with this id"):
        convert(seed1, cut, to="lerobot", writer_options={"episodes_per_file": 1})


def test_resuming_with_other_video_settings_is_refused(tmp_path):
    from genima_data.demo import build_demo

    source = build_demo(tmp_path / "s.zarr", episodes=2, frames=4, size=16).path
    out = tmp_path / "lr"
    convert(source, out, to="lerobot", writer_options={"image_codec": "libx264", "crf": 28})
    info = (out / INFO_PATH).read_text()
    for options, message in [
        (
            {"image_codec": "libsvtav1"},
            r"started with image codec 'libx264', not 'libsvtav1'; resume without ",
        ),
        ({"crf": 20}, r"started with crf 28, not 20; resume without the crf option"),
    ]:
        with pytest.raises(StoreError, match=message):
            convert(source, out, to="lerobot", writer_options=options)
        assert (out / INFO_PATH).read_text() == info
    # an interrupted run resumed with other settings is refused too
    writer = LeRobotWriter(tmp_path / "cut", open_dataset(source).manifest, image_codec="libx264")
    del writer
    with pytest.raises(StoreError, match="started with image codec 'libx264', not 'libsvtav1'"):
        convert(source, tmp_path / "cut", to="lerobot", writer_options={"image_codec": "libsvtav1"})
    # without the options the recorded settings are kept
    convert(source, tmp_path / "cut", to="lerobot")
    features = lerobot_json(tmp_path / "cut")["features"]
    assert features["observation.images.front"]["info"]["video.codec"] == "h264"


def test_run_killed_before_its_write_marker_landed_can_be_resumed(tmp_path):
    from genima_data.demo import build_demo

    source = build_demo(tmp_path / "s.zarr", episodes=2, frames=4, size=16).path
    early = tmp_path / "early"
    (early / "meta").mkdir(parents=True)  # killed while atomically writing meta/.genima-pending.json
    (early / "meta" / ".tmp-.genima-pending.json.123.abcd").write_text("{")
    result = convert(source, early, to="lerobot")
    assert result.written == ["episode0", "episode1"]
    assert not list(early.rglob(".tmp-*"))
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "meta").mkdir()
    (tmp_path / "mine" / "meta" / "notes.txt").write_text("keep")
    with pytest.raises(StoreError, match="not a LeRobot dataset"):
        convert(source, tmp_path / "mine", to="lerobot")
    assert (tmp_path / "mine" / "meta" / "notes.txt").read_text() == "keep"


def test_calibration_file_lacking_a_camera_names_the_file_and_the_camera(lerobot_copy):
    calibration = lerobot_copy / "meta" / "calibration.json"
    record = json.loads(calibration.read_text())
    record["cameras"] = [c for c in record["cameras"] if c["name"] != "wrist"]
    calibration.write_text(json.dumps(record))
    with pytest.raises(
        FormatError, match=r"no calibration for camera\(s\) \['wrist'\]: meta/calibration.json has"
    ) as e:
        LeRobotReader(lerobot_copy)
    assert "carries none" not in str(e.value) and "calibration.json" in str(e.value)

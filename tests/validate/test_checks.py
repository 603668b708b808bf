"""Every check fires on a crafted bad copy of the demo and stays silent on the demo itself."""

from __future__ import annotations

import os
import shutil

import h5py
import numpy as np
import pytest

from genima_data.demo import build_demo
from genima_data.episode import Episode
from genima_data.store import open_dataset
from genima_data.validate import (
    EpisodeContext,
    Severity,
    ValidateOptions,
    registered_checks,
    validate_dataset,
)
from genima_data.validate.registry import run_check
from tests.validate.conftest import (
    edit_meta,
    episode_file,
    findings_of,
    read_array,
    set_array,
    update_camera,
    write_raw,
)

JOINTS = "robot/joint_positions"


# ---------------------------------------------------------------- the demo is clean
def test_demo_passes_every_check_without_errors_or_warnings(demo_copy):
    report = validate_dataset(demo_copy)
    assert [f.one_line() for f in report.findings if f.severity != Severity.info] == []
    assert report.exit_code == 0
    assert {s.name for s in report.checks} == {n for n, s in registered_checks().items() if s.default}


def test_demo_reports_jitter_statistics_per_episode(demo_copy):
    report = validate_dataset(demo_copy, checks=["timestamps"])
    stats = [f for f in report.infos if f.field == "timestamps"]
    assert len(stats) == 3
    assert "jitter std 0.00 ms" in stats[0].message and "0 dropped" in stats[0].message


# ---------------------------------------------------------------- dataset scope
def test_missing_velocity_limits_warns_that_jumps_cannot_be_checked(demo_copy):
    ds = open_dataset(demo_copy, "a")
    ds.update_manifest(robot={**ds.manifest.robot.model_dump(), "joint_velocity_limits": None})
    (finding,) = findings_of(demo_copy, "manifest")
    assert finding.severity == Severity.warning and finding.field == "robot.joint_velocity_limits"
    assert finding.file == str(demo_copy) and finding.episode is None
    assert findings_of(demo_copy, "trajectory_jumps") == []


def test_manifest_without_cameras_is_an_error(zarr_copy):
    open_dataset(zarr_copy, "a").update_manifest(cameras=[])
    assert any("no cameras" in f.message for f in findings_of(zarr_copy, "manifest"))


def test_truncated_episode_file_is_an_error_for_that_episode_not_a_crash(demo_copy):
    if demo_copy.suffix == ".zarr":  # a zarr episode's "file" is its group metadata
        (episode_file(demo_copy, "episode1") / "zarr.json").write_text('{"zarr_format": 3, "node_')
    else:
        path = episode_file(demo_copy, "episode1")
        with open(path, "r+b") as f:
            f.truncate(os.path.getsize(path) // 2)
    report = validate_dataset(demo_copy)
    (finding,) = report.errors
    assert (finding.check, finding.episode) == ("episode_files", "episode1")
    assert finding.file.startswith(str(episode_file(demo_copy, "episode1")))
    assert "truncated or corrupt" in finding.message or "malformed" in finding.message


def test_indexed_episode_missing_on_disk_is_an_error(demo_copy):
    path = episode_file(demo_copy, "episode2")
    shutil.rmtree(path) if path.is_dir() else path.unlink()
    (finding,) = validate_dataset(demo_copy).errors
    assert (finding.check, finding.episode, finding.severity) == ("episode_files", "episode2", "error")
    assert "missing" in finding.message


def test_corrupt_chunk_is_reported_by_the_checks_that_read_it(zarr_copy):
    array = episode_file(zarr_copy, "episode0") / "robot/joint_positions"
    chunk = next(f for f in sorted(array.rglob("c*")) if f.is_file())  # c.0.0 (or c/0/0 in older stores)
    chunk.write_bytes(chunk.read_bytes()[:10])
    errors = validate_dataset(zarr_copy).errors
    assert errors and {f.episode for f in errors} == {"episode0"}
    corrupt = [f for f in errors if f.check == "joint_limits"]
    assert corrupt[0].field == "robot/joint_positions" and "truncated or corrupt" in corrupt[0].message


def test_unindexed_episode_and_leftover_temporaries_are_warned_about(demo_copy):
    src, dst = episode_file(demo_copy, "episode0"), episode_file(demo_copy, "episode9")
    shutil.copytree(src, dst) if src.is_dir() else shutil.copy(src, dst)
    (demo_copy / "episodes" / ".tmp-episode5.h5.123.abcd").write_bytes(b"half")
    found = findings_of(demo_copy, "episode_files")
    assert [f.severity for f in found] == ["warning", "warning"]
    assert found[0].episode == "episode9" and "not in the manifest" in found[0].message
    assert "interrupted write" in found[1].message


def test_leftovers_of_an_interrupted_write_inside_an_episode_are_warned_about(zarr_copy):
    # an interrupted render-targets leaves them next to the target arrays, not in episodes/
    leftover = zarr_copy / "episodes" / "episode2" / "targets" / "front" / ".tmp-rnd_bg.123.abcd"
    leftover.mkdir(parents=True)
    (leftover / "zarr.json").write_text("{}")
    found = findings_of(zarr_copy, "episode_files")
    assert [f.severity for f in found] == ["warning"]
    assert "1 leftover(s) of interrupted writes (episodes/episode2/targets/front/.tmp-rnd_bg.123.abcd)" in (
        found[0].message
    )


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"K": [[110.0, 0, 500.0], [0, 110.0, 15.5], [0, 0, 1]]}, "principal point (500, 15.5) lies outside"),
        ({"K": [[0.8, 0, 15.5], [0, 0.8, 15.5], [0, 0, 1]]}, "field of view"),
        ({"T_world_camera": None}, "no T_world_camera"),
        ({"K": [[40.0, 0, 15.5], [0, 30.0, 15.5], [0, 0, 1]]}, "non-square pixels"),
    ],
    ids=["principal-point", "focal-length", "static-pose", "pixel-aspect"],
)
def test_implausible_calibration_is_flagged(zarr_copy, changes, expected):
    update_camera(zarr_copy, "front", **changes)
    found = findings_of(zarr_copy, "calibration")
    assert len(found) >= 1 and all(f.field.startswith("cameras.front.") for f in found)
    assert any(expected in f.message for f in found), [f.message for f in found]


def test_duplicated_episode_is_an_error_naming_the_original(demo_copy):
    set_array(demo_copy, "episode2", JOINTS, read_array(demo_copy, "episode0", JOINTS))
    (finding,) = findings_of(demo_copy, "duplicates")
    assert (finding.severity, finding.episode, finding.field) == ("error", "episode2", JOINTS)
    assert "episode0" in finding.message


# ---------------------------------------------------------------- metadata and structure
def test_episode_metadata_disagreeing_with_its_id_task_and_index_is_flagged(demo_copy):
    edit_meta(demo_copy, "episode1", reindex=False, episode_id="episode7", task="stack_blocks", success=False)
    fields = sorted(f.field for f in findings_of(demo_copy, "episode_meta"))
    assert fields == [
        "episode_id",
        "success",
        "task",
        "task",
    ]  # id, unknown task, stale index (task, success)


def test_metadata_failing_the_schema_is_an_episode_meta_error(demo_copy):
    edit_meta(demo_copy, "episode0", reindex=False, length=-3)
    (finding,) = validate_dataset(demo_copy).errors
    assert (finding.check, finding.episode, finding.field) == ("episode_meta", "episode0", "length")


def test_missing_required_arrays_and_camera_streams_are_errors(demo_copy):
    write_raw(demo_copy, "episode0", "robot/gripper_open", None)
    write_raw(demo_copy, "episode0", "cameras/front/rgb", None)
    found = findings_of(demo_copy, "required_arrays")
    assert sorted(f.field for f in found) == ["cameras/front/rgb", "robot/gripper_open"]


@pytest.mark.parametrize(
    ("field", "values", "expected"),
    [
        (JOINTS, np.zeros((24, 7), np.float64), "dtype is float64, expected float32"),
        (JOINTS, np.zeros((24, 6), np.float32), "shape is (24, 6)"),
        ("action/joint_positions", np.zeros((24, 7), np.float32), "expected ('T', 'dof+1')"),
        ("foo/bar", np.zeros(24), "outside the logical tree"),
    ],
    ids=["dtype", "joint-count", "action-width", "unknown-path"],
)
def test_wrong_dtypes_and_shapes_are_structure_errors(demo_copy, field, values, expected):
    write_raw(demo_copy, "episode1", field, values)
    (finding,) = findings_of(demo_copy, "structure")
    assert (finding.episode, finding.field) == ("episode1", field)
    assert expected in finding.message


def test_malformed_arrays_do_not_crash_value_checks(demo_copy):
    write_raw(demo_copy, "episode1", JOINTS, np.zeros((24, 3, 2), np.float32))
    report = validate_dataset(demo_copy)
    assert [(f.check, f.field) for f in report.errors] == [("structure", JOINTS)]


def test_streams_of_different_lengths_are_frame_count_errors(demo_copy):
    write_raw(demo_copy, "episode0", "robot/gripper_open", np.ones(23, np.float32))
    (finding,) = findings_of(demo_copy, "frame_counts")
    assert finding.field == "robot/gripper_open" and "has 23 frames, expected 24" in finding.message


# ---------------------------------------------------------------- timing
def demo_timestamps() -> np.ndarray:
    return np.arange(24, dtype=np.float64) / 10.0


def test_timestamps_going_backwards_are_an_error_with_frame_indices(demo_copy):
    t = demo_timestamps()
    t[5] = t[4]
    set_array(demo_copy, "episode0", "timestamps", t)
    (finding,) = [f for f in findings_of(demo_copy, "timestamps") if f.severity == "error"]
    assert finding.frames == (5,) and "not strictly increasing at frame 5" in finding.message


def test_timestamps_at_another_rate_than_the_manifest_fps_are_an_error(demo_copy):
    set_array(demo_copy, "episode0", "timestamps", demo_timestamps() / 2)
    (finding,) = findings_of(demo_copy, "timestamps")
    assert finding.severity == "error" and "20 Hz" in finding.message and "fps 10" in finding.message


def test_dropped_frames_are_counted_and_located(demo_copy):
    t = demo_timestamps()
    t[10:] += 0.2  # two periods missing before frame 10
    set_array(demo_copy, "episode0", "timestamps", t)
    (finding,) = findings_of(demo_copy, "timestamps")
    assert finding.severity == "warning" and finding.frames == (10,)
    assert "about 2 dropped" in finding.message


def test_large_jitter_is_a_warning_with_statistics(demo_copy):
    t = demo_timestamps() + np.tile([0.0, 0.03], 12)
    set_array(demo_copy, "episode0", "timestamps", t)
    (finding,) = findings_of(demo_copy, "timestamps")
    assert finding.severity == "warning" and "jitter std 29.97 ms, max 30.00 ms" in finding.message


# ---------------------------------------------------------------- values
def test_nan_joint_is_an_error_naming_frame_and_joint(demo_copy):
    q = read_array(demo_copy, "episode1", JOINTS)
    q[7, 2] = np.nan
    set_array(demo_copy, "episode1", JOINTS, q)
    (finding,) = findings_of(demo_copy, "finite")
    assert (finding.severity, finding.episode, finding.field, finding.frames) == (
        "error",
        "episode1",
        JOINTS,
        (7,),
    )
    assert finding.message == "NaN at frame 7 (joint panda_joint3)"


def test_inf_in_extrinsics_and_nan_depth_pixels_are_found(zarr_copy):
    extrinsics = read_array(zarr_copy, "episode0", "cameras/wrist/extrinsics")
    extrinsics[3, 0, 3] = np.inf
    depth = np.ones((24, 32, 32), np.float32)
    depth[[2, 9], 5, 5] = np.nan
    set_array(zarr_copy, "episode0", "cameras/wrist/extrinsics", extrinsics)
    set_array(zarr_copy, "episode0", "cameras/front/depth", depth)
    found = {f.field: f for f in findings_of(zarr_copy, "finite")}
    assert found["cameras/wrist/extrinsics"].severity == "error"
    assert found["cameras/wrist/extrinsics"].message.startswith("inf at frame 3")
    assert found["cameras/front/depth"].severity == "warning" and found["cameras/front/depth"].frames == (
        2,
        9,
    )


def test_joint_beyond_its_limit_is_an_error_and_the_margin_is_configurable(demo_copy):
    q = read_array(demo_copy, "episode0", JOINTS)
    q[3:5, 3] = 0.1  # panda_joint4's upper limit is -0.0698
    set_array(demo_copy, "episode0", JOINTS, q)
    (finding,) = findings_of(demo_copy, "joint_limits")
    assert finding.frames == (3, 4) and "panda_joint4 outside" in finding.message
    assert findings_of(demo_copy, "joint_limits", options=ValidateOptions(joint_limit_margin_rad=0.2)) == []


def test_gripper_outside_zero_one_is_an_error(demo_copy):
    g = read_array(demo_copy, "episode2", "robot/gripper_open")
    g[:4] = 255
    set_array(demo_copy, "episode2", "robot/gripper_open", g)
    (finding,) = findings_of(demo_copy, "gripper_range")
    assert finding.frames == (0, 1, 2, 3) and "values 255 to 255" in finding.message


def test_action_commands_outside_limits_are_errors(demo_copy):
    action = read_array(demo_copy, "episode0", "action/joint_positions")
    action[6, -1] = 2.0  # gripper command
    action[8, 0] = 4.0  # panda_joint1 beyond +2.8973
    set_array(demo_copy, "episode0", "action/joint_positions", action)
    found = findings_of(demo_copy, "actions")
    assert sorted(f.frames for f in found) == [(6,), (8,)]
    assert all(f.field == "action/joint_positions" for f in found)


def test_joint_jump_between_frames_is_an_error(demo_copy):
    q = read_array(demo_copy, "episode0", JOINTS)
    q[12:, 0] += 1.0  # 1 rad in 0.1 s = 10 rad/s > 1.5 × 2.175
    set_array(demo_copy, "episode0", JOINTS, q)
    (finding,) = findings_of(demo_copy, "trajectory_jumps")
    assert finding.frames == (12,) and "panda_joint1" in finding.message


# ---------------------------------------------------------------- cameras
def test_frames_of_another_size_than_the_calibration_are_errors(zarr_copy):
    update_camera(zarr_copy, "front", width=64, height=64, K=[[55.4, 0, 31.5], [0, 55.4, 31.5], [0, 0, 1]])
    found = findings_of(zarr_copy, "image_size")
    assert {(f.episode, f.field) for f in found} == {(f"episode{i}", "cameras/front/rgb") for i in range(3)}
    assert "frames are 32x32 but camera 'front' is calibrated at 64x64" in found[0].message


def test_moving_camera_without_any_pose_source_is_an_error(demo_copy):
    write_raw(demo_copy, "episode1", "cameras/wrist/extrinsics", None)
    (finding,) = findings_of(demo_copy, "camera_poses")
    assert finding.episode == "episode1" and "cannot be rendered" in finding.message
    update_camera(demo_copy, "wrist", T_link_camera=np.eye(4).tolist())
    assert findings_of(demo_copy, "camera_poses") == []


def test_non_rigid_extrinsics_are_an_error_with_frames(zarr_copy):
    extrinsics = read_array(zarr_copy, "episode0", "cameras/wrist/extrinsics")
    extrinsics[4, :3, :3] *= 1.1
    set_array(zarr_copy, "episode0", "cameras/wrist/extrinsics", extrinsics)
    (finding,) = findings_of(zarr_copy, "rigid_poses")
    assert finding.frames == (4,) and "not orthonormal" in finding.message


def test_blank_streams_are_errors_and_blank_frames_warnings(zarr_copy):
    rgb = read_array(zarr_copy, "episode0", "cameras/front/rgb")
    set_array(zarr_copy, "episode0", "cameras/front/rgb", np.zeros_like(rgb))
    rgb[[3, 4]] = 128
    set_array(zarr_copy, "episode0", "cameras/wrist/rgb", rgb)
    found = {f.field: f for f in findings_of(zarr_copy, "blank_frames")}
    assert (
        found["cameras/front/rgb"].severity == "error"
        and "every frame is blank" in found["cameras/front/rgb"].message
    )
    assert found["cameras/wrist/rgb"].severity == "warning" and found["cameras/wrist/rgb"].frames == (3, 4)


def test_frozen_stream_while_the_arm_moves_is_an_error(demo_copy):
    rgb = read_array(demo_copy, "episode0", "cameras/left_shoulder/rgb")
    rgb[5:13] = rgb[5]
    set_array(demo_copy, "episode0", "cameras/left_shoulder/rgb", rgb)
    (finding,) = findings_of(demo_copy, "frozen_frames")
    assert finding.severity == "error" and finding.frames == tuple(range(5, 13))
    assert findings_of(demo_copy, "frozen_frames", options=ValidateOptions(frozen_run_frames=9)) == []


def test_identical_frames_while_the_arm_is_still_are_only_info(zarr_copy):
    rgb = read_array(zarr_copy, "episode0", "cameras/front/rgb")
    q = read_array(zarr_copy, "episode0", JOINTS)
    rgb[5:13], q[5:13] = rgb[5], q[5]
    set_array(zarr_copy, "episode0", "cameras/front/rgb", rgb)
    set_array(zarr_copy, "episode0", JOINTS, q)
    report = validate_dataset(zarr_copy, checks=["frozen_frames"])
    assert [f.severity for f in report.findings] == ["info"]


class FrameByFrameOnly:
    """An image source that fails the test if anything but a single frame is requested."""

    def __init__(self, frames: np.ndarray) -> None:
        self._frames, self.shape, self.dtype = frames, frames.shape, frames.dtype
        self.reads = 0

    def __getitem__(self, index):
        assert isinstance(index, int), f"image stream read with {index!r}, not one frame"
        self.reads += 1
        return self._frames[index]


def test_image_checks_read_streams_one_frame_at_a_time_and_once(manifest, make_episode):
    episode = make_episode(0, frames=24)
    sources = {p: FrameByFrameOnly(np.asarray(episode[p])) for p in episode.paths() if p.endswith("/rgb")}
    episode = Episode(meta=episode.meta, arrays={**episode.arrays, **sources})
    ctx = EpisodeContext(
        path=None,
        dataset=None,
        manifest=manifest,
        options=ValidateOptions(),
        episode=episode,
        episode_id="episode0",
    )
    registry = registered_checks()
    for name in ("blank_frames", "frozen_frames", "finite", "image_size"):
        assert [f for f in run_check(registry[name], ctx) if f.severity != "info"] == []
    assert {s.reads for s in sources.values()} == {24}
    with pytest.raises(ValueError, match="frame by frame"):
        ctx.array("cameras/front/rgb")


# ---------------------------------------------------------------- length and labels
def test_episode_too_short_for_the_horizon_is_an_error(demo_copy):
    short = findings_of(demo_copy, "episode_length", options=ValidateOptions(horizon=25))
    assert [f.severity for f in short] == ["error"] * 3
    assert (
        short[0].message == "24 frames, fewer than the minimum 28 (GENIMA needs more than horizon + 2 = 27)"
    )
    long = findings_of(demo_copy, "episode_length", options=ValidateOptions(max_length=20))
    assert [f.severity for f in long] == ["warning"] * 3


def test_missing_success_label_is_a_warning(demo_copy):
    edit_meta(demo_copy, "episode2", success=None)
    (finding,) = findings_of(demo_copy, "success_labels")
    assert (finding.severity, finding.episode, finding.field) == ("warning", "episode2", "success")


def test_missing_instruction_is_a_warning(demo_copy):
    edit_meta(demo_copy, "episode0", instruction="")
    (finding,) = findings_of(demo_copy, "instructions")
    assert finding.severity == "warning" and "its task lists 2" in finding.message


def test_make_demo_dataset_at_its_default_size_is_genima_ready(tmp_path):
    build_demo(tmp_path / "sample.zarr")  # what `make demo` builds and validates
    report = validate_dataset(tmp_path / "sample.zarr")
    assert [f.one_line() for f in report.findings if f.severity != Severity.info] == []


@pytest.mark.parametrize("lost", ["joint chunk", "image shard"])
def test_chunks_lost_in_a_copy_are_errors_not_zeros(zarr_copy, lost):
    episode = episode_file(zarr_copy, "episode1")
    field = "robot/joint_positions" if lost == "joint chunk" else "cameras/front/rgb"
    (episode / field / ("c.0.0" if lost == "joint chunk" else "c.0.0.0.0")).unlink()
    found = findings_of(zarr_copy, "chunks")
    total = 1 if lost == "joint chunk" else 24  # one chunk of joints; one chunk per frame, in one shard
    assert [(f.severity, f.episode, f.field) for f in found] == [("error", "episode1", field)]
    assert found[0].message.startswith(f"{total} of {total} chunks are not on disk")


def test_hdf5_chunks_never_written_are_errors(demo_h5):

    with h5py.File(episode_file(demo_h5, "episode2"), "r+") as f:
        joints = f["robot/joint_positions"][()]
        attrs = dict(f["robot/joint_positions"].attrs)
        del f["robot/joint_positions"]
        rewritten = f.create_dataset(
            "robot/joint_positions", shape=joints.shape, dtype=joints.dtype, chunks=(4, 7)
        )
        rewritten.attrs.update(attrs)
        rewritten[:8] = joints[:8]  # the last four chunks never written
    found = findings_of(demo_h5, "chunks")
    assert [(f.episode, f.field, f.message[:29]) for f in found] == [
        ("episode2", "robot/joint_positions", "4 of 6 chunks are not on disk")
    ]


def test_arrays_written_by_zarr_python_may_leave_out_fill_value_chunks(zarr_copy):
    write_raw(zarr_copy, "episode1", "extras/zeros", np.zeros((24, 3), np.float32))  # zarr-python skips it
    assert findings_of(zarr_copy, "chunks") == []

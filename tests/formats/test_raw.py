"""Raw-recording importer: alignment, units, timestamps, calibration sizes, and its one-line errors."""

from __future__ import annotations

import numpy as np
import pytest

from genima_data.convert import convert
from genima_data.demo import demo_episode
from genima_data.episode import LazyFrames
from genima_data.errors import FormatError, GenimaDataError, SchemaError
from genima_data.formats.raw import RawReader, align_samples, nearest_samples
from genima_data.store import open_dataset
from tests.conftest import write_mapping

JOINTS = "robot/joint_positions"


def read(root, mapping: dict, tmp_path) -> RawReader:
    return RawReader(root, mapping=write_mapping(tmp_path / "mapping.yaml", mapping))


def edit_csv(path, edit) -> None:
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(edit(lines)))


# ------------------------------------------------------------------------------------------- alignment
def test_linear_alignment_interpolates_between_the_samples_around_each_frame():
    t_src = np.array([0.0, 0.01, 0.02, 0.03])
    values = np.array([[0.0], [1.0], [2.0], [3.0]])
    aligned, ok = align_samples(
        np.array([0.005, 0.02, 0.0275]), t_src, values, method="linear", tolerance=0.01
    )
    assert ok.all()
    np.testing.assert_allclose(aligned[:, 0], [0.5, 2.0, 2.75])


def test_alignment_never_extrapolates_beyond_the_log():
    t_src = np.array([1.0, 1.01, 1.02])
    values = np.arange(3.0)
    for method in ("linear", "nearest"):
        _, ok = align_samples(np.array([0.999, 1.01, 1.021]), t_src, values, method=method, tolerance=0.0005)
        assert ok.tolist() == [False, True, False], method


def test_a_frame_inside_a_log_gap_has_no_sample_within_tolerance():
    t_src = np.array([0.0, 0.01, 0.2, 0.21])
    _, ok = align_samples(np.array([0.005, 0.1, 0.205]), t_src, np.zeros(4), method="linear", tolerance=0.02)
    assert ok.tolist() == [True, False, True]


def test_nearest_sample_picks_the_closer_neighbour():
    index, ok = nearest_samples(np.array([0.0, 0.049, 0.051, 0.3]), np.array([0.0, 0.1, 0.2]), 0.06)
    assert index.tolist() == [0, 0, 1, 2] and ok.tolist() == [True, True, True, False]


# ------------------------------------------------------------------------------------------- import
def test_vendor_a_imports_the_demo_it_was_made_from(vendor_a, tmp_path):
    root, mapping = vendor_a
    reader = read(root, mapping, tmp_path)
    assert reader.episode_ids == ["episode_000", "episode_001"]
    assert reader.manifest.fps == 10.0
    with reader.episode("episode_001") as episode:
        source = demo_episode(1, frames=30, size=48)
        assert isinstance(episode["cameras/front/rgb"], LazyFrames)  # decoded on demand
        # degrees → rad; 1e-5: the log's wall-clock seconds (1.7e9) resolve 0.24 µs as float64
        np.testing.assert_allclose(episode.load(JOINTS), source.load(JOINTS), atol=1e-5)
        np.testing.assert_allclose(
            episode.load("robot/gripper_open"), source.load("robot/gripper_open"), atol=1e-4
        )
        np.testing.assert_allclose(episode.load("timestamps"), source.load("timestamps"), atol=1e-6)
        assert np.array_equal(
            episode.load("cameras/right_shoulder/rgb"), source.load("cameras/right_shoulder/rgb")
        )
        assert (episode.meta.task, episode.meta.instruction) == (source.meta.task, source.meta.instruction)
        assert episode.meta.extras["raw_import"]["kept_frames"] == 30


def test_convert_with_mapping_option_writes_a_store(vendor_a, tmp_path, run_cli):
    root, mapping = vendor_a
    path = write_mapping(tmp_path / "m.yaml", mapping)
    result = run_cli("convert", root, tmp_path / "out.zarr", "--from", "raw", "--mapping", path)
    assert result.exit_code == 0, result.stderr
    with open_dataset(tmp_path / "out.zarr") as ds:
        assert ds.episode_ids == ["episode_000", "episode_001"]
        assert ds.manifest.camera("front").T_world_camera is not None


def test_frames_without_a_joint_sample_are_dropped_and_reported(vendor_a, tmp_path):
    root, mapping = vendor_a
    log = root / "episode_000" / "joint_states.csv"
    edit_csv(log, lambda lines: lines[:40] + lines[70:])  # 0.3 s without joint samples
    reader = read(root, mapping, tmp_path)
    with reader.episode("episode_000") as episode:
        report = episode.meta.extras["raw_import"]
        dropped = report["dropped_frames"]["joints"]
        assert dropped == [4, 5, 6] and report["kept_frames"] == 27 == episode.length
        assert episode["cameras/front/rgb"].shape[0] == 27
        assert np.all(np.diff(episode.load("timestamps")) > 0)


def test_frames_without_a_joint_sample_stop_the_import_when_asked(vendor_a, tmp_path):
    root, mapping = vendor_a
    edit_csv(root / "episode_000" / "joint_states.csv", lambda lines: lines[:40] + lines[70:])
    mapping["align"]["missing"] = "error"
    with pytest.raises(FormatError) as info:
        read(root, mapping, tmp_path).episode("episode_000")
    assert str(info.value).endswith(
        "joint_states.csv: episode episode_000: joints: 3 frame(s) have no joints sample within 0.015 s: "
        "4 (t=0.400 s), 5 (t=0.500 s), 6 (t=0.600 s) (set align.missing: drop to leave them out)"
    )


# ------------------------------------------------------------------------------------------- bad input
def test_mapping_naming_a_missing_column_is_a_one_line_error(vendor_a, tmp_path, run_cli):
    root, mapping = vendor_a
    mapping["joints"]["columns"][2] = "panda_joint3"
    path = write_mapping(tmp_path / "m.yaml", mapping)
    result = run_cli("convert", root, tmp_path / "out.zarr", "--from", "raw", "--mapping", path)
    assert result.exit_code == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in result.stderr
    assert (
        "joint_states.csv: episode episode_000: joints.columns: no column 'panda_joint3' (the file has: "
        in errors[0]
    )


def test_degrees_declared_as_radians_are_detected(vendor_a, tmp_path):
    root, mapping = vendor_a
    mapping["joints"]["unit"] = "rad"
    with pytest.raises(
        FormatError, match=r"joints.unit: joint values look like degrees, not radians: .* \(set unit: deg\)"
    ):
        read(root, mapping, tmp_path).episode("episode_000")


def test_radians_declared_as_degrees_are_detected(vendor_a, tmp_path):
    root, _ = vendor_a
    log = root / "episode_000" / "joint_states.csv"

    def to_radians(lines):
        out = [lines[0]]
        for line in lines[1:]:
            values = line.strip().split(",")
            out.append(
                ",".join([values[0], *(f"{np.deg2rad(float(v)):.6f}" for v in values[1:8]), values[8]]) + "\n"
            )
        return out

    edit_csv(log, to_radians)
    _, mapping = vendor_a
    with pytest.raises(
        FormatError, match=r"joints.unit: joint values look like radians, not degrees: .*\(set unit: rad"
    ):
        read(root, mapping, tmp_path).episode("episode_000")


def test_non_monotonic_timestamps_name_the_row(vendor_a, tmp_path):
    root, mapping = vendor_a
    stamps = root / "episode_001" / "rgb_front" / "stamps.csv"
    edit_csv(stamps, lambda lines: [*lines[:5], lines[6], lines[5], *lines[7:]])
    with pytest.raises(FormatError) as info:
        read(root, mapping, tmp_path).episode("episode_001")
    message = str(info.value)
    assert (
        "stamps.csv: episode episode_001: cameras.front.timestamps: timestamps are not strictly increasing:"
        in message
    )
    assert "row 5 (t=" in message and "follows row 4" in message


def test_a_camera_stream_with_dropped_frames_is_an_error(vendor_a, tmp_path):
    root, mapping = vendor_a
    images = root / "episode_000" / "rgb_right_shoulder"
    (images / "frame_000010.png").unlink()
    edit_csv(images / "stamps.csv", lambda lines: lines[:11] + lines[12:])
    with pytest.raises(FormatError) as info:
        read(root, mapping, tmp_path).episode("episode_000")
    assert (
        "episode episode_000: cameras.right_shoulder.timestamps: 1 gap(s) in the frame timestamps "
        "(dropped frames): after frame 9" in str(info.value)
    )


def test_dropped_frames_can_be_allowed_and_then_the_frame_is_left_out(vendor_a, tmp_path):
    root, mapping = vendor_a
    images = root / "episode_000" / "rgb_right_shoulder"
    (images / "frame_000010.png").unlink()
    edit_csv(images / "stamps.csv", lambda lines: lines[:11] + lines[12:])
    mapping["align"]["dropped_frames"] = "allow"
    with read(root, mapping, tmp_path).episode("episode_000") as episode:
        assert episode.meta.extras["raw_import"]["dropped_frames"] == {"camera right_shoulder": [10]}
        assert episode.length == 29


def test_an_image_missing_from_its_stamps_is_a_count_error(vendor_a, tmp_path):
    root, mapping = vendor_a
    (root / "episode_000" / "rgb_front" / "frame_000003.png").unlink()
    with pytest.raises(FormatError, match=r"cameras.front.timestamps: 29 frames but 30 timestamps"):
        read(root, mapping, tmp_path).episode("episode_000")


def test_calibration_for_another_image_size_is_an_error(vendor_a, tmp_path):
    root, mapping = vendor_a
    info = root / "calibration" / "front.yaml"
    info.write_text(info.read_text().replace("image_width: 48", "image_width: 64"))
    with pytest.raises(FormatError) as error:
        read(root, mapping, tmp_path).episode("episode_000")
    assert str(error.value).endswith(
        "rgb_front: episode episode_000: cameras.front.calibration: calibration is for 64x48 but the "
        "recorded frames are 48x48"
    )


def test_a_corrupt_image_fails_where_it_is_read_naming_the_file(vendor_a, tmp_path):
    root, mapping = vendor_a
    (root / "episode_000" / "rgb_front" / "frame_000007.png").write_bytes(b"not a png")
    with read(root, mapping, tmp_path).episode("episode_000") as episode:
        episode.frame("cameras/front/rgb", 6)
        with pytest.raises(FormatError, match=r"frame_000007.png: image cannot be decoded"):
            episode.frame("cameras/front/rgb", 7)


def test_gripper_width_beyond_max_opening_is_an_error(vendor_a, tmp_path):
    root, mapping = vendor_a
    mapping["gripper"]["max_width_m"] = 0.04
    with pytest.raises(
        FormatError, match=r"gripper.column: width / max_width_m \(0.04 m\) spans \[0.000, 2.000\]"
    ):
        read(root, mapping, tmp_path).episode("episode_000")


def test_mapping_errors_name_the_field(vendor_a, tmp_path):
    root, mapping = vendor_a
    del mapping["gripper"]["max_width_m"]
    with pytest.raises(
        SchemaError, match=r"mapping.yaml: gripper: Value error, kind 'width' needs max_width_m"
    ):
        read(root, mapping, tmp_path)


def test_hdf5_and_npz_logs_read_like_csv(vendor_a, tmp_path):
    import h5py

    from genima_data.formats.tables import read_table

    root, mapping = vendor_a
    folder = root / "episode_000"
    table = read_table(folder / "joint_states.csv")
    columns = {n: table.column(n, field="test") for n in table.names}
    with h5py.File(folder / "log.h5", "w") as f:
        for name, values in columns.items():
            f[f"robot/{name}"] = values
    mapping["joints"] |= {"file": "log.h5", "columns": [f"robot/{c}" for c in mapping["joints"]["columns"]]}
    mapping["joints"]["timestamps"]["column"] = "robot/time_s"
    reference = read(root, {**mapping}, tmp_path)
    with reference.episode("episode_000") as from_h5:
        joints_h5 = from_h5.load(JOINTS)
    np.savez(
        folder / "log.npz", q=np.column_stack([columns[c] for c in table.names[1:8]]), t=columns["time_s"]
    )
    mapping["joints"] |= {"file": "log.npz", "columns": "q", "timestamps": {"column": "t", "unit": "s"}}
    with read(root, mapping, tmp_path).episode("episode_000") as from_npz:
        assert np.array_equal(from_npz.load(JOINTS), joints_h5)


def test_convert_stops_on_a_bad_episode_and_leaves_no_committed_store(vendor_a, tmp_path):
    root, mapping = vendor_a
    (root / "episode_001" / "joint_states.csv").unlink()
    with pytest.raises(GenimaDataError, match=r"joint_states.csv: episode episode_001: log file not found"):
        convert(
            root,
            tmp_path / "out.zarr",
            source_format="raw",
            reader_options={"mapping": str(write_mapping(tmp_path / "m.yaml", mapping))},
        )
    with pytest.raises(Exception, match="incomplete"):
        open_dataset(tmp_path / "out.zarr")


def test_frame_times_can_come_from_the_image_file_names(vendor_a, tmp_path):
    root, mapping = vendor_a
    images = root / "episode_000" / "rgb_front"
    stamps = [line.split(",")[1] for line in (images / "stamps.csv").read_text().splitlines()[1:]]
    for t, stamp in enumerate(stamps):
        (images / f"frame_{t:06d}.png").rename(images / f"{stamp}.png")
    mapping["cameras"]["front"] |= {
        "images": "rgb_front/*.png",
        "timestamps": {"filename_pattern": r"(?P<t>\d+)\.png", "unit": "ns"},
    }
    with read(root, mapping, tmp_path).episode("episode_000") as episode:
        source = demo_episode(0, frames=30, size=48)
        np.testing.assert_allclose(episode.load("timestamps"), source.load("timestamps"), atol=1e-6)
        assert np.array_equal(episode.frame("cameras/front/rgb", 29), source.frame("cameras/front/rgb", 29))


def test_parallel_conversion_writes_the_same_episodes(vendor_a, tmp_path):
    from tests.conftest import assert_episodes_equal

    root, mapping = vendor_a
    options = {"mapping": str(write_mapping(tmp_path / "m.yaml", mapping))}
    convert(root, tmp_path / "one.zarr", source_format="raw", reader_options=options)
    convert(root, tmp_path / "two_h5", to="hdf5", source_format="raw", reader_options=options, workers=2)
    with open_dataset(tmp_path / "one.zarr") as one, open_dataset(tmp_path / "two_h5") as two:
        assert one.episode_ids == two.episode_ids
        for eid in one.episode_ids:
            with one.episode(eid) as a, two.episode(eid) as b:
                assert_episodes_equal(a, b)


# ------------------------------------------------------------------------------------------- log values
def write_npz_log(root, **arrays) -> None:
    """episode_000/log.npz holding the CSV log's time column `t` plus `arrays`."""
    from genima_data.formats.tables import read_table

    folder = root / "episode_000"
    t = read_table(folder / "joint_states.csv").column("time_s", field="test")
    np.savez(folder / "log.npz", t=t, **{k: f(t) for k, f in arrays.items()})


def test_a_gripper_column_with_two_values_per_row_is_an_error_not_flattened(vendor_a, tmp_path):
    root, mapping = vendor_a
    write_npz_log(root, g=lambda t: np.full((len(t), 2), 0.5))  # both fingers logged
    mapping["gripper"] = {
        "file": "log.npz",
        "column": "g",
        "kind": "open_fraction",
        "timestamps": {"column": "t", "unit": "s"},
    }
    with pytest.raises(FormatError) as info:
        read(root, mapping, tmp_path).episode("episode_000")
    assert str(info.value).endswith(
        "log.npz: episode episode_000: gripper.column: column 'g' has shape (300, 2), expected one value "
        "per row"
    )


def test_a_joint_array_with_an_extra_axis_names_the_log_and_joints_columns(vendor_a, tmp_path):
    root, mapping = vendor_a
    write_npz_log(root, q=lambda t: np.zeros((len(t), 7, 1)))
    mapping["joints"] |= {"file": "log.npz", "columns": "q", "unit": "rad", "timestamps": {"column": "t"}}
    with pytest.raises(FormatError) as info:
        read(root, mapping, tmp_path).episode("episode_000")
    assert str(info.value).endswith(
        "log.npz: episode episode_000: joints.columns: column 'q' has shape (300, 7, 1), expected (rows, 7): "
        "one row of joint values per sample"
    )


def test_nan_in_the_joint_log_is_an_error_naming_column_and_row(vendor_a, tmp_path, run_cli):
    root, mapping = vendor_a

    def nan_joint1(lines):
        return [
            line if i < 30 else line.replace(line.split(",")[1], "nan", 1) for i, line in enumerate(lines)
        ]

    edit_csv(root / "episode_001" / "joint_states.csv", nan_joint1)
    path = write_mapping(tmp_path / "m.yaml", mapping)
    result = run_cli("convert", root, tmp_path / "out.zarr", "--from", "raw", "--mapping", path)
    assert result.exit_code == 1 and "Traceback" not in result.stderr
    assert (
        "joint_states.csv: episode episode_001: joints.columns: row 29 (rows counted from 0): column "
        "'panda_joint1_deg' is nan, not a finite number" in result.stderr
    )


# ------------------------------------------------------------------------------------------- episode metadata
@pytest.mark.parametrize("key, value", [("success", "maybe"), ("variation", "abc")])
def test_an_invalid_value_in_episode_metadata_is_a_one_line_error_not_an_internal_error(
    vendor_a, tmp_path, run_cli, key, value
):
    import json

    root, mapping = vendor_a
    meta = root / "episode_001" / "meta.json"
    meta.write_text(json.dumps(json.loads(meta.read_text()) | {key: value}))
    path = write_mapping(tmp_path / "m.yaml", mapping)
    result = run_cli("convert", root, tmp_path / "out.zarr", "--from", "raw", "--mapping", path)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.exit_code == 1 and len(errors) == 1, result.stderr
    assert f"episode_001/meta.json: episode episode_001: {key}: Input should be a valid" in errors[0]


# ------------------------------------------------------------------------------------------- dropped share
def test_joint_timestamps_that_drop_most_frames_are_an_error_not_a_warning(vendor_a, tmp_path):
    root, mapping = vendor_a

    def shift_clock(lines):  # from row 40 on the log runs on another clock, 100 s ahead
        out = lines[:41]
        for line in lines[41:]:
            t, rest = line.split(",", 1)
            out.append(f"{float(t) + 100:.6f},{rest}")
        return out

    edit_csv(root / "episode_000" / "joint_states.csv", shift_clock)
    with pytest.raises(FormatError) as info:
        read(root, mapping, tmp_path).episode("episode_000")
    message = str(info.value)
    assert (
        "joint_states.csv: episode episode_000: joints: 26 frame(s) have no joints sample within" in message
    )
    assert "align.missing: drop would leave out 26 of 30 frames, more than 50%" in message


# ------------------------------------------------------------------------------------------- building
def test_missing_episode_metadata_names_the_episode_and_skip_invalid_converts_the_rest(
    vendor_a, tmp_path, run_cli
):
    root, mapping = vendor_a
    (root / "episode_001" / "meta.json").unlink()
    path = write_mapping(tmp_path / "m.yaml", mapping)
    args = ("convert", root, tmp_path / "out.zarr", "--from", "raw", "--mapping", path)
    result = run_cli(*args, "--skip-invalid")
    assert result.exit_code == 1 and "Traceback" not in result.stderr
    assert (
        "episode_001/meta.json: episode episode_001: episodes.metadata: episode metadata file not found"
        in (result.stderr)
    )
    with open_dataset(tmp_path / "out.zarr") as ds:
        assert ds.episode_ids == ["episode_000"]


def test_a_broken_first_episode_names_itself_and_the_frame_rate_comes_from_the_next(vendor_a, tmp_path):
    root, mapping = vendor_a
    (root / "episode_000" / "rgb_front" / "frame_000003.png").unlink()
    reader = read(root, mapping, tmp_path)
    assert reader.manifest.fps == 10.0
    with pytest.raises(FormatError) as info:
        reader.episode("episode_000")
    assert "stamps.csv: episode episode_000: cameras.front.timestamps: 29 frames but 30 timestamps" in str(
        info.value
    )
    with reader.episode("episode_001") as episode:
        assert episode.length == 30

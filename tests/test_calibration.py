"""Calibration importers (ROS, OpenCV, Kalibr, genima), pose conventions, attaching to datasets."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from genima_data.calibration import (
    attach_calibration,
    detect_calibration_format,
    load_calibration,
    load_calibrations,
    load_pose,
    rename_cameras,
    save_calibration,
)
from genima_data.demo import demo_episode, demo_manifest, look_at
from genima_data.errors import FormatError, GenimaDataError, SchemaError
from genima_data.geometry.transforms import invert_transform
from genima_data.schema import Camera
from genima_data.store import create_dataset, open_dataset

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "calibration"
ROS_FILE = EXAMPLES / "ros_camera_info.yaml"
OPENCV_FILE = EXAMPLES / "opencv_camera.yml"
KALIBR_FILE = EXAMPLES / "kalibr_camchain.yaml"
GENIMA_FILE = EXAMPLES / "cameras.yaml"
FRONT_K = [[615.42, 0.0, 322.88], [0.0, 615.71, 240.31], [0.0, 0.0, 1.0]]
FRONT_PLUMB_BOB = [0.1316, -0.2521, 0.00093, -0.00041, 0.1102]
SHOULDER_K = [[285.72, 0.0, 319.64], [0.0, 285.51, 241.18], [0.0, 0.0, 1.0]]
SHOULDER_EQUIDISTANT = [-0.00982, 0.05127, -0.04658, 0.01173]


def _edit_yaml(source: Path, destination: Path, edit) -> Path:
    doc = yaml.safe_load(source.read_text())
    edit(doc)
    destination.write_text(yaml.safe_dump(doc))
    return destination


def _genima_pose(name: str) -> np.ndarray:
    return next(c for c in load_calibration(GENIMA_FILE) if c.name == name).T_world_camera_array()


def _rotation(axis_angle_deg) -> np.ndarray:
    return cv2.Rodrigues(np.deg2rad(np.asarray(axis_angle_deg, float)).reshape(3, 1))[0]


def _pose(axis_angle_deg, t) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = _rotation(axis_angle_deg)
    T[:3, 3] = t
    return T


# ----------------------------------------------------------------------------------------------- detection
@pytest.mark.parametrize(
    ("path", "fmt"),
    [(ROS_FILE, "ros"), (OPENCV_FILE, "opencv"), (KALIBR_FILE, "kalibr"), (GENIMA_FILE, "genima")],
)
def test_format_detection_recognises_each_example(path, fmt):
    assert detect_calibration_format(path) == fmt


def test_unrecognised_file_asks_for_an_explicit_format(tmp_path):
    path = tmp_path / "calib.yaml"
    path.write_text("fx: 600\nfy: 600\n")
    with pytest.raises(FormatError, match="cannot tell the calibration format") as err:
        load_calibration(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_missing_file_is_a_one_line_error(tmp_path):
    with pytest.raises(FormatError, match="no such calibration file"):
        load_calibration(tmp_path / "nope.yaml")


# ----------------------------------------------------------------------------------------------- ROS
def test_ros_camera_info_gives_K_and_plumb_bob_in_opencv_order():
    (cam,) = load_calibration(ROS_FILE)
    assert cam.name == "front" and (cam.width, cam.height) == (640, 480)
    assert cam.K == FRONT_K
    assert cam.distortion.model == "opencv"
    assert cam.distortion.coeffs == FRONT_PLUMB_BOB  # k1 k2 p1 p2 k3, as ROS stores them
    assert cam.T_world_camera is None  # camera_info carries no pose


def test_ros_camera_option_renames_the_camera():
    assert load_calibration(ROS_FILE, camera="wrist")[0].name == "wrist"


@pytest.mark.parametrize(
    ("model", "coeffs", "ours"),
    [
        ("rational_polynomial", [0.1, -0.2, 0.001, 0.002, 0.05, 0.01, -0.02, 0.03], "opencv"),
        ("equidistant", [-0.01, 0.05, -0.04, 0.01], "fisheye"),
        ("plumb_bob", [0.1, -0.2, 0.001, 0.002], "opencv"),
    ],
)
def test_ros_distortion_models_map_to_ours_without_reordering(tmp_path, model, coeffs, ours):
    def edit(doc):
        doc["distortion_model"] = model
        doc["distortion_coefficients"] = {"rows": 1, "cols": len(coeffs), "data": coeffs}

    (cam,) = load_calibration(_edit_yaml(ROS_FILE, tmp_path / "info.yaml", edit))
    assert cam.distortion.model == ours and cam.distortion.coeffs == coeffs


def test_ros_wrong_coefficient_count_names_the_field(tmp_path):
    def edit(doc):
        doc["distortion_coefficients"] |= {"cols": 3, "data": [0.1, -0.2, 0.001]}

    path = _edit_yaml(ROS_FILE, tmp_path / "info.yaml", edit)
    with pytest.raises(SchemaError) as err:
        load_calibration(path)
    assert str(err.value).startswith(f"{path}: distortion_coefficients: ")
    assert "'plumb_bob' takes 4 or 5 coefficients" in str(err.value) and "got 3" in str(err.value)


def test_ros_negative_focal_length_names_camera_matrix(tmp_path):
    def edit(doc):
        doc["camera_matrix"]["data"][0] = -615.42

    path = _edit_yaml(ROS_FILE, tmp_path / "info.yaml", edit)
    with pytest.raises(SchemaError, match="focal lengths must be positive") as err:
        load_calibration(path)
    assert str(err.value).startswith(f"{path}: camera_matrix: ") and "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("edit", "field", "message"),
    [
        (lambda d: d.update(image_width=True), "image_width", "expected numbers, got True"),
        (lambda d: d["camera_matrix"]["data"].__setitem__(0, True), "camera_matrix", "expected numbers"),
    ],
    ids=["image-width", "camera-matrix"],
)
def test_ros_boolean_is_not_taken_for_a_number(tmp_path, edit, field, message):
    path = _edit_yaml(ROS_FILE, tmp_path / "info.yaml", edit)
    with pytest.raises(SchemaError, match=message) as err:
        load_calibration(path)
    assert str(err.value).startswith(f"{path}: {field}: ")


@pytest.mark.parametrize(
    ("index", "value", "message"),
    [(5, float("nan"), "non-finite"), (5, -628.0, "focal lengths must be positive")],
    ids=["nan", "negative-fy"],
)
def test_ros_bad_projection_matrix_is_rejected(tmp_path, index, value, message):
    path = _edit_yaml(
        ROS_FILE, tmp_path / "info.yaml", lambda d: d["projection_matrix"]["data"].__setitem__(index, value)
    )
    with pytest.raises(SchemaError, match=message) as err:
        load_calibration(path)
    assert str(err.value).startswith(f"{path}: projection_matrix: ")


@pytest.mark.parametrize(
    ("key", "dims", "field"),
    [
        ("camera_matrix", {"rows": 4, "cols": 2}, "camera_matrix.rows"),
        ("camera_matrix", {"rows": 3, "cols": 4}, "camera_matrix.cols"),
        ("distortion_coefficients", {"cols": 4}, "distortion_coefficients.cols"),
        ("distortion_coefficients", {"rows": 5, "cols": 5}, "distortion_coefficients.rows"),
    ],
    ids=["K-rows", "K-cols", "D-cols", "D-rows"],
)
def test_ros_rows_and_cols_that_disagree_with_the_data_are_rejected(tmp_path, key, dims, field):
    def edit(doc):
        doc[key] = {"data": doc[key]["data"]} | dims

    path = _edit_yaml(ROS_FILE, tmp_path / "info.yaml", edit)
    with pytest.raises(SchemaError, match="declares") as err:
        load_calibration(path)
    assert str(err.value).startswith(f"{path}: {field}: ")


def test_ros_distortion_declared_as_a_column_is_read_like_a_row(tmp_path):
    def edit(doc):
        doc["distortion_coefficients"] = {
            "rows": 5,
            "cols": 1,
            "data": doc["distortion_coefficients"]["data"],
        }

    column = load_calibration(_edit_yaml(ROS_FILE, tmp_path / "info.yaml", edit))
    assert column == load_calibration(ROS_FILE)


def test_ros_non_orthonormal_rectification_matrix_is_rejected(tmp_path):
    def edit(doc):
        doc["rectification_matrix"]["data"] = [1, 0.2, 0, 0, 1, 0, 0, 0, 1]

    path = _edit_yaml(ROS_FILE, tmp_path / "info.yaml", edit)
    with pytest.raises(SchemaError, match="not orthonormal") as err:
        load_calibration(path)
    assert f"{path}: rectification_matrix: " in str(err.value)


def test_ros_unknown_distortion_model_is_named(tmp_path):
    path = _edit_yaml(ROS_FILE, tmp_path / "info.yaml", lambda d: d.update(distortion_model="fov"))
    with pytest.raises(FormatError, match="unsupported distortion model 'fov'") as err:
        load_calibration(path)
    assert ": distortion_model: " in str(err.value)


# ----------------------------------------------------------------------------------------------- OpenCV
def test_opencv_file_storage_gives_K_distortion_and_the_solvepnp_pose():
    (cam,) = load_calibration(OPENCV_FILE, camera="front")
    assert cam.name == "front" and (cam.width, cam.height) == (640, 480)
    np.testing.assert_allclose(cam.K, FRONT_K, rtol=0, atol=1e-12)
    np.testing.assert_allclose(cam.distortion.coeffs, FRONT_PLUMB_BOB, rtol=0, atol=1e-15)
    # rvec/tvec map world points into the camera: T_world_camera must do the reverse
    fs = cv2.FileStorage(str(OPENCV_FILE), cv2.FILE_STORAGE_READ)
    rvec, tvec = fs.getNode("rvec").mat(), fs.getNode("tvec").mat()
    point_world = np.array([0.45, -0.1, 0.15])
    point_camera = cv2.Rodrigues(rvec)[0] @ point_world + tvec.ravel()
    T = cam.T_world_camera_array()
    np.testing.assert_allclose(T[:3, :3] @ point_camera + T[:3, 3], point_world, atol=1e-12)
    np.testing.assert_allclose(T[:3, 3], [1.10, 0.02, 0.72], atol=1e-9)  # where the rig puts it


def test_opencv_camera_defaults_to_the_file_name():
    assert load_calibration(OPENCV_FILE)[0].name == "opencv_camera"


def _write_file_storage(path: Path, nodes: dict) -> Path:
    fs = cv2.FileStorage(str(path), cv2.FILE_STORAGE_WRITE)
    for key, value in nodes.items():
        fs.write(key, value)
    fs.release()
    return path


def test_opencv_xml_fisheye_with_T_world_camera(tmp_path):
    T = look_at((0.4, -0.5, 0.9), (0.5, 0.0, 0.1))
    path = _write_file_storage(
        tmp_path / "fisheye.xml",
        {
            "camera_name": "left_shoulder",
            "image_width": 640,
            "image_height": 480,
            "fisheye_model": 1,
            "K": np.array(SHOULDER_K),
            "D": np.array(SHOULDER_EQUIDISTANT).reshape(4, 1),
            "T_world_camera": T,
        },
    )
    (cam,) = load_calibration(path)
    assert cam.name == "left_shoulder"
    assert cam.distortion.model == "fisheye" and cam.distortion.coeffs == SHOULDER_EQUIDISTANT
    np.testing.assert_allclose(cam.T_world_camera_array(), T, atol=1e-15)


def test_opencv_T_camera_world_is_inverted(tmp_path):
    T_world_camera = look_at((1.0, 0.3, 0.8), (0.4, 0.0, 0.1))
    path = _write_file_storage(
        tmp_path / "cam.yml",
        {"image_width": 640, "image_height": 480, "camera_matrix": np.array(FRONT_K)}
        | {"T_camera_world": invert_transform(T_world_camera)},
    )
    (cam,) = load_calibration(path)
    assert cam.distortion.model == "none"
    np.testing.assert_allclose(cam.T_world_camera_array(), T_world_camera, atol=1e-12)


def test_opencv_non_orthonormal_pose_names_the_node(tmp_path):
    T = np.eye(4)
    T[0, 1] = 0.3
    path = _write_file_storage(
        tmp_path / "cam.yml",
        {"image_width": 640, "image_height": 480, "camera_matrix": np.array(FRONT_K), "T_world_camera": T},
    )
    with pytest.raises(SchemaError, match="not orthonormal") as err:
        load_calibration(path)
    assert str(err.value).startswith(f"{path}: T_world_camera: ")


def test_opencv_wrong_coefficient_count_is_rejected(tmp_path):
    path = _write_file_storage(
        tmp_path / "cam.yml",
        {"image_width": 640, "image_height": 480, "camera_matrix": np.array(FRONT_K)}
        | {"distortion_coefficients": np.zeros((6, 1))},
    )
    with pytest.raises(SchemaError, match="takes 4 or 5 or 8 or 12 or 14 coefficients") as err:
        load_calibration(path)
    assert ": distortion_coefficients: " in str(err.value)


def test_opencv_unparseable_file_is_a_format_error(tmp_path):
    path = tmp_path / "broken.yml"
    path.write_text("%YAML:1.0\ncamera_matrix: !!opencv-matrix\n   rows: 3\n   data: [ 1, 2,\n")
    with pytest.raises(FormatError, match="OpenCV FileStorage cannot parse it") as err:
        load_calibration(path)
    assert "\n" not in str(err.value)


OPENCV_SHORT_MATRIX = (
    "%YAML:1.0\n---\nimage_width: 640\nimage_height: 480\n"
    "camera_matrix: !!opencv-matrix\n   rows: 3\n   cols: 3\n   dt: d\n   data: [1, 2]\n"
    "T_world_camera: !!opencv-matrix\n   rows: 4\n   cols: 4\n   dt: d\n   data: [1, 0, 0]\n"
)


@pytest.mark.parametrize("load", [load_calibration, load_pose], ids=["calibration", "pose"])
def test_opencv_matrix_with_the_wrong_data_count_names_the_node(tmp_path, load):
    path = tmp_path / "m.yml"
    path.write_text(OPENCV_SHORT_MATRIX)
    with pytest.raises(SchemaError, match="data has 2 values, rows x cols is 3x3") as err:
        load(path)
    assert str(err.value).startswith(f"{path}: camera_matrix: ") and "\n" not in str(err.value)


def test_opencv_nan_in_tvec_is_reported_against_tvec(tmp_path):
    path = _write_file_storage(
        tmp_path / "cam.yml",
        {"image_width": 640, "image_height": 480, "camera_matrix": np.array(FRONT_K)}
        | {"rvec": np.zeros((3, 1)), "tvec": np.array([[0.1], [np.nan], [1.0]])},
    )
    for load in (load_calibration, load_pose):
        with pytest.raises(SchemaError, match="non-finite") as err:
            load(path)
        assert str(err.value).startswith(f"{path}: tvec: ")


@pytest.mark.parametrize(("present", "missing"), [("rvec", "tvec"), ("tvec", "rvec")])
def test_opencv_half_a_pose_is_refused_not_dropped(tmp_path, present, missing):
    path = _write_file_storage(
        tmp_path / "cam.yml",
        {
            "image_width": 640,
            "image_height": 480,
            "camera_matrix": np.array(FRONT_K),
            present: np.zeros((3, 1)),
        },
    )
    for load in (load_calibration, load_pose):
        with pytest.raises(FormatError, match=f"required with {present}") as err:
            load(path)
        assert str(err.value).startswith(f"{path}: {missing}: ")


def test_opencv_missing_image_size_is_named(tmp_path):
    path = _write_file_storage(tmp_path / "cam.yml", {"camera_matrix": np.array(FRONT_K)})
    with pytest.raises(FormatError, match="image size is missing"):
        load_calibration(path)


# ----------------------------------------------------------------------------------------------- Kalibr
def test_kalibr_intrinsics_and_distortion_models():
    cam0, cam1 = load_calibration(KALIBR_FILE)
    assert (cam0.name, cam1.name) == ("cam0", "cam1")
    assert cam0.K == FRONT_K and cam1.K == SHOULDER_K  # [fu, fv, pu, pv]
    assert cam0.distortion.model == "opencv" and cam0.distortion.coeffs == FRONT_PLUMB_BOB[:4]  # radtan
    assert cam1.distortion.model == "fisheye" and cam1.distortion.coeffs == SHOULDER_EQUIDISTANT
    assert (cam1.width, cam1.height) == (640, 480)


def test_kalibr_T_cn_cnm1_is_inverted_into_camera_poses_relative_to_cam0():
    cam0, cam1 = load_calibration(KALIBR_FILE)
    T_c1_c0 = np.array(yaml.safe_load(KALIBR_FILE.read_text())["cam1"]["T_cn_cnm1"])
    np.testing.assert_allclose(cam0.T_world_camera_array(), np.eye(4))
    np.testing.assert_allclose(cam1.T_world_camera_array(), np.linalg.inv(T_c1_c0), atol=1e-12)


def _camchain(tmp_path: Path, T_world_cams: list[np.ndarray], T_world_imu: np.ndarray) -> Path:
    doc = {}
    for n, T in enumerate(T_world_cams):
        entry = {
            "camera_model": "pinhole",
            "intrinsics": [600.0 + n, 601.0, 320.0, 240.0],
            "distortion_model": "radtan",
            "distortion_coeffs": [0.0, 0.0, 0.0, 0.0],
            "resolution": [640, 480],
            "rostopic": f"/cam{n}/image_raw",
            "T_cam_imu": (invert_transform(T) @ T_world_imu).tolist(),
        }
        if n:  # maps points of camera n-1 into camera n
            entry["T_cn_cnm1"] = (invert_transform(T) @ T_world_cams[n - 1]).tolist()
        doc[f"cam{n}"] = entry
    path = tmp_path / "camchain.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


THREE_CAMERAS = [
    _pose([10, -20, 30], [0.1, 0.2, 0.3]),
    _pose([-40, 15, 5], [0.5, -0.1, 0.2]),
    _pose([70, 10, -25], [-0.3, 0.4, 0.9]),
]
IMU = _pose([5, 5, -90], [0.05, 0.0, 0.25])


def test_kalibr_chain_of_three_cameras_composes_in_order(tmp_path):
    path = _camchain(tmp_path, THREE_CAMERAS, IMU)
    cameras = load_calibration(path, T_world_reference=THREE_CAMERAS[0])
    for cam, expected in zip(cameras, THREE_CAMERAS, strict=True):
        np.testing.assert_allclose(cam.T_world_camera_array(), expected, atol=1e-12)


@pytest.mark.parametrize(("reference", "T_world_reference"), [("imu", IMU), ("cam2", THREE_CAMERAS[2])])
def test_kalibr_poses_relative_to_another_reference(tmp_path, reference, T_world_reference):
    path = _camchain(tmp_path, THREE_CAMERAS, IMU)
    cameras = load_calibration(path, reference=reference, T_world_reference=T_world_reference)
    for cam, expected in zip(cameras, THREE_CAMERAS, strict=True):
        np.testing.assert_allclose(cam.T_world_camera_array(), expected, atol=1e-12)


def test_kalibr_reference_imu_places_the_example_rig_like_the_genima_file():
    doc = yaml.safe_load(KALIBR_FILE.read_text())
    T_world_imu = _genima_pose("front") @ np.array(doc["cam0"]["T_cam_imu"])
    cam0, cam1 = load_calibration(KALIBR_FILE, reference="imu", T_world_reference=T_world_imu)
    np.testing.assert_allclose(cam0.T_world_camera_array(), _genima_pose("front"), atol=1e-12)
    np.testing.assert_allclose(cam1.T_world_camera_array(), _genima_pose("left_shoulder"), atol=1e-12)


@pytest.mark.parametrize(
    ("edit", "error", "message", "field"),
    [
        (lambda d: d["cam1"].update(camera_model="omni"), FormatError, "not supported", "cam1.camera_model"),
        (
            lambda d: d["cam0"].update(distortion_coeffs=[0.1, 0.2, 0.0, 0.0, 0.3]),
            SchemaError,
            "'radtan' takes 4 coefficients",
            "cam0.distortion_coeffs",
        ),
        (
            lambda d: d["cam1"]["T_cn_cnm1"][0].__setitem__(0, 2.0),
            SchemaError,
            "not orthonormal",
            "cam1.T_cn_cnm1",
        ),
        (lambda d: d["cam1"].pop("T_cn_cnm1"), FormatError, "required entry is missing", "cam1.T_cn_cnm1"),
        (
            lambda d: d["cam0"].update(intrinsics=[-615.42, 615.71, 322.88, 240.31]),
            SchemaError,
            "focal lengths must be positive",
            "cam0.intrinsics",
        ),
    ],
    ids=["camera-model", "coefficient-count", "non-orthonormal", "missing-chain", "negative-focal"],
)
def test_kalibr_bad_input_names_camera_and_field(tmp_path, edit, error, message, field):
    path = _edit_yaml(KALIBR_FILE, tmp_path / "camchain.yaml", edit)
    with pytest.raises(error, match=message) as err:
        load_calibration(path)
    assert str(err.value).startswith(f"{path}: {field}: ")


def test_kalibr_top_level_keys_other_than_cameras_are_ignored(tmp_path):
    path = _edit_yaml(KALIBR_FILE, tmp_path / "camchain.yaml", lambda d: d.update(imu0={"foo": 1}))
    assert load_calibration(path, format="kalibr") == load_calibration(KALIBR_FILE)


@pytest.mark.parametrize("value", [None, [1, 2], "x"], ids=["null", "list", "string"])
@pytest.mark.parametrize("cam", ["cam0", "cam1"])
def test_kalibr_camera_entry_that_is_not_a_mapping_names_the_camera(tmp_path, cam, value):
    path = _edit_yaml(KALIBR_FILE, tmp_path / "camchain.yaml", lambda d: d.update({cam: value}))
    with pytest.raises(FormatError, match="expected a camera mapping") as err:
        load_calibration(path)
    assert str(err.value).startswith(f"{path}: {cam}: ")


def test_kalibr_boolean_resolution_is_not_taken_for_a_number(tmp_path):
    path = _edit_yaml(
        KALIBR_FILE, tmp_path / "camchain.yaml", lambda d: d["cam0"].update(resolution=[True, 32])
    )
    with pytest.raises(SchemaError, match="expected numbers") as err:
        load_calibration(path)
    assert str(err.value).startswith(f"{path}: cam0.resolution: ")


def test_kalibr_reference_imu_without_T_cam_imu_is_refused(tmp_path):
    def edit(doc):
        for cam in doc.values():
            cam.pop("T_cam_imu")

    with pytest.raises(FormatError, match="reference 'imu' needs T_cam_imu"):
        load_calibration(_edit_yaml(KALIBR_FILE, tmp_path / "c.yaml", edit), reference="imu")


def test_kalibr_camera_option_selects_one_camera():
    (cam,) = load_calibration(KALIBR_FILE, camera="cam1")
    assert cam.name == "cam1" and cam.distortion.model == "fisheye"
    with pytest.raises(FormatError, match="no camera 'cam7'"):
        load_calibration(KALIBR_FILE, camera="cam7")


# ----------------------------------------------------------------------------------------------- ours
def test_examples_describe_the_same_rig():
    front, shoulder = load_calibration(GENIMA_FILE)
    (ros,) = load_calibration(ROS_FILE)
    (opencv,) = load_calibration(OPENCV_FILE, camera="front")
    assert front.K == ros.K == FRONT_K and front.distortion == ros.distortion
    np.testing.assert_allclose(opencv.T_world_camera_array(), front.T_world_camera_array(), atol=1e-12)
    _, cam1 = load_calibration(KALIBR_FILE, T_world_reference=opencv.T_world_camera_array())
    np.testing.assert_allclose(cam1.T_world_camera_array(), shoulder.T_world_camera_array(), atol=1e-12)
    assert cam1.K == shoulder.K and cam1.distortion == shoulder.distortion


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_genima_format_round_trips_exactly(tmp_path, suffix):
    cameras = load_calibration(KALIBR_FILE, T_world_reference=_genima_pose("front"))
    cameras.append(
        Camera(name="wrist", width=640, height=480, K=FRONT_K, mount="panda_hand", T_link_camera=IMU.tolist())
    )
    path = save_calibration(cameras, tmp_path / f"cameras{suffix}")
    assert detect_calibration_format(path) == "genima"
    assert load_calibration(path) == cameras


def test_genima_bare_list_of_cameras_is_accepted(tmp_path):
    path = tmp_path / "cams.json"
    path.write_text(json.dumps([c.model_dump(mode="json") for c in load_calibration(GENIMA_FILE)]))
    assert load_calibration(path) == load_calibration(GENIMA_FILE)


def test_genima_negative_focal_length_names_camera_index_and_field(tmp_path):
    path = _edit_yaml(
        GENIMA_FILE, tmp_path / "c.yaml", lambda d: d["cameras"][1]["K"][1].__setitem__(1, -2.0)
    )
    with pytest.raises(SchemaError, match="focal lengths must be positive") as err:
        load_calibration(path)
    assert str(err.value).startswith(f"{path}: cameras.1.K: ")


def test_genima_duplicate_camera_names_are_rejected(tmp_path):
    path = _edit_yaml(GENIMA_FILE, tmp_path / "c.yaml", lambda d: d["cameras"][1].update(name="front"))
    with pytest.raises(SchemaError, match="duplicate camera names"):
        load_calibration(path)


def test_rename_and_duplicate_names_across_files():
    renamed = rename_cameras(load_calibration(KALIBR_FILE), {"cam0": "front", "cam1": "left_shoulder"})
    assert [c.name for c in renamed] == ["front", "left_shoulder"]
    with pytest.raises(GenimaDataError, match="cannot rename \\['cam9'\\]"):
        rename_cameras(renamed, {"cam9": "x"})
    with pytest.raises(GenimaDataError, match=r"several files describe camera\(s\) \['front'\]"):
        load_calibrations([ROS_FILE, KALIBR_FILE], rename={"cam0": "front"})
    both = load_calibrations([ROS_FILE, KALIBR_FILE], rename={"cam0": "front_kalibr"})
    assert [c.name for c in both] == ["front", "front_kalibr", "cam1"]


# ----------------------------------------------------------------------------------------------- poses
def test_load_pose_reads_yaml_json_and_opencv(tmp_path):
    T = look_at((0.2, 0.3, 1.0), (0.5, 0.0, 0.0))
    (tmp_path / "a.yaml").write_text(yaml.safe_dump({"T_world_camera": T.tolist()}))
    (tmp_path / "b.json").write_text(json.dumps(T.tolist()))
    np.testing.assert_array_equal(load_pose(tmp_path / "a.yaml"), T)
    np.testing.assert_array_equal(load_pose(tmp_path / "b.json"), T)
    np.testing.assert_allclose(load_pose(OPENCV_FILE), _genima_pose("front"), atol=1e-12)


def test_load_pose_rejects_a_non_rigid_transform(tmp_path):
    T = np.eye(4)
    T[2, 2] = -1.0  # a reflection
    (tmp_path / "pose.yaml").write_text(yaml.safe_dump({"T_world_reference": T.tolist()}))
    with pytest.raises(SchemaError, match="determinant") as err:
        load_pose(tmp_path / "pose.yaml")
    assert ": T_world_reference: " in str(err.value)


# ----------------------------------------------------------------------------------------------- attach
@pytest.fixture(scope="module")
def realsense_store_dir(tmp_path_factory) -> Path:
    """The demo dataset with its front and left_shoulder cameras recording 640x480, like the example rig."""
    root = tmp_path_factory.mktemp("realsense")
    cameras = {c.name: c for c in demo_manifest(size=32).cameras}
    for name in ("front", "left_shoulder"):
        K = [[500.0, 0.0, 319.5], [0.0, 500.0, 239.5], [0.0, 0.0, 1.0]]
        cameras[name] = cameras[name].model_copy(update={"width": 640, "height": 480, "K": K})
    manifest = demo_manifest(size=32).model_copy(update={"cameras": list(cameras.values())})
    for store in ("rig.zarr", "rig_h5"):
        ds = create_dataset(root / store, manifest)
        for index in range(2):
            episode = demo_episode(index, frames=2, size=32)
            arrays = dict(episode.arrays)
            for name in ("front", "left_shoulder"):
                rgb = arrays[f"cameras/{name}/rgb"]
                arrays[f"cameras/{name}/rgb"] = np.stack([cv2.resize(f, (640, 480)) for f in rgb])
            ds.write_episode(episode.with_arrays(arrays))
        ds.commit()
    return root


@pytest.fixture(params=["rig.zarr", "rig_h5"], ids=["zarr", "hdf5"])
def rig_copy(request, realsense_store_dir, tmp_path) -> Path:
    dst = tmp_path / request.param
    shutil.copytree(realsense_store_dir / request.param, dst)
    return dst


def test_attach_replaces_intrinsics_and_poses_and_keeps_other_cameras(rig_copy):
    before = open_dataset(rig_copy).manifest
    manifest = attach_calibration(rig_copy, load_calibration(GENIMA_FILE))
    reopened = open_dataset(rig_copy).manifest
    assert reopened == manifest
    for cam in load_calibration(GENIMA_FILE):
        assert reopened.camera(cam.name) == cam
    for name in ("right_shoulder", "wrist"):
        assert reopened.camera(name) == before.camera(name)
    assert reopened.episodes == before.episodes
    assert open_dataset(rig_copy).read_frame("episode1", "cameras/front/rgb", 1).shape == (480, 640, 3)


def test_attach_intrinsics_without_pose_keeps_the_dataset_pose(rig_copy):
    pose_before = open_dataset(rig_copy).manifest.camera("front").T_world_camera
    manifest = attach_calibration(rig_copy, load_calibration(ROS_FILE))
    assert manifest.camera("front").K == FRONT_K
    assert manifest.camera("front").T_world_camera == pose_before


def test_attach_merges_intrinsics_with_a_pose_from_another_file(rig_copy, tmp_path):
    (tmp_path / "pose.yaml").write_text(yaml.safe_dump({"T_world_camera": THREE_CAMERAS[1].tolist()}))
    manifest = attach_calibration(
        rig_copy, load_calibration(ROS_FILE), poses={"front": load_pose(tmp_path / "pose.yaml")}
    )
    front = manifest.camera("front")
    assert front.K == FRONT_K and front.distortion.coeffs == FRONT_PLUMB_BOB
    np.testing.assert_allclose(front.T_world_camera_array(), THREE_CAMERAS[1])


def test_attach_intrinsics_only_ignores_the_file_pose(rig_copy):
    pose_before = open_dataset(rig_copy).manifest.camera("front").T_world_camera
    manifest = attach_calibration(
        rig_copy, load_calibration(OPENCV_FILE, camera="front"), intrinsics_only=True
    )
    assert manifest.camera("front").T_world_camera == pose_before


def test_attach_refuses_a_size_mismatch_naming_camera_episode_and_field(demo_copy):
    manifest_file = next(p for p in (demo_copy / "manifest.json", demo_copy / "zarr.json") if p.exists())
    before = manifest_file.read_bytes()
    with pytest.raises(SchemaError) as err:
        attach_calibration(demo_copy, load_calibration(ROS_FILE))
    message = str(err.value)
    assert message == (
        f"{demo_copy}: episode episode0: cameras/front/rgb: camera 'front' is calibrated for 640x480 but the "
        "frames are 32x32"
    )
    assert manifest_file.read_bytes() == before  # nothing written


def test_attach_refuses_unknown_camera_names(rig_copy):
    with pytest.raises(SchemaError, match=r"no camera \['cam0', 'cam1'\] in the dataset"):
        attach_calibration(rig_copy, load_calibration(KALIBR_FILE))


def test_attach_refuses_two_calibrations_for_one_camera(rig_copy):
    with pytest.raises(SchemaError, match="several calibrations for the same camera"):
        attach_calibration(rig_copy, [*load_calibration(ROS_FILE), *load_calibration(ROS_FILE)])


def test_attach_refuses_a_static_pose_for_a_link_mounted_camera(rig_copy):
    wrist = Camera(name="wrist", width=32, height=32, K=FRONT_K, T_world_camera=np.eye(4).tolist())
    with pytest.raises(SchemaError, match="moves with link 'panda_hand'"):
        attach_calibration(rig_copy, [wrist])


# ------------------------------------------------------------------------------------------ examples, CLI
def test_every_example_loads_and_one_attaches_to_the_demo_rig(rig_copy, run_cli):
    files = sorted(p for p in EXAMPLES.iterdir() if p.suffix in (".yaml", ".yml", ".json", ".xml"))
    assert {p.name for p in files} == {GENIMA_FILE.name, ROS_FILE.name, OPENCV_FILE.name, KALIBR_FILE.name}
    for path in files:
        assert all(isinstance(c, Camera) for c in load_calibration(path))
    result = run_cli(
        "calibration",
        "attach",
        rig_copy,
        KALIBR_FILE,
        "--rename",
        "cam0=front",
        "--rename",
        "cam1=left_shoulder",
        "--reference-pose",
        OPENCV_FILE,
    )
    assert result.exit_code == 0, result.stderr
    assert "left_shoulder" in result.stdout
    manifest = open_dataset(rig_copy).manifest
    np.testing.assert_allclose(
        manifest.camera("left_shoulder").T_world_camera_array(), _genima_pose("left_shoulder"), atol=1e-12
    )


def test_cli_show_json_is_the_genima_format(run_cli, tmp_path):
    result = run_cli("calibration", "show", ROS_FILE, "--json", "--out", tmp_path / "front.yaml")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["format"] == "genima-calibration" and doc["cameras"][0]["K"] == FRONT_K
    assert load_calibration(tmp_path / "front.yaml") == load_calibration(ROS_FILE)


def test_cli_show_table_names_the_cameras(run_cli):
    result = run_cli("calibration", "show", KALIBR_FILE, "--rename", "cam1=left_shoulder")
    assert result.exit_code == 0, result.stderr
    for text in ("cam0", "left_shoulder", "615.42, 615.71", "fisheye (4)"):
        assert text in result.stdout


def test_cli_attach_pose_only(run_cli, rig_copy, tmp_path):
    (tmp_path / "pose.yaml").write_text(yaml.safe_dump({"T_world_camera": THREE_CAMERAS[0].tolist()}))
    result = run_cli("calibration", "attach", rig_copy, "--pose", f"front={tmp_path / 'pose.yaml'}")
    assert result.exit_code == 0, result.stderr
    front = open_dataset(rig_copy).manifest.camera("front")
    np.testing.assert_allclose(front.T_world_camera_array(), THREE_CAMERAS[0])


def test_cli_bad_calibration_is_one_line_and_exit_1(run_cli, rig_copy, tmp_path):
    path = _edit_yaml(
        ROS_FILE, tmp_path / "bad.yaml", lambda d: d["camera_matrix"]["data"].__setitem__(4, -1)
    )
    result = run_cli("calibration", "attach", rig_copy, path)
    assert result.exit_code == 1
    assert "camera_matrix" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("name", "text", "field"),
    [
        ("m.yml", OPENCV_SHORT_MATRIX, "camera_matrix"),
        ("c.yaml", KALIBR_FILE.read_text() + "cam2: [1, 2]\n", "cam2"),
        ("n.yaml", KALIBR_FILE.read_text() + "cam2: null\n", "cam2"),
    ],
    ids=["opencv-short-matrix", "kalibr-list-camera", "kalibr-null-camera"],
)
def test_cli_malformed_calibration_is_one_line_not_an_internal_error(run_cli, tmp_path, name, text, field):
    path = tmp_path / name
    path.write_text(text)
    result = run_cli("calibration", "show", path)
    assert result.exit_code == 1
    assert f"{path}: {field}: " in result.stderr and "internal error" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_cli_kalibr_with_an_imu_entry_shows_the_cameras(run_cli, tmp_path):
    path = _edit_yaml(KALIBR_FILE, tmp_path / "camchain.yaml", lambda d: d.update(imu0={"foo": 1}))
    result = run_cli("calibration", "show", path, "--format", "kalibr")
    assert result.exit_code == 0, result.stderr
    assert "cam0" in result.stdout and "cam1" in result.stdout


def test_cli_camera_option_needs_a_single_file(run_cli, rig_copy):
    result = run_cli("calibration", "attach", rig_copy, ROS_FILE, OPENCV_FILE, "--camera", "front")
    assert result.exit_code == 1 and "--camera applies to one file" in result.stderr

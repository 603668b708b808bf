import json
from pathlib import Path

import numpy as np
import pytest

from genima_data.errors import SchemaError
from genima_data.schema import (
    Camera,
    CameraCalibration,
    Distortion,
    EpisodeMeta,
    Manifest,
    json_schemas,
    parse_model,
)

REPO = Path(__file__).resolve().parents[1]
K = [[100.0, 0.0, 64.0], [0.0, 100.0, 64.0], [0.0, 0.0, 1.0]]


def rotation_z(angle: float) -> np.ndarray:
    T = np.eye(4)
    c, s = np.cos(angle), np.sin(angle)
    T[:2, :2] = [[c, -s], [s, c]]
    return T


def test_committed_json_schemas_are_up_to_date():
    for stem, doc in json_schemas().items():
        path = REPO / "schemas" / f"{stem}.schema.json"
        assert path.exists(), f"{path} missing: run `genima-data schema`"
        assert json.loads(path.read_text()) == doc, f"{path} is stale: run `genima-data schema`"


def test_every_schema_field_has_a_description():
    def walk(node, where):
        if isinstance(node, dict):
            for name, prop in node.get("properties", {}).items():
                assert "description" in prop, f"{where}.{name} has no description"
            for key, value in node.items():
                walk(value, f"{where}.{key}")

    for stem, doc in json_schemas().items():
        walk(doc, stem)


def test_schema_states_units_and_ranges():
    cal = json_schemas()["camera_calibration"]["properties"]
    assert cal["width"]["unit"] == "px" and cal["width"]["exclusiveMinimum"] == 0
    manifest = json_schemas()["manifest"]["properties"]
    assert manifest["fps"]["unit"] == "Hz" and manifest["fps"]["exclusiveMinimum"] == 0


@pytest.mark.parametrize("fx", [-175.8, 0.0])
def test_non_positive_focal_length_is_rejected_naming_the_field(fx):
    bad = [[fx, 0.0, 64.0], [0.0, 100.0, 64.0], [0.0, 0.0, 1.0]]
    with pytest.raises(SchemaError) as err:
        parse_model(CameraCalibration, {"width": 128, "height": 128, "K": bad}, file="cal.yaml")
    assert str(err.value).startswith("cal.yaml: K: ")
    assert "focal lengths must be positive" in str(err.value)


def test_non_orthonormal_rotation_is_rejected():
    T = np.eye(4)
    T[0, 0] = 1.1
    with pytest.raises(SchemaError, match="T_world_camera.*not orthonormal"):
        parse_model(CameraCalibration, {"width": 8, "height": 8, "K": K, "T_world_camera": T.tolist()})


def test_reflection_is_rejected():
    T = np.diag([1.0, 1.0, -1.0, 1.0])
    with pytest.raises(SchemaError, match="determinant -1"):
        parse_model(CameraCalibration, {"width": 8, "height": 8, "K": K, "T_world_camera": T.tolist()})


def test_valid_rotation_passes():
    cal = CameraCalibration(width=8, height=8, K=K, T_world_camera=rotation_z(0.3).tolist())
    assert np.allclose(cal.T_world_camera_array(), rotation_z(0.3))


@pytest.mark.parametrize(
    ("model", "count", "ok"),
    [
        ("opencv", 5, True),
        ("opencv", 8, True),
        ("opencv", 6, False),
        ("fisheye", 4, True),
        ("fisheye", 5, False),
        ("none", 0, True),
        ("none", 1, False),
    ],
)
def test_distortion_coefficient_count_must_match_model(model, count, ok):
    data = {"model": model, "coeffs": [0.01] * count}
    if ok:
        assert len(Distortion.model_validate(data).coeffs) == count
    else:
        with pytest.raises(SchemaError, match="coefficients"):
            parse_model(Distortion, data)


def test_link_mounted_camera_cannot_have_a_static_pose():
    with pytest.raises(SchemaError, match="T_world_camera must be null"):
        parse_model(
            Camera,
            {
                "name": "wrist",
                "width": 8,
                "height": 8,
                "K": K,
                "mount": "panda_hand",
                "T_world_camera": np.eye(4).tolist(),
            },
        )


def test_fps_must_be_positive(manifest):
    data = manifest.model_dump(mode="json") | {"fps": 0}
    with pytest.raises(SchemaError, match="^fps: "):
        parse_model(Manifest, data)


def test_duplicate_camera_names_are_rejected(manifest):
    data = manifest.model_dump(mode="json")
    data["cameras"].append(data["cameras"][0])
    with pytest.raises(SchemaError, match="duplicate camera names"):
        parse_model(Manifest, data)


def test_joint_limit_count_must_match_joints(manifest):
    data = manifest.model_dump(mode="json")
    data["robot"]["joint_lower"] = data["robot"]["joint_lower"][:3]
    with pytest.raises(SchemaError, match="joint_lower has 3 entries for 7 joints"):
        parse_model(Manifest, data)


def test_episode_id_must_be_a_safe_file_name():
    with pytest.raises(SchemaError, match="^m.json: episode ep: episode_id: "):
        parse_model(
            EpisodeMeta, {"episode_id": "../evil", "task": "t", "length": 3}, file="m.json", episode="ep"
        )


def test_manifest_json_round_trip(manifest):
    assert Manifest.model_validate_json(manifest.to_json()) == manifest

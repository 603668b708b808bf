import json
import os
import pickle
import random
import sys

import numpy as np
import pytest

from genima_data.errors import FormatError
from genima_data.formats.rlbench_pickle import (
    Demo,
    Observation,
    dump_pickle,
    dumps_pickle,
    from_tagged_json,
    load_pickle,
    to_tagged_json,
)
from tests.conftest import RLBENCH_TEST_DATA, load_with_fake_rlbench

EPISODE3 = RLBENCH_TEST_DATA / "reach_target/variation0/episodes/episode3/low_dim_obs.pkl"
TRUNCATED = RLBENCH_TEST_DATA / "reach_target/variation1/episodes/episode9/low_dim_obs.pkl"


class _CallsOsSystem:
    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


class _CallsEval:
    def __init__(self, code):
        self.code = code

    def __reduce__(self):
        return (eval, (self.code,))


def test_real_rlbench_pickle_loads_without_rlbench_installed():
    demo = load_pickle(EPISODE3)
    assert "rlbench" not in sys.modules
    assert isinstance(demo, Demo) and len(demo) == 40
    obs = demo[1]
    assert isinstance(obs, Observation)
    assert obs.joint_positions.shape == (7,) and obs.joint_positions.dtype == np.float64
    assert obs.gripper_open == 1.0 and obs.front_rgb is None
    assert obs.misc["front_camera_intrinsics"].shape == (3, 3)
    assert len(obs.misc["joint_poses"]) == 7 and obs.misc["joint_position_action"].shape == (8,)
    assert "joint_position_action" not in demo[0].misc
    assert demo.random_seed[0] == "MT19937" and demo.random_seed[1].dtype == np.uint32


@pytest.mark.parametrize(
    "payload, refused",
    [
        (_CallsOsSystem, f"{os.system.__module__}.system"),
        (_CallsEval, "builtins.eval"),
    ],
    ids=["os.system", "builtins.eval"],
)
def test_malicious_pickle_is_refused_and_runs_nothing(tmp_path, payload, refused):
    marker = tmp_path / "pwned"
    code = f"open({str(marker)!r}, 'w').close()"
    command = payload(f"touch {marker}" if payload is _CallsOsSystem else code)
    # hidden inside an otherwise normal RLBench demo, as a misc value of the second observation
    demo = Demo([Observation(misc={}), Observation(misc={"evil": command})], random_seed=None)
    path = tmp_path / "low_dim_obs.pkl"
    path.write_bytes(pickle.dumps(demo.__dict__["_observations"][1].misc["evil"], protocol=4))
    with pytest.raises(FormatError) as err:
        load_pickle(path)
    message = str(err.value)
    assert f"refused to load global '{refused}'" in message and str(path) in message
    assert len(message.splitlines()) == 1
    assert not marker.exists()
    # sanity: the same pickle really does run its payload under plain pickle.load
    pickle.loads(path.read_bytes())
    assert marker.exists()


def test_global_smuggled_after_real_rlbench_objects_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "low_dim_obs.pkl"
    path.write_bytes(dumps_pickle([load_pickle(EPISODE3), _CallsOsSystem(f"touch {marker}")]))
    with pytest.raises(FormatError, match=r"refused to load global '\w+\.system'"):
        load_pickle(path)
    assert not marker.exists()


def test_truncated_real_pickle_is_a_one_line_error():
    with pytest.raises(FormatError) as err:
        load_pickle(TRUNCATED)
    assert str(err.value).startswith(f"{TRUNCATED}: pickle is truncated")
    assert len(str(err.value).splitlines()) == 1


def test_missing_pickle_is_named(tmp_path):
    with pytest.raises(FormatError, match="low_dim_obs.pkl: file is missing"):
        load_pickle(tmp_path / "low_dim_obs.pkl")


def test_rewritten_real_pickle_is_byte_identical(tmp_path):
    out = tmp_path / "low_dim_obs.pkl"
    dump_pickle(load_pickle(EPISODE3), out)
    assert out.read_bytes() == EPISODE3.read_bytes()


def test_written_pickle_loads_with_plain_pickle_into_rlbench_classes(tmp_path):
    out = tmp_path / "low_dim_obs.pkl"
    dump_pickle(load_pickle(EPISODE3), out)
    loaded = load_with_fake_rlbench(out)
    expected = load_pickle(EPISODE3)
    assert loaded["classes"] == ["rlbench.backend.observation.Observation", "rlbench.demo.Demo"]
    assert loaded["length"] == 40 and loaded["q2"] == expected[2].joint_positions.tolist()
    assert loaded["misc2"] == sorted(expected[2].misc)
    assert loaded["reset"] == expected.num_reset_attempts


@pytest.mark.parametrize(
    "value",
    [
        ("MT19937", np.arange(5, dtype=np.uint32), 3, 0, 0.25),
        {"a": [1, 2.5, None, True, "x"], "nan": float("nan")},
        np.float32(1.5),
        np.array([[1, 2], [3, 4]], dtype=">i2"),
        b"\x00\x01",
    ],
    ids=["random-seed", "dict", "np-scalar", "big-endian", "bytes"],
)
def test_tagged_json_round_trip_keeps_types_and_bits(value):
    back = from_tagged_json(json.loads(json.dumps(to_tagged_json(value))))
    assert pickle.dumps(back) == pickle.dumps(value) or (
        isinstance(value, dict) and np.isnan(back["nan"]) and back["a"] == value["a"]
    )


def test_tagged_json_refuses_unknown_types_naming_the_field():
    with pytest.raises(FormatError, match="random_seed: cannot keep a value of type object"):
        to_tagged_json(object(), where="random_seed")


def test_corrupt_frame_length_is_a_one_line_error_not_an_overflow(tmp_path):
    data = bytearray(EPISODE3.read_bytes())
    data[3:11] = b"\xff" * 8  # the protocol-4 FRAME length after PROTO
    path = tmp_path / "low_dim_obs.pkl"
    path.write_bytes(bytes(data))
    with pytest.raises(FormatError, match="pickle is corrupt") as err:
        load_pickle(path)
    assert str(err.value).startswith(f"{path}: ") and len(str(err.value).splitlines()) == 1


def test_randomly_damaged_pickles_fail_only_with_format_errors(tmp_path):
    demo = load_pickle(EPISODE3)
    demo._observations = demo._observations[:2]  # a real pickle, small enough for hundreds of loads
    data = dumps_pickle(demo)
    rng = random.Random(0)  # this seed hits absurd frame and object lengths (OverflowError, MemoryError)
    path = tmp_path / "low_dim_obs.pkl"
    for _ in range(400):
        damaged = bytearray(data)
        for _ in range(rng.randint(1, 3)):
            # a third of the damage in the header, where PROTO and the first FRAME length sit
            at = rng.randrange(12) if rng.random() < 0.3 else rng.randrange(len(damaged))
            damaged[at] = rng.randrange(256)
        path.write_bytes(bytes(damaged))
        try:
            load_pickle(path)
        except FormatError as exc:
            assert len(str(exc).splitlines()) == 1


class _Reduced:
    """Pickles as whatever (callable, args, state) it is given: how a crafted file spells numpy objects."""

    def __init__(self, *reduced):
        self.reduced = reduced

    def __reduce__(self):
        return self.reduced


@pytest.mark.parametrize(
    "crafted",
    [
        _Reduced(np.dtype, ("u4", False, True), (3, "<", None, -1, -1, 0)),  # crashed numpy's own setstate
        _Reduced(np.dtype, ("V8", False, True), (3, "|", None, ("a",), {"a": (np.dtype("u8"), 0)}, 8, 1, 0)),
        _Reduced(np.dtype, ("O8", False, True), (3, "|", None, None, None, -1, -1, 63)),
        _Reduced(np.float64(0).__reduce__()[0], (np.dtype("f8"), b"\x00" * 3)),
    ],
    ids=["damaged-dtype-state", "structured-dtype", "object-dtype", "short-scalar"],
)
def test_numpy_objects_with_odd_states_are_refused_before_numpy_sees_them(tmp_path, crafted):
    path = tmp_path / "low_dim_obs.pkl"
    path.write_bytes(pickle.dumps([np.zeros(2), crafted], protocol=4))
    with pytest.raises(FormatError, match=r"low_dim_obs.pkl: pickle is corrupt \(UnpicklingError: refused"):
        load_pickle(path)


def test_array_whose_data_does_not_fit_its_shape_is_refused(tmp_path):
    array = np.arange(6.0)
    reconstruct, args, (version, _, dtype, fortran, data) = array.__reduce__()
    path = tmp_path / "low_dim_obs.pkl"
    path.write_bytes(
        pickle.dumps(_Reduced(reconstruct, args, (version, (7,), dtype, fortran, data)), protocol=4)
    )
    with pytest.raises(FormatError, match=r"refused an array state \(shape \(7,\)"):
        load_pickle(path)


def test_loaded_arrays_are_plain_writable_ndarrays_in_every_place_they_are_shared(tmp_path):
    shared = np.arange(6, dtype=">f4").reshape(2, 3, order="F")
    path = tmp_path / "low_dim_obs.pkl"
    path.write_bytes(pickle.dumps({"a": shared, "b": (shared, [shared]), "s": np.float32(2.5)}, protocol=4))
    loaded = load_pickle(path)
    assert type(loaded["a"]) is np.ndarray and loaded["a"].flags.writeable
    assert loaded["a"] is loaded["b"][0] is loaded["b"][1][0]
    assert loaded["a"].dtype == np.dtype(">f4") and np.array_equal(loaded["a"], shared)
    assert loaded["s"] == np.float32(2.5) and type(loaded["s"]) is np.float32

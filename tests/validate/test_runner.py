"""validate_dataset: check selection, the CHECK_MODULES seam, worker processes, unopenable datasets."""

from __future__ import annotations

import numpy as np
import pytest

from genima_data import validate
from genima_data.errors import GenimaDataError, SchemaError, StoreError
from genima_data.validate import validate_dataset
from tests.validate.conftest import read_array, set_array

JOINTS = "robot/joint_positions"


@pytest.fixture
def extra_checks(monkeypatch):
    """CHECK_MODULES with a test module appended, as the geometry branch appends its module."""
    monkeypatch.setattr(validate, "CHECK_MODULES", [*validate.CHECK_MODULES, "tests.validate.extra_checks"])


def test_workers_find_the_same_as_a_single_process(zarr_copy):
    q = read_array(zarr_copy, "episode1", JOINTS)
    q[7, 2] = np.nan
    set_array(zarr_copy, "episode1", JOINTS, q)
    serial = validate_dataset(zarr_copy)
    parallel = validate_dataset(zarr_copy, workers=2)
    assert parallel.findings == serial.findings and len(serial.errors) == 1


def test_a_module_appended_to_check_modules_runs_in_workers_too(zarr_copy, extra_checks):
    for workers in (1, 2):
        report = validate_dataset(zarr_copy, checks=["test_counts_frames"], workers=workers)
        assert [(f.episode, f.message) for f in report.warnings] == [
            (f"episode{i}", "24 frames") for i in range(3)
        ]


def test_non_default_checks_run_only_when_named(zarr_copy, extra_checks):
    assert "test_counts_frames" not in {s.name for s in validate_dataset(zarr_copy).checks}


def test_a_crashing_check_becomes_an_error_finding_and_the_run_goes_on(zarr_copy, extra_checks):
    report = validate_dataset(zarr_copy, checks=["test_crashes", "finite"])
    assert [f.check for f in report.errors] == ["test_crashes"] * 3
    assert "could not run this check: KeyError" in report.errors[0].message


def test_unknown_check_name_is_a_one_line_error(zarr_copy):
    with pytest.raises(GenimaDataError, match="unknown check.*no_such_check"):
        validate_dataset(zarr_copy, checks=["no_such_check"])


def test_dataset_that_cannot_be_opened_raises_store_or_schema_errors(tmp_path, zarr_copy):
    with pytest.raises(StoreError, match="no such dataset"):
        validate_dataset(tmp_path / "missing.zarr")
    (zarr_copy / "zarr.json").write_text(
        '{"zarr_format": 3, "node_type": "group", "attributes": {"manifest": {}}}'
    )
    with pytest.raises(SchemaError):
        validate_dataset(zarr_copy)


def test_cached_objects_are_built_once_per_process_not_per_episode(zarr_copy, extra_checks):
    from tests.validate.extra_checks import BUILT

    before = len(BUILT)
    report = validate_dataset(zarr_copy, checks=["test_builds_once"])
    assert len(BUILT) == before + 1
    assert len({f.message for f in report.infos}) == 1 and len(report.infos) == 3

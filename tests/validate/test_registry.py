"""Findings, options and the check registry."""

from __future__ import annotations

import pytest

from genima_data.errors import GenimaDataError
from genima_data.validate import Finding, Severity, ValidateOptions, check, describe_frames


def test_finding_one_line_names_file_episode_and_field():
    finding = Finding(
        "finite", Severity.error, "NaN at frame 7", "episode1", "robot/joint_positions", "a.zarr"
    )
    assert finding.one_line() == "a.zarr: episode episode1: robot/joint_positions: NaN at frame 7"


def test_long_frame_lists_are_shortened_in_messages():
    assert describe_frames([4]) == "frame 4"
    assert describe_frames(range(15)) == "frames 0, 1, 2, 3, 4, 5, 6, 7, 8, 9 (+5 more)"


def test_option_overrides_reject_unknown_names_and_wrong_types():
    assert ValidateOptions().with_overrides({"fk_tolerance_m": 1, "min_length": None}).fk_tolerance_m == 1
    with pytest.raises(GenimaDataError, match="fk_tolerance: unknown option"):
        ValidateOptions().with_overrides({"fk_tolerance": 0.1})
    with pytest.raises(GenimaDataError, match="horizon: expects int"):
        ValidateOptions().with_overrides({"horizon": 2.5})
    with pytest.raises(GenimaDataError, match="strict: expects bool"):
        ValidateOptions().with_overrides({"strict": 1})


def test_registering_a_second_check_under_a_taken_name_is_refused():
    with pytest.raises(ValueError, match="'finite' is already registered"):

        @check("finite", scope="episode", description="an impostor")
        def finite(ctx):  # pragma: no cover - never runs
            return []

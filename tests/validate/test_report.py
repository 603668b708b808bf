"""ValidationReport: exit codes, the JSON layout tools rely on, the one-line findings people read."""

from __future__ import annotations

import io
import json

from rich.console import Console

from genima_data.validate import Finding, Severity, ValidateOptions, ValidationReport, registered_checks

REPORT_KEYS = {
    "report_version",
    "dataset",
    "backend",
    "episodes",
    "genima_ready",
    "exit_code",
    "strict",
    "counts",
    "checks",
    "options",
    "findings",
}
CHECK_KEYS = {"name", "scope", "description", "error", "warning", "info"}
FINDING_KEYS = {"check", "severity", "episode", "field", "file", "frames", "message"}


def report_with(*severities: Severity, strict: bool = False) -> ValidationReport:
    specs = registered_checks()
    findings = [
        Finding("finite", s, f"problem {i}", f"episode{i}", "robot/joint_positions", "ds.zarr", (i,))
        for i, s in enumerate(severities)
    ]
    return ValidationReport(
        dataset="ds.zarr",
        backend="zarr",
        episodes=3,
        checks=[specs["finite"], specs["manifest"]],
        findings=findings,
        options=ValidateOptions(strict=strict),
    )


def test_exit_code_is_one_only_for_errors_unless_strict():
    assert report_with().exit_code == 0
    assert report_with(Severity.warning, Severity.info).exit_code == 0
    assert report_with(Severity.error).exit_code == 1
    assert report_with(Severity.warning, strict=True).exit_code == 1


def test_json_report_layout_is_stable(tmp_path):
    report = report_with(Severity.error, Severity.warning, Severity.info)
    report.write_json(tmp_path / "report.json")
    data = json.loads((tmp_path / "report.json").read_text())
    assert set(data) == REPORT_KEYS and data["report_version"] == 1
    assert data["counts"] == {"error": 1, "warning": 1, "info": 1}
    assert (data["genima_ready"], data["exit_code"]) == (False, 1)
    assert [set(c) for c in data["checks"]] == [CHECK_KEYS, CHECK_KEYS]
    assert data["checks"][0] | {"description": None} == {
        "name": "finite",
        "scope": "episode",
        "description": None,
        "error": 1,
        "warning": 1,
        "info": 1,
    }
    assert [set(f) for f in data["findings"]] == [FINDING_KEYS] * 3
    assert data["findings"][0] == {
        "check": "finite",
        "severity": "error",
        "episode": "episode0",
        "field": "robot/joint_positions",
        "file": "ds.zarr",
        "frames": [0],
        "message": "problem 0",
    }
    assert set(data["options"]) == set(ValidateOptions().to_dict())


def rendered(report: ValidationReport, **kwargs) -> list[str]:
    out = io.StringIO()
    Console(file=out, width=60).print(report.renderable(**kwargs), soft_wrap=True)
    return out.getvalue().splitlines()


def test_findings_print_one_line_each_and_info_stays_in_the_json():
    lines = rendered(report_with(Severity.error, Severity.warning, Severity.info))
    assert "error   [finite] ds.zarr: episode episode0: robot/joint_positions: problem 0" in lines
    assert "warning [finite] ds.zarr: episode episode1: robot/joint_positions: problem 1" in lines
    assert not any("problem 2" in line for line in lines)
    assert lines[-1] == "NOT GENIMA-ready: 1 error(s), 1 warning(s)"


def test_long_finding_lists_are_cut_with_a_pointer_to_the_json():
    lines = rendered(report_with(*[Severity.error] * 5), max_findings=2)
    assert sum("[finite]" in line for line in lines) == 2
    assert "... and 3 more (see --json)" in lines


def test_summary_counts_findings_per_check():
    lines = rendered(report_with(Severity.error, Severity.error, Severity.warning))
    rows = [[cell.strip() for cell in line.split("│")[1:-1]] for line in lines if line.startswith("│")]
    assert rows == [["finite", "episode", "2", "1", "·"], ["manifest", "dataset", "·", "·", "·"]]

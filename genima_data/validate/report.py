"""`ValidationReport`: what a validation run found, as a rich summary for people and JSON for machines.

The JSON layout (`REPORT_VERSION`) is stable: tools that gate deliveries parse it. Keys: report_version,
dataset, backend, episodes, genima_ready, exit_code, strict, counts {error, warning, info}, checks (name,
scope, description, error, warning, info), options, findings (check, severity, episode, field, file,
frames, message).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from genima_data.atomic import atomic_write_text
from genima_data.validate.registry import CheckSpec, Finding, Severity, ValidateOptions

REPORT_VERSION = 1
SEVERITY_STYLE = {Severity.error: "bold red", Severity.warning: "yellow", Severity.info: "dim"}


@dataclass
class ValidationReport:
    """Findings of the checks that ran over one dataset."""

    dataset: str
    backend: str
    episodes: int
    checks: list[CheckSpec]
    findings: list[Finding]
    options: ValidateOptions

    def _with(self, severity: Severity) -> list[Finding]:
        return [f for f in self.findings if f.severity == severity]

    @property
    def errors(self) -> list[Finding]:
        return self._with(Severity.error)

    @property
    def warnings(self) -> list[Finding]:
        return self._with(Severity.warning)

    @property
    def infos(self) -> list[Finding]:
        return self._with(Severity.info)

    @property
    def exit_code(self) -> int:
        """0 when GENIMA-ready (warnings allowed unless `options.strict`), 1 when errors were found."""
        return 1 if self.errors or (self.options.strict and self.warnings) else 0

    def counts_by_check(self) -> dict[str, Counter]:
        """Per check name, how many findings of each severity (checks that found nothing included)."""
        counts: dict[str, Counter] = {spec.name: Counter() for spec in self.checks}
        for f in self.findings:  # an episode that cannot be opened may name a check that was not selected
            counts.setdefault(f.check, Counter())[f.severity] += 1
        return counts

    def to_dict(self) -> dict[str, Any]:
        by_check = self.counts_by_check()
        specs = {spec.name: spec for spec in self.checks}
        return {
            "report_version": REPORT_VERSION,
            "dataset": self.dataset,
            "backend": self.backend,
            "episodes": self.episodes,
            "genima_ready": self.exit_code == 0,
            "exit_code": self.exit_code,
            "strict": self.options.strict,
            "counts": {s.value: len(self._with(s)) for s in Severity},
            "checks": [
                {
                    "name": name,
                    "scope": specs[name].scope if name in specs else None,
                    "description": specs[name].description if name in specs else None,
                    **{s.value: counts[s] for s in Severity},
                }
                for name, counts in by_check.items()
            ],
            "options": self.options.to_dict(),
            "findings": [f.to_dict() for f in self.findings],
        }

    def write_json(self, path: str | Path) -> None:
        """Write `to_dict()` as JSON, atomically."""
        atomic_write_text(path, json.dumps(self.to_dict(), indent=2) + "\n")

    def summary_table(self) -> Table:
        table = Table(title=f"validate {self.dataset} ({self.episodes} episodes, {self.backend})")
        table.add_column("check")
        table.add_column("scope")
        for severity in Severity:
            table.add_column(f"{severity.value}s", justify="right", style=SEVERITY_STYLE[severity])
        scopes = {spec.name: spec.scope for spec in self.checks}
        for name, counts in self.counts_by_check().items():
            cells = [str(counts[s]) if counts[s] else "·" for s in Severity]
            table.add_row(name, scopes.get(name, "episode"), *cells)
        return table

    def verdict(self) -> Text:
        errors, warnings = len(self.errors), len(self.warnings)
        counts = f"{errors} error(s), {warnings} warning(s)"
        if self.exit_code == 0:
            return Text(f"GENIMA-ready: {counts}", style="bold green")
        strict = " (--strict: warnings count)" if not errors else ""
        return Text(f"NOT GENIMA-ready: {counts}{strict}", style="bold red")

    def renderable(self, max_findings: int = 20) -> RenderableType:
        """Summary table, the first errors and warnings as one line each, and the verdict.

        Print it with ``soft_wrap=True`` so each finding stays on one line.
        """
        shown = [f for f in self.findings if f.severity != Severity.info]
        lines = [finding_line(f) for f in shown[:max_findings]]
        if len(shown) > max_findings:
            lines.append(Text(f"... and {len(shown) - max_findings} more (see --json)", style="dim"))
        return Group(self.summary_table(), *lines, self.verdict())


def finding_line(finding: Finding) -> Text:
    """``error   [check] <file>: episode <id>: <field>: <message>``."""
    severity = (f"{finding.severity.value:<8}", SEVERITY_STYLE[finding.severity])
    return Text.assemble(severity, f"[{finding.check}] {finding.one_line()}")


def checks_table(checks: list[CheckSpec]) -> Table:
    """The registered checks, for `--list-checks`."""
    table = Table(title="validation checks")
    table.add_column("check", style="cyan", no_wrap=True)
    table.add_column("scope")
    table.add_column("default")
    table.add_column("what it guards against")
    for spec in checks:
        table.add_row(spec.name, spec.scope, "yes" if spec.default else "no", spec.description)
    return table

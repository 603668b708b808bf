"""Examples in examples/ are part of the documentation: they must keep running."""

import runpy
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_python_api_example_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["python_api.py", str(tmp_path)])
    runpy.run_path(str(EXAMPLES / "python_api.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert "front rgb frame: (64, 64, 3) uint8" in out
    assert "after append: ['episode0', 'episode1', 'episode2']" in out

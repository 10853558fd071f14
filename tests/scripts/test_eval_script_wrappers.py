"""scripts/eval_wide.py, eval_judge_votes.py and compare_artifacts.py still run: they call rlsys.eval's modules."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("script", "summary"), [
    ("eval_wide.py", "Held-out evaluation on a wider set"),
    ("eval_judge_votes.py", "Held-out pair accuracy of pointwise checkers"),
    ("compare_artifacts.py", "Compare the builds two artifact roots both hold"),
])
def test_script_help_runs(script: str, summary: str) -> None:
    out = subprocess.run([sys.executable, f"scripts/{script}", "--help"], cwd=REPO, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(f"usage: {script}")
    assert summary in " ".join(out.stdout.split())

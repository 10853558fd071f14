"""`python -m rlsys.run +exp=smoke` end to end: real Ray, vLLM and DeepSpeed in a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from rlsys_testing import SMALL

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow

def test_smoke_exp_end_to_end(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "rlsys.run", "+exp=smoke", f"artifacts_dir={tmp_path / 'artifacts'}",
         f"hydra.run.dir={tmp_path / 'run'}", *SMALL],
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = tmp_path / "run"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["smoke/logprob_maxdiff_after_sync"] <= 1e-4
    assert summary["smoke/logprob_change_from_update"] > 1e-3
    assert summary["smoke/policy_version"] == 1
    for name in ("config.yaml", "meta.json", "metrics.jsonl", "run.log"):
        assert (run / name).exists(), name
    assert (run / "checkpoints" / "final" / "model.safetensors").exists()
    assert list((run / "plots").glob("*.png"))
    meta = json.loads((run / "meta.json").read_text())
    assert meta["rlsys_version"] and "git_commit" in meta

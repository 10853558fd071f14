"""`python -m rlsys.run +exp=smoke_vl` end to end: the tiny Qwen3-VL on real Ray, vLLM and DeepSpeed, with
an image in the prompt; the learner scores the sampled tokens from the same pixels as vLLM."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from rlsys_testing import SMALL

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def test_smoke_vl_exp_end_to_end(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "rlsys.run", "+exp=smoke_vl", f"artifacts_dir={tmp_path / 'artifacts'}",
         f"hydra.run.dir={tmp_path / 'run'}", "smoke.max_tokens=12", *SMALL],
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = tmp_path / "run"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["smoke/images"] == 1 and (run / "smoke_image.png").exists()
    assert summary["smoke/logprob_maxdiff_before"] <= 1e-4
    assert summary["smoke/logprob_maxdiff_after_sync"] <= 1e-4
    assert summary["smoke/logprob_change_from_update"] > 1e-3
    assert summary["smoke/policy_version"] == 1
    # The saved policy is a VLM directory vLLM and HF can load: weights, processor and tokenizer.
    final = run / "checkpoints" / "final"
    config = json.loads((final / "config.json").read_text())
    assert config["vision_config"] and (final / "model.safetensors").exists()
    from safetensors import safe_open
    from transformers import AutoProcessor

    assert type(AutoProcessor.from_pretrained(final)).__name__ == "Qwen3VLProcessor"

    with safe_open(str(final / "model.safetensors"), "pt") as f:
        names = set(f.keys())
    assert any(n.startswith("model.visual.") for n in names) and any(n.startswith("model.language_model.") for n in names)

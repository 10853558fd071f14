"""A real tiny RL stage on visual rows (`model=tiny_vl`, `vl_train`): rollouts with images, one GSPO step on the same
pixels, weights changed, the held-out visual accuracy (`eval.visual`) before and after, and its table."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from rlsys_testing import SMALL
from safetensors.torch import load_file

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow

VISUAL = ["data.visual.tasks=[arith,count]", "data.visual.n_train_per_task=2", "data.visual.n_eval_per_task=2",
          "data.visual.n_sft_per_task=1", "data.visual.n_trap_train=1", "data.visual.n_trap_eval=2",
          "data.visual.image_size=64"]


def test_one_rl_step_on_images_trains_and_reports_visual_accuracy(tmp_path: Path) -> None:
    run = tmp_path / "run"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO / "tests"), os.environ.get("PYTHONPATH", "")]))
    args = [
        sys.executable, "-m", "rlsys.run", "+exp=gspo_hints", "model=tiny_vl", f"artifacts_dir={tmp_path / 'artifacts'}",
        f"hydra.run.dir={run}", *SMALL, *VISUAL,
        "stages.rl.input=null", "stages.rl.data=vl_train:4", "stages.rl.lr=1e-2", "stages.rl.rl.steps=1",
        "stages.rl.rl.batch_groups=2", "stages.rl.rl.mini_batches=1", "stages.rl.rl.save_every=0",
        "stages.rl.rl.eval_every=0", "stages.rl.rl.max_refill_rounds=4", "rollout.group_size=2",
        "rollout.max_tokens=8", "hints.enabled=false", "reward.correct_threshold=0.5",
        "stages.rl.reward_fns=[{_target_: rl_test_rewards.even_length, weight: 1.0}]",
        "eval.visual=true", "eval.max_visual=3", "eval.max_math=2", "eval.max_ifeval=1", "eval.max_tokens=8",
        "eval.sample_k=0",
    ]
    proc = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-5000:]
    stage = run / "stages" / "rl"
    records = [json.loads(line) for line in (stage / "metrics.jsonl").read_text().splitlines()]
    trained = [r for r in records if "train/loss" in r]
    assert len(trained) == 1 and trained[0]["train/groups"] >= 1
    summary = json.loads((stage / "rl_summary.json").read_text())
    for side in ("eval_before", "eval"):
        ev = summary[side]
        assert 0.0 <= ev["eval/vl_acc"] <= 1.0 and "eval/vl_trap_acc" in ev
        assert {"eval/vl_acc_arith", "eval/vl_acc_count", "eval/vl_acc_tier1"} <= set(ev)
    table = (stage / "eval_table.md").read_text()
    assert "| vl_acc_arith |" in table and "| vl_trap_acc |" in table
    # The policy really changed, vision tower and LM alike (the tower only moves when the learner got the pixels).
    (base,) = (tmp_path / "artifacts" / "models" / "tiny-vl-init").glob("*/model.safetensors")
    before, after = load_file(str(base)), load_file(str(stage / "model" / "model.safetensors"))
    assert before.keys() == after.keys()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert any(k.startswith("model.language_model.") for k in changed)
    assert any(k.startswith("model.visual.") for k in changed)

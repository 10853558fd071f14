"""Short real `+exp=gspo_hints` runs (tiny model, a few steps): what a run writes, and resume.

The reward is a plug-in an untrained model earns about half the time, so groups have mixed pass rates, the filter
and the hint search both act, and GSPO really updates the weights.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from rlsys_testing import BASE_STAGES, SHORT_EVAL, SMALL
from safetensors.torch import load_file

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow

TINY_RL = [
    *SMALL,
    *BASE_STAGES,
    "rollout.group_size=4", "rollout.max_tokens=16", "hints.rollouts_per_level=4", "hints.max_level=3",
    "stages.rl.rl.batch_groups=4", "stages.rl.rl.eval_every=2", "stages.rl.lr=1e-3",
    *SHORT_EVAL, "reward.correct_threshold=0.5",
    "stages.rl.reward_fns=[{_target_: rl_test_rewards.even_length, weight: 1.0}]",
]


def _run(args: list[str], tmp: Path, run_dir: Path, **popen) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path(__file__).parents[1]), os.environ.get("PYTHONPATH", "")]))
    return subprocess.Popen(
        [sys.executable, "-m", "rlsys.run", "+exp=gspo_hints", f"artifacts_dir={tmp / 'artifacts'}",
         f"hydra.run.dir={run_dir}", *TINY_RL, *args],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **popen,
    )


def _finish(proc: subprocess.Popen, timeout: float = 900) -> str:
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out[-4000:]
    return out


def _records(stage_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (stage_dir / "metrics.jsonl").read_text().splitlines()]


def _check_short_run(run: Path) -> None:
    """What a finished 4-step run writes: per-step metrics, evaluations, hint tables, curves, changed weights."""
    stage = run / "stages" / "rl"
    records = _records(stage)
    steps = [r for r in records if r.get("step", 0) > 0 and "train/loss" in r]
    assert [r["step"] for r in steps] == [1, 2, 3, 4]
    for key in ("rollout/accuracy", "rollout/response_length", "filter/sampled", "filter/kept", "train/loss",
                "train/clip_frac", "train/mean_abs_log_ratio", "train/entropy", "time/rollout_s", "time/reward_s",
                "time/train_s", "time/sync_s", "time/other_s", "policy_version"):
        assert all(key in r for r in steps), key
    assert steps[-1]["policy_version"] == 4
    # The suite's rows carry a tier: fresh-problem accuracy is also logged per tier.
    assert all(any(k.startswith("rollout/accuracy_tier") for k in r) for r in steps)
    assert any("eval/math_acc" in r for r in records if r.get("step") == 0)
    assert (stage / "hint_table.md").read_text().startswith("Per hint level")
    table = json.loads((stage / "hint_table.json").read_text())
    assert table[0]["level"] == "no hint" and table[0]["problems"] >= 12
    assert list((stage / "plots").glob("*.png"))
    summary = json.loads((stage / "rl_summary.json").read_text())
    assert "eval/math_acc_tier1" in summary["eval_before"] and "eval/math_acc_tier1" in summary["eval"]

    sft_dir = (run / "stages" / "sft_more").resolve() / "model"
    before, after = load_file(str(sft_dir / "model.safetensors")), load_file(str(stage / "model" / "model.safetensors"))
    assert before.keys() == after.keys()
    assert any(not torch.equal(before[k], after[k]) for k in before), "GSPO did not change the weights"


def _comparable(records: list[dict]) -> list[dict]:
    # Wall-clock measurements: timings, throughput, the pool's time-weighted load and the cores' busy shares.
    volatile = ("time", "tokens_per_s", "step_time_s", "pool_time_s", "pool/actors", "pool/inflight", "pool/backlog",
                "busy_share", "cpu/")
    return [{k: v for k, v in r.items() if not any(t in k for t in volatile)} for r in records]


def test_a_short_run_trains_and_logs_and_kill_and_resume_matches_it(tmp_path, seeded_artifacts):
    steps = ["stages.rl.rl.steps=4", "stages.rl.rl.save_every=2", "stages.rl.rl.eval_every=0"]
    straight = tmp_path / "straight"
    _finish(_run(steps, tmp_path, straight))
    _check_short_run(straight)

    killed = tmp_path / "killed"
    proc = _run(steps, tmp_path, killed, start_new_session=True)
    latest = killed / "stages" / "rl" / "checkpoints" / "latest"
    deadline = time.monotonic() + 900
    while not (latest.exists() and latest.read_text().strip() == "step2"):
        assert proc.poll() is None, proc.stdout.read()[-4000:]
        assert time.monotonic() < deadline, "no checkpoint at step 2"
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    assert len([r for r in _records(killed / "stages" / "rl") if "train/loss" in r]) <= 3

    _finish(_run([*steps, f"resume={killed}"], tmp_path, tmp_path / "resumer"))
    got, want = _records(killed / "stages" / "rl"), _records(straight / "stages" / "rl")
    assert [r.get("step") for r in got] == [r.get("step") for r in want]
    assert _comparable(got) == _comparable(want)

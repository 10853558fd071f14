"""A real short `+exp=gspo_hints` run scaled 1 -> 3 -> 1 rollout actors mid-run, by hand with `python -m rlsys.scale`
(its own process, joining the run's Ray through `scale.json`) and by the autoscale policy: every step completes and
every group the steps sampled went through the pool exactly once."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_gspo_hints_run import REPO, TINY_RL, _records

pytestmark = pytest.mark.slow

# Enough steps (about 2 s each here) to scale up, serve with three engines and scale down again mid-run.
STEPS = 45
# Hints and evaluations off: each step's groups are then exactly the rows it sampled. Three engines and the learner
# share 2 cores: Ray books logical CPUs above the machine's.
SCALED = ["hints.enabled=false", "stages.rl.rl.eval_before=false", "stages.rl.rl.eval_every=0",
          f"stages.rl.rl.steps={STEPS}", "stages.rl.rl.save_every=0", "ray.num_cpus=8", "rollout.cpus_per_actor=0.5"]


def start(tmp: Path, run_dir: Path, log: Path, args: list[str] = SCALED) -> subprocess.Popen:
    """The run as `test_gspo_hints_run._run` starts it, its output in a file: nobody reads a pipe while it runs.
    tests/rollout is on the path for its autoscale policies (`scale_policies.*`)."""
    tests = Path(__file__).parents[1]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tests), str(tests / "rollout"),
                                                       os.environ.get("PYTHONPATH", "")]))
    return subprocess.Popen(
        [sys.executable, "-m", "rlsys.run", "+exp=gspo_hints", f"artifacts_dir={tmp / 'artifacts'}",
         f"hydra.run.dir={run_dir}", *TINY_RL, *args], cwd=REPO, env=env, stdout=log.open("w"),
        stderr=subprocess.STDOUT, text=True, start_new_session=True)


def scale(run_dir: Path, *args: str) -> dict:
    out = subprocess.run([sys.executable, "-m", "rlsys.scale", str(run_dir), *args], cwd=REPO, capture_output=True,
                         text=True, timeout=360)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout)


def wait_for(what: str, proc: subprocess.Popen, log: Path, check, timeout: float = 900.0, every_s: float = 0.5):
    deadline = time.monotonic() + timeout
    while not (got := check()):
        assert proc.poll() is None, f"the run ended before {what}: " + log.read_text()[-4000:]
        assert time.monotonic() < deadline, f"no {what} within {timeout} s"
        time.sleep(every_s)
    return got


def steps_done(stage: Path) -> list[dict]:
    try:
        return [r for r in _records(stage) if "pool/target" in r]
    except (FileNotFoundError, json.JSONDecodeError):
        return []


def test_a_run_scaled_by_hand_1_3_1_completes_with_every_group_once(tmp_path, seeded_artifacts):
    run = tmp_path / "run"
    stage = run / "stages" / "rl"
    log = tmp_path / "run.log"
    proc = start(tmp_path, run, log)
    try:
        wait_for("step 1", proc, log, lambda: (run / "scale.json").is_file() and len(steps_done(stage)) >= 1)
        up = scale(run, "--rollout", "3", "--wait", "300")
        assert up["rollout"] == 3 and up["pool"]["applied"] == up["serial"]
        # A whole step with three live actors (time-weighted; starting ones count), then one more. That the new
        # engines take groups is shown by tests/rollout/test_pool_scaling.py; here: nothing lost while resizing.
        three = wait_for("a step with 3 actors", proc, log,
                         lambda: [r["step"] for r in steps_done(stage) if r["pool/actors"] > 2.99])[0]
        wait_for(f"step {three + 1}", proc, log, lambda: len(steps_done(stage)) > three)
        down = scale(run, "--rollout", "1", "--wait", "300")
        assert down["rollout"] == 1 and down["pool"]["applied"] == down["serial"] == 2
        assert proc.wait(timeout=900) == 0, log.read_text()[-4000:]
        out = log.read_text()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    steps = steps_done(stage)
    assert [r["step"] for r in steps] == list(range(1, STEPS + 1))
    assert all("train/loss" in r or "train/skipped" in r for r in steps)
    targets = [r["pool/target"] for r in steps]
    assert targets[0] == 1.0 and 3.0 in targets and targets[-1] == 1.0, targets
    assert sum(r["pool/scale_events"] for r in steps) == 2.0
    assert max(r["pool/actors"] for r in steps) > 1.5
    for r in steps:
        # Every group a step sampled went to the pool once and came back once; none failed or was sent again.
        assert r["filter/sampled"] == r["pool/submitted"] == r["pool/delivered"], r
        assert r["pool/failed_groups"] == 0.0 and r["pool/redispatched"] == 0.0, r
    assert "scale 1 -> 3 (by hand, request 1" in out and "scale 3 -> 1 (by hand, request 2" in out


# The policy wants 3 actors for BURST_S seconds from the first groups outstanding, then none (the pool keeps
# min_actors = 1): demand that rises and falls away once (tests/rollout/scale_policies.py:burst). The run trains for a
# wall budget rather than a step count, so that on any machine speed it spans both the burst and the time after it;
# steps take a fraction of a second with one engine, so the tiny model soon solves every prompt and later steps keep
# no group to train on (skipped steps still sample, and go through the pool, in full).
BURST_S, WALL_S = 20.0, 35.0
AUTOSCALED = [a for a in SCALED if not a.startswith("stages.rl.rl.steps=")] + [
    "stages.rl.rl.steps=100000", f"stages.rl.rl.max_wall_s={WALL_S}", "stages.rl.rl.max_skipped_share=1.0",
    "rollout.num_actors=1",
    "rollout.pool.autoscale=true", "rollout.pool.min_actors=1", "rollout.pool.max_actors=3",
    "rollout.pool.scale_down_delay_s=2",
    "rollout.pool.autoscale_policy._target_=scale_policies.burst", "+rollout.pool.autoscale_policy.size=3",
    f"+rollout.pool.autoscale_policy.for_s={BURST_S}"]


def test_a_run_autoscaled_1_3_1_completes_with_every_group_once(tmp_path, seeded_artifacts):
    run = tmp_path / "run"
    log = tmp_path / "run.log"
    proc = start(tmp_path, run, log, AUTOSCALED)
    try:
        assert proc.wait(timeout=900) == 0, log.read_text()[-4000:]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    out = log.read_text()
    steps = steps_done(run / "stages" / "rl")
    # Every step the wall budget allowed completed, in order (several of them after the pool shrank back).
    assert [r["step"] for r in steps] == list(range(1, len(steps) + 1)) and len(steps) >= 6, out[-3000:]
    assert all("train/loss" in r or "train/skipped" in r for r in steps)
    targets = [r["pool/target"] for r in steps]
    grown = targets.index(3.0)
    assert 1.0 in targets[grown:] and targets[-1] == 1.0, targets
    assert sum(r["pool/scale_events"] for r in steps) == 2.0, targets
    assert max(r["pool/actors"] for r in steps) > 1.5
    for r in steps:
        assert r["filter/sampled"] == r["pool/submitted"] == r["pool/delivered"], r
        assert r["pool/failed_groups"] == 0.0 and r["pool/redispatched"] == 0.0, r
    # The log says why the pool changed: the policy's decision and the groups outstanding when it took it.
    assert re.search(r"scale 1 -> 3 \(autoscale: [1-9]\d* group\(s\) outstanding, policy scale_policies\.burst\)", out)
    assert re.search(r"scale 3 -> 1 \(autoscale: \d+ group\(s\) outstanding, policy scale_policies\.burst\)", out)

"""Short real `+exp=gspo_hints` runs with rollouts ahead of training (`rl.max_staleness=1`): what is trained on,
and kill-and-resume with a batch collected ahead saved in the checkpoint."""

from __future__ import annotations

import os
import pickle
import signal
import time
from pathlib import Path

import pytest
from test_gspo_hints_run import _comparable, _finish, _records, _run

pytestmark = pytest.mark.slow

ASYNC = ["stages.rl.rl.max_staleness=1"]


def _check_one_step_off_policy(run: Path) -> None:
    """A finished 4-step run with max_staleness=1 trained on samples one version old."""
    steps = [r for r in _records(run / "stages" / "rl") if "train/loss" in r]
    assert [r["step"] for r in steps] == [1, 2, 3, 4]
    # Step 1 trains on the input model's samples; every later batch was sampled one version behind the learner
    # (the batch of step t+1 is collected while step t trains).
    groups = [r["filter/kept"] for r in steps]
    assert steps[0]["async/staleness_0"] == groups[0]
    for r, kept in zip(steps[1:], groups[1:]):
        assert r["async/staleness_1"] == kept and r["async/staleness_max"] == 1.0, r
        assert not any(k.startswith("async/staleness_") and k[-1] not in "01" for k in r if k[-1].isdigit()), r
    assert all(r["async/dropped_stale"] == 0.0 for r in steps)
    assert all(0.0 <= r["async/rollout_busy_share"] <= 1.0 and "time/rollout_wait_s" in r for r in steps)
    assert steps[-1]["policy_version"] == 4
    assert any("eval/math_acc" in r for r in steps if r["step"] == 3)


def test_one_step_off_policy_run_and_kill_and_resume_trains_the_saved_batch_and_matches(tmp_path, seeded_artifacts):
    # An evaluation at step 3, after the checkpoint the kill follows: the resumed run must redo it alike.
    steps = [*ASYNC, "stages.rl.rl.steps=4", "stages.rl.rl.save_every=2", "stages.rl.rl.eval_every=3"]
    straight = tmp_path / "straight"
    _finish(_run(steps, tmp_path, straight))
    _check_one_step_off_policy(straight)

    killed = tmp_path / "killed"
    proc = _run(steps, tmp_path, killed, start_new_session=True)
    ckpts = killed / "stages" / "rl" / "checkpoints"
    deadline = time.monotonic() + 900
    while not ((ckpts / "latest").exists() and (ckpts / "latest").read_text().strip() == "step2"):
        assert proc.poll() is None, proc.stdout.read()[-4000:]
        assert time.monotonic() < deadline, "no checkpoint at step 2"
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    # The batches collected ahead (step 3's, and step 4's when the producer had started it before the checkpoint
    # paused it: a checkpoint lets a batch in progress finish) are saved with it, each within the bound.
    pending = pickle.loads((ckpts / "step2" / "pending.pkl").read_bytes())
    assert [b.step for b in pending] in ([2], [2, 3])
    assert all(len({g.version for g in b.groups}) == 1 and b.step - b.groups[0].version == 1 for b in pending)

    _finish(_run([*steps, f"resume={killed}"], tmp_path, tmp_path / "resumer"))
    got, want = _records(killed / "stages" / "rl"), _records(straight / "stages" / "rl")
    assert [r.get("step") for r in got] == [r.get("step") for r in want]
    # With rollouts ahead, the groups the pool handled in a step's window depend on when the producer ran (a
    # resumed run starts from the saved batch): those counts are timings here, not results.
    window = ("pool/submitted", "pool/delivered")
    assert _comparable(_without(got, window)) == _comparable(_without(want, window))


def test_background_eval_logs_each_snapshot_against_its_version(tmp_path, seeded_artifacts):
    # With partial rollouts on too: new weights go into the pool as soon as they are published.
    run = tmp_path / "run"
    _finish(_run([*ASYNC, "stages.rl.rl.steps=3", "stages.rl.rl.save_every=0", "stages.rl.rl.eval_every=1",
                  "eval.background=true", "rollout.partial_rollout=continue", "rollout.partial_chunk_tokens=8"],
                 tmp_path, run))
    records = _records(run / "stages" / "rl")
    steps = [r for r in records if "train/loss" in r]
    assert all(0.0 <= r["async/mixed_version_share"] <= 1.0 and r["async/staleness_max"] <= 1.0 for r in steps)
    background = [r for r in records if "eval/policy_version" in r]
    # Every snapshot handed over (one per step) is either evaluated or counted as skipped, and each result is
    # logged no earlier than the step that produced its version.
    assert len(background) + sum(r.get("eval/skipped", 0.0) for r in records) == 3
    assert all(r["eval/policy_version"] <= r["step"] and "eval/math_acc" in r for r in background)
    assert sorted(r["eval/policy_version"] for r in background) == [r["eval/policy_version"] for r in background]
    assert all(r.get("eval/failed", 0.0) == 0.0 for r in records)
    # The newest snapshot always runs; scored on the eval actor it matches the stage's final inline evaluation
    # of the same weights on the training pool (greedy decoding, same prompts), and not the input model's.
    last = next(r for r in background if r["eval/policy_version"] == 3)
    first, final = records[0], records[-1]
    assert first["policy_version"] == 0 and final["policy_version"] == 3 and "eval/policy_version" not in final
    assert first["eval/answer_chars"] != final["eval/answer_chars"], "the policy's answers did not change"
    scores = [k for k in final if k.startswith("eval/")]
    assert len(scores) > 5 and {k: last[k] for k in scores} == {k: final[k] for k in scores}


def _without(records: list[dict], keys: tuple[str, ...]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in keys} for r in records]


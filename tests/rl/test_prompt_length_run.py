"""A real `+exp=gspo_hints` run on a user train file holding one over-long prompt (issue #30, item 3): with
`data.on_bad_row=error` the RL stage fails at its start naming the file, line and row id, before any rollout;
with `skip` it drops that row, counts it in the stage's metrics and summary, and trains on the rest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_gspo_hints_run import _finish, _records, _run

pytestmark = pytest.mark.slow

LONG = "Add these digits and give the total. " + " ".join(str(i % 10) for i in range(900))
ARGS = ["stages.rl.input=null", "stages.rl.rl.steps=1", "stages.rl.rl.eval_every=0", "stages.rl.rl.save_every=0",
        "stages.rl.rl.eval_before=false", "eval.sample_k=0"]


def _train_file(tmp_path: Path) -> Path:
    rows = [{"id": f"q{i}", "prompt": f"What is {i} + {i + 1}?", "answer": str(2 * i + 1),
             "hints": ["Add the two numbers.", f"The total is {2 * i + 1}."]} for i in range(8)]
    rows.insert(4, {"id": "long", "prompt": LONG, "answer": "1"})
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_over_long_prompt_fails_at_start_or_is_dropped_and_counted(tmp_path: Path) -> None:
    train = _train_file(tmp_path)
    proc = _run([*ARGS, f"data.train_files=[{train}]"], tmp_path, tmp_path / "error")
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode != 0, out[-3000:]
    assert f"{train} line 5 (row id 'long'): prompt has " in out, out[-3000:]
    assert "more than the 496 allowed (rollout.max_model_len 512 - rollout.max_tokens 16)" in out
    assert "data.on_bad_row=skip" in out
    # Before any rollout: no rollout request was made, and no metrics line was written.
    assert "rollout request" not in out and not list((tmp_path / "error").rglob("metrics.jsonl"))

    run = tmp_path / "skip"
    _finish(_run([*ARGS, f"data.train_files=[{train}]", "data.on_bad_row=skip"], tmp_path, run))
    stage = run / "stages" / "rl"
    records = _records(stage)
    assert records[0]["data/too_long_dropped"] == 1.0 and records[0]["data/hint_level_capped"] == 0.0
    assert sum("data/too_long_dropped" in r for r in records) == 1
    assert any("train/loss" in r or "train/skipped" in r for r in records)
    summary = json.loads((stage / "summary.json").read_text())
    assert summary["data/too_long_dropped"] == 1.0

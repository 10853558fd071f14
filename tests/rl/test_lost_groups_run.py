"""A real `+exp=gspo_hints` run whose rollout groups all fail (each gets one attempt and no time): the stage
stops at its first step with the lost-group error, naming the setting, and publishes no model."""

from __future__ import annotations

import pytest
from test_gspo_hints_run import _run

pytestmark = pytest.mark.slow


def test_a_run_losing_more_groups_than_tolerated_stops_with_a_clear_error(tmp_path, seeded_artifacts):
    run = tmp_path / "run"
    proc = _run(["stages.rl.rl.steps=2", "stages.rl.rl.eval_before=false", "rollout.pool.max_attempts=1",
                 "rollout.pool.request_timeout_s=0.001"], tmp_path, run)
    out, _ = proc.communicate(timeout=900)
    assert proc.returncode != 0, out[-3000:]
    assert "rollout group requests failed (100%)" in out and "'rl.max_lost_group_share' = 0.25" in out, out[-3000:]
    assert "failed after 1 attempt(s): no result within 0.001 s" in out, out[-3000:]
    assert not (run / "stages" / "rl" / "model").exists()

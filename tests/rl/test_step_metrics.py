"""A step's failure metrics: counts summed over the step's reward rounds, pool counters as per-step deltas."""

from __future__ import annotations

from pathlib import Path

import pytest

from rlsys.rl.collector import merge_round_metrics
from rlsys.rl.loop import RLSetup


def test_counts_are_summed_over_refill_rounds_and_means_averaged_over_the_rounds_that_report_them():
    rounds = [
        {"reward/mean": 0.5, "reward/math/mean": 0.4, "reward/math/errors": 2.0, "reward/judge/errors": 1.0,
         "reward/errors/timeout": 2.0, "reward/errors/crash": 1.0, "reward/errors/total": 3.0,
         "reward/unmatched": 1.0, "reward/worker_restarts": 1.0, "reward/scorer_restarts": 1.0,
         "reward/correct": 0.25, "reward/pool_time_s": 1.5, "reward/math/time_s": 1.0},
        {"reward/mean": 1.0, "reward/math/mean": 0.8, "reward/math/errors": 3.0, "reward/errors/timeout": 3.0,
         "reward/errors/total": 3.0, "reward/unmatched": 0.0, "reward/worker_restarts": 0.0,
         "reward/scorer_restarts": 2.0, "reward/correct": 0.75, "reward/pool_time_s": 0.5},
        # A reference check (off-policy guidance) contributes its failure counts only.
        {"reward/errors/total": 1.0, "reward/errors/KeyError": 1.0, "reward/math/errors": 1.0,
         "reward/scorer_restarts": 1.0},
    ]
    merged = merge_round_metrics(rounds)
    # Per-reward error counts add up like the totals.
    assert merged["reward/math/errors"] == 6.0
    assert merged["reward/judge/errors"] == 1.0
    assert merged["reward/errors/total"] == 7.0
    assert merged["reward/errors/timeout"] == 5.0
    assert merged["reward/errors/crash"] == 1.0 and merged["reward/errors/KeyError"] == 1.0
    assert merged["reward/math/errors"] + merged["reward/judge/errors"] == merged["reward/errors/total"]
    assert merged["reward/unmatched"] == 1.0
    assert merged["reward/worker_restarts"] == 1.0
    assert merged["reward/scorer_restarts"] == 4.0
    assert merged["reward/pool_time_s"] == 2.0 and merged["reward/math/time_s"] == 1.0
    # Means over the rounds that scored samples (the reference check does not dilute them).
    assert merged["reward/mean"] == pytest.approx(0.75)
    assert merged["reward/math/mean"] == pytest.approx(0.6)
    assert merged["reward/correct"] == pytest.approx(0.5)
    assert merge_round_metrics([]) == {}


class _CountingPool:
    def __init__(self) -> None:
        self.totals = {"pool/actor_deaths": 0.0, "pool/actors_replaced": 0.0, "pool/redispatched": 0.0,
                       "pool/timeouts": 0.0, "pool/failed_groups": 0.0}

    def failure_counts(self) -> dict[str, float]:
        return dict(self.totals)


def test_pool_failures_are_logged_once_as_per_step_deltas():
    pool = _CountingPool()
    setup = RLSetup(learners=None, pool=pool, rewards=None, collector=None, sampler=None, metrics=None,
                    eval_rows={}, out_dir=Path("."))
    pool.totals |= {"pool/actor_deaths": 1.0, "pool/actors_replaced": 1.0, "pool/redispatched": 3.0}
    assert setup.pool_failures() == {"pool/actor_deaths": 1.0, "pool/actors_replaced": 1.0,
                                     "pool/redispatched": 3.0, "pool/timeouts": 0.0, "pool/failed_groups": 0.0}
    assert set(setup.pool_failures().values()) == {0.0}
    pool.totals |= {"pool/actor_deaths": 3.0, "pool/timeouts": 2.0}
    step = setup.pool_failures()
    assert step["pool/actor_deaths"] == 2.0 and step["pool/timeouts"] == 2.0 and step["pool/redispatched"] == 0.0

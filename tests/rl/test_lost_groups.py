"""Rollout groups that come back failed (retries used up, no actor left) inside GroupCollector: dropped, counted,
replaced by fresh problems, abandoned by the hint search without a verdict, and past `rl.max_lost_group_share`
a clear error. Driven by the scripted policy of test_hint_search."""

from __future__ import annotations

import pytest
from test_hint_search import ScriptedPool, _collector, _levels, _step

from rlsys.rl.collector import LostGroups
from rlsys.rl.state import RLState
from rlsys.rollout.types import GroupResult


class FailingPool(ScriptedPool):
    """The scripted policy, except that requests for (problem, level) in `fail` come back as errors
    (`times` times each; None: always)."""

    def __init__(self, inner: ScriptedPool, fail: set[tuple[str, int]], times: int | None = 1) -> None:
        super().__init__(inner.rows, inner.needs)
        self.fail, self.left = fail, {key: times for key in fail}

    def _answer(self, req) -> GroupResult:
        key = (self.rows[req.meta["row"]]["id"], req.meta["level"])
        if key in self.fail and self.left[key] != 0:
            self.left[key] = None if self.left[key] is None else self.left[key] - 1
            return GroupResult(req.request_id, req.prompt_token_ids, [], 0, "a1",
                               "failed on 3 actor(s) that died", req.meta)
        return super()._answer(req)


def _failing(needs: dict, fail: set, times: int | None = 1, **rl):
    collector, pool = _collector(needs)
    collector.pool = FailingPool(pool, fail, times)
    for key, value in rl.items():
        collector.rl[key] = value
    return collector, collector.pool


def test_a_lost_group_is_dropped_counted_and_replaced_by_a_fresh_problem() -> None:
    collector, pool = _failing({f"p{i}": 0 for i in range(4)}, {("p2", 0)})
    kept, metrics = _step(collector, RLState(), 0)
    # rl.max_refill_rounds is 0, yet the lost group's place is filled by one more problem.
    assert metrics["filter/lost"] == 1.0 and metrics["filter/sampled"] == 5.0
    assert len(kept) == 4 and all(g.samples for g in kept)
    assert [len(c) for c in pool.calls] == [4, 1]


def test_the_hint_search_abandons_a_lost_problem_without_a_verdict() -> None:
    needs = {"p0": 0, "p1": 3, "p2": 0, "p3": 0}
    collector, pool = _failing(needs, {("p1", 2)}, times=None, max_lost_group_share=1.0)
    state = RLState()
    kept, metrics = _step(collector, state, 0)
    assert _levels(pool, "p1")[:3] == [0, 1, 2]
    # Neither rescued nor unsolved: nothing is cached for it and no minimal level is recorded.
    assert "p1" not in state.hint_cache.levels
    assert "hints/min_level_unsolved" not in metrics and "filter/unsolved" not in metrics
    assert metrics["filter/lost"] >= 1.0 and all(g.row["id"] != "p1" for g in kept)


def test_losing_more_than_the_tolerated_share_stops_with_a_clear_error() -> None:
    collector, _ = _failing({f"p{i}": 0 for i in range(4)}, {("p0", 0), ("p1", 0)}, times=None,
                            max_lost_group_share=0.25)
    with pytest.raises(LostGroups, match=r"RL step 1: \d+ of \d+ rollout group requests failed .*"
                                         r"'rl.max_lost_group_share' = 0.25 .*failed on 3 actor\(s\) that died"):
        _step(collector, RLState(), 0)


def test_a_lost_share_within_the_bound_trains_on() -> None:
    collector, _ = _failing({f"p{i}": 0 for i in range(4)}, {("p0", 0)}, times=1, max_lost_group_share=0.25)
    kept, metrics = _step(collector, RLState(), 0)
    assert metrics["filter/lost"] == 1.0 and len(kept) == 4

"""GroupCollector's in-flight step (rlsys/rl/inflight.py): hint levels and refills are submitted as groups finish,
and the step comes out the same whatever order the pool delivers results in. Driven by the scripted policy of
test_hint_search (real math reward)."""

from __future__ import annotations

import random

import pytest
from test_hint_search import _collector, _levels, _step
from test_lost_groups import FailingPool

from rlsys.rl.state import ProblemSampler, RLState

# p0 in range, p1 needs level 3, p2 never solved (refilled), p3 too easy (refilled), p4 needs 1, p5 in range,
# p6 needs 2, p7 too easy.
NEEDS = {"p0": 0, "p1": 3, "p2": None, "p3": -1, "p4": 1, "p5": 0, "p6": 2, "p7": -1}
ORDERS = [{"order": "fifo"}, {"order": "lifo"}, {"order": "shuffle", "seed": 1, "batch": True},
          {"order": "shuffle", "seed": 7}, {"order": "lifo", "batch": True, "hold": ("p1", "p4")}]


def _outcome(pool_args: dict, steps: int = 2, fail: set | None = None, **rl) -> tuple:
    collector, pool = _collector(dict(NEEDS), pool=pool_args, n_rows=len(NEEDS), batch_groups=4, refill_rounds=1)
    if fail:
        collector.pool = pool = FailingPool(pool, fail, times=None)
        pool.order, pool.rng = pool_args.get("order", "fifo"), random.Random(pool_args.get("seed", 0))
        pool.hold, pool.batch = set(pool_args.get("hold", ())), pool_args.get("batch", False)
    for key, value in rl.items():
        collector.rl[key] = value
    state, out = RLState(), []
    sampler = ProblemSampler(len(collector.rows), seed=3)
    for step in range(steps):
        kept, metrics = collector.collect(step, state, sampler)
        out.append(([(g.row["id"], g.level, [s.text for s in g.samples], g.scores) for g in kept],
                    {k: v for k, v in metrics.items() if not k.startswith("time/")}))
    return out, state.hint_cache.state_dict(), state.hint_stats.state_dict(), sampler.state_dict(), pool


def test_delivery_order_changes_nothing_the_step_records() -> None:
    want = _outcome(ORDERS[0])[:4]
    steps = want[0]
    # The scenario exercises what could depend on order: refills, hint searches, filter drops, a shared refill budget.
    assert any(m.get("filter/refills", 0) > 0 for _, m in steps) and any(m.get("filter/too_easy") for _, m in steps)
    assert any(m.get("filter/rescued") for _, m in steps) and any(m.get("filter/unsolved") for _, m in steps)
    for args in ORDERS[1:]:
        got = _outcome(args)
        assert got[4].log != _outcome(ORDERS[0])[4].log or args == ORDERS[0]
        assert got[:4] == want, args


def test_a_follow_up_goes_out_before_the_rest_of_the_first_batch_arrives() -> None:
    hard, easy, *rest = [f"p{i}" for i in ProblemSampler(6, seed=0).take(4)]  # the step's first four problems
    needs = {f"p{i}": 0 for i in range(6)} | {hard: 3, easy: -1}
    # All first groups but the hard one's are held back until nothing else is queued.
    collector, pool = _collector(needs, pool={"hold": (easy, *rest)}, n_rows=6, batch_groups=4, refill_rounds=1)
    state = RLState()
    kept, metrics = _step(collector, state, 0)
    assert _levels(pool, hard) == [0, 1, 2, 3]  # the minimal-level rule: one level at a time, never 4
    log = pool.log
    held = min(log.index(("deliver", pid, 0)) for pid in (easy, *rest))
    for level in (1, 2, 3):  # each level went out right after the one below failed, the others still pending
        assert log.index(("deliver", hard, level - 1)) < log.index(("submit", hard, level)) < held
    # The too-easy problem's refill went out as soon as it arrived, and came back before the other held groups.
    refill = log[log.index(("deliver", easy, 0)) + 1]
    assert refill[0] == "submit" and refill[1] not in (hard, easy, *rest)
    assert log.index(("deliver", *refill[1:])) < min(log.index(("deliver", pid, 0)) for pid in rest)
    assert metrics["filter/too_easy"] == 1.0 and metrics["filter/refills"] == 1.0 and metrics["filter/sampled"] == 5.0
    assert (hard, 3) in [(g.row["id"], g.level) for g in kept] and state.hint_cache.levels == {hard: 3}
    assert metrics["hints/min_level_3"] == 1.0 and len(kept) == 4


def test_the_refill_budget_is_max_refill_rounds_times_batch_groups() -> None:
    # Every problem too easy: each drop asks for a refill until 2 x 4 have been drawn, then the step ends short.
    collector, pool = _collector({f"p{i}": -1 for i in range(8)}, pool={"order": "lifo"}, n_rows=8,
                                 batch_groups=4, refill_rounds=2)
    kept, metrics = _step(collector, RLState(), 0)
    assert kept == [] and metrics["filter/refills"] == 8.0 and metrics["filter/sampled"] == 12.0
    assert metrics["filter/too_easy"] == 12.0 and metrics["filter/kept"] == 0.0


@pytest.mark.parametrize("args", ORDERS)
def test_lost_groups_are_replaced_the_same_way_in_any_order(args: dict) -> None:
    got = _outcome(args, fail={("p1", 2), ("p5", 0)}, max_lost_group_share=1.0)
    want = _outcome(ORDERS[0], fail={("p1", 2), ("p5", 0)}, max_lost_group_share=1.0)
    assert got[:4] == want[:4]
    assert any(m["filter/lost"] > 0 for _, m in got[0]) and all(len(k) <= 4 for k, _ in got[0])
    assert "p1" not in got[1]["levels"]

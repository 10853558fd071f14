"""Pool recovery paths with light stand-in actors (real Ray, no vLLM): timeouts, crashes, a group
that kills every actor it lands on, actors that cannot start, and late joiners loading weights.

The stand-in (standin_actor.py) speaks the RolloutWorker protocol the pool uses and misbehaves
as each request's `meta` tells it to.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import ray
from standin_actor import StandIn

from rlsys.rollout.pool import PoolError, PoolPolicy, RolloutPool
from rlsys.rollout.types import GroupRequest, GroupResult
from rlsys.runtime.ray_utils import ActorResources

pytestmark = pytest.mark.slow


def make_pool(n: int = 2, **policy) -> RolloutPool:
    policy = {"max_actors": 3, "request_timeout_s": 60.0, "max_attempts": 3, **policy}
    return RolloutPool("unused", num_actors=n, name="fake", actor_cls=StandIn, policy=PoolPolicy(**policy),
                       resources=ActorResources(num_cpus=0.05), worker_kwargs={})


def req(rid: str, **meta) -> GroupRequest:
    return GroupRequest(rid, prompt_token_ids=[1], n=2, max_tokens=2, meta=meta)


def collect(pool: RolloutPool, timeout: float = 60) -> dict[str, GroupResult]:
    got = list(pool.iter_results(timeout=timeout))
    counts = Counter(r.request_id for r in got)
    assert max(counts.values()) == 1, counts
    return {r.request_id: r for r in got}


def test_a_timed_out_group_is_re_dispatched_once_and_never_returned_twice(ray_session):
    with make_pool(2, request_timeout_s=1.0) as pool:
        first = pool.actors()[0]["name"]
        # Groups dispatched together travel in one call and share its fate: submit the slow one alone.
        pool.submit([req("slow", hang_on=[first], hang_s=2.0)])
        pool.submit([req(f"ok-{i}") for i in range(6)])
        got = collect(pool)
        assert len(got) == 7 and all(r.ok for r in got.values())
        assert got["slow"].actor != first
        m = pool.metrics()
        assert m["rollout_pool/timeouts"] == 1 and m["rollout_pool/redispatches"] == 1
        # The first attempt's answer would have come after 2 s: it never shows up.
        assert list(pool.iter_results(timeout=3)) == [] and pool.pending() == 0


def test_a_rollout_actor_killed_mid_step_shows_in_that_steps_metrics(ray_session):
    from rlsys.rl.loop import RLSetup

    with make_pool(2) as pool:
        # What run_rl logs per step: the pool's failure counters since the last metrics line.
        setup = RLSetup(learners=None, pool=pool, rewards=None, collector=None, sampler=None, metrics=None,
                        eval_rows={}, out_dir=Path("."))
        assert set(setup.pool_failures().values()) == {0.0}
        victim = pool.actors()[0]
        # Alone, so it lands on the first actor and holds there while that actor is killed.
        pool.submit([req("held", hang_on=[victim["name"]], hang_s=30)])
        pool.submit([req(f"ok-{i}", work_s=0.2) for i in range(4)])
        held = next(a["outstanding"] for a in pool.actors() if a["name"] == victim["name"])
        assert held >= 1
        ray.kill(victim["handle"], no_restart=True)
        got = collect(pool)
        assert all(r.ok for r in got.values()) and got["held"].actor != victim["name"]
        step = setup.pool_failures()
        assert step == {"pool/actor_deaths": 1.0, "pool/actors_replaced": 1.0, "pool/redispatched": float(held),
                        "pool/timeouts": 0.0, "pool/failed_groups": 0.0}
        # The next step that loses nothing logs zeros: deltas, not running totals.
        pool.wait_ready(60)
        assert pool.generate([req("next")], timeout=60)[0].ok
        assert set(setup.pool_failures().values()) == {0.0}


def test_a_group_no_actor_answers_comes_back_as_an_error(ray_session):
    with make_pool(2, request_timeout_s=0.5, max_attempts=2) as pool:
        pool.submit([req("stuck", hang_on=["fake"], hang_s=30), req("fine")])
        got = collect(pool)
        assert got["fine"].ok
        assert got["stuck"].error.startswith("failed after 2 attempt(s): no result within 0.5 s")


def test_a_group_that_kills_every_actor_is_failed_and_the_pool_heals(ray_session):
    with make_pool(2, max_attempts=3) as pool:
        pool.submit([req("poison", die=True)] + [req(f"ok-{i}", work_s=0.2) for i in range(8)])
        got = collect(pool)
        assert got["poison"].error.startswith("failed on 3 actor(s) that died")
        # Groups that shared an actor with it were re-run, not failed with it.
        assert all(got[f"ok-{i}"].ok for i in range(8)), [got[f"ok-{i}"].error for i in range(8)]
        m = pool.metrics()
        assert m["rollout_pool/deaths"] == 3 and m["rollout_pool/restarts"] == 3
        pool.wait_ready(60)
        assert pool.size() == 2 and all(a["state"] == "ready" for a in pool.actors())


def test_dead_actors_are_not_replaced_when_the_policy_says_so(ray_session):
    with make_pool(2, replace_dead=False) as pool:
        second = pool.actors()[1]["name"]
        pool.submit([req("poison", die=True, hang_on=[second], hang_s=0.5), req("ok")])
        got = collect(pool)
        assert got["ok"].ok
        # The poison killed both actors; nothing replaced them, so its third try has nowhere to go.
        assert got["poison"].error == "no rollout actors left to serve this group"
        assert pool.size() == 0 and pool.metrics()["rollout_pool/restarts"] == 0


def test_an_engine_error_is_retried_then_reported_and_the_actor_keeps_serving(ray_session):
    with make_pool(1, max_attempts=2) as pool:
        # Separate calls: an engine error fails every group of the batch it hits.
        pool.submit([req("bad", **{"raise": True})])
        pool.submit([req("good")])
        got = collect(pool)
        assert got["good"].ok
        assert "RuntimeError" in got["bad"].error and "engine step failed" in got["bad"].error
        assert pool.metrics()["rollout_pool/deaths"] == 0 and pool.size() == 1


def test_an_actor_whose_engine_keeps_failing_is_replaced(ray_session):
    with make_pool(1, max_attempts=2) as pool:
        broken = pool.actors()[0]["name"]
        for i in range(4):
            pool.submit([req(f"bad-{i}", **{"raise": True})])
        got = collect(pool)
        assert all(not r.ok for r in got.values())
        pool.wait_ready(60)
        assert pool.metrics()["rollout_pool/restarts"] >= 1
        assert broken not in [a["name"] for a in pool.actors()]
        assert pool.generate([req("after")], timeout=60)[0].ok


def test_actors_that_cannot_start_stop_the_pool_with_a_clear_error(ray_session):
    with pytest.raises(PoolError, match="3 actor starts failed in a row"):
        RolloutPool("unused", num_actors=1, actor_cls=StandIn, worker_kwargs={"fail_init": True},
                    policy=PoolPolicy(max_start_failures=3), resources=ActorResources(num_cpus=0.05))


def test_a_late_joiner_loads_the_published_version_before_taking_work(ray_session):
    # Two groups in flight per actor: the rest waits in the pool, where the joiner can take it.
    with make_pool(1, max_inflight_per_actor=2) as pool:
        pool.sync_weights([ray.put([("w", 1)])], version=4)
        first = pool.actors()[0]["name"]
        pool.scale_to(2)
        got: dict[str, GroupResult] = {}
        for wave in range(100):
            pool.submit([req(f"w{wave}-{i}", work_s=0.1) for i in range(4)])
            got.update(collect(pool))
            if any(r.actor != first for r in got.values()):
                break
        assert {r.policy_version for r in got.values()} == {4}
        joiner = next(a for a in pool.actors() if a["name"] != first)
        assert joiner["finished"] > 0
        assert ray.get(joiner["handle"].__ray_call__.remote(lambda self: self.loaded)) == [4]
        # Pushing the same version again (a resumed run) reloads it everywhere.
        pool.sync_weights([ray.put([("w", 2)])], version=4)
        loaded = ray.get([a["handle"].__ray_call__.remote(lambda self: self.loaded) for a in pool.actors()])
        assert sorted(loaded) == [[4, 4], [4, 4]]
        with pytest.raises(ValueError, match="older"):
            pool.sync_weights([], version=3)


def test_dead_actors_are_replaced_up_to_max_replacements(ray_session):
    with make_pool(1, max_replacements=1, max_attempts=3) as pool:
        pool.submit([req("poison", die=True)])
        got = collect(pool)
        # The first death is replaced (the cap), the second is not: the third try has nowhere to go.
        assert got["poison"].error == "no rollout actors left to serve this group"
        m = pool.metrics()
        assert m["rollout_pool/deaths"] == 2 and m["rollout_pool/restarts"] == 1
        assert pool.size() == 0

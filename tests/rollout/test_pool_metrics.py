"""Autoscaling switched on by config, and the pool's per-step load metrics.

The first tests need no Ray: a pool built with no actors starts nothing, and its bookkeeping is driven
by hand under a fake clock. The slow one runs stand-in actors (standin_actor.py) on real Ray.
"""

from __future__ import annotations

from collections import Counter

import pytest
from omegaconf import OmegaConf
from standin_actor import StandIn

from rlsys.config.schema import Config
from rlsys.config.validate import ConfigError, validate_config
from rlsys.rollout import pool_core
from rlsys.rollout.pool import PoolPolicy, RolloutPool
from rlsys.rollout.pool_core import Slot
from rlsys.rollout.types import GroupRequest
from rlsys.runtime.ray_utils import ActorResources


def config(**pool) -> Config:
    return OmegaConf.merge(OmegaConf.structured(Config), {"rollout": {"pool": pool}})


def test_rollout_pool_autoscale_turns_the_autoscaler_on():
    on = RolloutPool.from_config(config(autoscale=True, max_actors=3).rollout, "unused", num_actors=0, wait=False)
    off = RolloutPool.from_config(config(max_actors=3).rollout, "unused", num_actors=0, wait=False)
    assert (on.auto_scale, on.policy.max_actors, off.auto_scale) == (True, 3, False)


def test_autoscale_with_room_for_one_actor_fails_at_start_up_naming_the_key():
    validate_config(config(autoscale=True, min_actors=1, max_actors=2))
    with pytest.raises(ConfigError, match=r"rollout\.pool\.max_actors must be >= 2 .*max_actors=1"):
        validate_config(config(autoscale=True))
    with pytest.raises(ConfigError, match=r"'rollout\.pool'.*min_actors=3 max_actors=2"):
        validate_config(config(autoscale=True, min_actors=3, max_actors=2))


def test_step_metrics_are_time_weighted_means_since_the_last_call(monkeypatch):
    now = [100.0]
    monkeypatch.setattr(pool_core.time, "monotonic", lambda: now[0])
    pool = RolloutPool("unused", policy=PoolPolicy(min_actors=0), num_actors=0, wait=False)
    a, b = Slot("a", None, "ready", 0, 100.0), Slot("b", None, "ready", 0, 100.0)
    pool._slots.update(a=a, b=b)
    # t 100..110: a holds two groups, three wait in the queue.
    a.outstanding.update(g1=None, g2=None)
    pool._queue.extend(["g3", "g4", "g5"])
    now[0] = 110.0
    pool._tick()
    # t 110..115: b holds one, nothing queued; 400 tokens came back.
    a.outstanding.clear()
    pool._queue.clear()
    b.outstanding["g3"] = None
    pool._tokens += 400
    now[0] = 115.0
    pool._tick()
    b.outstanding.clear()
    now[0] = 120.0
    # Over 20 s: in flight (2*10 + 1*5)/20, queued 3*10/20, busy shares a 10/20 and b 5/20.
    assert pool.step_metrics() == {"pool/actors": 2.0, "pool/inflight": 1.25, "pool/backlog": 1.5,
                                   "pool/busy_share": 0.375, "pool/tokens_per_s": 20.0, "pool/scale_events": 0.0,
                                   "pool/target": 0.0, "pool/submitted": 0.0, "pool/delivered": 0.0}
    now[0] = 130.0
    # Since the last call: two idle actors.
    assert pool.step_metrics() == {"pool/actors": 2.0, "pool/inflight": 0.0, "pool/backlog": 0.0,
                                   "pool/busy_share": 0.0, "pool/tokens_per_s": 0.0, "pool/scale_events": 0.0,
                                   "pool/target": 0.0, "pool/submitted": 0.0, "pool/delivered": 0.0}


@pytest.mark.slow
def test_an_autoscaled_pool_grows_under_backlog_serves_each_group_once_and_shrinks_back(ray_session):
    policy = PoolPolicy(min_actors=1, max_actors=3, target_backlog=2, scale_down_delay_s=0.0, autoscale=True,
                        max_inflight_per_actor=2, request_timeout_s=60.0)
    with RolloutPool("unused", num_actors=1, name="auto", actor_cls=StandIn, policy=policy, worker_kwargs={},
                     resources=ActorResources(num_cpus=0.05), auto_scale=policy.autoscale) as pool:
        pool.step_metrics()
        pool.submit([GroupRequest(f"g{i}", prompt_token_ids=[1], n=2, max_tokens=2, meta={"work_s": 1.0})
                     for i in range(12)])
        got = list(pool.iter_results(timeout=60))
        assert sorted(Counter(r.request_id for r in got).values()) == [1] * 12
        assert all(r.ok for r in got)
        # Actors the autoscaler added took queued work once they were ready.
        assert len({r.actor for r in got}) > 1
        step = pool.step_metrics()
        assert step["pool/actors"] > 1.0 and 0.0 < step["pool/busy_share"] <= 1.0
        # Each stand-in sample has two tokens: 12 groups x 2 samples x 2 tokens.
        assert step["pool/tokens_per_s"] > 0.0 and pool.metrics()["rollout_pool/delivered"] == 12.0
        pool.autoscale()
        assert pool.size() == 1

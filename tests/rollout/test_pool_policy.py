"""The pool's sizing policy: config reading, validation, capacity and the autoscale decision."""

from __future__ import annotations

import pytest

from rlsys.config.schema import RolloutConfig
from rlsys.rollout.pool_policy import PoolPolicy, actors_that_fit, desired_size


def test_policy_is_the_rollout_pool_section_and_rejects_nonsense():
    from omegaconf import OmegaConf

    cfg = OmegaConf.merge(OmegaConf.structured(RolloutConfig), {"pool": {
        "min_actors": 2, "max_actors": 6, "target_backlog": 4, "replace_dead": False, "request_timeout_s": 30.0,
        "sync_backend": "nccl", "sync_bucket_bytes": 1 << 20}})
    p = PoolPolicy.from_config(cfg.pool, max_attempts=5)
    assert (p.min_actors, p.max_actors, p.target_backlog, p.replace_dead, p.request_timeout_s) == (2, 6, 4, False, 30.0)
    assert (p.sync_backend, p.sync_bucket_bytes, p.max_attempts) == ("nccl", 1 << 20, 5)
    # One owner of the defaults: the section's defaults are the policy's.
    assert PoolPolicy.from_config(RolloutConfig().pool) == PoolPolicy()
    assert PoolPolicy.from_config({"max_actors": 3}).max_actors == 3
    for bad in ({"min_actors": 3, "max_actors": 2}, {"max_actors": 0}, {"target_backlog": 0},
                {"sync_backend": "carrier-pigeon"}, {"max_attempts": 0}, {"max_inflight_per_actor": 0},
                {"request_timeout_s": 0.0}, {"scale_down_delay_s": -1.0}, {"max_start_failures": 0}):
        with pytest.raises(ValueError):
            PoolPolicy(**bad)


def test_a_bad_pool_setting_fails_at_start_up_naming_the_section():
    from omegaconf import OmegaConf

    from rlsys.config.schema import Config
    from rlsys.config.validate import ConfigError, validate_config

    cfg = OmegaConf.merge(OmegaConf.structured(Config), {"rollout": {"pool": {"min_actors": 3, "max_actors": 2}}})
    with pytest.raises(ConfigError, match=r"'rollout.pool'.*min_actors=3 max_actors=2"):
        validate_config(cfg)


def test_actors_that_fit_counts_the_scarcest_resource():
    assert actors_that_fit({"CPU": 6.0, "GPU": 2.0}, {"CPU": 1.0, "GPU": 1.0}) == 2
    assert actors_that_fit({"CPU": 1.4}, {"CPU": 0.5, "GPU": 0.0}) == 2
    assert actors_that_fit({"CPU": 1.5}, {"CPU": 0.5}) == 3
    assert actors_that_fit({"CPU": 8.0}, {"CPU": 1.0, "GPU": 1.0}) == 0


def test_desired_size_follows_backlog_within_bounds_and_capacity():
    p = PoolPolicy(min_actors=1, max_actors=4, target_backlog=8)
    assert desired_size(0, 3, 10, p) == 1
    assert desired_size(8, 1, 10, p) == 1
    assert desired_size(9, 1, 10, p) == 2
    assert desired_size(100, 1, 10, p) == 4
    # The cluster can only place 3 in total: grow to 3, and once it gains a node, to 4.
    assert desired_size(100, 1, 3, p) == 3
    assert desired_size(100, 3, 4, p) == 4
    # A full cluster never forces a shrink.
    assert desired_size(100, 3, 1, p) == 3
    assert desired_size(5, 0, 0, PoolPolicy(min_actors=0, max_actors=2)) == 0

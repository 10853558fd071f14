"""A pluggable autoscale policy (`rollout.pool.autoscale_policy`), and scaling a pool by hand through the run's
control actor (rlsys/rollout/control.py) with `python -m rlsys.scale` run as its own process.

The config tests need no Ray; the others run real Ray, stand-in actors (standin_actor.py) where only the pool's
bookkeeping is under test, and tiny vLLM engines for the command-line path.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from conftest import ENGINE_KWARGS
from omegaconf import OmegaConf
from standin_actor import StandIn

from rlsys.config.schema import Config
from rlsys.config.validate import ConfigError, validate_config
from rlsys.rollout.control import SCALE_FILE
from rlsys.rollout.pool import PoolPolicy, RolloutPool
from rlsys.rollout.pool_policy import desired_size
from rlsys.rollout.types import GroupRequest
from rlsys.runtime.ray_utils import ActorResources
from rlsys.scale import ScaleError, scale_run

REPO = Path(__file__).resolve().parents[2]


def config(**pool) -> Config:
    return OmegaConf.merge(OmegaConf.structured(Config), {"rollout": {"pool": pool}})


def test_the_default_policy_is_the_backlog_policy_and_a_custom_one_is_called_with_its_kwargs():
    assert PoolPolicy()._decide is desired_size
    policy = PoolPolicy.from_config(config(autoscale=True, max_actors=4, autoscale_policy={
        "_target_": "scale_policies.fixed", "size": 3}).rollout.pool)
    # Kept within max_actors and, when growing, within the cluster's room.
    assert [policy.decide(5, 1, 10), policy.decide(5, 1, 2), policy.decide(0, 3, 10)] == [3, 2, 1]
    assert PoolPolicy(max_actors=4, autoscale_policy="scale_policies.fixed").decide(1, 1, 10) == 2
    with pytest.raises(ValueError, match=r"rollout\.pool\.autoscale_policy \(scale_policies\.not_a_number\) "
                                         r"returned 'three'"):
        PoolPolicy(autoscale_policy={"_target_": "scale_policies.not_a_number"}).decide(1, 1, 1)


def test_a_policy_that_does_not_import_fails_at_start_up_naming_the_key():
    for target, why in (("no_such_module.policy", "does not import .*No module named 'no_such_module'"),
                        ("scale_policies.missing", "does not import .*AttributeError"),
                        ("scale_policies.NOT_CALLABLE", "is not callable"), ("fixed", "is not a dotted path")):
        with pytest.raises(ConfigError, match=rf"rollout\.pool\.autoscale_policy\._target_ = '{target}' {why}"):
            validate_config(config(autoscale_policy={"_target_": target}))
    with pytest.raises(ValueError, match=r"rollout\.pool\.autoscale_policy needs `_target_`"):
        PoolPolicy(autoscale_policy={"size": 2})


def requests(prefix: str, n: int, **meta) -> list[GroupRequest]:
    return [GroupRequest(f"{prefix}{i}", prompt_token_ids=[1], n=2, max_tokens=2, meta=dict(meta)) for i in range(n)]


@pytest.mark.slow
def test_a_custom_policy_grows_the_pool_and_the_backlog_policy_shrinks_it(ray_session):
    policy = PoolPolicy(min_actors=1, max_actors=3, autoscale=True, scale_down_delay_s=0.0, max_inflight_per_actor=2,
                        autoscale_policy={"_target_": "scale_policies.fixed", "size": 3})
    with RolloutPool("unused", num_actors=1, name="custom", actor_cls=StandIn, policy=policy, worker_kwargs={},
                     resources=ActorResources(num_cpus=0.05), auto_scale=True) as pool:
        sent = requests("c", 12, work_s=1.0)
        pool.submit(sent)
        got = list(pool.iter_results(timeout=60))
        assert Counter(r.request_id for r in got) == Counter(r.request_id for r in sent)
        assert all(r.ok for r in got) and len({r.actor for r in got}) == 3
        # No backlog: the policy wants none, the pool keeps min_actors.
        assert pool.autoscale() == 1 and pool.size() == 1
        assert pool.metrics()["rollout_pool/scale_events"] == 2


@pytest.mark.slow
def test_a_size_set_by_hand_pins_the_autoscaler_and_is_cut_to_the_cluster(ray_session, tmp_path):
    policy = PoolPolicy(min_actors=1, max_actors=3, autoscale=True, scale_down_delay_s=0.0)
    with RolloutPool("unused", num_actors=1, name="pinned", actor_cls=StandIn, policy=policy, worker_kwargs={},
                     resources=ActorResources(num_cpus=0.05), auto_scale=True) as pool:
        # Above max_actors: the hand wins over the autoscaler's bounds.
        assert pool.scale_by_hand(4, "test") == 4
        assert pool.autoscale() == 4
        pool.wait_ready(60)
        assert pool.size() == 4
        assert pool.scale_by_hand(None, "test") == 4 and pool.autoscale() == 1
    # A resource no node offers: no room beyond the actor that runs (placed anywhere, as after losing a node).
    with RolloutPool("unused", num_actors=1, name="cut", actor_cls=StandIn, policy=PoolPolicy(), worker_kwargs={},
                     resources=ActorResources(num_cpus=0.05), custom_resources={"scale_test_absent": 1.0}) as pool:
        assert pool.cluster_capacity() == 1
        assert pool.scale_by_hand(3, "test") == 1 and pool.size() == 1
        with pytest.raises(ValueError, match=">= 1"):
            pool.scale_by_hand(0)


def test_scale_names_the_missing_file_and_rejects_a_bad_size(tmp_path):
    with pytest.raises(ScaleError, match=f"{SCALE_FILE} not found"):
        scale_run(tmp_path, 2)
    (tmp_path / SCALE_FILE).write_text("{}")
    with pytest.raises(ScaleError, match="unreadable"):
        scale_run(tmp_path, 2)
    with pytest.raises(ScaleError, match="whole number >= 1"):
        scale_run(tmp_path, 0)
    out = subprocess.run([sys.executable, "-m", "rlsys.scale", str(tmp_path / "nowhere"), "--rollout", "2"],
                         cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "not found" in out.stderr


def cli(run_dir: Path, *args: str) -> subprocess.Popen:
    # A user's shell: no Ray settings (this process got RAY_AUTH_MODE from its own ray.init); scale.json has them.
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    return subprocess.Popen([sys.executable, "-m", "rlsys.scale", str(run_dir), *args], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def drive(pool: RolloutPool, prefix: str, done, timeout: float = 300.0) -> tuple[list[str], list]:
    """Keep a few groups in flight until `done(results so far)`, then drain: every group sent and every result."""
    sent, got = [], []
    deadline = time.monotonic() + timeout
    while True:
        stop = done(got)
        if not stop and pool.pending() < 6:
            batch = [GroupRequest(f"{prefix}{len(sent) + i}", prompt_token_ids=[5, 6, 7 + (len(sent) + i) % 50], n=2,
                                  max_tokens=8, seed=len(sent) + i) for i in range(3)]
            pool.submit(batch)
            sent += [r.request_id for r in batch]
        for result in pool.iter_results(timeout=120):
            got.append(result)
            if not stop:
                break
        if stop and not pool.pending():
            return sent, got
        assert time.monotonic() < deadline, f"{prefix}: not done within {timeout} s; {pool._describe()}"


@pytest.mark.slow
def test_the_cli_scales_a_pool_of_engines_1_3_1_with_requests_in_flight(ray_session, tiny_model_dir, tmp_path):
    run_dir = tmp_path / "runs" / "exp" / "now"
    # The default policy: one actor, no autoscaler; the size set by hand is not bound by it.
    with RolloutPool(tiny_model_dir, worker_kwargs=dict(ENGINE_KWARGS), num_actors=1, name="byhand",
                     policy=PoolPolicy(request_timeout_s=120, max_inflight_per_actor=2),
                     resources=ActorResources(num_cpus=0.5)) as pool:
        pool.listen_for_scaling(run_dir)
        info = json.loads((run_dir / SCALE_FILE).read_text())
        assert info["address"] and info["actor"].startswith("rlsys-scale-")
        pool.step_metrics()

        up = cli(run_dir, "--rollout", "3", "--wait", "120")
        ready = lambda: pool.size() == 3 and sum(a["state"] == "ready" for a in pool.actors()) == 3  # noqa: E731
        sent, got = drive(pool, "up", lambda _: up.poll() is not None and ready())
        out, err = up.communicate()
        assert up.returncode == 0, err
        status = json.loads(out)
        assert status["rollout"] == 3 and status["pool"]["applied"] == status["serial"] == 1
        # Groups queued while the new engines started went to them once they were ready.
        more_sent, more = drive(pool, "more", lambda got: len({r.actor for r in got}) == 3 or len(got) > 60)

        down = cli(run_dir, "--rollout", "1", "--wait", "120")
        gone = lambda: len(pool.actors()) == 1  # noqa: E731 - draining actors leave once their groups are back
        down_sent, down_got = drive(pool, "down", lambda _: down.poll() is not None and gone())
        assert down.communicate()[0] and down.returncode == 0
        for s, g in ((sent, got), (more_sent, more), (down_sent, down_got)):
            assert Counter(r.request_id for r in g) == Counter(s), "a group lost or returned twice"
            assert all(r.ok for r in g), [r.error for r in g if not r.ok]
        assert len({r.actor for r in more}) == 3
        assert pool.size() == 1 and pool.metrics()["rollout_pool/delivered"] == len(sent + more_sent + down_sent)
        step = pool.step_metrics()
        assert step["pool/scale_events"] == 2.0 and step["pool/target"] == 1.0
        assert step["pool/submitted"] == step["pool/delivered"] == len(sent + more_sent + down_sent)
        # From Python, in a process already on the cluster: the status of the same actor.
        assert scale_run(run_dir)["pool"]["size"] == 1

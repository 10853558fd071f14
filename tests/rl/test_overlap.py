"""Rollout ahead of training (rlsys/rl/overlap.py) with a scripted collector, pool and learner, in threads.

The scripted parts record what happened when: which weight version each batch was sampled with, and
whether a batch's collection ran while the learner trained. The real run is in test_async_run.py.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from types import SimpleNamespace

import pytest

from rlsys.config.validate import ConfigError
from rlsys.rl.collector import Group
from rlsys.rl.overlap import Ahead, Batch, InTurn, check_overlap, staleness_metrics
from rlsys.rl.state import RLState


def _group(version: int) -> Group:
    return Group(row={"id": "p"}, row_index=0, level=0, prompt_ids=[1], train_prompt_ids=[1], samples=[],
                 version=version)


@dataclass
class ScriptedPool:
    version: int = 0
    loads: list[int] = field(default_factory=list)
    policy: SimpleNamespace = field(default_factory=lambda: SimpleNamespace(sync_bucket_bytes=1))

    def sync_weights(self, refs: list, version: int) -> None:
        assert refs == [f"weights-v{version}"]
        self.loads.append(version)
        self.version = version


@dataclass
class ScriptedCollector:
    pool: ScriptedPool
    collect_s: float = 0.05
    fail_at: int | None = None
    log: list[tuple[str, int, float, float]] = field(default_factory=list)

    def collect(self, step: int, state: RLState, sampler: object) -> tuple[list[Group], dict[str, float]]:
        started = time.perf_counter()
        if step == self.fail_at:
            raise RuntimeError("reward server gone")
        time.sleep(self.collect_s)
        self.log.append(("collect", step, started, time.perf_counter()))
        return [_group(self.pool.version), _group(self.pool.version)], {"filter/kept": 2.0}


class ScriptedLearners:
    def __init__(self, state: RLState) -> None:
        self.state = state

    def export_weights(self, bucket_bytes: int) -> list[str]:
        return [f"weights-v{self.state.version}"]


def _setup(state: RLState, **collector_kw) -> SimpleNamespace:
    pool = ScriptedPool(version=state.version)
    return SimpleNamespace(pool=pool, collector=ScriptedCollector(pool, **collector_kw),
                           learners=ScriptedLearners(state), sampler=None)


def _train(source, state: RLState, steps: int, train_s: float, log: list) -> list[Batch]:
    got = []
    while state.step < steps:
        batch = source.next(state.step)
        started = time.perf_counter()
        time.sleep(train_s)
        log.append(("train", state.step, started, time.perf_counter()))
        source.publish()
        state.step += 1
        got.append(batch)
    return got


@pytest.mark.parametrize("bound", [1, 2])
def test_ahead_keeps_every_batch_within_the_staleness_bound_and_overlaps(bound):
    state = RLState()
    setup = _setup(state)
    source = Ahead(setup, state, bound, steps=6)
    got = _train(source, state, 6, train_s=0.1, log=setup.collector.log)
    source.close()
    assert [b.step for b in got] == list(range(6))
    for b in got:
        versions = {g.version for g in b.groups}
        assert len(versions) == 1  # weights change only between batches
        (v,) = versions
        assert b.step - bound <= v <= b.step
        assert b.metrics["async/dropped_stale"] == 0.0
        assert b.metrics[f"async/staleness_{b.step - v}"] == 2.0
    # Collection runs as far ahead as the bound allows: every batch after the first is exactly that stale.
    assert [b.step - b.groups[0].version for b in got][1:] == [min(bound, b.step) for b in got][1:]
    # The batch of step t+1 was collected while step t trained.
    spans = {(kind, step): (a, z) for kind, step, a, z in setup.collector.log}
    overlapped = [t for t in range(5) if spans[("collect", t + 1)][0] < spans[("train", t)][1]]
    assert overlapped == list(range(5))
    assert setup.pool.loads == sorted(setup.pool.loads)


def test_in_turn_collects_at_the_learners_version():
    state = RLState()
    setup = _setup(state)
    setup.pool.sync_from_learner = lambda learners, version: setup.pool.sync_weights([f"weights-v{version}"], version)
    got = _train(InTurn(setup, state), state, 3, train_s=0.0, log=setup.collector.log)
    assert [b.groups[0].version for b in got] == [0, 1, 2]


def test_paused_producer_hands_over_the_batches_collected_ahead():
    state = RLState()
    setup = _setup(state, collect_s=0.02)
    source = Ahead(setup, state, 2, steps=10)
    time.sleep(0.3)  # the producer fills what the bound allows: steps 0, 1, 2 at version 0
    with source.paused() as pending:
        assert [b.step for b in pending] == [0, 1, 2]
        n = len(setup.collector.log)
        time.sleep(0.1)
        assert len(setup.collector.log) == n  # nothing collected while paused
    # A resumed source starts from the saved batches and collects on after them.
    source.close()
    resumed = Ahead(_setup(state), state, 2, steps=4, pending=pending)
    got = _train(resumed, state, 4, train_s=0.0, log=[])
    resumed.close()
    assert [b.step for b in got] == [0, 1, 2, 3]
    assert [b.groups[0].version for b in got[:3]] == [0, 0, 0]


def test_a_failing_collection_is_raised_in_the_training_thread():
    state = RLState()
    source = Ahead(_setup(state, fail_at=1), state, 1, steps=4)
    source.next(0)
    source.publish()
    with pytest.raises(RuntimeError, match="collecting step 1: reward server gone"):
        source.next(1)
    source.close()


def test_staleness_metrics_counts_and_drops_by_hand():
    groups = [_group(5), _group(4), _group(4), _group(2)]
    kept, m = staleness_metrics(groups, step=5, bound=2)
    assert [g.version for g in kept] == [5, 4, 4]
    assert m["async/staleness_0"] == 1 and m["async/staleness_1"] == 2 and m["async/staleness_3"] == 1
    assert m["async/dropped_stale"] == 1
    assert m["async/staleness_mean"] == (0 + 1 + 1 + 3) / 4 and m["async/staleness_max"] == 3


def test_mixed_version_share_counts_samples_of_partial_rollouts():
    from rlsys.rollout.types import Sample

    groups = [_group(4), _group(4)]
    groups[0].samples = [Sample([1, 2], "ab", [0.0, 0.0], "stop", [(0, 3), (1, 4)]), Sample([1], "a", [0.0], "stop")]
    groups[1].samples = [Sample([1], "a", [0.0], "stop", [(0, 4)]), Sample([1], "a", [0.0], "stop")]
    _, m = staleness_metrics(groups, step=5, bound=2)
    assert m["async/mixed_version_share"] == 1 / 4


def test_check_overlap_refuses_settings_that_need_the_sampling_policy():
    rl = SimpleNamespace(max_staleness=1, recompute_old_logprobs=True)
    with pytest.raises(ConfigError, match="stages.rl.rl.recompute_old_logprobs"):
        check_overlap(rl, "object_store", "stages.rl.rl")
    rl.recompute_old_logprobs = False
    with pytest.raises(ConfigError, match="sync_backend"):
        check_overlap(rl, "nccl", "stages.rl.rl")
    check_overlap(rl, "object_store", "stages.rl.rl")
    check_overlap(SimpleNamespace(max_staleness=0, recompute_old_logprobs=True), "nccl", "k")


def test_close_waits_for_a_batch_in_progress():
    state = RLState()
    setup = _setup(state, collect_s=0.2)
    source = Ahead(setup, state, 1, steps=3)
    time.sleep(0.05)
    source.close()
    assert not any(t.name == "rollout-ahead" and t.is_alive() for t in threading.enumerate())

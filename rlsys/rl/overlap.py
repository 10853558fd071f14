"""Where an RL step's groups come from: collected in turn (synchronous) or ahead of training (asynchronous).

`rl.max_staleness` = k. With k = 0 (`InTurn`) each step collects, trains and syncs, each waiting for the
last: the synchronous loop. With k >= 1 (`Ahead`) a producer thread collects the batches of the next steps
while the learner trains on the current one. The batch of step t is sampled with a policy version of at
least t - k: before starting it the producer loads the newest weights the learner published and, when even
those are older than t - k, waits for the next. Weights reach the rollout pool between generation
batches, so every group of a batch has one policy version, recorded with it; with partial rollouts
(`rollout.partial_rollout: continue`) they go in as soon as the learner publishes them and enter the generation
in progress at its next chunk: a group then records the version it started with (its oldest tokens') and each
sample the versions of its token spans. A group older than the bound
when trained is dropped and counted (it cannot happen with this producer; the check guards the contract).

The loss takes the rollout's logprobs as the behaviour policy (GSPO's ratio is against the sampling
policy), so `rl.recompute_old_logprobs` is refused with k >= 1. Groups whose trained context differs from
the sampled one (hint removed, reference answer put in) have no behaviour logprobs in any mode; the learner
recomputes them with its current weights, as in the synchronous loop.

Held-out evaluation and checkpoints pause the producer between batches: an evaluation first loads the
newest weights into the pool (it measures the learner's current policy, as the synchronous loop does); a
checkpoint saves the batches collected but not yet trained (`pending`) with the controller state, whose
sampler and hint cache already include them, so a resumed run trains them first, then collects on.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from rlsys.config.validate import ConfigError
from rlsys.rl.collector import Group
from rlsys.rl.state import RLState

log = logging.getLogger(__name__)


@dataclass
class Batch:
    """The kept groups of one RL step and the collector's metrics for it."""
    step: int
    groups: list[Group]
    metrics: dict[str, float]


def check_overlap(rl: Any, sync_backend: str, key: str) -> None:
    """Settings that cannot go with training on batches sampled by an older policy."""
    if rl.max_staleness < 0:
        raise ConfigError(f"config key '{key}.max_staleness' = {rl.max_staleness!r}: must be >= 0")
    if rl.max_staleness == 0:
        return
    if rl.recompute_old_logprobs:
        raise ConfigError(f"config key '{key}.recompute_old_logprobs' = true needs '{key}.max_staleness' = 0: "
                          "with rollouts ahead of training the learner no longer holds the sampling policy, "
                          "so the behaviour logprobs must be the rollout's")
    if sync_backend == "nccl":
        raise ConfigError(f"config key '{key}.max_staleness' = {rl.max_staleness} needs "
                          "'rollout.pool.sync_backend' = object_store: the NCCL broadcast is a collective "
                          "with the learners, which train while the rollout runs ahead")


def staleness_metrics(groups: list[Group], step: int, bound: int) -> tuple[list[Group], dict[str, float]]:
    """Groups of step `step` within `bound` versions of the learner (which is at version `step` before the
    update), and their staleness histogram (groups per staleness) and drop count."""
    kept = [g for g in groups if step - g.version <= bound]
    hist = Counter(step - g.version for g in groups)
    out = {f"async/staleness_{d}": float(n) for d, n in sorted(hist.items())}
    out["async/dropped_stale"] = float(len(groups) - len(kept))
    if groups:
        out["async/staleness_mean"] = sum((step - g.version) for g in groups) / len(groups)
        out["async/staleness_max"] = float(max(hist))
        # Partial rollouts: the share of samples whose tokens more than one policy version drew.
        samples = [smp for g in groups for smp in g.samples]
        out["async/mixed_version_share"] = sum(len(smp.version_spans) > 1 for smp in samples) / max(1, len(samples))
    return kept, out


class InTurn:
    """`rl.max_staleness` = 0: collect, then train, then sync, each waiting for the last."""

    def __init__(self, setup: Any, state: RLState) -> None:
        self.setup, self.state = setup, state

    def next(self, step: int) -> Batch:
        groups, metrics = self.setup.collector.collect(step, self.state, self.setup.sampler)
        return Batch(step, groups, metrics)

    def publish(self) -> float:
        """The learner's new weights into every rollout actor (the policy version goes up by one)."""
        started = time.perf_counter()
        self.state.version += 1
        self.setup.pool.sync_from_learner(self.setup.learners, self.state.version)
        return time.perf_counter() - started

    @contextmanager
    def pool_current(self) -> Iterator[None]:
        yield

    @contextmanager
    def paused(self) -> Iterator[list[Batch]]:
        yield []

    def step_metrics(self) -> dict[str, float]:
        return {}

    def close(self, wait: bool = True) -> None:
        return None


class Ahead:
    """`rl.max_staleness` >= 1: a producer thread collects later steps' batches while the learner trains."""

    def __init__(self, setup: Any, state: RLState, max_staleness: int, steps: int,
                 pending: list[Batch] | None = None, push_now: bool = False) -> None:
        self.setup, self.state, self.bound, self.steps = setup, state, max_staleness, steps
        # Partial rollouts (`rollout.partial_rollout: continue`): new weights go into the pool at once, entering
        # the generation in progress at its next chunk, instead of waiting for the producer's next batch.
        self.push_now = push_now
        self._cond = threading.Condition()
        # Held by the producer for a whole batch, and by evaluation: one user of the pool at a time.
        self._pool_lock = threading.Lock()
        self._ready: deque[Batch] = deque(pending or [])
        self._next = state.step + len(self._ready)
        # Newest weights the learner published and not yet loaded into the pool: (version, refs).
        self._published: tuple[int, list[Any]] | None = None
        self._version = state.version
        self._holds = 0
        self._busy_since: float | None = None
        self._busy_total = 0.0
        self._stop = False
        self._error: BaseException | None = None
        self._window = (time.perf_counter(), 0.0)  # (time, producer busy seconds) at the last step_metrics
        self._wait_s = 0.0
        self._thread = threading.Thread(target=self._produce, name="rollout-ahead", daemon=True)
        self._thread.start()

    # -------------------------------------------------------------- producer thread
    def _may_start(self) -> bool:
        return self._holds == 0 and self._version >= self._next - self.bound

    def _produce(self) -> None:
        try:
            while True:
                with self._cond:
                    self._cond.wait_for(lambda: self._stop or self._next >= self.steps or self._may_start())
                    if self._stop or self._next >= self.steps:
                        return
                    step, self._busy_since = self._next, time.perf_counter()
                with self._pool_lock:
                    self._load_published()
                    groups, metrics = self.setup.collector.collect(step, self.state, self.setup.sampler)
                with self._cond:
                    self._ready.append(Batch(step, groups, metrics))
                    self._next += 1
                    self._settle_busy()
                    self._cond.notify_all()
        except BaseException as exc:  # handed to the training thread, which raises it
            with self._cond:
                self._error = exc
                self._settle_busy()
                self._cond.notify_all()

    def _settle_busy(self) -> None:
        if self._busy_since is not None:
            self._busy_total += time.perf_counter() - self._busy_since
            self._busy_since = None

    def _load_published(self) -> None:
        """Newest published weights into the pool (caller holds the pool lock)."""
        with self._cond:
            published, self._published = self._published, None
        if published is not None and published[0] > self.setup.pool.version:
            self.setup.pool.sync_weights(published[1], published[0])

    # -------------------------------------------------------------- training thread
    def next(self, step: int) -> Batch:
        started = time.perf_counter()
        with self._cond:
            self._cond.wait_for(lambda: bool(self._ready) or self._error is not None)
            if not self._ready:
                raise RuntimeError(f"rollout ahead of training failed while collecting step {self._next}: "
                                   f"{self._error}") from self._error
            batch = self._ready.popleft()
        self._wait_s = time.perf_counter() - started
        if batch.step != step:
            raise RuntimeError(f"rollout ahead: got the batch of step {batch.step} for step {step}")
        groups, metrics = staleness_metrics(batch.groups, step, self.bound)
        return Batch(step, groups, batch.metrics | metrics)

    def publish(self) -> float:
        """Export the learner's new weights; the producer loads them before its next batch."""
        started = time.perf_counter()
        self.state.version += 1
        refs = self.setup.learners.export_weights(self.setup.pool.policy.sync_bucket_bytes)
        if self.push_now:
            self.setup.pool.sync_weights(refs, self.state.version)
        with self._cond:
            self._published = None if self.push_now else (self.state.version, refs)
            self._version = self.state.version
            self._cond.notify_all()
        return time.perf_counter() - started

    @contextmanager
    def pool_current(self) -> Iterator[None]:
        """The pool to ourselves, holding the newest published weights (for evaluation)."""
        with self._pool_lock:
            self._load_published()
            yield

    @contextmanager
    def paused(self) -> Iterator[list[Batch]]:
        """The producer stopped between batches; yields the batches collected and not yet trained."""
        with self._cond:
            self._holds += 1
            self._cond.wait_for(lambda: self._busy_since is None)
            pending = list(self._ready)
        try:
            yield pending
        finally:
            with self._cond:
                self._holds -= 1
                self._cond.notify_all()

    def step_metrics(self) -> dict[str, float]:
        """Since the last call: the producer's busy share of the wall time and the wait for its batch."""
        now = time.perf_counter()
        with self._cond:
            busy = self._busy_total + (now - self._busy_since if self._busy_since is not None else 0.0)
        t0, busy0 = self._window
        self._window = (now, busy)
        wall = max(now - t0, 1e-9)
        return {"async/rollout_busy_share": (busy - busy0) / wall, "time/rollout_wait_s": self._wait_s}

    def close(self, wait: bool = True) -> None:
        """Stop the producer; with `wait`, let a batch it is collecting finish (unused, counted) and load the
        newest published weights, so the pool serves the final policy (the stage's last evaluation)."""
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        if wait:
            self._thread.join()
            with self._pool_lock:
                self._load_published()
            if self._ready:
                log.info("rollout ahead: %d collected batch(es) not trained (the run stopped first)",
                         len(self._ready))

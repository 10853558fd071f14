"""One RL step's collection with every follow-up in flight: hint levels and refills go out as groups finish.

The step's fresh problems are submitted at once (`pool.submit`) and results are consumed as they arrive
(`pool.iter_results`), scored a batch at a time (whatever results are ready share one reward call). Each problem is
a *chain*: its fresh group, then, while all of its answers fail and hints may help, one hint level after the other
(level k+1 only after level k failed, so the first correct level is the minimal level). A chain that ends without a
kept group (filtered out, unsolved at the top level, lost) is replaced by a fresh problem, while the refill budget
lasts, without waiting for the other chains.

Arrival order changes nothing a run records: the k-th refill is the sampler's k-th next problem with seed and request
id from its refill index; each drop asks for at most one refill and the budgets count drops, so the set of refills
is the same in any order; kept groups, hint statistics and cache updates are applied in chain order at the end.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from hints.progressive import LevelSearch
from rlsys.algorithms.filtering import classify_group
from rlsys.reward.workers import is_count_metric
from rlsys.rl.state import ProblemSampler, RLState
from rlsys.rollout.types import GroupRequest, GroupResult

# Extra refills per step and per kept slot for problems whose groups were lost (beyond `rl.max_refill_rounds`).
LOSS_ROUNDS = 2


@dataclass
class Chain:
    """One problem's requests in a step: its fresh group, then its hint levels one at a time."""

    index: int  # chain order: the step's first problems, then the refills in refill-index order
    ref: int  # 0 for the first problems, k + 1 for the k-th refill: part of request ids and seeds
    row_index: int
    search: LevelSearch | None = None
    first: Any = None  # the fresh group as sampled (before any reference answer went in)
    kept: Any = None
    tries: list[tuple[int, int]] = field(default_factory=list)  # (level, n_correct), in level order
    cache: tuple[str, int | None, int] | None = None  # HintLevelCache.record arguments, applied at the end
    lost: list[str] = field(default_factory=list)


class InflightStep:
    """Collects one step for a GroupCollector (`collector.collect` builds one and calls `run`)."""

    def __init__(self, collector: Any, step: int, state: RLState, sampler: ProblemSampler) -> None:
        self.c, self.step, self.state, self.sampler = collector, step, state, sampler
        self.rl, self.hints = collector.rl, collector.cfg.hints
        self.counts: Counter = Counter()
        self.minimal_hist: Counter = Counter()
        self.chains: list[Chain] = []
        self.waiting: dict[str, tuple[Chain, GroupRequest]] = {}
        # Refills per kind of drop: filtered / unsolved ones, and lost ones (their own, extra budget).
        self.budget = {"filter": self.rl.max_refill_rounds * self.rl.batch_groups,
                       "lost": LOSS_ROUNDS * self.rl.batch_groups}
        self.used: Counter = Counter()
        self.reward_calls: list[tuple[dict[str, float], int]] = []

    # ------------------------------------------------------------------ requests
    def _open(self, row_index: int, ref: int) -> GroupRequest:
        hints = self.hints
        # The cache as of the step's start (updates are applied at its end), so starts do not depend on arrival.
        level = (min(self.state.hint_cache.start_level(str(self.c.rows[row_index]["id"]), hints.fade),
                     self.c.max_level(row_index)) if hints.enabled else 0)
        chain = Chain(len(self.chains), ref, row_index)
        self.chains.append(chain)
        self.counts["sampled"] += 1
        return self._request(chain, level, self.c.cfg.rollout.group_size)

    def _request(self, chain: Chain, level: int, n: int) -> GroupRequest:
        (req,) = self.c._requests(self.step, chain.ref, [(chain.row_index, level)], n)
        self.waiting[req.request_id] = (chain, req)
        self.c.requested += 1
        return req

    def _refill(self, kind: str) -> list[GroupRequest]:
        if self.used[kind] >= self.budget[kind]:
            return []
        self.used[kind] += 1
        refill = self.used["filter"] + self.used["lost"]  # 1-based refill index
        return [self._open(self.sampler.take(1)[0], refill)]

    # ------------------------------------------------------------------ the step
    def run(self) -> tuple[list[Any], dict[str, float]]:
        started = time.perf_counter()
        first = [self._open(i, 0) for i in self.sampler.take(self.rl.batch_groups)]
        if first:
            self.c.pool.submit(first)
            for batch in _ready_batches(self.c.pool):
                follow = self._handle(batch)
                if follow:
                    self.c.pool.submit(follow)
        self.c.timings["rollout_s"] += time.perf_counter() - started - self.c.timings["reward_s"]
        return self._finish()

    def _handle(self, results: list[GroupResult]) -> list[GroupRequest]:
        """Score what arrived, decide each chain's next request: a hint level, a refill, or none."""
        follow: list[GroupRequest] = []
        arrived = []
        for res in results:
            if res.request_id not in self.waiting:  # the pool is the step's alone while it collects
                raise RuntimeError(f"RL step {self.step + 1}: the rollout pool returned group "
                                   f"{res.request_id!r}, which this step did not request")
            chain, req = self.waiting.pop(res.request_id)
            if not res.ok:  # dropped and counted; `check_lost` bounds the step's lost share
                chain.lost.append(f"{req.request_id}: {res.error}")
                follow += self._refill("lost")
                continue
            arrived.append((chain, self.c._group(req, res)))
        groups = [g for _, g in arrived]
        if groups:
            before = len(self.c.reward_metrics)
            self.c._score(groups)
            self.reward_calls += [(m, sum(len(g.samples) for g in groups)) for m in self.c.reward_metrics[before:]]
        fresh = [(chain, g) for chain, g in arrived if chain.search is None]
        for chain, g in fresh:
            chain.first = g
        before = len(self.c.reward_metrics)
        guided = self.c._guide([g for _, g in fresh], self.counts)
        self.reward_calls += [(m, 0) for m in self.c.reward_metrics[before:]]
        for (chain, _), g in zip(fresh, guided):
            follow += self._fresh(chain, g)
        for chain, g in arrived:
            if chain.search is not None and g is not chain.first:
                follow += self._hinted(chain, g)
        return follow

    def _fresh(self, chain: Chain, g: Any) -> list[GroupRequest]:
        rl, hints = self.rl, self.hints
        pid, top = str(g.row["id"]), self.c.max_level(g.row_index)
        chain.tries.append((g.level, g.n_correct))
        if g.pass_rate <= hints.hard_pass_rate and self.c.hintable(g.row_index) and g.level < top:
            chain.search = LevelSearch({pid: g.level + 1}, hints.max_level, {pid: top})
            return [self._request(chain, g.level + 1, hints.rollouts_per_level)]
        if g.level > 0:  # started at a cached hint level
            chain.cache = (pid, g.level if g.n_correct else None, top)
            return self._resolved(chain, g, g.level if g.n_correct else None)
        chain.cache = (pid, 0, hints.max_level)
        verdict = classify_group(g.pass_rate, rl.filter_low, rl.filter_high, rl.filter_inclusive)
        self.counts["in_range" if verdict == "keep" else verdict] += 1
        if verdict == "keep":
            chain.kept = g
            return []
        return self._refill("filter")

    def _hinted(self, chain: Chain, g: Any) -> list[GroupRequest]:
        pid = str(g.row["id"])
        chain.tries.append((g.level, g.n_correct))
        chain.search.report(pid, g.level, g.n_correct)
        if not chain.search.done:
            return [self._request(chain, chain.search.pending()[pid], self.hints.rollouts_per_level)]
        level = chain.search.minimal[pid]
        chain.cache = (pid, level, self.c.max_level(g.row_index))
        return self._resolved(chain, g, level)

    def _resolved(self, chain: Chain, g: Any, level: int | None) -> list[GroupRequest]:
        self.minimal_hist[str(level) if level is not None else "unsolved"] += 1
        if level is None:
            self.counts["unsolved"] += 1
            return self._refill("filter")
        self.counts["rescued"] += 1
        chain.kept = g
        return []

    # ------------------------------------------------------------------ results
    def _finish(self) -> tuple[list[Any], dict[str, float]]:
        c = self.c
        for chain in self.chains:  # chain order, so the state does not depend on arrival
            self.state.hint_stats.add_tries(chain.tries)
            if chain.cache is not None and not chain.lost:
                self.state.hint_cache.record(*chain.cache)
        c.lost = [msg for chain in self.chains for msg in chain.lost]
        c.check_lost(self.step)
        kept = [chain.kept for chain in self.chains if chain.kept is not None]
        counts = self.counts
        counts["refills"] = self.used["filter"] + self.used["lost"]
        counts["kept"] = len(kept)
        counts["lost"] = len(c.lost)
        metrics = {f"filter/{k}": float(v) for k, v in counts.items()}
        metrics.update({f"hints/min_level_{k}": float(v) for k, v in sorted(self.minimal_hist.items())})
        metrics.update(c._first_round_metrics([ch.first for ch in self.chains if ch.ref == 0 and ch.first is not None]))
        metrics.update(merge_weighted(self.reward_calls))
        metrics.update({f"time/{k}": v for k, v in c.timings.items()})
        return kept, metrics


def _ready_batches(pool: Any) -> Iterator[list[GroupResult]]:
    """The pool's results as they finish, each batch all those ready at once (so one reward call scores them).
    Follow-ups are submitted between batches, so the pool never runs dry while a chain goes on."""
    results = pool.iter_results()
    for res in results:
        batch = [res]
        while _ready(pool) > 0:
            batch.append(next(results))
        yield batch


def _ready(pool: Any) -> int:
    """Results the pool holds, finished and not yet handed out (`RolloutPool.ready`)."""
    return int(pool.ready())


def merge_weighted(calls: list[tuple[dict[str, float], int]]) -> dict[str, float]:
    """A step's reward metrics from its reward calls, the same however arrival split the samples into calls:
    counts and times summed; a mean weighted by the samples each call scored (calls that scored none, reference
    checks, report counts only), rounded to 12 significant digits so float rounding of the split cannot show."""
    sums: dict[str, float] = {}
    parts: dict[str, list[tuple[float, int]]] = {}
    for metrics, n in calls:
        for k, v in metrics.items():
            if is_count_metric(k) or k.endswith("time_s"):
                sums[k] = sums.get(k, 0.0) + v
            elif n > 0:
                parts.setdefault(k, []).append((v, n))
    means = {}
    for k, vs in parts.items():
        mean = math.fsum(v * n for v, n in vs) / sum(n for _, n in vs)
        means[k] = float(f"{mean:.12g}")
    return sums | means

"""Reward workers on Ray: a pool of actors, each scoring its share of a batch through a RewardManager.

The driver validates every reward entry before any actor exists, so a typo or a missing API-key
variable fails at start-up naming the entry. A batch is split across the actors and merged back in
order. A reward that raises, hangs or returns NaN is handled inside each actor by its RewardManager
(the sample gets `on_error_score` and the error is counted); an actor that dies (OOM-killed, SIGKILL,
lost node) or stops answering has its share re-run on a fresh actor, and that is counted too.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import ray
from ray.exceptions import GetTimeoutError, RayActorError, RayTaskError

from rlsys.config.validate import ConfigError
from rlsys.reward.correct import is_correct, parse_correct_by
from rlsys.reward.manager import RewardError, RewardManager
from rlsys.reward.plugins import (
    RewardConfigError,
    RewardSpec,
    check_static,
    check_time_budgets,
    load_reward_fns,
)
from rlsys.runtime.ray_utils import ActorFailure, init_ray

logger = logging.getLogger(__name__)

# Per-sample key the pool adds to each extras dict; no reward may take it as its name.
CORRECT_KEY = "correct"
# Seconds a backstop deadline adds on top of the worst case the manager's own timeouts allow.
_DEADLINE_SLACK_S = 60.0
# How often the driver wakes up to check the backstop deadlines while waiting for results.
_POLL_S = 5.0


class RewardActor:
    """One reward worker: a RewardManager, and the scoring process it owns, inside a Ray actor."""

    def __init__(self, specs: list[RewardSpec], manager_kwargs: dict, sys_path: list[str]) -> None:
        # Plug-ins outside the package are found through the driver's sys.path (same machine or a
        # shared file system); entries that do not exist here are harmless.
        sys.path.extend(p for p in sys_path if p not in sys.path)
        self.specs = specs
        self.manager = RewardManager(specs, **manager_kwargs)

    def ready(self, where: str) -> int:
        """Repeat the entries' static checks in this process, whose environment may differ from the
        driver's (another node, variables set after Ray started); returns this process's id."""
        for spec in self.specs:
            check_static(spec, where)
        return os.getpid()

    def preload(self) -> dict[str, str]:
        problems = self.manager.preload()
        for name, problem in problems.items():
            logger.warning("reward entry %r did not build ahead of the first batch (%s); that batch tries again",
                           name, problem)
        return problems

    def score(self, samples: list[dict]) -> tuple[list[float], list[dict], dict[str, float]]:
        return self.manager.score_batch(samples)

    def close(self) -> None:
        self.manager.close()


def _cfg(cfg: Any, key: str, default: Any) -> Any:
    if isinstance(cfg, Mapping):
        return cfg.get(key, default)
    return getattr(cfg, key, default)


def _cause(exc: RayTaskError) -> BaseException:
    cause = getattr(exc, "cause", None)
    return cause if isinstance(cause, BaseException) else exc


def split_indices(n: int, parts: int) -> list[list[int]]:
    """Sample indices per worker: strided, so sizes differ by at most one and each worker gets a mix of
    data sources (a batch is often ordered by prompt group or by task, and checkers differ in cost)."""
    k = max(0, min(parts, n))
    return [list(range(j, n, k)) for j in range(k)]


def is_count_metric(key: str) -> bool:
    """Reward metrics that count events (errors, unmatched samples, restarts, fallback scores): summed wherever
    batches merge, over the workers' chunks here and over a step's rounds in the RL loop; every other metric is
    a mean."""
    return (key.startswith("reward/errors/") or key.endswith("/errors") or key == "reward/unmatched"
            or key.endswith("_restarts") or key.endswith("/fallback"))


def _finite_float(value: object) -> bool:
    return isinstance(value, float) and math.isfinite(value)


def _weight(key: str, spec_names: set[str], extras: list[dict]) -> int:
    """How many of a chunk's samples a mean metric averages over, so chunk means merge exactly."""
    if key == "reward/mean":
        return len(extras)
    rest = key.removeprefix("reward/")
    name, _, tail = rest.rpartition("/")
    if tail == "mean" and name in spec_names:
        return sum(name in e for e in extras)
    counted = sum(_finite_float(e.get(rest)) for e in extras)
    return counted or len(extras)


def merge_metrics(specs: Sequence[RewardSpec], chunks: Sequence[tuple[dict[str, float], list[dict]]]) -> dict:
    """Merge per-chunk manager metrics: counts are summed, times take the slowest chunk (chunks run side
    by side), and means are weighted by the number of samples each chunk averaged over."""
    spec_names = {s.name for s in specs}
    merged: dict[str, float] = {}
    weighted: dict[str, list[tuple[float, int]]] = {}
    for metrics, extras in chunks:
        for key, value in metrics.items():
            if is_count_metric(key):
                merged[key] = merged.get(key, 0.0) + value
            elif key.endswith("/time_s"):
                merged[key] = max(merged.get(key, 0.0), value)
            else:
                weighted.setdefault(key, []).append((value, _weight(key, spec_names, extras)))
    for key, pairs in weighted.items():
        total = sum(w for _, w in pairs)
        merged[key] = sum(v * w for v, w in pairs) / total if total else 0.0
    merged.setdefault("reward/errors/total", 0.0)
    merged.setdefault("reward/unmatched", 0.0)
    merged.setdefault("reward/scorer_restarts", 0.0)
    merged.setdefault("reward/mean", 0.0)
    return merged


def check_reward_config(reward_cfg: Any, where: str = "reward.fns", *,
                        is_deferred: Callable[[object], bool] | None = None) -> tuple[list[RewardSpec], Any]:
    """Every start-up check of a reward config that needs no actor: the entries (`load_reward_fns`), the
    reserved name, each entry's time budget against `timeout_s` (`check_time_budgets`), `correct_by`.
    Returns (specs, parsed correct_by); raises RewardConfigError naming the entry. The pool runs it first; the pipeline's config check (rlsys/stages/validate.py) runs it for every
    stage before anything starts, with `stage:<name>` values deferred (`is_deferred`)."""
    specs = load_reward_fns(_cfg(reward_cfg, "fns", None), where, is_deferred=is_deferred)
    for spec in specs:
        if spec.name == CORRECT_KEY:
            raise RewardConfigError(
                f"{where}[{spec.index}] ({spec.target!r}): the name {CORRECT_KEY!r} is reserved for the "
                "pass/fail flag; set a different 'name'"
            )
    check_time_budgets(specs, float(_cfg(reward_cfg, "timeout_s", 10.0)), where)
    return specs, parse_correct_by(_cfg(reward_cfg, "correct_by", None), specs)


def check_reward_coverage(reward_cfg: dict, where: str, rows: list[dict]) -> None:
    """Every row's data_source has a reward entry: a row none applies to would score 0 in every sample, so its
    groups could never be kept and the run would train on nothing while looking merely unsolved."""
    specs, _ = check_reward_config(reward_cfg, where)
    counts = Counter(r.get("data_source") for r in rows)
    missing = [s for s in counts if not any(spec.applies_to(s) for spec in specs)]
    if missing:
        raise ConfigError(f"config key '{where}': no reward entry applies to data_source {missing[0]!r} "
                          f"({counts[missing[0]]} of the stage's {len(rows)} rows); add it to an entry's "
                          "data_sources (or add an entry for it)")


class RewardWorkerPool:
    """`reward_cfg.num_workers` Ray actors (each `cpus_per_worker` CPUs) scoring batches of samples.

    `reward_cfg` is the RewardConfig (or any object / mapping with its fields). Start-up validates every
    entry (RewardConfigError naming it) and waits until each actor is up and has re-checked the entries
    in its own environment. `score(samples)` takes dicts with `prompt` (the raw user text), `completion`,
    `data_source` and the row's other fields. Call `close()` (or use `with`) to stop the actors.
    """

    def __init__(
        self,
        reward_cfg: Any,
        *,
        where: str = "reward.fns",
        load_timeout_s: float = 300.0,
        kill_grace_s: float = 2.0,
        start_timeout_s: float = 180.0,
        max_chunk_retries: int = 2,
        call_timeout_s: float | None = None,
    ) -> None:
        self.where = where
        self.specs, self.correct_by = check_reward_config(reward_cfg, where)
        self.num_workers = int(_cfg(reward_cfg, "num_workers", 1))
        self.cpus_per_worker = float(_cfg(reward_cfg, "cpus_per_worker", 0.5))
        if self.num_workers < 1 or self.cpus_per_worker < 0:
            raise ValueError(f"reward.num_workers must be >= 1 and cpus_per_worker >= 0, got "
                             f"{self.num_workers} and {self.cpus_per_worker}")
        self.correct_threshold = float(_cfg(reward_cfg, "correct_threshold", 0.5))
        self.timeout_s = float(_cfg(reward_cfg, "timeout_s", 10.0))
        self.load_timeout_s = load_timeout_s
        self.kill_grace_s = kill_grace_s
        self.start_timeout_s = start_timeout_s
        self.max_chunk_retries = max_chunk_retries
        self.call_timeout_s = call_timeout_s
        self._manager_kwargs = {
            "timeout_s": self.timeout_s,
            "on_error_score": float(_cfg(reward_cfg, "on_error_score", 0.0)),
            "fail_on_error": bool(_cfg(reward_cfg, "fail_on_error", False)),
            "load_timeout_s": load_timeout_s,
            "kill_grace_s": kill_grace_s,
        }
        self.restarts = 0
        if not ray.is_initialized():
            init_ray()
        self._remote = ray.remote(RewardActor)
        self.actors: list[Any] = []
        try:
            self.actors = [self._spawn() for _ in range(self.num_workers)]
            self._wait_ready(self.actors)
            # Entries build in the background (a served judge takes ~25 s on CPU) while the caller starts
            # its engines and learners; a batch sent meanwhile waits for them, as it would have built them.
            for actor in self.actors:
                actor.preload.remote()  # nobody waits on it: problems are logged, the first batch reports them
        except BaseException:
            self.close()
            raise
        logger.info("reward pool: %d workers x %g CPUs, rewards %s", self.num_workers, self.cpus_per_worker,
                    [s.name for s in self.specs])

    # -- actor lifecycle

    def _spawn(self) -> Any:
        # Two threads per actor: `ready` answers while a batch is scoring; the manager serialises batches.
        options = {"num_cpus": self.cpus_per_worker, "max_concurrency": 2, "max_restarts": 0}
        return self._remote.options(**options).remote(self.specs, self._manager_kwargs, list(sys.path))

    def _wait_ready(self, actors: list[Any]) -> list[int]:
        refs = [actor.ready.remote(self.where) for actor in actors]
        deadline = time.monotonic() + self.start_timeout_s
        pids = []
        for rank, ref in enumerate(refs):
            try:
                pids.append(ray.get(ref, timeout=max(0.0, deadline - time.monotonic())))
            except RayTaskError as exc:
                cause = _cause(exc)
                if isinstance(cause, RewardConfigError):
                    raise RewardConfigError(str(cause)) from None
                raise ActorFailure(f"reward worker {rank}: start-up raised {type(cause).__name__}: {cause}") from exc
            except GetTimeoutError as exc:
                raise ActorFailure(f"reward worker {rank}: not up within {self.start_timeout_s:g} s") from exc
            except RayActorError as exc:
                raise ActorFailure(f"reward worker {rank}: died during start-up ({str(exc).splitlines()[0]})") from exc
        return pids

    def _replace(self, slot: int, reason: str) -> None:
        try:
            ray.kill(self.actors[slot], no_restart=True)
        except Exception as exc:  # it is usually dead already
            logger.debug("killing reward worker %d: %s", slot, exc)
        logger.warning("reward worker %d %s; starting a new one and re-running its samples", slot, reason)
        actor = self._spawn()
        self.actors[slot] = actor
        self.restarts += 1
        self._wait_ready([actor])

    def worker_pids(self) -> list[int]:
        """Process ids of the current actors (for diagnostics and failure tests)."""
        return self._wait_ready(self.actors)

    def close(self) -> None:
        """Stop every reward process and actor; safe to call twice."""
        refs = []
        for actor in self.actors:
            try:
                refs.append(actor.close.remote())
            except Exception as exc:
                logger.debug("closing reward worker: %s", exc)
        if refs:
            # Let the managers stop their scoring processes; dead actors just raise here.
            ray.wait(refs, num_returns=len(refs), timeout=10)
        for actor in self.actors:
            try:
                ray.kill(actor, no_restart=True)
            except Exception as exc:
                logger.debug("killing reward worker: %s", exc)
        self.actors = []

    def __enter__(self) -> RewardWorkerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- scoring

    def _deadline_s(self, n: int) -> float:
        if self.call_timeout_s is not None:
            return self.call_timeout_s
        # The manager bounds every call itself; this only catches an actor that stopped answering.
        # Worst case: every sample of every function hangs and each costs a restart with a reload.
        per_sample = self.timeout_s + self.kill_grace_s
        return len(self.specs) * (self.load_timeout_s + n * per_sample) + _DEADLINE_SLACK_S

    def _run(self, parts: list[list[dict]]) -> tuple[list[tuple], int]:
        if not self.actors:
            raise RuntimeError("the reward pool is closed")
        results: list[tuple | None] = [None] * len(parts)
        attempts = [0] * len(parts)
        restarts = 0
        pending: dict[Any, tuple[int, float]] = {}

        def submit(j: int) -> None:
            ref = self.actors[j].score.remote(parts[j])
            pending[ref] = (j, time.monotonic() + self._deadline_s(len(parts[j])))

        def retry(j: int, reason: str) -> None:
            nonlocal restarts
            attempts[j] += 1
            if attempts[j] > self.max_chunk_retries:
                raise ActorFailure(f"reward worker {j} {reason}; gave up after {self.max_chunk_retries} retries")
            self._replace(j, reason)
            restarts += 1
            submit(j)

        for j in range(len(parts)):
            submit(j)
        while pending:
            now = time.monotonic()
            wait_s = max(0.0, min(min(d for _, d in pending.values()) - now, _POLL_S))
            done, _ = ray.wait(list(pending), num_returns=1, timeout=wait_s)
            if not done:
                for ref, (j, deadline) in list(pending.items()):
                    if time.monotonic() > deadline:
                        del pending[ref]
                        retry(j, f"gave no answer within {self._deadline_s(len(parts[j])):g} s")
                continue
            j, _ = pending.pop(done[0])
            try:
                results[j] = ray.get(done[0])
            except RayActorError as exc:
                retry(j, f"died ({type(exc).__name__})")
            except RayTaskError as exc:
                cause = _cause(exc)
                if isinstance(cause, RewardError):
                    raise RewardError(str(cause)) from None
                raise ActorFailure(f"reward worker {j}: score raised {type(cause).__name__}: {cause}") from exc
        return [r for r in results if r is not None], restarts

    def score(self, samples: Sequence[dict]) -> tuple[list[float], list[dict], dict[str, float]]:
        """Score a batch across the workers; results come back in the order of `samples`.

        Returns the combined reward per sample; per-sample extras (see RewardManager.score_batch) plus
        `correct` (reward >= correct_threshold, or the data source's `correct_by` rule); and batch metrics: the managers' metrics merged, plus
        `reward/correct` (pass rate), `reward/workers`, `reward/worker_restarts` (reward actors replaced) and
        `reward/pool_time_s`; `reward/scorer_restarts` (scoring processes restarted inside the actors) is
        summed over them.
        """
        start = time.perf_counter()
        for i, sample in enumerate(samples):
            if not isinstance(sample, Mapping) or "prompt" not in sample or "completion" not in sample:
                raise ValueError(f"sample {i} must be a dict with 'prompt' and 'completion'")
        indices = split_indices(len(samples), len(self.actors))
        results, restarts = self._run([[dict(samples[i]) for i in part] for part in indices])
        scores: list[float] = [0.0] * len(samples)
        extras: list[dict] = [{} for _ in samples]
        for part, (part_scores, part_extras, _) in zip(indices, results):
            for pos, i in enumerate(part):
                scores[i] = part_scores[pos]
                extras[i] = part_extras[pos]
        metrics = merge_metrics(self.specs, [(m, e) for _, e, m in results])
        for sample, score, extra in zip(samples, scores, extras):
            extra[CORRECT_KEY] = is_correct(score, extra, sample.get("data_source"), self.correct_by,
                                            self.correct_threshold)
        metrics["reward/correct"] = sum(e[CORRECT_KEY] for e in extras) / len(extras) if extras else 0.0
        metrics["reward/workers"] = float(len(indices))
        metrics["reward/worker_restarts"] = float(restarts)
        metrics["reward/pool_time_s"] = time.perf_counter() - start
        return scores, extras, metrics

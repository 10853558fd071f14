"""The elastic rollout pool: prompt groups spread over N vLLM actors, results streamed back.

The pool lives in the controller process and is driven by `ray.wait` on the refs it holds, so
there is no background thread: every public call advances it. Bookkeeping per group (a "job")
keeps exactly one live dispatch at a time; a result is accepted only from the job's current
dispatch and the job is removed on delivery, so a group is never lost and never returned twice,
however actors die, time out or get removed.

Actor life cycle: starting -> (syncing) -> ready <-> syncing -> draining -> gone, or dead at any
point. Only `ready` actors take work; an actor that joins after a weight sync first loads the
latest published version. Under `sync_backend: nccl` such an actor waits ("stale") until the next
broadcast, because only the learner can send NCCL weights.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Iterator
from typing import Any

import ray

from rlsys.rollout.model_ship import ship_model
from rlsys.rollout.pool_core import LIVE, Job, PoolCore, PoolError
from rlsys.rollout.pool_policy import PoolPolicy, actors_that_fit, policy_name
from rlsys.rollout.settings import worker_kwargs, worker_resources
from rlsys.rollout.types import GroupRequest, GroupResult
from rlsys.rollout.weight_sync import PublishedWeights
from rlsys.rollout.worker import IN_PROCESS_ENV, RolloutWorker
from rlsys.runtime.ray_utils import ActorFailure, ActorResources

log = logging.getLogger(__name__)

__all__ = ["PoolError", "PoolPolicy", "RolloutPool"]

# The pool's failure counters under the names the RL loop logs them (per step, as deltas of these totals).
FAILURE_COUNTERS = {
    "pool/actor_deaths": "deaths",         # actors that died, failed to start or sync, or were given up on
    "pool/actors_replaced": "restarts",    # of those, the live ones a new actor replaced
    "pool/redispatched": "redispatches",   # groups sent again after their actor died, timed out or raised
    "pool/timeouts": "timeouts",           # dispatches with no result within request_timeout_s
    "pool/failed_groups": "errors",        # groups handed back as failed (attempts used up, no actor left)
}


class RolloutPool(PoolCore):
    """N RolloutWorker actors behind submit / iter_results, with elastic size and recovery."""

    def __init__(
        self,
        model_path: str,
        *,
        worker_kwargs: dict[str, Any] | None = None,
        policy: PoolPolicy | None = None,
        resources: ActorResources | None = None,
        num_actors: int | None = None,
        name: str = "rollout",
        auto_scale: bool = False,
        wait: bool = True,
        actor_cls: type = RolloutWorker,
        custom_resources: dict[str, float] | None = None,
    ) -> None:
        super().__init__(
            model_path,
            worker_kwargs or {},
            policy or PoolPolicy(),
            resources or ActorResources(num_cpus=1.0, env_vars=dict(IN_PROCESS_ENV)),
            name,
            actor_cls,
            custom_resources,
        )
        self.auto_scale = auto_scale
        self._nccl: Any = None
        self._learner_actors: list[Any] | None = None
        self._low_demand_since: float | None = None
        self._last_autoscale = 0.0
        self._in_nccl_round = False
        # Scaling by hand (rlsys/rollout/control.py): the poller of the run's control actor, and the size asked
        # for, which pins the pool (the autoscaler pauses) until a request hands the size back.
        self._scale_control: Any = None
        self._manual: int | None = None
        # Totals at the last step_metrics() call, which reports the change since.
        self._metrics_seen: dict[str, float] = {"time": self._ticked_at}
        n = self.policy.min_actors if num_actors is None else num_actors
        if n > self.policy.max_actors:
            # An explicit initial size wider than the policy widens the policy rather than being cut.
            self.policy = dataclasses.replace(self.policy, max_actors=n)
        self._target = n
        self._reconcile()
        if wait:
            self.wait_ready(self.policy.start_timeout_s)

    @classmethod
    def from_config(cls, rollout: Any, model_path: str, **kwargs: Any) -> RolloutPool:
        """Build from the `rollout` config section: worker settings, resources, policy and size."""
        kwargs.setdefault("num_actors", rollout.num_actors)
        policy = PoolPolicy.from_config(rollout.pool)
        kwargs.setdefault("auto_scale", policy.autoscale)
        kwargs.setdefault("custom_resources", dict(getattr(rollout, "resources", None) or {}))
        # The model actors start from: its path, or its files in the object store (rlsys/rollout/model_ship.py).
        model = ship_model(model_path, getattr(rollout, "model_transfer", "path"))
        return cls(
            model,
            worker_kwargs=worker_kwargs(rollout, model_path),
            policy=policy,
            resources=worker_resources(rollout),
            **kwargs,
        )

    # ------------------------------------------------------------------ requests
    def submit(self, requests: list[GroupRequest]) -> None:
        """Queue groups; they are dispatched as actors have room. Request ids must be unique."""
        now = time.monotonic()
        with self._lock:
            ids = [r.request_id for r in requests]
            clash = [i for i in ids if i in self._jobs]
            if clash or len(set(ids)) != len(ids):
                raise ValueError(f"request ids already pending or repeated: {sorted(set(clash) or ids)[:5]}")
            self._tick()
            for req in requests:
                self._jobs[req.request_id] = Job(req, now)
                self._queue.append(req.request_id)
            self._counts["submitted"] += len(requests)
            self._dispatch()

    def pending(self) -> int:
        """Groups submitted and not yet handed out by iter_results/generate."""
        with self._lock:
            return len(self._jobs) + len(self._results)

    def ready(self) -> int:
        """Results finished and not yet handed out: what `iter_results` yields without waiting."""
        with self._lock:
            return len(self._results)

    def iter_results(self, timeout: float | None = None, poll_s: float = 0.05) -> Iterator[GroupResult]:
        """Yield results as groups finish until nothing is pending.

        `timeout` bounds the wait for each next result (None: wait as long as groups are in
        flight; each group is still bounded by the policy's request_timeout_s).
        """
        last = time.monotonic()
        while True:
            with self._lock:
                if self._results:
                    result = self._results.popleft()
                elif not self._jobs:
                    return
                else:
                    result = None
                    if timeout is not None and time.monotonic() - last > timeout:
                        raise PoolError(f"{self.name}: no result within {timeout} s; "
                                        f"{len(self._jobs)} group(s) pending; {self._describe()}")
                    self._step(poll_s)
            if result is not None:
                last = time.monotonic()
                yield result

    def generate(self, requests: list[GroupRequest], timeout: float | None = None) -> list[GroupResult]:
        """Submit and wait; results in request order."""
        self.submit(requests)
        wanted = {r.request_id for r in requests}
        got: dict[str, GroupResult] = {}
        others: list[GroupResult] = []
        try:
            for res in self.iter_results(timeout):
                if res.request_id in wanted:
                    got[res.request_id] = res
                else:
                    others.append(res)
                if len(got) == len(wanted):
                    break
        finally:
            # Results of groups submitted elsewhere stay queued for their own iter_results.
            with self._lock:
                self._results.extendleft(reversed(others))
        return [got[r.request_id] for r in requests]

    # ------------------------------------------------------------------ weights
    @property
    def version(self) -> int:
        return self._version

    def sync_weights(self, bucket_refs: list[Any] | PublishedWeights, version: int | None = None,
                     timeout: float = 600.0) -> dict[str, float]:
        """Every ready actor loads the published buckets; returns load seconds per actor.

        The refs are kept so that actors which start later load this version first. Pushing the
        same version again reloads it (a resumed run re-sends the weights it resumes at).
        """
        if isinstance(bucket_refs, PublishedWeights):
            version = bucket_refs.version if version is None else version
            bucket_refs = bucket_refs.refs
        if version is None:
            raise ValueError("sync_weights needs a version")
        with self._lock:
            if version < self._version:
                raise ValueError(f"version {version} is older than the pool's {self._version}")
            self._latest_refs, self._version = list(bucket_refs), version
            self._serial += 1
            self._counts["syncs"] += 1
            loads: dict[str, float] = {}
            for slot in self._slots.values():
                self._maybe_sync(slot)
            deadline = time.monotonic() + timeout
            while any(s.state in ("syncing", "ready") and s.serial < self._serial for s in self._slots.values()):
                if time.monotonic() > deadline:
                    raise PoolError(f"{self.name}: weight sync to v{version} not done within {timeout} s; "
                                    f"{self._describe()}")
                self._step(0.02, loads)
            return loads

    def sync_from_learner(self, learners: Any, version: int, timeout: float = 600.0) -> dict[str, float]:
        """Move a LearnerGroup's current weights into every actor by the configured backend."""
        if self.policy.sync_backend == "nccl":
            return self.sync_weights_nccl(learners.actors, version, timeout)
        return self.sync_weights(learners.export_weights(self.policy.sync_bucket_bytes), version, timeout)

    def sync_weights_nccl(self, learner_actors: list[Any], version: int, timeout: float = 600.0) -> dict[str, float]:
        """Broadcast from learner rank 0 to every live actor over NCCL (CUDA only)."""
        from rlsys.rollout.nccl_sync import NcclWeightSync

        with self._lock:
            if self._nccl is None or self._learner_actors != list(learner_actors):
                if self._nccl is not None:
                    self._nccl.abort()
                # Send in the engine's dtype: a bf16 engine needs half the bytes of fp32 weights.
                dtype = self._worker_kwargs.get("dtype")
                wire = dtype if dtype in ("float32", "bfloat16", "float16") else None
                self._nccl = NcclWeightSync(list(learner_actors), timeout_s=timeout, wire_dtype=wire)
                self._learner_actors = list(learner_actors)
            self._version, self._latest_refs = version, None
            self._serial += 1
            self._counts["syncs"] += 1
            return self._nccl_round(version, timeout)

    def _nccl_round(self, version: int, timeout: float) -> dict[str, float]:
        self._in_nccl_round = True
        try:
            return self._nccl_round_inner(version, timeout)
        finally:
            self._in_nccl_round = False

    def _nccl_round_inner(self, version: int, timeout: float) -> dict[str, float]:
        # Actors still starting or loading finish first: a broadcast needs every member at once.
        deadline = time.monotonic() + timeout
        while any(s.state in ("starting", "syncing") for s in self._slots.values()):
            if time.monotonic() > deadline:
                raise PoolError(f"{self.name}: actors not ready for the NCCL sync; {self._describe()}")
            self._step(0.05)
        loads: dict[str, float] = {}
        for attempt in (1, 2):
            members = [s for s in self._slots.values() if s.state in ("ready", "stale")]
            try:
                refs = self._nccl.start([s.handle for s in members], version)
            except ActorFailure as exc:
                self._nccl.abort()
                raise PoolError(f"{self.name}: NCCL sync to v{version} failed: {exc}") from exc
            for slot, ref in zip(members, refs):
                slot.state, slot.since = "syncing", time.monotonic()
                self._control[ref] = (slot.name, "sync", version, self._serial)
            while any(s.state == "syncing" for s in members if s.name in self._slots):
                if time.monotonic() > deadline:
                    self._nccl.abort()
                    raise PoolError(f"{self.name}: NCCL sync to v{version} timed out; {self._describe()}")
                if any(s.name not in self._slots for s in members):
                    # A member died mid-broadcast: its peers would wait forever. Aborting the
                    # group fails their receive; they go "stale" and the round is redone.
                    self._nccl.abort()
                self._step(0.02, loads)
            if all(s.name in self._slots and s.serial >= self._serial for s in members):
                self._nccl.finish()
                return loads
            self._nccl.abort()
            log.warning("%s: NCCL sync to v%d incomplete (attempt %d); re-forming the group", self.name, version, attempt)
        raise PoolError(f"{self.name}: NCCL sync to v{version} failed twice; {self._describe()}")

    # ------------------------------------------------------------------ elasticity
    def size(self) -> int:
        """Actors that are or will become available (draining and dead ones excluded)."""
        with self._lock:
            return sum(s.state in LIVE for s in self._slots.values())

    def scale_to(self, n: int, reason: str = "") -> None:
        """Set the number of actors: new ones start (and load the current weights) in the
        background; removed ones take no new work, finish what they hold, then exit."""
        if n < 0:
            raise ValueError(f"pool size must be >= 0, got {n}")
        with self._lock:
            if n != self._target:
                self._counts["scale_events"] += 1
                log.info("%s: scale %d -> %d (%s)", self.name, self._target, n, reason or "scale_to")
            self._target = n
            self._reconcile()
            self._dispatch()

    def wait_ready(self, timeout: float = 600.0) -> None:
        """Block until every live actor can take work."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while any(s.state in ("starting", "syncing") for s in self._slots.values()) or self.size() < self._target:
                if time.monotonic() > deadline:
                    raise PoolError(f"{self.name}: actors not ready within {timeout} s; {self._describe()}")
                self._step(0.05)

    def cluster_capacity(self) -> int:
        """Actors the cluster can hold now: the live ones plus what fits in free resources."""
        per_actor = {"CPU": float(self.resources.num_cpus), "GPU": float(self.resources.num_gpus),
                     **self.custom_resources}
        with self._lock:
            # A starting actor may not hold its resources yet; counting it as unplaced can only
            # under-estimate, so the autoscaler waits for starts rather than over-asking.
            unplaced = sum(s.state == "starting" for s in self._slots.values())
            return self.size() + max(0, actors_that_fit(ray.available_resources(), per_actor) - unplaced)

    def scale_by_hand(self, n: int | None, why: str = "by hand") -> int:
        """Pin the pool at `n` actors (None: hand the size back to the autoscaler); returns the target size.

        A size asked by hand wins over the autoscaler and over min/max_actors (they bound the autoscaler only),
        but not over the cluster: it is cut to the actors the cluster can hold now, with a warning."""
        with self._lock:
            if n is None:
                if self._manual is not None:
                    log.info("%s: size back to the %s (%s)", self.name,
                             "autoscaler" if self.auto_scale else f"pool, kept at {self._target}", why)
                self._manual = None
                return self._target
            if n < 1:
                raise ValueError(f"a rollout pool size set by hand must be >= 1, got {n}")
            room = self.cluster_capacity() if n > self._target else n
            if n > room:
                log.warning("%s: %d actors asked %s, but the cluster can hold %d now: scaling to %d",
                            self.name, n, why, room, room)
            self._manual = min(n, room)
            self.scale_to(self._manual, f"{why}: {n} asked")
            return self._manual

    def listen_for_scaling(self, run_dir: Any) -> Any:
        """Start the run's scale control actor and write `<run_dir>/scale.json`, so `python -m rlsys.scale
        <run_dir> --rollout N` can resize this pool while it runs (rlsys/rollout/control.py)."""
        from rlsys.rollout.control import ControlPoller, start_scale_control

        handle = start_scale_control(run_dir)
        with self._lock:
            self._scale_control = ControlPoller(handle)
        return handle

    def _poll_scale_control(self) -> None:
        with self._lock:
            report = {"size": self.size(), "target": self._target, "manual": self._manual,
                      "ready": sum(s.state == "ready" for s in self._slots.values()),
                      "applied": self._scale_control.applied, "autoscale": self.auto_scale,
                      "min_actors": self.policy.min_actors, "max_actors": self.policy.max_actors}
            news = self._scale_control.poll(report)
            if news is not None:
                serial, n, who = news
                self.scale_by_hand(n, f"by hand, request {serial} from {who}")

    def autoscale(self) -> int:
        """Apply the policy to the current backlog; returns the new target size. A size set by hand pins it."""
        with self._lock:
            backlog = len(self._jobs)
            current = self._target
            if self._manual is not None:
                return current
            want = self.policy.decide(backlog, current, self.cluster_capacity() if backlog else current)
            if want < current:
                # Shrink only after demand stayed low for a while: restarts cost seconds.
                now = time.monotonic()
                self._low_demand_since = self._low_demand_since or now
                if now - self._low_demand_since < self.policy.scale_down_delay_s:
                    return current
            self._low_demand_since = None
            if want != current:
                self.scale_to(want, f"autoscale: {backlog} group(s) outstanding, "
                                    f"policy {policy_name(self.policy.autoscale_policy)}")
            return want

    # ------------------------------------------------------------------ metrics
    def metrics(self) -> dict[str, float]:
        """Pool counters and per-actor load, flat for the metrics logger."""
        with self._lock:
            out: dict[str, float] = {f"rollout_pool/{k}": float(v) for k, v in self._counts.items()}
            out["rollout_pool/size"] = float(self.size())
            out["rollout_pool/target"] = float(self._target)
            out["rollout_pool/queued"] = float(len(self._queue))
            out["rollout_pool/in_flight"] = float(len(self._inflight))
            out["rollout_pool/version"] = float(self._version)
            now = time.monotonic()
            for s in self._slots.values():
                p = f"rollout_pool/actor/{s.name}"
                out[f"{p}/outstanding"] = float(len(s.outstanding))
                out[f"{p}/finished"] = float(s.finished)
                out[f"{p}/tokens"] = float(s.tokens)
                up = now - s.ready_at if s.ready_at else 0.0
                out[f"{p}/tokens_per_s"] = s.tokens / up if up > 0 else 0.0
            return out

    def step_metrics(self) -> dict[str, float]:
        """Load since the last call (the first: since start), as time-weighted means: live actors, groups in
        flight and queued, the mean share of time the live actors held work, and tokens generated per second.
        Re-dispatches and replaced actors are not repeated here: `failure_counts` owns them."""
        with self._lock:
            self._tick()
            now = {**self._area, "tokens": float(self._tokens), "time": self._ticked_at,
                   "scale_events": float(self._counts["scale_events"]), "target": float(self._target),
                   "submitted": float(self._counts["submitted"]), "delivered": float(self._counts["delivered"]),
                   **{f"busy/{s.name}": s.busy_s for s in self._slots.values() if s.state in LIVE}}
            seen, self._metrics_seen = self._metrics_seen, now
        elapsed = now["time"] - seen["time"]
        if elapsed <= 0:
            return {}
        delta = {k: v - seen.get(k, 0.0) for k, v in now.items()}
        busy = [v / elapsed for k, v in delta.items() if k.startswith("busy/")]
        return {"pool/actors": delta["actors"] / elapsed, "pool/inflight": delta["inflight"] / elapsed,
                "pool/backlog": delta["queued"] / elapsed, "pool/busy_share": sum(busy) / len(busy) if busy else 0.0,
                "pool/tokens_per_s": delta["tokens"] / elapsed,
                # Size changes since the last call (by the autoscaler or by hand), and the size aimed at now.
                "pool/scale_events": delta["scale_events"], "pool/target": now["target"],
                # Groups taken and handed back since the last call: every group is accounted for once.
                "pool/submitted": delta["submitted"], "pool/delivered": delta["delivered"]}

    def failure_counts(self) -> dict[str, float]:
        """Running totals of the failures in FAILURE_COUNTERS since the pool started."""
        with self._lock:
            return {name: float(self._counts[count]) for name, count in FAILURE_COUNTERS.items()}

    def actors(self) -> list[dict[str, Any]]:
        """One row per actor: name, state, pid, version, outstanding and finished groups."""
        with self._lock:
            return [dict(name=s.name, state=s.state, pid=s.pid, version=s.version, outstanding=len(s.outstanding),
                         finished=s.finished, tokens=s.tokens, handle=s.handle) for s in self._slots.values()]

    def shutdown(self) -> None:
        with self._lock:
            if self._nccl is not None:
                self._nccl.abort()
            for slot in list(self._slots.values()):
                self._kill(slot)
            self._slots.clear()
            self._inflight.clear()
            self._control.clear()
            # Groups not yet delivered are abandoned with the actors.
            self._jobs.clear()
            self._queue.clear()
            self._target = 0

    def __enter__(self) -> RolloutPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    # ------------------------------------------------------------------ event loop
    def _step(self, wait_s: float, loads: dict[str, float] | None = None) -> None:
        super()._step(wait_s, loads)
        slots = self._slots.values()
        if (self._nccl is not None and not self._in_nccl_round and self._queue
                and any(s.state == "stale" for s in slots) and not any(s.state == "ready" for s in slots)):
            # Only the learner can send NCCL weights: with no actor able to serve, re-broadcast now.
            self._nccl_round(self._version, self.policy.start_timeout_s)
        if self._scale_control is not None:
            self._poll_scale_control()
        if self.auto_scale and time.monotonic() - self._last_autoscale > 1.0:
            # Rate-limited: the capacity check asks the GCS for the cluster's free resources.
            self._last_autoscale = time.monotonic()
            self.autoscale()

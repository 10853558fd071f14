"""Bookkeeping of the rollout pool: actors ("slots"), groups ("jobs"), dispatch and recovery.

`RolloutPool` (pool.py) is the public face; this base holds the state machine it drives. Each
job has at most one live dispatch (`job.ref`, one call carrying every group sent to that actor in
the same pass); a result is accepted only from that dispatch and the job is removed on delivery,
so a group is never lost and never returned twice, however actors die, time out or get removed. Everything advances in `_step`, which waits on the refs of
all dispatches and control calls with `ray.wait`; no background thread is involved.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import ray
from ray.exceptions import RayActorError, TaskCancelledError

from rlsys.rollout.pool_policy import PoolPolicy
from rlsys.rollout.types import GroupRequest, GroupResult
from rlsys.runtime.ray_utils import ActorResources

log = logging.getLogger(__name__)

# States of an actor that is, or is about to be, part of the pool.
LIVE = ("starting", "syncing", "ready", "stale")


class PoolError(RuntimeError):
    """The pool cannot make progress (actors keep failing to start, a sync failed, a wait timed out)."""


@dataclass
class Job:
    request: GroupRequest
    submitted_at: float
    # Dispatches that timed out or raised, and actors that died while holding the group: each
    # has its own budget (policy.max_attempts), so crashes do not eat into the timeout budget.
    attempt: int = 0
    failures: int = 0
    deaths: int = 0
    slot: str | None = None
    ref: Any = None
    dispatched_at: float = 0.0
    excluded: set[str] = field(default_factory=set)

    @property
    def work(self) -> int:
        return max(1, int(self.request.n or 1)) * max(1, int(self.request.max_tokens or 1))


@dataclass
class Slot:
    name: str
    handle: Any
    state: str
    version: int
    created_at: float
    # When the current start or weight load began (bounded by policy.start_timeout_s).
    since: float = 0.0
    ready_at: float = 0.0
    # Which weight push the actor holds (0: the checkpoint it started from).
    serial: int = 0
    pid: int = -1
    outstanding: dict[str, Any] = field(default_factory=dict)
    work: int = 0
    finished: int = 0
    tokens: int = 0
    failures: int = 0
    # Seconds spent holding at least one group (for the pool's busy share).
    busy_s: float = 0.0


class PoolCore:
    """Slots, jobs and the event handling shared by every public pool operation."""

    def __init__(self, model_path: str, worker_kwargs: dict[str, Any], policy: PoolPolicy,
                 resources: ActorResources, name: str, actor_cls: type,
                 custom_resources: dict[str, float] | None = None) -> None:
        self.model_path = model_path
        self.policy = policy
        self.resources = resources
        # Ray custom resources per actor, e.g. {"rollout_node": 1} to keep actors on labelled nodes.
        self.custom_resources = dict(custom_resources or {})
        self.name = name
        self._worker_kwargs = {k: v for k, v in worker_kwargs.items() if k not in ("model_path", "name")}
        self._remote_cls = actor_cls if hasattr(actor_cls, "remote") else ray.remote(actor_cls)
        self._lock = threading.RLock()
        self._slots: dict[str, Slot] = {}
        self._jobs: dict[str, Job] = {}
        self._queue: deque[str] = deque()
        # Generation calls in flight: ref -> ids of the groups it carries (one call per actor and
        # dispatch pass, so groups dispatched together reach the engine as one batch).
        self._inflight: dict[Any, list[str]] = {}
        # Control calls in flight: ref -> (slot name, "start" | "sync", version, push serial).
        self._control: dict[Any, tuple[str, str, int, int]] = {}
        self._results: deque[GroupResult] = deque()
        self._version = int(self._worker_kwargs.get("policy_version", 0))
        # Counts weight pushes: a push may repeat a version number (a resume re-sends the weights
        # of the version it resumes at), so "does this actor need the push" compares serials.
        self._serial = 0
        self._latest_refs: list[Any] | None = None
        self._target = 0
        # The autoscaler may still add actors to an empty pool; queued work then waits for them.
        self.auto_scale = False
        self._index = 0
        self._start_failures = 0
        self._counts = dict(submitted=0, delivered=0, errors=0, redispatches=0, restarts=0, deaths=0,
                            timeouts=0, dropped_stale=0, scale_events=0, syncs=0)
        # Time integrals of queue length, groups in flight and live actors since start, plus tokens generated:
        # step_metrics() reports their change per call as time-weighted means (a snapshot at the end of an RL
        # step would only ever see an empty pool).
        self._area = dict(queued=0.0, inflight=0.0, actors=0.0)
        self._tokens = 0
        self._ticked_at = time.monotonic()

    def _describe(self) -> str:
        states = ", ".join(f"{s.name}:{s.state}/v{s.version}/{len(s.outstanding)}" for s in self._slots.values())
        return f"actors [{states}], queued {len(self._queue)}, in flight {len(self._inflight)}"

    def _start_slot(self) -> None:
        name = f"{self.name}-{self._index}-{uuid.uuid4().hex[:6]}"
        self._index += 1
        res = self.resources
        options: dict[str, Any] = {
            "name": name,
            "num_cpus": res.num_cpus,
            "num_gpus": res.num_gpus,
            # Async actor: every dispatched group is one waiting coroutine, plus control calls.
            "max_concurrency": self.policy.max_inflight_per_actor + 16,
        }
        if self.custom_resources:
            # Placement on labelled nodes while one lives: after losing them the pool carries on elsewhere
            # rather than waiting for a node that may never return (a label back later is used again).
            labelled = [n for n in ray.nodes() if n.get("Alive")
                        and all(n.get("Resources", {}).get(k, 0.0) >= v for k, v in self.custom_resources.items())]
            if labelled:
                options["resources"] = dict(self.custom_resources)
            else:
                log.warning("%s: no live node offers %s; %s placed on any node", self.name, self.custom_resources, name)
        if res.env_vars:
            options["runtime_env"] = {"env_vars": dict(res.env_vars)}
        handle = self._remote_cls.options(**options).remote(model_path=self.model_path, name=name,
                                                            **self._worker_kwargs)
        now = time.monotonic()
        slot = Slot(name, handle, "starting", int(self._worker_kwargs.get("policy_version", 0)), now, since=now)
        self._slots[name] = slot
        self._control[handle.stats.remote()] = (name, "start", slot.version, 0)

    def _reconcile(self) -> None:
        """Start or retire actors until the live count matches the target."""
        live = [s for s in self._slots.values() if s.state in LIVE]
        for _ in range(self._target - len(live)):
            self._start_slot()
        if len(live) > self._target:
            # Retire actors holding the least work; ones still starting hold none.
            order = {"starting": 0, "stale": 1, "syncing": 2, "ready": 3}
            live.sort(key=lambda s: (order[s.state], s.work, len(s.outstanding)))
            for slot in live[: len(live) - self._target]:
                slot.state = "draining"
                if not slot.outstanding:
                    self._kill(slot)

    def _kill(self, slot: Slot) -> None:
        self._slots.pop(slot.name, None)
        for ref in [r for r, (name, *_) in self._control.items() if name == slot.name]:
            del self._control[ref]
        try:
            ray.kill(slot.handle, no_restart=True)
        except Exception as exc:  # an already dead actor needs no kill
            log.debug("kill %s: %s", slot.name, exc)

    def _maybe_sync(self, slot: Slot) -> None:
        """Bring a ready actor to the latest version (object store path)."""
        if slot.state != "ready" or slot.serial >= self._serial:
            return
        if self._latest_refs is None:
            slot.state = "stale"
            return
        slot.state, slot.since = "syncing", time.monotonic()
        ref = slot.handle.sync_from_object_store.remote(self._latest_refs, self._version)
        self._control[ref] = (slot.name, "sync", self._version, self._serial)

    def _last_chance(self, job: Job) -> bool:
        return self.policy.max_attempts > 1 and job.deaths >= self.policy.max_attempts - 1

    def _pick_slot(self, job: Job) -> Slot | None:
        ready = [s for s in self._slots.values() if s.state == "ready"]
        if self._last_chance(job):
            # A group one death from failing runs on an actor with no other such group, so a
            # group that crashes actors cannot take innocent groups' last chances down with it.
            ready = [s for s in ready if not any(self._last_chance(self._jobs[r]) for r in s.outstanding)]
        room = [s for s in ready if len(s.outstanding) < self.policy.max_inflight_per_actor]
        preferred = [s for s in room if s.name not in job.excluded]
        if not preferred and not any(s.name not in job.excluded for s in ready):
            # Every ready actor already failed this group once: retrying on one beats stalling.
            preferred = room
        return min(preferred, key=lambda s: (s.work, len(s.outstanding))) if preferred else None

    def _has_room(self) -> bool:
        cap = self.policy.max_inflight_per_actor
        return any(s.state == "ready" and len(s.outstanding) < cap for s in self._slots.values())

    def _dispatch(self) -> None:
        """Send queued groups to actors in queue order; a group that cannot go yet (only actors
        it must avoid have room) keeps its place without holding up the ones behind it."""
        waiting: deque[str] = deque()
        chunks: dict[str, list[Job]] = {}
        now = time.monotonic()
        while self._queue and self._has_room():
            rid = self._queue.popleft()
            job = self._jobs[rid]
            slot = self._pick_slot(job)
            if slot is None:
                waiting.append(rid)
                continue
            job.attempt += 1
            job.slot, job.dispatched_at = slot.name, now
            slot.outstanding[rid] = None
            slot.work += job.work
            chunks.setdefault(slot.name, []).append(job)
        self._queue.extendleft(reversed(waiting))
        for name, jobs in chunks.items():
            slot = self._slots[name]
            # One call for the whole chunk: separate calls trickle in and the first would run
            # as a batch of its own, leaving the rest a full batch behind.
            ref = slot.handle.generate_groups.remote([j.request for j in jobs])
            self._inflight[ref] = [j.request.request_id for j in jobs]
            for j in jobs:
                j.ref = ref
                slot.outstanding[j.request.request_id] = ref

    def _detach(self, job: Job) -> Slot | None:
        """Forget the job's current dispatch (the result of that dispatch is ignored from now on)."""
        rid = job.request.request_id
        carried = self._inflight.get(job.ref)
        if carried is not None and rid in carried:
            carried.remove(rid)
            if not carried:
                del self._inflight[job.ref]
        slot = self._slots.get(job.slot or "")
        if slot is not None and slot.outstanding.pop(job.request.request_id, None) is not None:
            slot.work -= job.work
        job.ref = None
        return slot

    def _retry(self, job: Job, reason: str, death: bool = False) -> None:
        if death:
            job.deaths += 1
        else:
            job.failures += 1
        if max(job.deaths, job.failures) >= self.policy.max_attempts:
            req = job.request
            what = f"on {job.deaths} actor(s) that died" if death else f"after {job.failures} attempt(s)"
            self._deliver(GroupResult(req.request_id, [], [], self._version, job.slot or "",
                                      f"failed {what}: {reason}", req.meta))
            return
        self._counts["redispatches"] += 1
        if job.slot:
            job.excluded.add(job.slot)
        self._queue.appendleft(job.request.request_id)

    def _deliver(self, result: GroupResult) -> None:
        if self._jobs.pop(result.request_id, None) is None:
            self._counts["dropped_stale"] += 1
            return
        self._counts["delivered"] += 1
        self._counts["errors"] += result.error is not None
        self._results.append(result)

    def _actor_died(self, slot: Slot, reason: str) -> None:
        if slot.name not in self._slots:
            return
        log.warning("%s: actor %s (pid %d) died: %s", self.name, slot.name, slot.pid, reason)
        self._counts["deaths"] += 1
        was_live = slot.state in LIVE
        for rid in list(slot.outstanding):
            job = self._jobs.get(rid)
            if job is not None:
                self._detach(job)
                self._retry(job, f"actor {slot.name} died: {reason}", death=True)
        self._kill(slot)
        if was_live:
            cap = self.policy.max_replacements
            if self.policy.replace_dead and (cap is None or self._counts["restarts"] < cap):
                self._counts["restarts"] += 1
            else:
                if self.policy.replace_dead:
                    log.warning("%s: %d dead actor(s) replaced already (rollout.pool.max_replacements); %s is not "
                                "replaced, the pool goes on with one actor fewer", self.name, cap, slot.name)
                self._target -= 1
        self._reconcile()

    def _on_generation(self, ref: Any) -> None:
        rids = self._inflight.pop(ref, [])
        jobs = [self._jobs[r] for r in rids if r in self._jobs and self._jobs[r].ref is ref]
        if not jobs:
            self._counts["dropped_stale"] += 1
            return
        slot = self._slots.get(jobs[0].slot or "")
        for job in jobs:
            self._detach(job)
        try:
            results: list[GroupResult] = ray.get(ref, timeout=0)
        except RayActorError as exc:
            for job in jobs:
                self._retry(job, f"actor {job.slot} died: {str(exc).splitlines()[0][:200]}", death=True)
            if slot is not None:
                self._actor_died(slot, exc.__class__.__name__)
            return
        except TaskCancelledError:
            for job in jobs:
                self._retry(job, "cancelled")
            return
        except Exception as exc:  # the worker raised (engine failure): retry elsewhere, bounded
            for job in jobs:
                self._retry(job, f"{exc.__class__.__name__}: {str(exc).splitlines()[-1][:300]}")
            if slot is not None:
                slot.failures += 1
                if slot.failures >= 2 * self.policy.max_attempts:
                    # Bad requests come back as results; only a broken engine raises again and again.
                    self._actor_died(slot, f"{slot.failures} engine errors in a row")
            return
        by_id = {r.request_id: r for r in results}
        if slot is not None:
            slot.failures = 0
        for job in jobs:
            result = by_id[job.request.request_id]
            tokens = sum(len(s.token_ids) for s in result.samples)
            self._tokens += tokens
            if slot is not None:
                slot.finished += 1
                slot.tokens += tokens
            self._deliver(result)

    def _on_control(self, ref: Any, loads: dict[str, float] | None) -> None:
        name, kind, version, serial = self._control.pop(ref)
        slot = self._slots.get(name)
        if slot is None:
            return
        try:
            value = ray.get(ref, timeout=0)
        except RayActorError as exc:
            if kind == "start":
                self._start_failures += 1
            self._actor_died(slot, f"during {kind}: {exc.__class__.__name__}")
            self._check_start_failures(str(exc))
            return
        except Exception as exc:
            if kind == "sync" and self.policy.sync_backend == "nccl":
                # An aborted broadcast: the engine holds partial weights until the next round.
                slot.state, slot.failures = "stale", slot.failures + 1
                return
            # A sync or start that raised leaves the engine in an unknown state: replace the actor.
            self._start_failures += kind == "start"
            self._actor_died(slot, f"{kind} raised {exc.__class__.__name__}: {str(exc).splitlines()[-1][:300]}")
            self._check_start_failures(str(exc))
            if kind == "sync":
                raise PoolError(f"{self.name}: weight sync on {name} failed: {exc}") from exc
            return
        if kind == "start":
            self._start_failures = 0
            slot.pid = int(value.get("pid", -1))
        else:
            slot.version, slot.serial = version, serial
            if loads is not None:
                loads[name] = float(value)
        if slot.state == "draining":
            if not slot.outstanding:
                self._kill(slot)
            return
        if slot.serial < self._serial and self.policy.sync_backend == "nccl":
            slot.state = "stale"
            return
        slot.state = "ready"
        slot.ready_at = slot.ready_at or time.monotonic()
        self._maybe_sync(slot)

    def _check_start_failures(self, detail: str) -> None:
        if self._start_failures >= self.policy.max_start_failures:
            self._target = 0
            self._reconcile()
            raise PoolError(f"{self.name}: {self._start_failures} actor starts failed in a row; last: {detail}")

    def _check_timeouts(self) -> None:
        now = time.monotonic()
        for ref, rids in list(self._inflight.items()):
            jobs = [self._jobs[r] for r in rids if r in self._jobs]
            if not jobs or now - jobs[0].dispatched_at <= self.policy.request_timeout_s:
                continue
            self._counts["timeouts"] += len(jobs)
            for job in jobs:
                self._detach(job)
            try:
                ray.cancel(ref)
            except Exception as exc:  # cancelling is best effort; the stale result is ignored anyway
                log.debug("cancel of %d timed-out group(s): %s", len(jobs), exc)
            for job in jobs:
                self._retry(job, f"no result within {self.policy.request_timeout_s} s on {job.slot}")
        for slot in list(self._slots.values()):
            if slot.state in ("starting", "syncing") and now - slot.since > self.policy.start_timeout_s:
                self._start_failures += slot.state == "starting"
                self._actor_died(slot, f"{slot.state} for more than {self.policy.start_timeout_s} s")
                self._check_start_failures(f"{slot.name} did not start in time")

    def _tick(self) -> None:
        """Credit the time since the last tick to the state the pool held over it; called before state changes."""
        now = time.monotonic()
        dt, self._ticked_at = now - self._ticked_at, now
        self._area["queued"] += len(self._queue) * dt
        self._area["actors"] += sum(s.state in LIVE for s in self._slots.values()) * dt
        for slot in self._slots.values():
            self._area["inflight"] += len(slot.outstanding) * dt
            slot.busy_s += dt if slot.outstanding else 0.0

    def _step(self, wait_s: float, loads: dict[str, float] | None = None) -> None:
        """Dispatch, wait up to `wait_s` for any result, handle everything that finished."""
        self._tick()
        self._dispatch()
        refs = [*self._inflight, *self._control]
        if refs:
            done, rest = ray.wait(refs, num_returns=1, timeout=wait_s)
            if done and rest:
                more, _ = ray.wait(rest, num_returns=len(rest), timeout=0)
                done += more
            self._tick()
            for ref in done:
                if ref in self._control:
                    self._on_control(ref, loads)
                elif ref in self._inflight:
                    self._on_generation(ref)
        else:
            time.sleep(wait_s)
        self._check_timeouts()
        for slot in list(self._slots.values()):
            if slot.state == "draining" and not slot.outstanding:
                self._kill(slot)
        if (self._queue and self._target == 0 and not self.auto_scale
                and not any(s.state in LIVE for s in self._slots.values())):
            # No actor left and none coming (scaled to zero, or dead and not replaced).
            while self._queue:
                job = self._jobs[self._queue.popleft()]
                req = job.request
                self._deliver(GroupResult(req.request_id, [], [], self._version, job.slot or "",
                                          "no rollout actors left to serve this group", req.meta))
        self._dispatch()

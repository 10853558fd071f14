"""Sizing policy of the elastic rollout pool: config, cluster capacity, autoscale decision.

Kept apart from the pool so the decision is a pure function of (backlog, size, capacity,
policy) that can be reasoned about and tested without starting actors.
"""

from __future__ import annotations

import functools
import importlib
import math
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

# The built-in autoscale policy (`desired_size` below) and the config key that names a policy.
DEFAULT_POLICY = "rlsys.rollout.pool_policy.desired_size"
POLICY_KEY = "rollout.pool.autoscale_policy"


@dataclass
class PoolPolicy:
    """How the pool sizes itself, recovers and syncs weights: the `rollout.pool` config section."""

    # Fewest actors the pool keeps (0 lets an idle pool shrink away).
    min_actors: int = 1
    # Most actors it grows to (>= min_actors).
    max_actors: int = 1
    # Resize the pool between min_actors and max_actors by backlog, starting at rollout.num_actors.
    autoscale: bool = False
    # Groups (queued + in flight) per actor the autoscaler aims for.
    target_backlog: int = 8
    # Start a new actor in place of one that died.
    replace_dead: bool = True
    # Dead actors replaced over the pool's life; past it a dead actor leaves the pool smaller (null: no limit).
    max_replacements: int | None = None
    # Seconds from dispatch to result; past it the group is re-dispatched (or fails after max_attempts).
    request_timeout_s: float = 600.0
    # Dispatches per group before it comes back as an error (a group that kills every actor
    # it lands on must not take the whole pool down with it).
    max_attempts: int = 3
    # Weight sync: "object_store" (Ray object store, any hardware) or "nccl" (CUDA only).
    sync_backend: str = "object_store"
    # Size of one weight-sync bucket, in bytes.
    sync_bucket_bytes: int = 64 << 20
    # Seconds demand must stay low before the autoscaler removes an actor (starting a vLLM
    # engine costs seconds, so flapping is expensive).
    scale_down_delay_s: float = 30.0
    # Groups sent to one actor at a time. The worker batches whatever it holds, so this is the
    # largest engine batch; what stays queued in the pool can still go to a new actor.
    max_inflight_per_actor: int = 64
    # Seconds an actor may take to start (load the model, build the engine).
    start_timeout_s: float = 600.0
    # Consecutive actor start failures (bad model path, no memory) before the pool gives up.
    max_start_failures: int = 3
    # The autoscaler's decision, {_target_: dotted.path} of a callable (backlog, current, capacity, policy) -> actors
    # (other keys are its keyword arguments); the pool keeps the answer within min/max_actors and the cluster's room.
    autoscale_policy: Any = field(default_factory=lambda: {"_target_": DEFAULT_POLICY})

    def __post_init__(self) -> None:
        if self.min_actors < 0 or self.max_actors < max(1, self.min_actors):
            raise ValueError(f"need 0 <= min_actors <= max_actors and max_actors >= 1, got "
                             f"min_actors={self.min_actors} max_actors={self.max_actors}")
        if self.autoscale and self.max_actors < 2:
            # One actor at most leaves the autoscaler nothing to decide: almost surely a forgotten max_actors.
            raise ValueError(f"rollout.pool.max_actors must be >= 2 when rollout.pool.autoscale is on, "
                             f"got max_actors={self.max_actors}")
        if self.sync_backend not in ("object_store", "nccl"):
            raise ValueError(f"sync_backend must be 'object_store' or 'nccl', got {self.sync_backend!r}")
        at_least = {"target_backlog": 1, "max_attempts": 1, "max_inflight_per_actor": 1, "max_start_failures": 1,
                    "sync_bucket_bytes": 1, "scale_down_delay_s": 0.0}
        for name, low in at_least.items():
            if getattr(self, name) < low:
                raise ValueError(f"{name} must be >= {low}, got {getattr(self, name)}")
        if self.max_replacements is not None and self.max_replacements < 0:
            raise ValueError(f"max_replacements must be >= 0 or null, got {self.max_replacements}")
        for name in ("request_timeout_s", "start_timeout_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        # Resolved here, so a policy that does not import fails at start-up, not at the first backlog.
        self._decide = resolve_policy(self.autoscale_policy)

    def decide(self, backlog: int, current: int, capacity: int) -> int:
        """The configured policy's size for `backlog` outstanding groups, kept within [min_actors, max_actors]
        and, when growing, within `capacity` (actors the cluster can hold, counting the current ones)."""
        want = self._decide(backlog, current, capacity, self)
        if isinstance(want, bool) or not isinstance(want, int):
            raise ValueError(f"{POLICY_KEY} ({policy_name(self.autoscale_policy)}) returned {want!r}; "
                             f"expected a number of actors (int)")
        want = max(self.min_actors, min(self.max_actors, want))
        return min(want, max(current, capacity)) if want > current else want

    @classmethod
    def from_config(cls, rollout_cfg: Any, **overrides: Any) -> PoolPolicy:
        """From the `rollout.pool` config section (or any object / mapping with some of its fields)."""
        values: dict[str, Any] = {}
        for f in fields(cls):
            if isinstance(rollout_cfg, dict):
                if f.name in rollout_cfg:
                    values[f.name] = rollout_cfg[f.name]
            elif hasattr(rollout_cfg, f.name):
                values[f.name] = getattr(rollout_cfg, f.name)
        values.update(overrides)
        return cls(**values)


def policy_name(spec: Any) -> str:
    """The dotted path a policy spec names (a path alone, or a mapping with `_target_`)."""
    return str(spec) if isinstance(spec, str) else str(dict(spec.items()).get("_target_")) if hasattr(spec, "items") else repr(spec)


def resolve_policy(spec: Any) -> Callable[[int, int, int, PoolPolicy], int]:
    """The callable `rollout.pool.autoscale_policy` names: a dotted path, or {_target_: path, **kwargs}."""
    kwargs: dict[str, Any] = {}
    if hasattr(spec, "items"):
        kwargs = dict(spec.items())
        target = kwargs.pop("_target_", None)
    else:
        target = spec
    if not isinstance(target, str) or not target.strip():
        raise ValueError(f"{POLICY_KEY} needs `_target_`: the dotted path of a callable "
                         f"(backlog, current, capacity, policy) -> int, got {spec!r}")
    module, sep, attr = target.replace(":", ".").rpartition(".")
    if target == DEFAULT_POLICY:
        fn: Any = desired_size
    else:
        try:
            fn = getattr(importlib.import_module(module), attr) if sep and module else None
        except Exception as exc:  # any import-time failure of a plug-in is a config error naming the key
            raise ValueError(f"{POLICY_KEY}._target_ = {target!r} does not import "
                             f"({exc.__class__.__name__}: {exc})") from None
        if fn is None:
            raise ValueError(f"{POLICY_KEY}._target_ = {target!r} is not a dotted path module.function")
    if not callable(fn):
        raise ValueError(f"{POLICY_KEY}._target_ = {target!r} is not callable")
    return functools.partial(fn, **kwargs) if kwargs else fn


def actors_that_fit(available: dict[str, float], per_actor: dict[str, float]) -> int:
    """How many more actors needing `per_actor` fit into `available` (summed over the cluster).

    Summing over nodes can over-count when no single node has room; Ray then leaves the extra
    actor pending until one does, which the pool treats as a slow start.
    """
    counts = [math.floor(available.get(k, 0.0) / v + 1e-9) for k, v in per_actor.items() if v > 0]
    return max(0, min(counts)) if counts else 1 << 30


def desired_size(backlog: int, current: int, capacity: int, policy: PoolPolicy) -> int:
    """Actors the pool should have for `backlog` outstanding groups.

    Grows to ceil(backlog / target_backlog) within [min_actors, max_actors] and what the cluster
    can place (`capacity`, counting the current actors); never shrinks below min_actors.
    """
    want = math.ceil(backlog / policy.target_backlog) if backlog > 0 else 0
    want = max(policy.min_actors, min(policy.max_actors, want))
    if want > current:
        want = min(want, max(current, capacity))
    return want

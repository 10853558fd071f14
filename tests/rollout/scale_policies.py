"""Autoscale policies for the `rollout.pool.autoscale_policy` tests (imported by dotted path)."""

from __future__ import annotations

import time
from typing import Any


def fixed(backlog: int, current: int, capacity: int, policy: Any, size: int = 2) -> int:
    """`size` actors while there is work, none wanted otherwise (the pool keeps min_actors)."""
    return size if backlog else 0


def not_a_number(backlog: int, current: int, capacity: int, policy: Any) -> Any:
    return "three"


NOT_CALLABLE = 3


# Per process (the pool calls its policy in the driver): when `burst` first saw work outstanding.
_BURST_SINCE: list[float] = []


def burst(backlog: int, current: int, capacity: int, policy: Any, size: int = 3, for_s: float = 60.0) -> int:
    """Demand that rises once and falls away: `size` actors from the first backlog seen, for `for_s` seconds; after
    that none wanted (the pool keeps min_actors). An RL step's own backlog comes and goes within the step (a fraction
    of a second with tiny models), so a policy on the backlog alone flaps or never shrinks, at the sampling's whim."""
    if backlog and not _BURST_SINCE:
        _BURST_SINCE.append(time.monotonic())
    return size if _BURST_SINCE and time.monotonic() - _BURST_SINCE[0] < for_s else 0

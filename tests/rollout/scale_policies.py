"""Autoscale policies for the `rollout.pool.autoscale_policy` tests (imported by dotted path)."""

from __future__ import annotations

from typing import Any


def fixed(backlog: int, current: int, capacity: int, policy: Any, size: int = 2) -> int:
    """`size` actors while there is work, none wanted otherwise (the pool keeps min_actors)."""
    return size if backlog else 0


def not_a_number(backlog: int, current: int, capacity: int, policy: Any) -> Any:
    return "three"


NOT_CALLABLE = 3

"""A reward that an untrained tiny model earns about half the time, so groups have mixed pass rates."""

from __future__ import annotations


def even_length(prompt: str, completion: str, **_: object) -> float:
    """1 when the completion has an even number of characters."""
    return float(len(completion) % 2 == 0)

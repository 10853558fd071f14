"""A reward that an untrained tiny model can earn (its samples vary in digit content)."""

from __future__ import annotations


def digit_share(prompt: str, completion: str, **_: object) -> float:
    """Share of characters that are digits: some random answers score high, most low."""
    if not completion:
        return 0.0
    return sum(ch.isdigit() for ch in completion) / len(completion)

"""A reward that an untrained tiny model earns about half the time, so groups have mixed pass rates."""

from __future__ import annotations


def even_length(prompt: str, completion: str, **_: object) -> float:
    """1 when the completion has an even number of characters."""
    return float(len(completion) % 2 == 0)


def parity_answer(prompt: str, completion: str, **_: object) -> dict:
    """Reads the completion's length parity as its final answer ("even" / "odd", the `extracted` extra, as
    rewards.math reports one) and verifies it against the gold "even": a stand-in math verifier whose answers
    an untrained model gives about half the time, for the cold-start stage's answer check."""
    parity = "odd" if len(completion) % 2 else "even"
    return {"score": float(parity == "even"), "extracted": parity}

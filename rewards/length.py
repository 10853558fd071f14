"""Soft overlong penalty (DAPO-style): zero for normal lengths, ramping to -1 near the length limit."""

from __future__ import annotations


def length_penalty(
    prompt: str,
    completion: str,
    completion_tokens: int | None = None,
    max_len: int = 4096,
    buffer: int = 1024,
    **_: object,
) -> dict:
    """0 up to `max_len - buffer`, then linearly down to -1 at `max_len`, and -1 beyond.

    Length is `completion_tokens` when the rollout supplies it, else the whitespace word count.
    """
    if not 0 < buffer <= max_len:
        raise ValueError(f"need 0 < buffer <= max_len, got buffer={buffer}, max_len={max_len}")
    length = completion_tokens if completion_tokens is not None else len(completion.split())
    free = max_len - buffer
    if length <= free:
        score = 0.0
    elif length <= max_len:
        score = (free - length) / buffer
    else:
        score = -1.0
    return {"score": score, "length": float(length)}

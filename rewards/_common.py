"""Small text helpers shared by the built-in rewards (stdlib only)."""

from __future__ import annotations

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"


def answer_part(completion: str) -> str | None:
    """The part of a completion after its reasoning block.

    Returns the text after the last `</think>`, the whole completion when it has no think tags, and
    None when a `<think>` was opened but never closed (the model ran out of tokens mid-reasoning, so
    nothing it wrote is a final answer).
    """
    if THINK_CLOSE in completion:
        return completion.rsplit(THINK_CLOSE, 1)[1]
    if THINK_OPEN in completion:
        return None
    return completion

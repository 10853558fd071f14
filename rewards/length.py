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


def reference_word_limit(reference_words: int, ratio: float = 1.5, slack_words: int = 10) -> float:
    """The most words `reference_length_penalty` lets an answer have before it costs anything."""
    if ratio <= 0 or slack_words < 0:
        raise ValueError(f"need ratio > 0 and slack_words >= 0, got ratio={ratio}, slack_words={slack_words}")
    return ratio * reference_words + slack_words


def reference_length_penalty(
    prompt: str,
    completion: str,
    response: str | None = None,
    ratio: float = 1.5,
    slack_words: int = 10,
    **_: object,
) -> dict:
    """Length control against the row's reference response, in words.

    limit = ratio * reference words + slack_words; the score is 0 up to the limit, then
    -(words - limit) / limit, floored at -1 (twice the limit). Alignment RL lengthens IF answers
    past what their constraints allow, and held-out IF falls where answers grew (docs/benchmarks/
    alignment.md); this term bounds the drift per row. A row without a reference scores 0 and is
    counted in `no_reference`.
    """
    # Computed before the no-reference branch, so bad settings fail on every row.
    limit = reference_word_limit(len((response or "").split()), ratio, slack_words)
    words = len(completion.split())
    if not response:
        return {"score": 0.0, "no_reference": 1.0, "words": float(words)}
    over = max(0.0, words - limit)
    return {"score": -min(1.0, over / limit), "no_reference": 0.0, "words": float(words)}

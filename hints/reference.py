"""Hints from a row's reference response, for rows whose only help is a worked answer (IF, format).

Level k of `max_level` shows the first ceil(k / max_level) of the reference's words as the start of a
response that follows every instruction; the top level shows the whole reference. Alignment RL on the
tiny model gets no signal from constraints it almost never meets (docs/benchmarks/alignment.md); a
prefix of a verified answer makes them reachable, the way the math rows' own hints do for hard problems.
"""

from __future__ import annotations

import math


class ReferenceHints:
    """Hint generator `(row, level) -> str` over the row's `field` (default: `response`)."""

    def __init__(self, max_level: int = 5, field: str = "response") -> None:
        if max_level < 1:
            raise ValueError(f"max_level must be >= 1, got {max_level}")
        self.max_level = max_level
        self.field = field

    def __call__(self, row: dict, level: int) -> str:
        reference = row.get(self.field)
        if not isinstance(reference, str) or not reference.strip():
            raise ValueError(f"row {row.get('id')!r} has no reference {self.field!r} to build a hint from")
        if level >= self.max_level:
            return "a response that follows every instruction:\n" + reference
        words = reference.split()
        shown = math.ceil(len(words) * max(level, 1) / self.max_level)
        return "a response that follows every instruction begins:\n" + " ".join(words[:shown])

"""The base class of a math problem type: sampling, wording, worked solution and hint levels."""

from __future__ import annotations

import random

from rlsys.data.tasks.arith import Calc, Worked


class Template:
    """One problem type. Subclasses define sampling, wording, the worked solution and hint levels 1-3."""

    name: str = ""
    tier: int = 0

    def sample(self, rng: random.Random) -> dict:
        raise NotImplementedError

    def key(self, p: dict) -> str:
        raise NotImplementedError

    def prompt(self, p: dict, rng: random.Random) -> str:
        raise NotImplementedError

    def solve(self, p: dict, calc: Calc) -> tuple[Worked, int]:
        raise NotImplementedError

    def concept_hints(self, p: dict) -> tuple[str, str, str]:
        """Levels 1-3: what to notice, which method, which rule. No steps and no results."""
        raise NotImplementedError

    def first_step(self, p: dict, worked: Worked) -> str:
        """Level 4: the first concrete step with its numbers (default: the solution's first line)."""
        return "First step: " + worked.lines[0]

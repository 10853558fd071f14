"""The base of the visual task types: sampling, question, worked solution, five-level hints."""

from __future__ import annotations

import random

from rlsys.data.tasks.arith import box


def ordinal(n: int) -> str:
    return {1: "1st", 2: "2nd", 3: "3rd"}.get(n, f"{n}th")


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


class VisualTask:
    """One task type. Subclasses sample a scene and a query and compute everything else from them."""

    name = ""
    tier = 0
    prompts: tuple[str, ...] = ()

    def sample(self, rng: random.Random, size: int) -> tuple[dict, dict]:
        raise NotImplementedError

    def key(self, scene: dict, query: dict) -> str:
        raise NotImplementedError

    def prompt(self, scene: dict, query: dict, rng: random.Random) -> str:
        return rng.choice(self.prompts).format(**query)

    def solve(self, scene: dict, query: dict) -> tuple[list[str], int]:
        """Solution lines (the final boxed line excluded) and the integer answer."""
        raise NotImplementedError

    def concept_hints(self, scene: dict, query: dict) -> tuple[str, str, str]:
        """Levels 1-3 (concept, strategy, formula / tool): no numbers read from the picture."""
        raise NotImplementedError

    def first_step(self, scene: dict, query: dict, lines: list[str]) -> str:
        """Level 4: the first concrete step, with its numbers (default: the solution's first line)."""
        return "First step: " + lines[0][:1].lower() + lines[0][1:]

    def hints(self, scene: dict, query: dict) -> list[str]:
        """The five hint levels of Keye-VL 1.5 Table 9; level 5 is the full solution."""
        lines, answer = self.solve(scene, query)
        return [
            *self.concept_hints(scene, query),
            self.first_step(scene, query, lines),
            solution_text(lines, answer),
        ]


def solution_text(lines: list[str], answer: int) -> str:
    return "\n".join([*lines, box(answer)])



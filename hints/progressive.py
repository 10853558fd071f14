"""Progressive hint sampling (Keye-VL 1.5 §4.4.2), as pure logic: levels, cache, statistics.

For a problem whose group failed every attempt, the controller re-samples with hint levels
start, start+1, ..., max_level (the hint appended after the query) and stops at the first level
where some answer is correct: the problem's *minimal level*. The answers sampled at that level
are the ones trained on. Each problem's minimal level is cached; next time the problem comes up
sampling starts `fade` levels lower, so help fades as the model improves (our choice; the report
does not say how levels are revisited).

Level 0 means "no hint". Hint levels follow Keye-VL 1.5's progressive hint sampling: 1 concept, 2 strategy, 3 formula/tool,
4 first step, 5 complete solution.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

MAX_LEVEL = 5


@dataclass
class HintLevelCache:
    """problem id -> minimal hint level found the last time (absent = solved without hints)."""

    levels: dict[str, int] = field(default_factory=dict)

    def start_level(self, problem_id: str, fade: int) -> int:
        """Where to start sampling next time: `fade` levels below the cached minimal level."""
        return max(0, self.levels.get(problem_id, 0) - fade)

    def record(self, problem_id: str, minimal_level: int | None, max_level: int) -> None:
        """Store the outcome; None (unsolved even at max_level) keeps the problem at max_level."""
        level = max_level if minimal_level is None else minimal_level
        if level <= 0:
            self.levels.pop(problem_id, None)
        else:
            self.levels[problem_id] = level

    def state_dict(self) -> dict[str, Any]:
        return {"levels": dict(self.levels)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.levels = dict(state["levels"])


def level_sequence(start: int, max_level: int) -> list[int]:
    """Levels to try in order, from `start` (0 = no hint) up to `max_level`."""
    if not 0 <= max_level <= MAX_LEVEL:
        raise ValueError(f"max_level must be in [0, {MAX_LEVEL}], got {max_level}")
    return list(range(min(start, max_level), max_level + 1))


class LevelSearch:
    """Minimal-level search for many problems at once, one level at a time per problem.

    The controller samples each unresolved problem at its `pending()` level (all together, or each as soon as
    its previous level came back: rlsys/rl/inflight.py) and `report`s the number of correct answers; a problem
    resolves at the first level
    with a correct answer, or as unsolved after `max_level` (or its own lower level in `caps`: a problem
    whose higher hinted prompts do not fit the engine).
    """

    def __init__(self, starts: dict[str, int], max_level: int, caps: dict[str, int] | None = None) -> None:
        caps = caps or {}
        self._todo = {pid: level_sequence(start, min(max_level, caps.get(pid, max_level)))
                      for pid, start in starts.items()}
        self.minimal: dict[str, int | None] = {}
        self.tried: dict[str, list[tuple[int, int]]] = {pid: [] for pid in starts}

    def pending(self) -> dict[str, int]:
        return {pid: levels[0] for pid, levels in self._todo.items()}

    def report(self, problem_id: str, level: int, n_correct: int) -> None:
        levels = self._todo[problem_id]
        if levels[0] != level:
            raise ValueError(f"{problem_id}: expected a result for level {levels[0]}, got {level}")
        self.tried[problem_id].append((level, n_correct))
        levels.pop(0)
        if n_correct > 0:
            self.minimal[problem_id] = level
            del self._todo[problem_id]
        elif not levels:
            self.minimal[problem_id] = None
            del self._todo[problem_id]

    def abandon(self, problem_id: str) -> None:
        """Stop searching `problem_id` without a verdict (its rollout was lost): no minimal level is recorded."""
        del self._todo[problem_id]

    @property
    def done(self) -> bool:
        return not self._todo


def search_minimal_level(
    start: int, max_level: int, sample_and_count: Callable[[int], int]
) -> tuple[int | None, list[tuple[int, int]]]:
    """One problem's search: (minimal level or None, [(level, n_correct), ...] tried)."""
    search = LevelSearch({"p": start}, max_level)
    while not search.done:
        level = search.pending()["p"]
        search.report("p", level, sample_and_count(level))
    return search.minimal["p"], search.tried["p"]


class HintSource:
    """Hint text per (row, level): the row's `hints` field, else a configured generator.

    With `data_sources`, rows of other sources are never offered hints (`available` is False).

    The generator is any callable `(row, level) -> str` (e.g. an LLM behind the OpenAI client),
    loaded by `_target_`; its answers are memoised per (row id, level).
    """

    def __init__(self, generator: Callable[[dict, int], str] | None = None,
                 data_sources: list[str] | None = None) -> None:
        self.generator = generator
        # None: every row; else only rows of these data sources get hints.
        self.data_sources = None if data_sources is None else frozenset(data_sources)
        self._memo: dict[tuple[str, int], str] = {}

    def available(self, row: dict) -> bool:
        if self.data_sources is not None and row.get("data_source") not in self.data_sources:
            return False
        return bool(row.get("hints")) or self.generator is not None

    def hint(self, row: dict, level: int) -> str | None:
        if level <= 0:
            return None
        hints = row.get("hints") or []
        if hints:
            return hints[min(level, len(hints)) - 1]
        if self.generator is None:
            return None
        key = (str(row.get("id")), level)
        if key not in self._memo:
            self._memo[key] = str(self.generator(row, level))
        return self._memo[key]


@dataclass
class HintStats:
    """Per level: problems tried and their correct counts (Keye Table 9 shape)."""

    attempts: dict[int, list[int]] = field(default_factory=lambda: defaultdict(list))
    minimal: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def add_tries(self, tried: list[tuple[int, int]]) -> None:
        for level, n_correct in tried:
            self.attempts[level].append(n_correct)

    def add_minimal(self, level: int | None) -> None:
        self.minimal["unsolved" if level is None else str(level)] += 1

    def table(self, group_size: int) -> list[dict[str, Any]]:
        """Rows: level, problems, share with 0/G correct, mean number correct of G."""
        rows = []
        for level in sorted(self.attempts):
            counts = self.attempts[level]
            rows.append(
                {
                    "level": "no hint" if level == 0 else f"L{level}",
                    "problems": len(counts),
                    f"share_0_of_{group_size}": sum(c == 0 for c in counts) / len(counts),
                    f"mean_correct_of_{group_size}": sum(counts) / len(counts),
                }
            )
        return rows

    def state_dict(self) -> dict[str, Any]:
        return {"attempts": {str(k): v for k, v in self.attempts.items()}, "minimal": dict(self.minimal)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.attempts = defaultdict(list, {int(k): list(v) for k, v in state["attempts"].items()})
        self.minimal = defaultdict(int, state["minimal"])


def format_table(rows: list[dict[str, Any]]) -> str:
    """Markdown rendering of `HintStats.table`."""
    if not rows:
        return "(no groups needed hints)\n"
    keys = list(rows[0])
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    for row in rows:
        cells = [f"{v:.3f}" if isinstance(v, float) else str(v) for v in row.values()]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


"""Math problems in three tiers: sampling, held-out split, worked solutions, five-level hints.

Row schema (also what a user's own RL data looks like, see docs/DATA.md):
`{"id", "data_source": "rlsys/math", "task": "math", "tier", "prompt", "answer", "solution", "hints", "key"}`.

Splits: every problem has a canonical `key` built from its operation and operands only (never from the
wording, the story frame or the operand order of a commutative operation). A salted hash of the key decides
train vs held-out, so a problem can never land in both splits, whatever the seed or the number of rows
asked for; within a split each key is used once until the template's problem space runs out.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator
from dataclasses import dataclass

from rlsys.data.tasks.arith import Calc, Worked, box
from rlsys.data.tasks.math_templates import TIER1, TIER2
from rlsys.data.tasks.template import Template
from rlsys.data.tasks.word_problems import TIER3

DATA_SOURCE = "rlsys/math"
SPLITS = ("train", "eval")
DEFAULT_SPLIT_SALT = "rlsys-math-v1"
DEFAULT_EVAL_FRACTION = 0.2
# Consecutive duplicate draws after which a template counts as exhausted for this split.
_EXHAUSTED_AFTER = 400


@dataclass(frozen=True)
class Problem:
    template: Template
    params: dict
    key: str
    prompt: str
    split: str

    @property
    def tier(self) -> int:
        return self.template.tier

    def solve(self, calc: Calc | None = None) -> tuple[Worked, int]:
        return self.template.solve(self.params, calc or Calc())

    @property
    def answer(self) -> int:
        return self.solve()[1]


def solution_text(lines: list[str], answer: int | str) -> str:
    return "\n".join([*lines, box(answer)])


def hints_for(problem: Problem) -> list[str]:
    """The five hint levels (Keye-VL 1.5 Table 9 definitions), appended after the query by the sampler."""
    worked, answer = problem.solve()
    l1, l2, l3 = problem.template.concept_hints(problem.params)
    return [
        l1,
        l2,
        l3,
        problem.template.first_step(problem.params, worked),
        solution_text(worked.lines, answer),
    ]


def split_of(key: str, salt: str = DEFAULT_SPLIT_SALT, eval_fraction: float = DEFAULT_EVAL_FRACTION) -> str:
    """Deterministic split of a canonical key; independent of the generation seed on purpose, so the
    held-out set of one seed is never in another seed's training data either."""
    digest = hashlib.sha256(f"{salt}\x00{key}".encode()).digest()
    bucket = int.from_bytes(digest[:8], "big") / 2**64
    return "eval" if bucket < eval_fraction else "train"


def _templates() -> dict[int, list[Template]]:
    return {1: list(TIER1), 2: list(TIER2), 3: list(TIER3)}


def templates(tier: int) -> list[Template]:
    return _templates()[tier]


def iter_problems(
    tier: int,
    split: str,
    seed: int,
    salt: str = DEFAULT_SPLIT_SALT,
    eval_fraction: float = DEFAULT_EVAL_FRACTION,
    stream: str = "rows",
) -> Iterator[Problem]:
    """Endless stream of problems of one tier from one split, each key once while the space lasts.

    `stream` names an independent random stream (the RL rows, the pretraining corpus and the preference
    pairs draw different problems from the same split). Once every template is exhausted keys repeat, but
    always from the same split.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    rng = random.Random(f"math|{seed}|{tier}|{split}|{stream}")
    pool = templates(tier)
    live = list(range(len(pool)))
    misses = [0] * len(pool)
    used: set[str] = set()
    while True:
        t_index = rng.choice(live) if live else rng.randrange(len(pool))
        template = pool[t_index]
        params = template.sample(rng)
        key = template.key(params)
        if split_of(key, salt, eval_fraction) != split:
            continue
        if key in used and live:
            misses[t_index] += 1
            if misses[t_index] >= _EXHAUSTED_AFTER and t_index in live:
                live.remove(t_index)
            continue
        misses[t_index] = 0
        used.add(key)
        yield Problem(template, params, key, template.prompt(params, rng), split)


def problem_row(problem: Problem, row_id: str) -> dict:
    worked, answer = problem.solve()
    return {
        "id": row_id,
        "data_source": DATA_SOURCE,
        "task": "math",
        "tier": problem.tier,
        "prompt": problem.prompt,
        "answer": str(answer),
        "solution": solution_text(worked.lines, answer),
        "hints": hints_for(problem),
        "key": problem.key,
    }


def math_rows(
    n_per_tier: int,
    split: str,
    seed: int,
    salt: str = DEFAULT_SPLIT_SALT,
    eval_fraction: float = DEFAULT_EVAL_FRACTION,
    stream: str = "rows",
) -> list[dict]:
    """`n_per_tier` rows of each tier from `split`; ids look like `math-t2-train-000123` (the default
    stream) or `math-t2-train-sft-000123` (another named stream)."""
    rows: list[dict] = []
    tag = "" if stream == "rows" else f"{stream}-"
    for tier in (1, 2, 3):
        problems = iter_problems(tier, split, seed, salt, eval_fraction, stream)
        for i in range(n_per_tier):
            rows.append(problem_row(next(problems), f"math-t{tier}-{split}-{tag}{i:06d}"))
    return rows

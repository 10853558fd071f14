"""Harder math problems by composition: a simple problem whose answer feeds one or two follow-up steps.

Keye-VL 1.5 makes a task harder when the model already solves it by chaining it with others. Here a
chain starts from a tier 1-3 problem of the same split and adds steps "add / subtract / multiply the
last answer by k", each a tier-1 problem of its own whose first operand is the previous answer:

    Step 1: What is 34 + 58?
    Step 2: Subtract 17 from the answer of step 1.
    What is the answer of the last step?

The key is the first problem's key plus the steps, and a chain lives in the first problem's split, so a
held-out chain never starts from a training problem. Rows are tier 4 of `rlsys/math` with a worked
solution (each step's working in turn) and the five hint levels like every math row.
"""

from __future__ import annotations

import random

from rlsys.data.tasks.arith import Calc, Worked, apply
from rlsys.data.tasks.math_tasks import DATA_SOURCE, Problem, iter_problems, solution_text

CHAIN_TIER = 4
# How each follow-up step is worded; {k} is the step's own operand, {prev} the step it builds on.
_STEP_WORDS = {
    "+": ("Add {k} to the answer of step {prev}.", "Increase the answer of step {prev} by {k}."),
    "-": ("Subtract {k} from the answer of step {prev}.", "Take {k} away from the answer of step {prev}."),
    "*": ("Multiply the answer of step {prev} by {k}.", "Take {k} times the answer of step {prev}."),
}


def _follow_up(rng: random.Random, value: int) -> tuple[str, int]:
    """One step on `value`: an operation the tier-1/2 working covers (a one-digit factor for products)."""
    ops = ["+", "*"] + (["-"] if value >= 2 else [])
    op = rng.choice(ops)
    if op == "*":
        return op, rng.randint(2, 9)
    if op == "-":
        return op, rng.randint(1, min(value, 99))
    return op, rng.randint(2, 99)


def chain_solution(first: Problem, steps: list[tuple[str, int]]) -> tuple[Worked, list[int]]:
    """The worked chain and each step's answer (first problem's first)."""
    worked = Worked()
    inner, value = first.solve()
    worked.add("Step 1:")
    worked.extend(inner)
    answers = [value]
    for i, (op, k) in enumerate(steps, 2):
        worked.add(f"Step {i}: {value} {op} {k}.")
        inner, value = apply(op, value, k, Calc())
        worked.extend(inner)
        answers.append(value)
    return worked, answers


def chain_row(first: Problem, steps: list[tuple[str, int]], rng: random.Random, row_id: str) -> dict:
    worked, answers = chain_solution(first, steps)
    lines = [f"Step 1: {first.prompt}"]
    for i, (op, k) in enumerate(steps, 2):
        lines.append(f"Step {i}: " + rng.choice(_STEP_WORDS[op]).format(k=k, prev=i - 1))
    lines.append("What is the answer of the last step?")
    _, l2, l3 = first.template.concept_hints(first.params)
    hints = [
        f"This is a chain of {len(steps) + 1} steps: each step uses the answer of the step before it, so "
        "solve them in order.",
        f"Step 1 first. {l2}",
        f"{l3} Then carry step 1's answer into step 2.",
        f"First step: step 1 gives {answers[0]}.",
        solution_text(worked.lines, answers[-1]),
    ]
    key = f"chain[{first.key}]" + "".join(f"|{op}{k}" for op, k in steps)
    return {
        "id": row_id,
        "data_source": DATA_SOURCE,
        "task": "math",
        "tier": CHAIN_TIER,
        "prompt": "\n".join(lines),
        "answer": str(answers[-1]),
        "solution": solution_text(worked.lines, answers[-1]),
        "hints": hints,
        "key": key,
    }


def chain_rows(n: int, split: str, seed: int, max_steps: int = 2) -> list[dict]:
    """`n` chains from `split`: the first problem of a tier drawn uniformly from 1-3, then 1 to
    `max_steps` follow-up steps. Ids look like `math-t4-train-000012`."""
    rng = random.Random(f"chain|{seed}|{split}")
    streams = {tier: iter_problems(tier, split, seed, stream="chain") for tier in (1, 2, 3)}
    rows = []
    for i in range(n):
        first = next(streams[rng.randint(1, 3)])
        value, steps = first.answer, []
        for _ in range(rng.randint(1, max_steps)):
            op, k = _follow_up(rng, value)
            steps.append((op, k))
            value = apply(op, value, k, Calc())[1]
        rows.append(chain_row(first, steps, rng, f"math-t{CHAIN_TIER}-{split}-{i:06d}"))
    return rows


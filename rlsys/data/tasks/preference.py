"""Preference pairs for MPO and reward-model training.

Row: `{"id", "data_source", "task": "preference", "prompt", "chosen", "rejected"}`.

Math pairs: chosen is the correct worked solution; rejected is the same solution with one one-digit fact
slipped (e.g. 7 + 5 = 13) and the error carried through every later step to a wrong final answer.
IF pairs: chosen passes every constraint; rejected is built the same way with one constraint ignored
and fails it.

No trivial marker separates the sides: both are rendered in one of three styles (full steps, brief
results only, full steps plus a re-check), each style appears as often on the chosen side as on the
rejected side, and the style pairing makes the chosen response shorter in some pairs and longer in
others (the reward model anneals on shorter-chosen pairs; MPO sees both).
"""

from __future__ import annotations

import random

from rewards.ifeval import check_constraints
from rlsys.data.tasks.arith import Calc, Worked
from rlsys.data.tasks.ifeval_tasks import DATA_SOURCE as IF_SOURCE
from rlsys.data.tasks.ifeval_tasks import IF_SALT, Draft, build_response, draft, respond
from rlsys.data.tasks.math_tasks import DATA_SOURCE as MATH_SOURCE
from rlsys.data.tasks.math_tasks import Problem, iter_problems, solution_text, split_of

STYLES = ("full", "brief", "checked")
# (chosen style, rejected style): every style sits on each side equally often across the cycle.
STYLE_PAIRS = (
    ("full", "full"),
    ("brief", "full"),
    ("full", "brief"),
    ("checked", "full"),
    ("full", "checked"),
    ("brief", "checked"),
    ("checked", "brief"),
    ("brief", "brief"),
    ("checked", "checked"),
)
IF_SHARE = 0.25


def render(worked: Worked, answer: int, style: str) -> str:
    if style == "full":
        return solution_text(worked.lines, answer)
    brief = worked.brief_lines() or worked.lines[-1:]
    if style == "brief":
        return solution_text(brief, answer)
    if style == "checked":
        return solution_text([*worked.lines, "Check the results again:", *brief], answer)
    raise ValueError(f"unknown style {style!r}; expected one of {STYLES}")


def slipped_solution(problem: Problem, rng: random.Random, tries: int = 12) -> tuple[Worked, int] | None:
    """The problem's solution with one fact wrong and the error propagated; None if no slip position
    gives a different, still well-formed final answer (e.g. every slip hits an exact division)."""
    counter = Calc()
    _, gold = problem.solve(counter)
    for _ in range(tries):
        calc = Calc(slip_at=rng.randrange(counter.count), slip_delta=rng.choice((1, 1, 1, 2, 10)))
        try:
            worked, wrong = problem.solve(calc)
        except ValueError:
            # The slip made a later step impossible in this format (a negative difference, an inexact
            # division); a person would have noticed, so it is not a plausible wrong solution.
            continue
        if calc.slipped and wrong != gold:
            return worked, wrong
    return None


def math_pair(problem: Problem, rng: random.Random, styles: tuple[str, str]) -> dict | None:
    slip = slipped_solution(problem, rng)
    if slip is None:
        return None
    worked, answer = problem.solve()
    return {
        "data_source": MATH_SOURCE,
        "prompt": problem.prompt,
        "chosen": render(worked, answer, styles[0]),
        "rejected": render(*slip, styles[1]),
    }


def if_pair(rng: random.Random, split: str) -> tuple[dict, Draft] | None:
    """A verified IF response against one built from the same sentences with one constraint ignored;
    returned with its draft (which holds the constraints the pair was judged by)."""
    d = draft(rng, rng.choice((2, 3, 3, 4)))
    if split_of(d.key, IF_SALT) != split or not respond(d, rng):
        return None
    order = list(range(len(d.constraints)))
    rng.shuffle(order)
    for skip in order:
        kept = [c for i, c in enumerate(d.constraints) if i != skip]
        rejected = build_response(d.request, d.title, d.pool[: d.size], kept, rng)
        if rejected != d.response and not all(check_constraints(rejected, d.constraints, d.prompt)):
            return {
                "data_source": IF_SOURCE,
                "prompt": d.prompt,
                "chosen": d.response,
                "rejected": rejected,
            }, d
    return None


def preference_rows(n: int, seed: int, split: str) -> list[dict]:
    """`n` pairs from `split` (math problems of all tiers, a quarter IF pairs)."""
    rng = random.Random(f"pref|{seed}|{split}")
    streams = {tier: iter_problems(tier, split, seed, stream="pref") for tier in (1, 2, 3)}
    rows: list[dict] = []
    misses = 0
    while len(rows) < n:
        styles = STYLE_PAIRS[len(rows) % len(STYLE_PAIRS)]
        if rng.random() < IF_SHARE:
            found = if_pair(rng, split)
            pair = found[0] if found else None
        else:
            pair = math_pair(next(streams[rng.choice((1, 2, 3))]), rng, styles)
        if pair is None or pair["chosen"] == pair["rejected"]:
            misses += 1
            if misses > 10 * n + 100:
                raise RuntimeError(f"could not build preference pairs: {misses} misses for {len(rows)} kept")
            continue
        rows.append({"id": f"pref-{split}-{len(rows):06d}", "task": "preference", **pair})
    return rows

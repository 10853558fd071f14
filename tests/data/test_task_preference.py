"""Preference pairs: correct vs slipped math solutions, IF pass vs violation, no trivial markers."""

from __future__ import annotations

import random
import re
from collections import Counter

from math_verify import parse, verify

from rewards.ifeval import check_constraints
from rlsys.data.tasks.math_tasks import iter_problems
from rlsys.data.tasks.preference import (
    STYLE_PAIRS,
    if_pair,
    math_pair,
    preference_rows,
    render,
    slipped_solution,
)


def _verifies(gold: str, text: str) -> bool:
    return verify(parse(gold, parsing_timeout=None), parse(text, parsing_timeout=None), timeout_seconds=None)


def test_math_pairs_chosen_correct_rejected_wrong() -> None:
    rng = random.Random(0)
    checked = 0
    for tier in (1, 2, 3):
        for problem in [p for _, p in zip(range(60), iter_problems(tier, "train", seed=9, stream="pref"))]:
            styles = STYLE_PAIRS[checked % len(STYLE_PAIRS)]
            pair = math_pair(problem, rng, styles)
            if pair is None:
                continue
            gold = str(problem.answer)
            assert pair["chosen"] != pair["rejected"] and pair["prompt"] == problem.prompt
            assert _verifies(gold, pair["chosen"]), pair
            assert not _verifies(gold, pair["rejected"]), pair
            checked += 1
    assert checked > 160


def test_a_slipped_solution_is_one_wrong_fact_carried_through() -> None:
    problem = next(p for p in iter_problems(2, "train", seed=1) if p.template.name == "t2-add")
    worked, gold = problem.solve()
    slipped, wrong = slipped_solution(problem, random.Random(4))
    assert wrong != gold and len(slipped.lines) == len(worked.lines)
    differing = [i for i, (a, b) in enumerate(zip(worked.lines, slipped.lines)) if a != b]
    assert differing and differing[-1] == len(worked.lines) - 1  # the error reaches the result line


def test_suite_pairs_mix_lengths_and_have_no_marker(suite_rows: dict[str, list[dict]]) -> None:
    rows = suite_rows["pref_train"] + suite_rows["pref_eval"]
    assert len(rows) == 300
    sources = Counter(r["data_source"] for r in rows)
    assert sources["rlsys/math"] > 150 and sources["rlsys/ifeval"] > 30
    ratios = [len(r["chosen"]) / len(r["rejected"]) for r in rows]
    assert sum(x < 0.8 for x in ratios) > 30 and sum(x > 1.25 for x in ratios) > 30
    for r in rows:
        assert set(r) == {"id", "data_source", "task", "prompt", "chosen", "rejected"}
        assert r["chosen"] != r["rejected"]
    # Every rendering style's marker line shows up on both sides about equally often.
    marker = "Check the results again:"
    math_rows = [r for r in rows if r["data_source"] == "rlsys/math"]
    on_chosen = sum(marker in r["chosen"] for r in math_rows)
    on_rejected = sum(marker in r["rejected"] for r in math_rows)
    assert abs(on_chosen - on_rejected) <= 0.2 * max(on_chosen, on_rejected)
    # The final line has the same shape on both sides.
    for r in math_rows:
        assert re.search(r"The answer is \\boxed\{\d+\}\.$", r["chosen"])
        assert re.search(r"The answer is \\boxed\{\d+\}\.$", r["rejected"])


def test_if_pairs_violate_a_constraint() -> None:
    rng = random.Random(3)
    found = [p for p in (if_pair(rng, "train") for _ in range(150)) if p is not None]
    assert len(found) > 100
    for pair, d in found:
        assert pair["prompt"] == d.prompt and pair["chosen"] != pair["rejected"]
        assert all(check_constraints(pair["chosen"], d.constraints, d.prompt))
        assert not all(check_constraints(pair["rejected"], d.constraints, d.prompt))


def test_render_styles() -> None:
    problem = next(iter_problems(3, "train", seed=2))
    worked, answer = problem.solve()
    full, brief, checked = (render(worked, answer, s) for s in ("full", "brief", "checked"))
    assert len(brief) < len(full) < len(checked)
    assert all(t.endswith(f"\\boxed{{{answer}}}.") for t in (full, brief, checked))


def test_preference_rows_deterministic() -> None:
    assert preference_rows(30, seed=1, split="eval") == preference_rows(30, seed=1, split="eval")
    assert preference_rows(30, seed=1, split="eval") != preference_rows(30, seed=2, split="eval")

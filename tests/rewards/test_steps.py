"""The step verifier: which arithmetic statements are false, and where their results are."""

import json

import pytest

from rewards.steps import arithmetic_steps, check_statements, false_results
from rlsys.data.tasks.arith import Calc, add, div, mul, sub


def _results(text: str) -> list[tuple[bool, str]]:
    return [(ok, text[a:b]) for ok, (a, b) in check_statements(text)]


def test_column_addition_with_write_and_carry() -> None:
    text = "Ones: 7 + 5 = 12, write 2, carry 1.\nTens: 2 + 3 + 1 = 6.\nSo 27 + 35 = 62."
    assert _results(text) == [(True, "12"), (True, "2"), (True, "1"), (True, "6"), (True, "62")]


def test_false_fact_and_inconsistent_write_digits() -> None:
    # 7 + 5 is 12, not 13; the written digit follows the stated 13 (3) but the carry does not (0 vs 1).
    text = "Ones: 7 + 5 = 13, write 3, carry 0.\nTens: 2 + 3 = 5."
    assert _results(text) == [(False, "13"), (True, "3"), (False, "0"), (True, "5")]
    spans = false_results(text)
    assert [text[a:b] for a, b in spans] == ["13", "0"]


def test_precedence_chains_and_division() -> None:
    text = "7 * 4 = 28, 28 + 2 = 31, write 1, carry 3.\n9 * 10 = 90, so 90 / 9 = 10.\n7 - 1 - 4 = 3."
    assert _results(text) == [(True, "28"), (False, "31"), (True, "1"), (True, "3"), (True, "90"), (True, "10"),
                              (False, "3")]
    assert _results("2 + 3 * 4 = 14. 20 / 4 - 1 = 4.") == [(True, "14"), (True, "4")]


@pytest.mark.parametrize("text", [
    "Equation: 9x - 88 = 2.",            # a variable on the left
    "x / 3 + 19 = 24.",                  # the expression continues to the left of the digits
    "5 * 63 = 63 * 5.",                  # the right side is not a number
    "It costs 1.5 + 2 = 3.5 dollars.",   # decimals are not integer statements
    "Subtract 45 from both sides: 3x = 72 - 45.",
    "7 / 0 = 1.",                        # undefined: skipped, not called true or false
])
def test_statements_that_are_skipped(text: str) -> None:
    assert check_statements(text) == []


def test_reward_is_share_of_true_statements() -> None:
    assert arithmetic_steps("q", "3 * 5 = 15. 3 * 6 = 19.")["score"] == 0.5
    assert arithmetic_steps("q", "No arithmetic here.")["score"] == 1.0


def test_generated_solutions_are_all_true_and_slips_are_found() -> None:
    # The task generator's own worked solutions must pass; a Calc slip must be caught.
    for op, a, b in [(add, 478, 356), (sub, 702, 158), (mul, 86, 7), (div, 96, 8), (mul, 7, 86)]:
        worked, _ = op(a, b, Calc())
        text = "\n".join(worked.lines)
        assert false_results(text) == [], text
        slipped, _ = op(a, b, Calc(slip_at=0))
        assert false_results("\n".join(slipped.lines)), slipped.lines


def test_embedded_suite_solutions_have_no_false_statement() -> None:
    from rlsys.data.tasks.math_tasks import math_rows

    rows = math_rows(n_per_tier=60, split="train", seed=3)
    checked = 0
    for row in rows:
        found = check_statements(row["solution"])
        checked += len(found)
        assert all(ok for ok, _ in found), json.dumps(row)
    assert checked > 3 * len(rows)

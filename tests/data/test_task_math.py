"""Math task generator: splits, determinism, verifiable answers, hint levels, learnable solutions."""

from __future__ import annotations

import re
from collections import Counter

import pytest
from math_verify import parse, verify

from rlsys.data.tasks.arith import Calc, add, mul, number_words, sub
from rlsys.data.tasks.math_tasks import iter_problems, math_rows, split_of, templates


def _verifies(gold: str, text: str) -> bool:
    return verify(parse(gold, parsing_timeout=None), parse(text, parsing_timeout=None), timeout_seconds=None)


def _boxed(text: str) -> str:
    return re.findall(r"\\boxed\{([^}]*)\}", text)[-1]


def test_every_gold_answer_verifies_against_its_own_solution(suite_rows: dict[str, list[dict]]) -> None:
    rows = suite_rows["math_train"] + suite_rows["math_eval"]
    assert len(rows) == 900
    bad = [r["id"] for r in rows if not _verifies(r["answer"], r["solution"])]
    assert bad == []
    # The boxed value is exactly the gold answer, and a wrong number does not verify.
    assert all(_boxed(r["solution"]) == r["answer"] for r in rows)
    assert not _verifies(rows[0]["answer"], rows[0]["solution"].replace("boxed{", "boxed{1"))


def test_row_schema_and_five_hint_levels(suite_rows: dict[str, list[dict]]) -> None:
    for r in suite_rows["math_train"][:150] + suite_rows["math_eval"][:150]:
        assert r["data_source"] == "rlsys/math" and r["task"] == "math" and r["tier"] in (1, 2, 3)
        assert r["id"].startswith(f"math-t{r['tier']}-")
        assert r["solution"].endswith(f"The answer is \\boxed{{{r['answer']}}}.")
        hints = r["hints"]
        assert len(hints) == 5 and all(isinstance(h, str) and h.strip() for h in hints)
        assert f"\\boxed{{{r['answer']}}}" in hints[4] and hints[4] == r["solution"]
        # Levels 1-3 name no method step with numbers and never give the result away.
        for h in hints[:3]:
            assert f"= {r['answer']}" not in h and "boxed" not in h
        assert hints[3].startswith("First step:") and "boxed" not in hints[3]


def test_splits_are_disjoint_by_canonical_key_even_when_the_space_runs_out() -> None:
    # Tier 1 holds a few thousand distinct problems; asking for more forces repeats, never crossings.
    train = math_rows(3000, "train", seed=1)
    held_out = math_rows(1000, "eval", seed=2)
    train_keys = {r["key"] for r in train}
    eval_keys = {r["key"] for r in held_out}
    assert train_keys.isdisjoint(eval_keys)
    assert all(split_of(k) == "train" for k in train_keys) and all(split_of(k) == "eval" for k in eval_keys)
    # Prompts cannot cross either (the same problem in other words has the same key).
    assert {r["prompt"] for r in train}.isdisjoint({r["prompt"] for r in held_out})
    tier1 = [r for r in held_out if r["tier"] == 1]
    assert len(tier1) == 1000 and len({r["key"] for r in tier1}) < 1000  # repeats once exhausted


def test_keys_ignore_wording_and_operand_order() -> None:
    add_t = next(t for t in templates(1) if t.name == "t1-add")
    assert add_t.key({"a": 3, "b": 40}) == add_t.key({"a": 40, "b": 3})
    sub_t = next(t for t in templates(1) if t.name == "t1-sub")
    assert sub_t.key({"a": 40, "b": 3}) != sub_t.key({"a": 43, "b": 3})


def test_deterministic_by_seed() -> None:
    assert math_rows(30, "train", seed=5) == math_rows(30, "train", seed=5)
    assert math_rows(30, "train", seed=5) != math_rows(30, "train", seed=6)


@pytest.mark.parametrize("tier", [1, 2, 3])
def test_templates_and_wordings_per_tier(tier: int) -> None:
    assert len(templates(tier)) >= 3
    problems = [p for _, p in zip(range(600), iter_problems(tier, "train", seed=3))]
    by_template = Counter(p.template.name for p in problems)
    assert len(by_template) == len(templates(tier)) and min(by_template.values()) > 50
    for name in by_template:
        shapes = {re.sub(r"\d+", "N", p.prompt) for p in problems if p.template.name == name}
        assert len(shapes) >= 3, (name, shapes)


def test_solutions_are_short_and_regular(suite_rows: dict[str, list[dict]]) -> None:
    # A rough token count (each digit, word and symbol one token) against the tier budgets.
    def tokens(text: str) -> int:
        return len(re.findall(r"\d|[A-Za-z]+|[^\sA-Za-z\d]", text))

    limits = {1: 60, 2: 90, 3: 140}
    for r in suite_rows["math_train"] + suite_rows["math_eval"]:
        assert tokens(r["solution"]) <= limits[r["tier"]], r["solution"]
        assert len(r["answer"]) <= 6 and r["answer"].isdigit()
    means = {
        t: sum(tokens(r["solution"]) for r in suite_rows["math_train"] if r["tier"] == t) / 200
        for t in (1, 2, 3)
    }
    assert means[1] < means[2] < means[3]


def test_hard_tier_is_multi_step(suite_rows: dict[str, list[dict]]) -> None:
    hard = [r for r in suite_rows["math_train"] if r["tier"] == 3]
    assert all(len(r["solution"].splitlines()) >= 3 for r in hard)
    kinds = Counter(r["key"].split(":")[0] for r in hard)
    assert set(kinds) == {"order", "lin", "word"}


def test_column_arithmetic_text() -> None:
    w, total = add(27, 35, Calc())
    assert total == 62
    assert w.lines == ["Ones: 7 + 5 = 12, write 2, carry 1.", "Tens: 2 + 3 + 1 = 6.", "So 27 + 35 = 62."]
    w, diff = sub(42, 25, Calc())
    assert diff == 17 and w.lines[0] == "Ones: 12 - 5 = 7, borrow 1." and w.lines[1] == "Tens: 4 - 1 - 2 = 1."
    w, prod = mul(47, 6, Calc())
    assert prod == 282 and w.lines[1] == "Tens: 4 * 6 = 24, 24 + 4 = 28."
    for a in range(0, 400, 7):
        for b in range(0, 60, 11):
            assert add(a, b, Calc())[1] == a + b and mul(a, b % 10, Calc())[1] == a * (b % 10)
            if a >= b:
                assert sub(a, b, Calc())[1] == a - b


def test_a_slip_propagates_to_a_wrong_result() -> None:
    calc = Calc(slip_at=0, slip_delta=1)
    w, total = add(27, 35, calc)
    assert calc.slipped and total == 63 and w.lines[0] == "Ones: 7 + 5 = 13, write 3, carry 1."
    calc = Calc(slip_at=0, slip_delta=1)
    _, total = add(29, 31, calc)  # 9 + 1 = 11 now carries into the tens
    assert total == 61


def test_number_words() -> None:
    assert number_words(0) == "zero" and number_words(42) == "forty two"
    assert number_words(315) == "three hundred fifteen" and number_words(12000) == "twelve thousand"

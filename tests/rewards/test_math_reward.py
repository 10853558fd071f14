import pytest

from rewards.math import extract_answer, math_reward

# (completion, gold answer, expected score)
CASES = [
    (r"Half of one is \boxed{\frac{1}{2}}.", "0.5", 1.0),
    (r"So the value is \boxed{0.5}", r"\frac{1}{2}", 1.0),
    (r"Expanding gives \boxed{x^2+2x+1}", "(x+1)^2", 1.0),
    (r"The roots are \boxed{\{2, 1\}}", "{1, 2}", 1.0),
    (r"The roots are \boxed{2, 1}", "{1, 2}", 1.0),
    (r"\boxed{-7}", "-7", 1.0),
    (r"\boxed{7}", "-7", 0.0),
    (r"\boxed{\dfrac{3}{4}}", "3/4", 1.0),
    (r"\boxed{5}", "x=5", 1.0),
    ("The answer is $x = 5$.", "x=5", 1.0),
    ("Adding them up.\nanswer: 12", "12", 1.0),
    ("**Answer:** 3/4", "3/4", 1.0),
    ("The answer is 0.5 because half of it is left.", "1/2", 1.0),
    ("The final answer is 1,000.", "1000", 1.0),
    ("We had 3 apples and then bought 9, so 12 apples", "12", 0.0),  # no final-answer statement
    (r"\boxed{21}", "12", 0.0),
    (r"\boxed{0.05}", "0.5", 0.0),
    ("I could not solve this.", "3", 0.0),
    (r"<think>Maybe \boxed{5}? No, I made an error.</think> The answer is \boxed{6}", "6", 1.0),
    (r"<think>Maybe \boxed{5}? No, I made an error.</think> The answer is \boxed{6}", "5", 0.0),
    (r"First \boxed{5}, but correcting the sign: \boxed{6}", "6", 1.0),
    (r"<think>It is \boxed{5} I think, but let me check", "5", 0.0),
    (r"\boxed{\frac{\sqrt{2}}{2}}", r"\frac{1}{\sqrt{2}}", 1.0),
]


@pytest.mark.parametrize(("completion", "gold", "expected"), CASES)
def test_math_reward_table(completion: str, gold: str, expected: float) -> None:
    out = math_reward("What is it?", completion, answer=gold)
    assert out["score"] == expected
    assert out["acc"] == expected


@pytest.mark.parametrize(
    ("completion", "extracted"),
    [
        (r"\boxed{\frac{a}{b+\{c\}}} trailing", r"\frac{a}{b+\{c\}}"),
        (r"\boxed{1} then \boxed{2}", "2"),
        (r"unbalanced \boxed{3", None),  # an unclosed box states nothing; no last-number fallback
        ("Final answer: -4.", "-4"),
        ("nothing here", None),
    ],
)
def test_extract_answer(completion: str, extracted: str | None) -> None:
    assert extract_answer(completion) == extracted


def test_partial_credit_is_off_by_default_and_only_for_parseable_wrong_answers() -> None:
    out = math_reward("q", r"\boxed{21}", answer="12")
    assert (out["score"], out["extracted"], out["acc"]) == (0.0, "21", 0.0)
    assert math_reward("q", r"\boxed{21}", answer="12", partial_credit=0.1)["score"] == 0.1
    assert math_reward("q", "no idea", answer="12", partial_credit=0.1)["score"] == 0.0
    assert math_reward("q", r"\boxed{12}", answer="12", partial_credit=0.1)["score"] == 1.0


def test_integer_gold_and_unparseable_gold() -> None:
    assert math_reward("q", r"\boxed{42}", answer=42, data_source="gsm8k")["score"] == 1.0
    with pytest.raises(ValueError, match="could not be parsed"):
        math_reward("q", r"\boxed{42}", answer="")

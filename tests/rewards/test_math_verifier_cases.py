"""The math verifier on the answer forms a policy writes: one table per class of past false credit or
false miss, each row (completion, gold, expected score, expected extraction path)."""

import json
from pathlib import Path

import pytest

from rewards.math import is_equivalent, math_reward
from rewards.math_extract import PATHS, normalise
from rlsys.reward.manager import RewardManager
from rlsys.reward.plugins import load_reward_fns
from rlsys.stages.sampling import reward_sample

# Credit a policy could win without stating the answer, or by stating a rounded one.
FALSE_CREDIT = [
    # cut off mid-reasoning: the last number equals the gold, but nothing was concluded
    ("First, 14 + 9 = 23. Then 23 * 2 = 46. Now we still need to subtract the", "46", 0.0, "none"),
    ("<think>ok</think>We multiply first: 6 * 7 = 42, and then take away", "42", 0.0, "none"),
    ("The total cost is 3 * 4 = 12 dollars, and then the tax", "12", 0.0, "none"),
    # numbers restated from the question
    ("Tom has 15 marbles and Ann has 8. Compare Ann's 8 with Tom's 15", "15", 0.0, "none"),
    ("Given: a rectangle 9 by 4. Its area is length times width with 9 and 4", "4", 0.0, "none"),
    # a rounded decimal of a non-terminating value is not the exact value
    (r"\boxed{0.333333}", r"\frac{1}{3}", 0.0, "boxed"),
    ("Answer: 0.666667", "2/3", 0.0, "answer_line"),
    (r"The answer is \boxed{1.732051}", r"\sqrt{3}", 0.0, "boxed"),
    (r"\boxed{3.141593}", r"\pi", 0.0, "boxed"),
]

# Right answers that were scored wrong.
FALSE_MISS = [
    # an answer line followed by a check or an explanation
    ("Answer: 7 (check: 7 * 3 = 21)", "7", 1.0, "answer_line"),
    ("The answer is 9 (because 3 * 3 = 9).", "9", 1.0, "answer_line"),
    ("Final answer: 24 [verified: 4! = 24]", "24", 1.0, "answer_line"),
    ("The answer is 15, which is 3 * 5.", "15", 1.0, "answer_line"),
    # a boxed answer corrected by a later explicit statement, and the reverse
    (r"So \boxed{5}. Wait, 2 * 3 is 6, not 5. Final answer: 6", "6", 1.0, "answer_line"),
    (r"\boxed{10}\nOn second thought the last step was wrong.\nThe answer is 12.", "12", 1.0, "answer_line"),
    (r"Final answer: 6. Rechecking the sign: \boxed{-6}", "-6", 1.0, "boxed"),
    # currency and units inside the box
    (r"\boxed{\$12}", "12", 1.0, "boxed"),
    (r"\boxed{5\text{ cm}}", "5", 1.0, "boxed"),
    (r"\boxed{7.50\text{ dollars}}", "7.5", 1.0, "boxed"),
    (r"\boxed{36 \mathrm{cm}^2}", "36", 1.0, "boxed"),
    (r"\boxed{5 cm}", "5", 1.0, "boxed"),
    (r"\boxed{€20}", "20", 1.0, "boxed"),
    # digit-group separators
    (r"\boxed{1\,000}", "1000", 1.0, "boxed"),
    ("The answer is 1 000 000.", "1000000", 1.0, "answer_line"),
    ("Answer: 12,345", "12345", 1.0, "answer_line"),
    ("Answer: 2\u2009500 people", "2500", 1.0, "answer_line"),
    # mixed numbers
    ("Answer: 2 1/2", "5/2", 1.0, "answer_line"),
    ("The answer is 2 3/4 cups.", r"\frac{11}{4}", 1.0, "answer_line"),
    (r"\boxed{-1 1/3}", "-4/3", 1.0, "boxed"),
    # an inequality against the equivalent interval, either way round
    (r"\boxed{x > 3}", r"(3, \infty)", 1.0, "boxed"),
    (r"\boxed{(3, \infty)}", "x > 3", 1.0, "boxed"),
    (r"Answer: $x \le -2$", r"(-\infty, -2]", 1.0, "answer_line"),
    (r"\boxed{-1 < x \leq 4}", "(-1, 4]", 1.0, "boxed"),
    # e-notation
    ("Answer: 1.5e3", "1500", 1.0, "answer_line"),
    (r"\boxed{2E-2}", "0.02", 1.0, "boxed"),
    ("Answer: 3.2e-4", "0.00032", 1.0, "answer_line"),
    # unicode root and pi
    ("Answer: 2√3", r"2\sqrt{3}", 1.0, "answer_line"),
    (r"\boxed{3π}", r"3\pi", 1.0, "boxed"),
    ("The answer is √(2)/2.", r"\frac{\sqrt{2}}{2}", 1.0, "answer_line"),
    # small number words
    ("The answer is seven.", "7", 1.0, "answer_line"),
    ("Answer: twelve apples", "12", 1.0, "answer_line"),
    (r"\boxed{\text{twenty-one}}", "21", 1.0, "boxed"),
]

# Other ways of stating an answer.
OTHER_FORMS = [
    ("The answer is therefore 12.", "12", 1.0, "answer_line"),
    ("The answers are 3 and 4.", r"\{3,4\}", 1.0, "answer_line"),
    ("The answer is 10 - 3 = 7", "7", 1.0, "answer_line"),
    ("The answer is 1/4 of the pie", "1/4", 1.0, "answer_line"),
    ("Answer: 4 cm²", "4", 1.0, "answer_line"),
    (r"\boxed{0.1\overline{6}}", "1/6", 1.0, "boxed"),
    (r"\boxed{0.\overline{3}}", "0.3", 0.0, "boxed"),
    (r"Final answer: $\$1{,}250$", "1250", 1.0, "answer_line"),
    ("The answer is 12 (twelve).", "12", 1.0, "answer_line"),
    ("So the final answer is 81 and we are done.", "81", 1.0, "answer_line"),
]

# The same forms stay wrong when the value is wrong: the rewriting does not make answers match.
STILL_WRONG = [
    (r"\boxed{\$13}", "12", 0.0, "boxed"),
    ("Answer: 2 1/4", "5/2", 0.0, "answer_line"),
    (r"\boxed{x \geq 3}", r"(3, \infty)", 0.0, "boxed"),
    ("Answer: 1.5e2", "1500", 0.0, "answer_line"),
    ("The answer is eight.", "7", 0.0, "answer_line"),
    ("Answer: 5x", "5", 0.0, "answer_line"),
    ("Answer: 5 and 6", "5", 0.0, "answer_line"),
    ("The answer is 5 or 6.", "5", 0.0, "answer_line"),
    # a scale word changes the value: never dropped as a unit
    ("The answer is 2 million.", "2", 0.0, "answer_line"),
    ("Answer: 3 dozen", "3", 0.0, "answer_line"),
    ("The answer is one hundred.", "1", 0.0, "answer_line"),
    (r"\boxed{1\,001}", "1000", 0.0, "boxed"),
]


@pytest.mark.parametrize(("completion", "gold", "score", "path"), FALSE_CREDIT + FALSE_MISS + OTHER_FORMS + STILL_WRONG)
def test_score_and_path(completion: str, gold: str, score: float, path: str) -> None:
    out = math_reward("What is it?", completion, answer=gold)
    assert (out["score"], out["acc"]) == (score, score)
    assert {p: out[f"path/{p}"] for p in PATHS} == {p: float(p == path) for p in PATHS}


@pytest.mark.parametrize(
    ("completion", "stated"),
    [
        # the later statement wins, boxed or not
        (r"\boxed{1} ... Final answer: 2", "2"),
        (r"Final answer: 2 ... \boxed{1}", "1"),
        ("Answer: 3\nRe-reading the question. Answer: 4", "4"),
        # "The answer is \boxed{7}" is one statement: the box
        (r"The answer is \boxed{7}.", "7"),
        # Minerva-style double statement; a heading with the answer on the next line
        ("Final Answer: The final answer is $8$. I hope it is correct.", "$8$"),
        ("**Final answer**\n\n$$\n42\n$$", "$$\n42\n$$"),
    ],
)
def test_the_last_final_answer_statement_counts(completion: str, stated: str) -> None:
    assert math_reward("q", completion, answer="0")["extracted"] == stated


@pytest.mark.parametrize("completion", [r"The answer is \boxed{46}.", "Answer: 46", "We get 46"])
def test_a_completion_cut_by_the_length_limit_scores_zero(completion: str) -> None:
    out = math_reward("q", completion, answer="46", finish_reason="length", fallback_last_number=True)
    assert (out["score"], out["acc"], out["path/truncated"]) == (0.0, 0.0, 1.0)
    # the same text, ended by a stop: judged as usual
    assert math_reward("q", completion, answer="46", finish_reason="stop")["path/truncated"] == 0.0


def test_finish_reason_reaches_the_reward_through_the_sample() -> None:
    row = {"id": "r1", "prompt": "What is 6 * 7?", "answer": "42", "data_source": "rlsys/math"}
    cut = reward_sample(row, r"6 * 7 = 42, so \boxed{42}", 9, finish_reason="length")
    done = reward_sample(row, r"6 * 7 = 42, so \boxed{42}", 9, finish_reason="stop")
    assert math_reward(**cut)["score"] == 0.0
    assert math_reward(**done)["score"] == 1.0


def test_last_number_fallback_is_opt_in_and_skips_the_questions_numbers() -> None:
    prompt = "Tom has 15 marbles and gives away 8. How many are left?"
    assert math_reward(prompt, "15 - 8 = 7 marbles", answer="7")["path/none"] == 1.0
    out = math_reward(prompt, "15 - 8 = 7 marbles", answer="7", fallback_last_number=True)
    assert (out["score"], out["path/fallback"], out["extracted"]) == (1.0, 1.0, "7")
    # the last number is one the question gave: the one before it is taken
    out = math_reward(prompt, "so 7, from 15 and 8", answer="15", fallback_last_number=True)
    assert (out["score"], out["extracted"]) == (0.0, "7")


def test_partial_credit_needs_a_parseable_answer_and_an_unfinished_one_gets_none() -> None:
    assert math_reward("q", "Answer: 2 1/4", answer="5/2", partial_credit=0.2)["score"] == 0.2
    assert math_reward("q", "so far 5/2 and", answer="5/2", partial_credit=0.2)["score"] == 0.0
    cut = math_reward("q", "Answer: 2 1/4", answer="5/2", partial_credit=0.2, finish_reason="length")
    assert cut["score"] == 0.0


@pytest.mark.parametrize(
    ("raw", "written"),
    [
        (r"\$1\,250", "1250"),
        ("3 hours", "3"),
        ("2 1/2", r"\frac{5}{2}"),
        (r"x \geq 3", r"[3, \infty)"),
        ("3 < x", r"(3, \infty)"),
        ("forty-two", "42"),
        ("2√3", r"2\sqrt{3}"),
        (r"90^\circ", "90"),
        ("one half", "one half"),  # a fraction word is no unit: left for math-verify to refuse
        ("x^2 + 1", "x^2 + 1"),
    ],
)
def test_normalise(raw: str, written: str) -> None:
    assert normalise(raw) == written


def test_exact_comparison_of_numbers() -> None:
    assert is_equivalent("1/2", "0.5") and is_equivalent(r"\frac{1}{4}", "0.25")
    assert is_equivalent("7", "7.0") and is_equivalent("x = 5", "5")
    assert not is_equivalent("1/3", "0.3333333333")
    assert not is_equivalent(r"\frac{\sqrt{2}}{2}", "0.7071068")
    assert is_equivalent("0.5", r"\frac{1}{2}")
    with pytest.raises(ValueError, match="could not be parsed"):
        is_equivalent("", "3")


def test_paths_reach_the_run_metrics_as_shares() -> None:
    rows = [(r"\boxed{4}", "stop"), ("Answer: 4", "stop"), (r"\boxed{4}", "length"), ("so 4", "stop")]
    samples = [{"prompt": "q", "completion": c, "answer": "4", "data_source": "m", "finish_reason": f} for c, f in rows]
    with RewardManager(load_reward_fns([{"_target_": "math"}]), timeout_s=10.0) as manager:
        scores, extras, metrics = manager.score_batch(samples)
    assert scores == [1.0, 1.0, 0.0, 0.0]
    assert [e["math/path/truncated"] for e in extras] == [0.0, 0.0, 1.0, 0.0]
    shares = {p: metrics[f"reward/math/path/{p}"] for p in PATHS}
    assert shares == {"boxed": 0.25, "answer_line": 0.25, "fallback": 0.0, "none": 0.25, "truncated": 0.25}


AGREEMENT = [json.loads(line) for line in (Path(__file__).parent / "data" / "math_agreement.jsonl").open()]


@pytest.mark.parametrize("case", AGREEMENT, ids=[f"{i}-{c['class']}" for i, c in enumerate(AGREEMENT)])
def test_agreement_set_case(case: dict) -> None:
    # The labelled set scripts/bench_math_verifier.py measures old and new verifiers on.
    fields = {"finish_reason": case["finish_reason"]} if "finish_reason" in case else {}
    out = math_reward(case["prompt"], case["completion"], answer=case["gold"], **fields)
    assert out["acc"] == case["truth"]

"""Keye's reasoning-data stages (rlsys/jobs/reasoning_data.py): the pass-rate threshold of filtered SFT and
the cold-start path selection (majority, gold, step check, quality, up-sampling) on hand-made paths."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from rlsys.jobs.reasoning_data import (
    PathFacts,
    answer_key,
    choose_paths,
    cold_start_row,
    copies,
    dropped_by_pass_rate,
    judge_paths,
    majority_answer,
    path_facts,
)

RIGHT = "Ones: 9 + 4 = 13, write 3, carry 1.\nTens: 3 + 2 + 1 = 6.\nSo 39 + 24 = 63.\nThe answer is \\boxed{63}."
SLIPPED = RIGHT.replace("3 + 2 + 1 = 6", "3 + 2 + 1 = 7")


def facts(answer: str | None, gold_ok: bool, statements: int = 3, false: int = 0, tokens: int = 50,
          truncated: bool = False) -> PathFacts:
    return PathFacts(answer, gold_ok, truncated, statements, false, tokens)


def test_threshold_drops_rows_at_or_above_it_and_counts_k_ths_exactly():
    rates = [0.0, 0.25, 0.5, 0.75, 1.0, 3 / 4]
    assert dropped_by_pass_rate(rates, 1.0) == [False, False, False, False, True, False]
    # 3/4 computed as a float reaches a 0.75 threshold: the boundary is "at or above".
    assert dropped_by_pass_rate(rates, 0.75) == [False, False, False, True, True, True]
    assert dropped_by_pass_rate([2 / 3, 0.66], 0.6667 - 1e-4) == [True, False]


def test_answers_vote_by_value_and_a_tie_at_the_top_has_no_majority():
    assert answer_key("0.5") == answer_key("1/2") == answer_key("$\\frac{1}{2}$")
    assert answer_key("12") != answer_key("21") and answer_key(None) is None and answer_key(" ") is None
    keys = [answer_key(a) for a in ("7", "7.0", "8", None, None)]
    assert majority_answer(keys) == answer_key("7")  # two votes beat one; no-answers never vote
    assert majority_answer([answer_key("7"), answer_key("8")]) is None
    assert majority_answer([None, None]) is None and majority_answer([]) is None


def test_a_path_is_kept_only_when_gold_majority_and_steps_all_hold():
    paths = [
        facts("63", True),                 # 0: right, majority, steps hold -> kept
        facts("63", True, false=1),        # 1: right answer through a false step -> process check fails
        facts("63", True, statements=0),   # 2: no worked step at all (min_steps = 1) -> process check fails
        facts("64", False),                # 3: wrong answer
        facts("63", True, truncated=True), # 4: cut at the length limit -> answer check fails
        facts(None, False),                # 5: no answer
    ]
    v = judge_paths(paths, min_steps=1, max_tokens=100, length_weight=0.0)
    assert [x.kept for x in v] == [True, False, False, False, False, False]
    assert [x.majority_ok for x in v] == [True, True, True, False, True, False]
    assert [x.answer_ok for x in v] == [True, True, True, False, False, False]
    assert [x.steps_ok for x in v] == [True, False, False, True, True, True]
    # min_steps = 0 accepts a path with nothing to check.
    assert judge_paths(paths, 0, 100, 0.0)[2].kept


def test_the_gold_alone_or_the_majority_alone_is_not_enough():
    # The majority (3 of 4) agrees on a wrong answer: the one right path is not the majority, nothing is kept.
    wrong_majority = [facts("5", False), facts("5", False), facts("5", False), facts("6", True)]
    assert not any(x.kept for x in judge_paths(wrong_majority, 1, 100, 0.0))
    # A tie at the top: no majority, so even the right paths are not trusted.
    tie = [facts("6", True), facts("6", True), facts("5", False), facts("5", False)]
    assert not any(x.kept or x.majority_ok for x in judge_paths(tie, 1, 100, 0.0))


def test_quality_is_agreement_times_process_confidence_times_the_length_term():
    paths = [facts("63", True, tokens=20), facts("63", True, tokens=80), facts("63", True, false=1),
             facts("62", False)]
    v = judge_paths(paths, min_steps=1, max_tokens=100, length_weight=0.5)
    # 3 of 4 paths reach 63; 2 of those 3 pass the step check.
    assert v[0].agree == 0.75 and v[0].steps == pytest.approx(2 / 3)
    assert v[0].quality == pytest.approx(0.75 * 2 / 3 * (1 - 0.5 * 0.2), abs=1e-6)
    assert v[1].quality == pytest.approx(0.75 * 2 / 3 * (1 - 0.5 * 0.8), abs=1e-6)
    assert v[0].quality > v[1].quality  # shorter is better at equal confidence
    # Longer than max_tokens counts as max_tokens; with no length weight every agreeing path scores the same.
    full = judge_paths([facts("1", True, tokens=500)] * 2, 1, 100, 0.0)
    assert [x.quality for x in full] == [1.0, 1.0]


def test_paths_written_are_distinct_best_first_and_capped():
    paths = [facts("63", True, tokens=90), facts("63", True, tokens=10), facts("63", True, tokens=10),
             facts("63", True, false=1)]
    texts = ["long path", "short path", " short path ", "slipped"]
    v = judge_paths(paths, 1, 100, 0.1)
    assert choose_paths(v, texts, keep_paths=0) == [1, 0]  # the duplicate text (2) and the slipped path (3) go
    assert choose_paths(v, texts, keep_paths=1) == [1]
    assert choose_paths(judge_paths([facts(None, False)], 1, 100, 0.1), ["x"], 0) == []
    assert choose_paths(judge_paths([facts("1", True, statements=0)], 0, 100, 0.1), ["  "], 0) == []  # no response


def test_top_quality_band_is_up_sampled():
    assert copies(0.8, up_sample=3, threshold=0.8) == 3  # at the threshold: in the band
    assert copies(0.7999, 3, 0.8) == 1 and copies(1.0, 1, 0.8) == 1
    v = judge_paths([facts("63", True, tokens=10)] * 4, 1, 100, 0.1)[0]
    row = {"id": "math-1", "prompt": "Find 39 + 24.", "answer": "63", "solution": RIGHT, "hints": ["h"],
           "data_source": "rlsys/math", "tier": 3}
    rows = [cold_start_row(row, RIGHT, v, 2, c, 2) for c in range(2)]
    assert [r["id"] for r in rows] == ["math-1-path2", "math-1-path2-copy1"]
    assert rows[0]["response"] == RIGHT and rows[0]["copies"] == 2 and rows[0]["quality"] == pytest.approx(0.99)
    assert "solution" not in rows[0] and "hints" not in rows[0] and rows[0]["tier"] == 3
    chat = cold_start_row({"id": "c", "messages": [{"role": "user", "content": "2+2?"}]}, "4", v, 0, 0, 1)
    assert chat["messages"][-1] == {"role": "assistant", "content": "4"} and "response" not in chat


def test_path_facts_take_the_verifiers_answer_and_count_false_steps():
    sample = SimpleNamespace(text=SLIPPED, token_ids=[1] * 30, finish_reason="stop")
    got = path_facts(sample, {"correct": True, "math": 1.0, "math/extracted": "63"})
    assert got == PathFacts("63", True, False, 5, 1, 30)
    # The verifier read no answer (math_reward reports ""): none, even if the text has one.
    assert path_facts(sample, {"correct": False, "math/extracted": ""}).answer is None
    # No entry reports one: rewards.math's own extraction.
    cut = SimpleNamespace(text=RIGHT, token_ids=[1] * 64, finish_reason="length")
    assert path_facts(cut, {"correct": False}) == PathFacts("63", False, True, 5, 0, 64)

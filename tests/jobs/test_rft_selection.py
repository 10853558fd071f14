"""Rejection sampling and the RFT-RL filter as pure functions, and the judge's data rows."""

from __future__ import annotations

from collections import Counter

import pytest

from rewards.pairwise_judge import format_ok, parse_verdict
from rlsys.eval.judge import judge_accuracy
from rlsys.jobs.judge import (
    has_distinct_answers,
    judge_row,
    judge_rows,
    recheck_rationale,
    solved_rationale,
)
from rlsys.jobs.rft import attach_gold, choose_replacements, keep_by_pass_rate, pass_rate_histogram, rank_keys
from rlsys.stages.io import pick_rows
from rlsys.stages.refs import resolve_refs, stage_refs


def test_a_sample_replaces_the_stored_answer_only_when_it_ranks_strictly_higher():
    stored = [(1.0, 0.5), (1.0, 0.5), (0.0, 0.9), (1.0, 0.2), (0.5, 0.0)]
    sampled = [
        [(1.0, 0.4), (1.0, 0.6), None],      # tie on the verifier, better tie-break -> sample 1
        [(1.0, 0.5), (1.0, 0.5)],            # equal -> keep the stored answer
        [(0.0, 0.95), (1.0, 0.1)],           # the verifier outranks any tie-break score -> sample 1
        [(0.0, 0.99), (0.9, 0.99)],          # every sample verifies worse -> keep
        [None, None],                        # truncated / failed samples never win
    ]
    assert choose_replacements(stored, sampled) == [1, None, 1, None, None]


def test_replacement_picks_the_first_of_equally_good_samples_and_checks_lengths():
    assert choose_replacements([(0.0, 0.0)], [[(1.0, 0.0), (1.0, 0.0)]]) == [0]
    with pytest.raises(ValueError, match="2 stored answers but 1 sample lists"):
        choose_replacements([(0.0, 0.0), (0.0, 0.0)], [[(1.0, 0.0)]])


def test_rank_keys_move_tie_break_entries_out_of_the_combined_score():
    weights = {"math": 1.0, "rm": 0.5}
    extras = [{"math": 1.0, "rm": 0.8, "correct": True}, {"math": 0.0, "rm/error": "timeout", "rm": 0.0}]
    keys = rank_keys([1.4, 0.0], extras, weights, ["rm"])
    assert keys[0] == pytest.approx((1.0, 0.4))
    assert keys[1] == pytest.approx((0.0, 0.0))
    assert rank_keys([1.4], extras[:1], weights, []) == [(1.4, 0.0)]
    # Float noise (the subtraction, batch-dependent model scores) never makes an answer strictly better.
    noisy = rank_keys([1.0 + 0.17751794, 1.0 + 0.17751791], [{"rm": 0.17751794}, {"rm": 0.17751791}], {"rm": 1.0}, ["rm"])
    assert noisy[0] == noisy[1] and choose_replacements([noisy[0]], [[noisy[1]]]) == [None]


def test_pass_rate_filter_keeps_only_the_open_interval_by_default():
    rates = [0.0, 0.125, 1.0, 0.5, 0.875, 0.2, 0.8]
    assert keep_by_pass_rate(rates, 0.0, 1.0, inclusive=False) == [1, 3, 4, 5, 6]
    assert keep_by_pass_rate(rates, 0.2, 0.8, inclusive=True) == [3, 5, 6]
    assert pass_rate_histogram([0, 0, 3, 8], 8) == {f"{c}/8": {0: 2, 3: 1, 8: 1}.get(c, 0) for c in range(9)}


def test_gold_answers_are_joined_by_id_or_taken_from_the_stored_solution():
    index = {"ifeval-train-000001": {"constraints": [{"type": "no_commas", "params": {}}]},
             "Write JSON.": {"format": "json"}}
    rows = [
        {"id": "sft-ifeval-train-000001", "task": "ifeval", "prompt": "p", "response": "r"},
        {"id": "sft-x", "task": "format", "prompt": "Write JSON.", "response": "{}"},
        {"id": "sft-math-1", "task": "math", "prompt": "2+3?", "response": "2 + 3 = 5.\nThe answer is \\boxed{5}."},
        {"id": "u-1", "task": "math", "prompt": "1+1?", "response": "two", "answer": "2"},
        {"id": "u-2", "task": "generic", "prompt": "Say hi.", "response": "hi"},
    ]
    counts = attach_gold(rows, index)
    assert rows[0]["constraints"][0]["type"] == "no_commas" and rows[1]["format"] == "json"
    assert rows[2]["answer"] == "5" and rows[3]["answer"] == "2" and "answer" not in rows[4]
    assert counts == Counter(joined=2, stored_boxed=1, own=1, none=1)


def test_row_choice_and_stage_references():
    assert pick_rows(5, 0, 1) == [0, 1, 2, 3, 4]
    chosen = pick_rows(100, 10, 7)
    assert chosen == sorted(chosen) and len(set(chosen)) == 10 and chosen == pick_rows(100, 10, 7)
    fns = [{"_target_": "reward_model", "kwargs": {"model_path": "stage:rm", "note": "stage: not a ref"}}]
    assert stage_refs(fns) == ["rm"]
    assert resolve_refs(fns, {"rm": "/a/rm/model"})[0]["kwargs"] == {"model_path": "/a/rm/model", "note": "stage: not a ref"}


PAIRS = [{"id": f"p{i}", "prompt": f"What is {i} + 1?", "chosen": f"The answer is \\boxed{{{i + 1}}}.",
          "rejected": f"The answer is \\boxed{{{i + 2}}}."} for i in range(200)]


def test_judge_rows_put_the_chosen_response_at_the_label_in_a_seeded_random_order():
    rows = judge_rows(PAIRS, seed=3, think=True)
    assert rows == judge_rows(PAIRS, seed=3, think=True)
    assert [r["label"] for r in rows] != [r["label"] for r in judge_rows(PAIRS, seed=4, think=True)]
    assert 0.35 < sum(r["label"] == "A" for r in rows) / len(rows) < 0.65
    for pair, row in zip(PAIRS, rows):
        a_part = row["prompt"].split("Response A:\n")[1].split("\n\nResponse B:")[0]
        assert a_part == (pair["chosen"] if row["label"] == "A" else pair["rejected"])
        assert parse_verdict(row["response"]) == row["label"] and format_ok(row["response"], think=True)
        # The reasoning names both final answers but not which one is right.
        assert f"A ends with {a_part.split('{')[1].rstrip('}.')}" in row["response"]
        assert row["response"].count("steps hold.") == 2
    slipped = {"id": "s", "prompt": "What is 9 + 4?", "chosen": "9 + 4 = 13.\nThe answer is \\boxed{13}.",
               "rejected": "9 + 4 = 12.\nThe answer is \\boxed{12}."}
    row = judge_row(slipped, "B", think=True)
    assert "A ends with 12. B ends with 13. A: 9 + 4 = 12 is wrong. B: steps hold." in row["response"]
    both = judge_rows(PAIRS[:3], seed=0, think=False, both_orders=True)
    assert [r["label"] for r in both] == ["A", "B"] * 3 and all(format_ok(r["response"], think=False) for r in both)


def test_judge_accuracy_counts_judgments_pairs_parses_and_position_bias():
    rows = judge_rows(PAIRS[:2], seed=0, think=False, both_orders=True)
    texts = ["Better: A", "Better: A", "Better: A", "no idea"]
    acc = judge_accuracy(rows, texts)
    assert acc["eval/judge_pair_acc"] == 0.5
    assert acc["eval/judge_pair_consistent"] == 0.0
    assert acc["eval/judge_parse_rate"] == 0.75
    assert acc["eval/judge_picked_a"] == 1.0
    kinds = [{**p, "data_source": src} for p, src in zip(PAIRS[:2], ("rlsys/math", "rlsys/ifeval"))]
    by_kind = judge_accuracy(judge_rows(kinds, seed=0, think=False, both_orders=True),
                             ["Better: A", "Better: B", "Better: A", "no idea"])
    assert by_kind["eval/judge_pair_acc_math"] == 1.0 and by_kind["eval/judge_pair_acc_ifeval"] == 0.5
    assert by_kind["eval/judge_pair_acc"] == 0.75


def test_problem_sampler_never_repeats_a_problem_within_one_take():
    from rlsys.rl.state import ProblemSampler

    # RFT-RL trains on the filtered problems: small sets whose takes cross epoch boundaries.
    sampler = ProblemSampler(n=5, seed=0)
    seen = []
    for _ in range(40):
        take = sampler.take(3)
        assert len(take) == 3 and len(set(take)) == 3
        seen += take
    assert set(seen) == set(range(5))
    assert sorted(ProblemSampler(n=5, seed=1).take(9)) == [0, 1, 2, 3, 4]
    assert ProblemSampler(n=0, seed=0).take(4) == []
    fresh, again = ProblemSampler(n=50, seed=2), ProblemSampler(n=50, seed=2)
    assert fresh.take(7) == again.take(7) and fresh.state_dict() == again.state_dict() == {"epoch": 0, "index": 7}


def test_equations_as_written_for_rationales():
    from rlsys.jobs.equations import check_equations, first_wrong_equation

    right = "Ones: 9 + 4 = 13, write 3, carry 1.\nTens: 3 + 2 + 1 = 6.\nSo 39 + 24 = 63.\n2 * 68 = 68 * 2.\nThe answer is \\boxed{63}."
    assert check_equations(right) == (4, 0) and first_wrong_equation(right) is None
    slipped = right.replace("3 + 2 + 1 = 6", "3 + 2 + 1 = 7")
    assert check_equations(slipped) == (4, 1) and first_wrong_equation(slipped) == "3 + 2 + 1 = 7"
    # Not integer equations: a variable's coefficient, decimals; an exact division is fine, an inexact one is not.
    assert check_equations("x / 6 + 14 = 19. Then 1.5 + 2 = 3.5.") == (0, 0)
    assert check_equations("84 / 4 = 21 and 9 / 2 = 4.") == (2, 1)


def test_arithmetic_steps_all_or_nothing_gates_rejection_sampling():
    from rewards.steps import arithmetic_steps

    right = "Ones: 9 + 4 = 13, write 3, carry 1.\nTens: 3 + 2 + 1 = 6.\nSo 39 + 24 = 63.\nThe answer is \\boxed{63}."
    assert arithmetic_steps("p", right, all_or_nothing=True)["score"] == 1.0
    slipped = right.replace("3 + 2 + 1 = 6", "3 + 2 + 1 = 7")
    # 9 + 4 = 13, write 3, carry 1, 3 + 2 + 1 = 7 (false), 39 + 24 = 63.
    assert arithmetic_steps("p", slipped, all_or_nothing=True) == {"score": 0.0, "statements": 5.0,
                                                                 "false_statements": 1.0}
    assert arithmetic_steps("p", slipped)["score"] == 0.8
    # Only the answer part counts; an unclosed reasoning block is no answer.
    assert arithmetic_steps("p", "<think>1 + 1 = 3</think>The answer is 2.", all_or_nothing=True)["score"] == 1.0
    assert arithmetic_steps("p", "<think>unfinished 1 + 1 = 2", all_or_nothing=True)["score"] == 0.0


def test_solve_first_reasoning_names_the_response_that_agrees_with_the_judges_own_solution():
    pair = {"id": "s", "prompt": "What is 9 + 4 * 2?", "chosen": "4 * 2 = 8.\n9 + 8 = 17.\nThe answer is \\boxed{17}.",
            "rejected": "4 * 2 = 8.\n9 + 8 = 16.\nThe answer is \\boxed{16}."}
    own = "Multiply first: 4 * 2 = 8.\nSo 9 + 8 = 17.\nThe answer is \\boxed{17}."
    assert has_distinct_answers(pair)
    assert not has_distinct_answers(pair | {"rejected": "9 + 8 = 17, so \\boxed{17}."})
    assert not has_distinct_answers(pair | {"rejected": "I cannot say."} | {"chosen": "No idea."})
    rows = judge_rows([pair, PAIRS[0]], seed=0, think=True, both_orders=True, solutions={"s": own})
    assert [r["label"] for r in rows] == ["A", "B", "A", "B"]
    a_first, b_first = rows[0]["response"], rows[1]["response"]
    assert a_first == (f"<think>\nA ends with 17. B ends with 16.\n{own}\nMine is 17. A: 17, same. B: 16, not mine."
                       "\n</think>\nBetter: A")
    assert b_first.startswith("<think>\nA ends with 16. B ends with 17.\n")
    assert b_first.endswith("Mine is 17. A: 16, not mine. B: 17, same.\n</think>\nBetter: B")
    # Pairs without a solution keep the rule-based reasoning.
    assert rows[2]["response"].count("steps hold.") == 2 and "Mine is" not in rows[2]["response"]
    assert solved_rationale("The answer is \\boxed{5}.", pair["chosen"], pair["rejected"]).endswith(
        "Mine is 5. A: 17, not mine. B: 16, not mine.")


def test_recheck_reasoning_copies_each_equation_in_order_and_stops_at_the_first_false_one():
    pair = {"id": "r", "prompt": "Find 36 + 27 - 47.",
            "chosen": "Ones: 6 + 7 = 13, write 3, carry 1.\nTens: 3 + 2 + 1 = 6.\nSo 36 + 27 = 63.\n"
                      "Then 63 - 47 = 16.\nThe answer is \\boxed{16}.",
            "rejected": "Ones: 6 + 7 = 13, write 3, carry 1.\nTens: 3 + 2 + 1 = 16.\nSo 36 + 27 = 163.\n"
                        "Then 163 - 47 = 116.\nThe answer is \\boxed{116}."}
    a_first, b_first = judge_rows([pair], seed=0, think=True, both_orders=True, reasoning="recheck")
    assert a_first["response"] == ("<think>\nA: 6 + 7 = 13 ok, 3 + 2 + 1 = 6 ok, 36 + 27 = 63 ok, 63 - 47 = 16 ok.\n"
                                   "B: 6 + 7 = 13 ok, 3 + 2 + 1 = 16 no.\n</think>\nBetter: A")
    assert b_first["response"] == ("<think>\nA: 6 + 7 = 13 ok, 3 + 2 + 1 = 16 no.\n"
                                   "B: 6 + 7 = 13 ok, 3 + 2 + 1 = 6 ok, 36 + 27 = 63 ok, 63 - 47 = 16 ok.\n</think>\nBetter: B")
    # Reasoning blocks are not re-checked; text without equations says so.
    prose = {"id": "p", "prompt": "Say hi.", "chosen": "<think>1 + 1 = 3</think>Hi there.", "rejected": "Hello."}
    row = judge_row(prose, "A", think=True, reasoning="recheck")
    assert row["response"].startswith("<think>\nA: no equations.\nB: no equations.\n</think>")
    # recompute: the left side worked out again after "is", then the verdict.
    (row,) = judge_rows([pair], seed=1, think=True, reasoning="recompute")
    b_side = "3 + 2 + 1 = 16; 3 + 2 + 1 is 6; no." if row["label"] == "A" else "63 - 47 = 16; 63 - 47 is 16; ok."
    assert b_side in row["response"] and "6 + 7 = 13; 6 + 7 is 13; ok, " in row["response"]
    odd = {"id": "d", "prompt": "p", "chosen": "84 / 4 = 21.", "rejected": "9 / 2 = 4 and 5 / 0 = 1."}
    assert recheck_rationale(odd["chosen"], odd["rejected"], recompute=True) == (
        "A: 84 / 4 = 21; 84 / 4 is 21; ok.\nB: 9 / 2 = 4; 9 / 2 is 4.5; no.")
    assert recheck_rationale("5 / 0 = 1.", "", recompute=True) == "A: 5 / 0 = 1; 5 / 0 is undefined; no.\nB: no equations."


def test_a_solving_judge_without_an_input_model_fails_naming_the_key(tmp_path):
    from omegaconf import OmegaConf

    from rlsys.config.schema import Config, StageConfig
    from rlsys.config.validate import ConfigError, validate_config
    from rlsys.jobs.judge import run_judge_data
    from rlsys.stages.context import StageContext

    stage = OmegaConf.merge(OmegaConf.structured(StageConfig),
                            {"kind": "judge_data", "input": None, "sample": {"judge_solve": True}})
    ctx = StageContext(OmegaConf.structured(Config), "judge_data", stage, "", tmp_path)
    with pytest.raises(ConfigError, match="stages.judge_data.input"):
        run_judge_data(ctx)
    # An unknown reasoning format is refused at start-up, before anything is built.
    bad = OmegaConf.merge(OmegaConf.structured(Config), {"stages": {"judge_data": {
        "kind": "judge_data", "input": "sft", "sample": {"judge_reasoning": "vibes"}}}})
    with pytest.raises(ConfigError, match=r"stages.judge_data.sample.judge_reasoning.*'vibes'"):
        validate_config(bad)

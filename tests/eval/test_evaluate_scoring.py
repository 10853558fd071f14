"""Held-out scoring: greedy accuracy per tier, avg@k over sampled answers, IF and format pass rates."""

from __future__ import annotations

import pytest

from rlsys.eval.scoring import eval_prompts, score_eval, score_format, score_math, score_math_sampled

ROWS = [
    {"prompt": "What is 2 + 3?", "answer": "5", "tier": 1},
    {"prompt": "What is 10 / 4?", "answer": "5/2", "tier": 3},
]


def test_greedy_accuracy_per_tier():
    out = score_math(ROWS, ["\\boxed{5}", "\\boxed{2.4}"])
    assert out == {"eval/math_acc": 0.5, "eval/math_acc_tier1": 1.0, "eval/math_acc_tier3": 0.0}


def test_sampled_accuracy_is_the_mean_over_each_rows_samples():
    texts = [["\\boxed{5}", "\\boxed{6}", "\\boxed{5}", "\\boxed{5}"], ["\\boxed{2.5}", "no", "\\boxed{5/2}", "x"]]
    out = score_math_sampled(ROWS, texts)
    assert out["eval/math_sampled_acc_tier1"] == pytest.approx(3 / 4)
    assert out["eval/math_sampled_acc_tier3"] == pytest.approx(2 / 4)
    assert out["eval/math_sampled_acc"] == pytest.approx(5 / 8)
    assert not any(k.startswith("eval/math_acc") for k in out)


FORMAT_ROWS = [
    {"prompt": "Reply only with JSON: an object with an \"answer\" key. Add 2 and 3.", "format": "json"},
    {"prompt": "Use markdown with a heading and a bullet list. Compute 2 * 2.", "format": "markdown"},
]


def test_format_pass_is_the_share_of_answers_their_checker_accepts():
    good_json, good_md = '{"answer": 5}', "# Steps\n\n- 2 * 2 = 4.\n\nThe answer is 4."
    assert score_format(FORMAT_ROWS, [good_json, good_md]) == {"eval/format_pass": 1.0}
    assert score_format(FORMAT_ROWS, ['{"answer": 5', good_md]) == {"eval/format_pass": 0.5}
    assert score_format(FORMAT_ROWS, ["answer: 5", "4"]) == {"eval/format_pass": 0.0}
    assert score_format([], []) == {}


def test_score_eval_splits_the_answers_by_eval_part_in_prompt_order():
    if_row = {"prompt": "Say hi. Do not use any commas.", "constraints": [{"type": "no_commas", "params": {}}]}
    rows = {"math": ROWS, "ifeval": [if_row], "format": FORMAT_ROWS}
    assert eval_prompts(rows) == [*ROWS, if_row, *FORMAT_ROWS]
    out = score_eval(rows, ["\\boxed{5}", "\\boxed{5/2}", "hi there", '{"answer": 5}', "no markdown"])
    assert out["eval/math_acc"] == 1.0 and out["eval/ifeval_all_pass"] == 1.0 and out["eval/format_pass"] == 0.5
    assert "eval/format_pass" not in score_eval(rows | {"format": []}, ["\\boxed{5}", "x", "hi, there"])


def test_paired_difference_by_hand():
    """Differences 0.1, 0.3 -> mean +0.2, stdev 0.1414, SE 0.1414 / sqrt(2) = 0.1."""
    from rlsys.eval.scoring import paired_difference

    assert paired_difference([0.0, 0.0], [0.1, 0.3]) == "+0.200 ± 0.100"
    assert paired_difference([1.0], [0.5]) == "-0.500 ± nan"


def test_eval_max_chain_adds_tier_4_rows_after_the_spread_tiers(tmp_path):
    from omegaconf import OmegaConf

    from rlsys.config.schema import Config
    from rlsys.eval.scoring import eval_rows

    cfg = OmegaConf.structured(Config)
    cfg.artifacts_dir = str(tmp_path)
    cfg.data.suite = OmegaConf.merge(cfg.data.suite, {
        "n_train_per_tier": 4, "n_eval_per_tier": 4, "n_if_train": 4, "n_if_eval": 2, "n_align_train": 4,
        "n_align_eval": 2, "n_pref_train": 4, "n_pref_eval": 2, "n_pretrain_docs": 10, "n_format_train": 4,
        "n_format_eval": 2, "n_chain_train": 4, "n_chain_eval": 5})
    cfg.eval.max_math = 6
    plain = eval_rows(cfg)["math"]
    assert [r["tier"] for r in plain] == [1, 1, 2, 2, 3, 3]
    cfg.eval.max_chain = 3
    with_chains = eval_rows(cfg)["math"]
    assert with_chains[:6] == plain and [r["tier"] for r in with_chains[6:]] == [4, 4, 4]

"""Held-out scoring: greedy accuracy per tier and avg@k over sampled answers."""

from __future__ import annotations

import pytest

from rlsys.controller.evaluate import score_math, score_math_sampled

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

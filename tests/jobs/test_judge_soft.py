"""Soft-instruction check rows for the pointwise judge, and their per-source held-out scores."""

from __future__ import annotations

import pytest

from rewards.pairwise_judge import parse_marks
from rlsys.eval.judge import check_accuracy
from rlsys.jobs.judge_soft import soft_check_rows

FORMAL = {"type": "tone", "params": {"variant": "formal"}, "instruction": "Keep a formal tone.",
          "rubric": "The wording is formal."}
THANKS = {"type": "gratitude", "params": {"variant": "any"}, "instruction": "Thank the reader.",
          "rubric": "It thanks the reader."}
ROW = {"id": "align-train-000001", "prompt": "Describe x. Keep a formal tone. Thank the reader.",
       "constraints": [{"type": "no_commas", "params": {}}], "soft_constraints": [FORMAL, THANKS],
       "response": "It is my pleasure. Thank you.",
       "soft_variants": [{"response": "Hey there! Thank you.", "marks": ["no", "ok"]},
                         {"response": "It is my pleasure.", "marks": ["ok", "no"]}]}


def test_training_rows_hold_the_response_once_and_every_variant():
    rows = soft_check_rows([ROW, {**ROW, "id": "plain", "soft_constraints": []}], pairs=False)
    assert [r["role"] for r in rows] == ["chosen", "rejected", "rejected"]
    assert [r["marks"] for r in rows] == [["ok", "ok"], ["no", "ok"], ["ok", "no"]]
    assert rows[1]["response"] == "tone formal: no.\ngratitude: ok."
    assert parse_marks(rows[2]["response"], rows[2]["tags"]) == ["ok", "no"]
    assert "Hey there!" in rows[1]["prompt"] and "- gratitude: It thanks the reader." in rows[1]["prompt"]
    assert all(r["pair_source"] == "rlsys/align" and r["task"] == "judge_check" for r in rows)


def test_held_out_rows_come_in_pairs_scored_apart_from_the_if_pairs():
    soft = soft_check_rows([ROW], pairs=True)
    assert [(r["pair_id"], r["role"]) for r in soft] == [
        ("soft-align-train-000001-0", "chosen"), ("soft-align-train-000001-0", "rejected"),
        ("soft-align-train-000001-1", "chosen"), ("soft-align-train-000001-1", "rejected")]
    hard = [{"pair_id": "p", "role": "chosen", "tags": ["t1"], "marks": ["ok"], "pair_source": "rlsys/ifeval"},
            {"pair_id": "p", "role": "rejected", "tags": ["t1"], "marks": ["no"], "pair_source": "rlsys/ifeval"}]
    # The judge gets the IF pair right, the first soft pair right, and ties the second (fails nothing).
    texts = ["t1: ok.", "t1: no.", "tone formal: ok.\ngratitude: ok.", "tone formal: no.\ngratitude: ok.",
             "tone formal: ok.\ngratitude: ok.", "tone formal: ok.\ngratitude: ok."]
    out = check_accuracy(hard + soft, texts)
    assert out["eval/judge_pair_acc_ifeval"] == 1.0
    assert out["eval/judge_pair_acc_align"] == pytest.approx(0.75)
    assert out["eval/judge_mark_acc_align"] == pytest.approx(7 / 8)
    assert out["eval/judge_pair_acc"] == pytest.approx((1 + 1 + 0.5) / 3)


def test_soft_checks_need_pointwise_rows(tmp_path):
    from omegaconf import OmegaConf

    from rlsys.config.schema import Config, StageConfig
    from rlsys.config.validate import ConfigError
    from rlsys.jobs.judge import run_judge_data
    from rlsys.stages.context import StageContext

    stage = OmegaConf.merge(OmegaConf.structured(StageConfig), {"kind": "judge_data", "input": None,
                                                                 "sample": {"soft_checks": 10}})
    cfg = OmegaConf.structured(Config)
    with pytest.raises(ConfigError, match=r"stages.judge_data.sample.soft_checks.*judge_pointwise"):
        run_judge_data(StageContext(cfg, "judge_data", stage, str(tmp_path / "m"), tmp_path))

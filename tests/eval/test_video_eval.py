"""Held-out video evaluation (`eval.video`): which rows, where their answers sit among the held-out answers, and
their scores per tier and task, checked by hand; its settings in the stage cache key."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from rlsys.config.schema import Config
from rlsys.config.validate import ConfigError
from rlsys.eval.scoring import eval_prompts, score_eval
from rlsys.eval.video import score_video, video_eval_rows
from rlsys.stages import runner


def _row(task: str, tier: int, answer: str, **extra) -> dict:
    return {"id": f"{task}-{answer}", "task": task, "tier": tier, "prompt": "What happens?", "answer": answer,
            "videos": [["f0.png", "f1.png"]], "fps": 2.0} | extra


VIDEO = [_row("video_count", 1, "3"), _row("video_count", 1, "4"), _row("video_when", 2, "2")]
ANSWERS = ["\\boxed{3}", "\\boxed{5}", "It starts at frame \\boxed{2}."]


def test_video_scores_per_tier_and_task() -> None:
    assert score_video(VIDEO, ANSWERS) == {
        "eval/video_acc": pytest.approx(2 / 3), "eval/video_acc_tier1": 0.5, "eval/video_acc_tier2": 1.0,
        "eval/video_acc_video_count": 0.5, "eval/video_acc_video_when": 1.0}


def test_video_answers_come_after_the_text_and_visual_ones() -> None:
    math = [{"id": "m", "prompt": "1 + 1?", "answer": "2", "tier": 1}]
    picture = [{"id": "v", "task": "arith", "tier": 1, "prompt": "?", "answer": "5", "images": ["x.png"]}]
    trap = [{"id": "t", "task": "trap", "prompt": "?", "answer": "0", "images": ["y.png"]}]
    rows = {"math": math, "ifeval": [], "format": [], "visual": picture, "visual_trap": trap, "video": VIDEO}
    assert eval_prompts(rows) == [*math, *picture, *trap, *VIDEO]
    out = score_eval(rows, ["\\boxed{2}", "\\boxed{5}", "\\boxed{1}", *ANSWERS])
    assert out["eval/math_acc"] == 1.0 and out["eval/vl_acc"] == 1.0 and out["eval/vl_trap_acc"] == 0.0
    assert out["eval/video_acc"] == pytest.approx(2 / 3)
    # Video rows alone, without visual parts.
    only = score_eval({"math": math, "ifeval": [], "video": VIDEO}, ["\\boxed{2}", *ANSWERS])
    assert only["eval/video_acc"] == pytest.approx(2 / 3) and not any(k.startswith("eval/vl") for k in only)


def test_video_rows_from_user_files_and_the_switch() -> None:
    cfg = OmegaConf.structured(Config)
    assert video_eval_rows(cfg, [VIDEO[0]]) == {}
    cfg.eval.video, cfg.eval.max_video = True, 2
    text = {"id": "m", "prompt": "1 + 1?", "answer": "2"}
    unanswered = _row("video_count", 1, "3") | {"answer": None}
    assert video_eval_rows(cfg, [text, *VIDEO, unanswered]) == {"video": [VIDEO[0], VIDEO[2]]}  # one per task
    with pytest.raises(ConfigError, match="'eval.video' = true, but no row of data.eval_files has `videos`"):
        video_eval_rows(cfg, [text])


def test_video_eval_settings_are_part_of_the_eval_identity() -> None:
    cfg = OmegaConf.structured(Config)
    stage = OmegaConf.create({"kind": "sft"})
    assert "video_suite" not in runner._eval_identity(cfg, stage)
    cfg.eval.video = True
    uniform = runner._eval_identity(cfg, stage)
    assert uniform["video"] is True and uniform["video_sampling"] == "uniform" and "video_suite" in uniform
    cfg.data.video_sampling = "slowfast"
    assert runner._eval_identity(cfg, stage)["slowfast"] == dict(cfg.data.slowfast)

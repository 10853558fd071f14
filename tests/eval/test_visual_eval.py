"""Held-out visual evaluation (`eval.visual`): which rows, how they are asked (images sent, or dropped for the blind
baseline), and their scores per tier, task and on the trap questions, checked by hand."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from omegaconf import OmegaConf
from rlsys_testing import draw_image

from rlsys.config.schema import Config
from rlsys.config.validate import ConfigError
from rlsys.data.encode import encode_prompt, encode_vl_prompt
from rlsys.eval.scoring import eval_prompts, eval_rows, sampled_texts, score_eval
from rlsys.eval.visual import check_visual_model, score_visual, spread_tasks, visual_eval_rows, without_images
from rlsys.rollout.types import GroupResult, Sample

SMALL = {"tasks": ["arith", "count", "rect_area"], "n_train_per_task": 1, "n_eval_per_task": 3, "n_sft_per_task": 1,
         "n_trap_train": 1, "n_trap_eval": 4, "image_size": 64}


def _row(task: str, tier: int | None, answer: str) -> dict:
    row = {"id": f"{task}-{answer}", "task": task, "prompt": "What is shown?", "answer": answer, "images": ["x.png"]}
    return row | ({"tier": tier} if tier is not None else {})


VISUAL = [_row("arith", 1, "5"), _row("arith", 1, "7"), _row("count", 1, "3"), _row("rect_area", 3, "12")]
TRAPS = [_row("trap", None, "0"), _row("trap", None, "0")]
ANSWERS = ["\\boxed{5}", "\\boxed{8}", "The answer is \\boxed{3}.", "\\boxed{13}"]
TRAP_ANSWERS = ["There are none: \\boxed{0}.", "\\boxed{2}"]


def test_visual_scores_per_tier_task_and_trap() -> None:
    out = score_visual(VISUAL, ANSWERS, TRAPS, TRAP_ANSWERS)
    assert out == {
        "eval/vl_acc": 0.5, "eval/vl_acc_tier1": pytest.approx(2 / 3), "eval/vl_acc_tier3": 0.0,
        "eval/vl_acc_arith": 0.5, "eval/vl_acc_count": 1.0, "eval/vl_acc_rect_area": 0.0, "eval/vl_trap_acc": 0.5,
    }
    assert score_visual(VISUAL, ANSWERS, [], [], blind=True)["eval/vl_blind"] == 1.0
    assert "eval/vl_trap_acc" not in score_visual(VISUAL, ANSWERS, [], [])
    with pytest.raises(ValueError, match="3 answers for 4 visual rows"):
        score_visual(VISUAL, ANSWERS[:3], [], [])


def test_score_eval_takes_the_visual_answers_after_the_text_ones() -> None:
    math = [{"id": "m", "prompt": "1 + 1?", "answer": "2", "tier": 1}]
    rows = {"math": math, "ifeval": [], "format": [], "visual": VISUAL, "visual_trap": TRAPS}
    assert eval_prompts(rows) == [*math, *VISUAL, *TRAPS]
    out = score_eval(rows, ["\\boxed{3}", *ANSWERS, *TRAP_ANSWERS])
    assert out["eval/math_acc"] == 0.0 and out["eval/vl_acc"] == 0.5 and out["eval/vl_trap_acc"] == 0.5
    assert "eval/vl_blind" not in out
    blind = {**rows, "visual": [without_images(r) for r in VISUAL], "visual_trap": [without_images(r) for r in TRAPS]}
    assert score_eval(blind, ["\\boxed{2}", *ANSWERS, *TRAP_ANSWERS])["eval/vl_blind"] == 1.0
    # Without visual parts: the text scores only, as before.
    assert not any(k.startswith("eval/vl") for k in score_eval({"math": math, "ifeval": []}, ["\\boxed{2}"]))


def test_spread_takes_each_task_in_turn() -> None:
    rows = [_row("b", 1, str(i)) for i in range(3)] + [_row("a", 1, str(i)) for i in range(2)] + [_row("c", 2, "0")]
    assert [(r["task"], r["answer"]) for r in spread_tasks(rows, 4)] == [("a", "0"), ("b", "0"), ("c", "0"), ("a", "1")]
    assert len(spread_tasks(rows, 100)) == 6 and spread_tasks(rows, 0) == []


def _cfg(tmp_path: Path, **ev) -> object:
    cfg = OmegaConf.structured(Config)
    cfg.artifacts_dir = str(tmp_path / "artifacts")
    cfg.data.visual = OmegaConf.merge(cfg.data.visual, SMALL)
    cfg.eval = OmegaConf.merge(cfg.eval, {"max_math": 3, "max_ifeval": 1, **ev})
    return cfg


def test_visual_rows_come_from_the_visual_suite_capped_and_blind_on_request(tmp_path: Path) -> None:
    assert visual_eval_rows(_cfg(tmp_path)) == {}
    with pytest.raises(ConfigError, match="'eval.drop_images' = true needs 'eval.visual' = true"):
        visual_eval_rows(_cfg(tmp_path, drop_images=True))
    rows = visual_eval_rows(_cfg(tmp_path, visual=True, max_visual=5))
    assert [r["task"] for r in rows["visual"]] == ["arith", "count", "rect_area", "arith", "count"]
    assert all(Path(r["images"][0]).is_file() and r["id"].startswith("vl-") for r in rows["visual"])
    assert len(rows["visual_trap"]) == 4 and all(r["task"] == "trap" and r["answer"] == "0" for r in rows["visual_trap"])
    blind = visual_eval_rows(_cfg(tmp_path, visual=True, max_visual=5, drop_images=True))
    assert [r["id"] for r in blind["visual"]] == [r["id"] for r in rows["visual"]]
    assert not any("images" in r for part in blind.values() for r in part)
    assert len(visual_eval_rows(_cfg(tmp_path, visual=True, max_visual=2))["visual_trap"]) == 2


def test_user_eval_files_give_their_rows_with_images(tmp_path: Path) -> None:
    draw_image(tmp_path / "p.png", (32, 32), "white", shape=None)
    rows = [{"id": "m", "prompt": "1 + 1?", "answer": "2"}, {"id": "v", "prompt": "How many?", "answer": "1",
            "images": ["p.png"], "task": "count", "tier": 1}, {"id": "t", "prompt": "How many red?", "answer": "0",
            "images": ["p.png"], "task": "trap"}]
    path = tmp_path / "eval.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = _cfg(tmp_path, visual=True)
    cfg.data.eval_files = [str(path)]
    out = eval_rows(cfg)
    assert [r["id"] for r in out["math"]] == ["m"]
    assert [r["id"] for r in out["visual"]] == ["v"] and [r["id"] for r in out["visual_trap"]] == ["t"]
    cfg.eval.visual = False
    out = eval_rows(cfg)  # picture rows are not scored as math without their picture
    assert [r["id"] for r in out["math"]] == ["m"] and "visual" not in out
    path.write_text(json.dumps(rows[0]) + "\n")
    cfg.eval.visual = True
    with pytest.raises(ConfigError, match="'eval.visual' = true, but no row of data.eval_files has `images`"):
        eval_rows(cfg)


def test_a_text_model_cannot_take_the_visual_eval_unless_blind(tmp_path: Path, tiny_model_dir, tiny_vl_dir) -> None:
    with pytest.raises(ConfigError, match=r"'eval.visual' = true needs a vision-language model.*eval.drop_images"):
        check_visual_model(_cfg(tmp_path, visual=True), tiny_model_dir)
    check_visual_model(_cfg(tmp_path, visual=True, drop_images=True), tiny_model_dir)
    check_visual_model(_cfg(tmp_path, visual=True), tiny_vl_dir)
    check_visual_model(_cfg(tmp_path), tiny_model_dir)


def test_visual_rows_are_asked_with_their_images_and_blind_rows_without(tmp_path: Path, tiny_vl_dir) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_vl_dir)
    cfg = _cfg(tmp_path, visual=True, max_visual=2)
    rows = visual_eval_rows(cfg)["visual"]
    sent: list = []

    def generate(requests: list) -> list:
        sent.extend(requests)
        return [GroupResult(r.request_id, r.prompt_token_ids, [Sample([1], "\\boxed{1}", [-0.1], "stop")], 0)
                for r in requests]

    texts = sampled_texts(cfg, tok, [*rows, without_images(rows[0])], generate, n=1, temperature=0.0)
    assert texts == [["\\boxed{1}"]] * 3
    assert [r.images for r in sent] == [rows[0]["images"], rows[1]["images"], []]
    assert sent[0].prompt_token_ids == encode_vl_prompt(tok, rows[0]) and "<|image_pad|>" in tok.decode(sent[0].prompt_token_ids)
    assert sent[2].prompt_token_ids == encode_prompt(tok, without_images(rows[0]))
    assert "<|image_pad|>" not in tok.decode(sent[2].prompt_token_ids)

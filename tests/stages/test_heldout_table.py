"""The before/after held-out table an RL stage ends with (per tier, per visual task), and the visual columns of the
pipeline table, shown only when a stage measured them."""

from __future__ import annotations

from types import SimpleNamespace

from rlsys.stages.tables import heldout_rows, heldout_table, markdown_table, stage_notes, table_rows

BEFORE = {"eval/math_acc": 0.5, "eval/math_acc_tier1": 0.75, "eval/math_acc_tier2": 0.25, "eval/ifeval_all_pass": 0.4,
          "eval/vl_acc": 0.25, "eval/vl_acc_tier1": 0.5, "eval/vl_acc_tier3": 0.0, "eval/vl_acc_arith": 0.5,
          "eval/vl_acc_rect_area": 0.0, "eval/vl_trap_acc": 0.1}
AFTER = {**BEFORE, "eval/math_acc": 0.625, "eval/vl_acc": 0.5, "eval/vl_acc_arith": 1.0, "eval/vl_trap_acc": 0.3}


def test_rows_per_tier_then_task_with_the_change() -> None:
    rows = heldout_rows(BEFORE, AFTER)
    assert [r["metric"] for r in rows] == [
        "math_acc_tier1", "math_acc_tier2", "math_acc", "vl_acc_tier1", "vl_acc_tier3", "vl_acc_arith",
        "vl_acc_rect_area", "vl_acc", "vl_trap_acc"]
    by = {r["metric"]: r for r in rows}
    assert by["math_acc"]["change"] == 0.125 and by["vl_acc_arith"]["change"] == 0.5
    assert by["vl_trap_acc"]["before"] == 0.1 and by["vl_acc_tier3"]["change"] == 0.0
    # A metric on one side only (no eval before the first step) has no change.
    (only,) = heldout_rows({}, {"eval/vl_acc": 0.5})
    assert only == {"metric": "vl_acc", "before": None, "after": 0.5, "change": None}
    text = heldout_table(BEFORE, AFTER)
    assert "| vl_acc_arith | 0.500 | 1.000 | +0.500 |" in text and "| math_acc | 0.500 | 0.625 | +0.125 |" in text
    # Text-only evaluations: math rows only.
    text_before, text_after = ({k: v for k, v in d.items() if "vl" not in k} for d in (BEFORE, AFTER))
    assert [r["metric"] for r in heldout_rows(text_before, text_after)] == ["math_acc_tier1", "math_acc_tier2", "math_acc"]


def test_video_rows_follow_the_visual_ones() -> None:
    video = {"eval/video_acc": 0.25, "eval/video_acc_tier2": 0.5, "eval/video_acc_video_when": 0.75}
    after = {**AFTER, "eval/video_acc": 0.125, "eval/video_acc_tier2": 0.25, "eval/video_acc_video_when": 0.25}
    rows = heldout_rows({**BEFORE, **video}, after)
    assert [r["metric"] for r in rows][-4:] == ["vl_trap_acc", "video_acc_tier2", "video_acc_video_when", "video_acc"]
    assert rows[-1] == {"metric": "video_acc", "before": 0.25, "after": 0.125, "change": -0.125}


def _result(kind: str, ev: dict, **summary) -> SimpleNamespace:
    return SimpleNamespace(kind=kind, reused=False, wall_s=1.0, path="/x", summary={"eval": ev, **summary})


def test_pipeline_table_shows_visual_columns_only_when_measured() -> None:
    text_only = {"sft": _result("sft", {"eval/math_acc": 0.5})}
    assert "vl trap" not in markdown_table(table_rows(text_only), 1.0)
    both = text_only | {"rl": _result("rl", AFTER, steps=2, eval_before=BEFORE)}
    table = markdown_table(table_rows(both), 1.0)
    head = table.splitlines()[3]
    assert head.endswith("| format | vl | vl trap | pref acc | notes |")
    assert "| 0.500 | 0.300 |" in table.splitlines()[-1]
    assert stage_notes("rl", both["rl"].summary) == "2 steps; math before 0.500; vl before 0.250"

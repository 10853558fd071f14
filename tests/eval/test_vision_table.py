"""`python -m rlsys.eval vision`: the stage models of a run, and the with/blind table."""

from __future__ import annotations

import argparse
import json

import pytest

from rlsys.eval.vision import add_arguments, eval_config, markdown, other_pictures, run_models


def test_run_models_keeps_vision_language_stages_in_run_order(tmp_path):
    stages = tmp_path / "run" / "stages"
    stages.mkdir(parents=True)
    dirs = {}
    for name, vision in (("sft_more", False), ("vl_init", True), ("vl_sft", True)):
        model = tmp_path / name / "model"
        model.mkdir(parents=True)
        config = {"model_type": "x"} | ({"vision_config": {"depth": 2}} if vision else {})
        (model / "config.json").write_text(json.dumps(config))
        dirs[name] = str(model)
    lines = [{"name": n, "model_dir": dirs[n]} for n in ("sft_more", "vl_init", "vl_sft", "vl_init")]
    (stages / "stages.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    assert run_models(tmp_path / "run") == [("vl_init", dirs["vl_init"]), ("vl_sft", dirs["vl_sft"])]


def test_run_models_refuses_a_directory_without_stages(tmp_path):
    with pytest.raises(SystemExit, match="stages.jsonl"):
        run_models(tmp_path)


def test_markdown_puts_each_model_with_its_blind_score_and_tasks():
    table = {"a": {"eval/vl_acc": 0.5, "eval/blind_acc": 0.25, "eval/swapped_acc": 0.375, "eval/vl_acc_tier1": 0.75,
                   "eval/vl_acc_count": 1.0, "eval/vl_trap_acc": 0.1, "eval/blind_trap_acc": 0.0}}
    text = markdown(table, {"a": ("+0.250 ± 0.100", "+0.125 ± 0.050")})
    lines = text.splitlines()
    assert lines[0] == "| model | vl acc | blind | with − blind | swapped | with − swapped | tier1 | trap | trap blind |"
    assert lines[2] == "| a | 0.500 | 0.250 | +0.250 ± 0.100 | 0.375 | +0.125 ± 0.050 | 0.750 | 0.100 | 0.000 |"
    assert lines[-1] == "| a | 1.000 |" and lines[-3] == "| model | count |"


def test_set_overrides_reach_the_config_the_rows_come_from():
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--max-visual", "100", "--set", "data.visual.tasks=[identify]",
                              "--set", "data.visual.n_eval_per_task=100"])
    cfg = eval_config(args)
    assert (cfg.eval.visual, cfg.eval.max_visual) == (True, 100)
    assert list(cfg.data.visual.tasks) == ["identify"] and cfg.data.visual.n_eval_per_task == 100
    assert eval_config(parser.parse_args([])).data.visual.n_eval_per_task == 20


def test_other_pictures_gives_each_row_the_next_rows_pictures_and_keeps_the_rest():
    rows = [{"id": i, "prompt": f"q{i}", "answer": str(i), "images": [f"{i}.png"]} for i in range(3)]
    swapped = other_pictures(rows)
    assert [r["images"] for r in swapped] == [["1.png"], ["2.png"], ["0.png"]]
    assert [(r["id"], r["prompt"], r["answer"]) for r in swapped] == [(r["id"], r["prompt"], r["answer"]) for r in rows]
    assert rows[0]["images"] == ["0.png"]

"""`stage_row_parts`: the rows of each '+'-joined part of a stage's `data`, for a weighted mixture; together
they are the rows `stage_rows` gives, and a stage reading another source cannot be mixed."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from rlsys.config.schema import Config
from rlsys.config.validate import ConfigError
from rlsys.stages.context import StageContext
from rlsys.stages.io import stage_row_parts, stage_rows

SMALL = {"tasks": ["arith", "count"], "n_train_per_task": 2, "n_eval_per_task": 1, "n_sft_per_task": 2,
         "n_trap_train": 1, "n_trap_eval": 1, "image_size": 64}


def _ctx(tmp_path: Path, **stage) -> StageContext:
    cfg = OmegaConf.structured(Config)
    cfg.artifacts_dir = str(tmp_path / "artifacts")
    cfg.data.visual = OmegaConf.merge(cfg.data.visual, SMALL)
    conf = OmegaConf.merge(OmegaConf.structured(Config).stages, {"vsft": {"kind": "sft", **stage}}).vsft
    return StageContext(cfg, "vsft", conf, "unused", tmp_path / "out")


def test_parts_hold_each_split_and_join_to_the_stage_rows(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path, data="vl_sft_train + vl_caption_train:1", mix_weights=[3, 1])
    parts = stage_row_parts(ctx, "sft")
    assert [name for name, _ in parts] == ["vl_sft_train", "vl_caption_train:1"]
    assert len(parts[0][1]) == 4 and len(parts[1][1]) == 1
    assert [r["id"] for _, rows in parts for r in rows] == [r["id"] for r in stage_rows(ctx, "sft")]
    assert all(r["images"] for _, rows in parts for r in rows)


def test_where_selects_over_all_parts_and_an_emptied_part_is_an_error(tmp_path: Path) -> None:
    rows = stage_rows(_ctx(tmp_path, data="vl_sft_train"), "sft")
    one = rows[0]["id"]
    ctx = _ctx(tmp_path, data="vl_sft_train+vl_caption_train", where={"id": [one]})
    with pytest.raises(ConfigError, match=r"'stages\.vsft\.data': part 'vl_caption_train' has no rows to mix"):
        stage_row_parts(ctx, "sft")
    caption = stage_rows(_ctx(tmp_path, data="vl_caption_train"), "sft")[0]["id"]
    ctx = _ctx(tmp_path, data="vl_sft_train+vl_caption_train", where={"id": [one, caption]})
    assert [[r["id"] for r in part] for _, part in stage_row_parts(ctx, "sft")] == [[one], [caption]]


def test_a_stage_reading_another_source_cannot_mix(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path, data_from="rft_sample", mix_weights=[1])
    with pytest.raises(ConfigError, match=r"'stages\.vsft\.mix_weights': .* reads data_from = 'rft_sample'"):
        stage_row_parts(ctx, "sft")
    ctx = _ctx(tmp_path, mix_weights=[1])
    ctx.cfg.data.sft_files = ["my.jsonl"]
    with pytest.raises(ConfigError, match=r"'stages\.vsft\.mix_weights': .* reads data\.sft_files"):
        stage_row_parts(ctx, "sft")

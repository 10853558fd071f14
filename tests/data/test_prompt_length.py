"""Prompt lengths checked at load (issue #30, item 3): an over-long prompt is a bad row named by file, line and
row id before any rollout, or dropped and counted; a hinted prompt that does not fit caps the row's hints.
Real rows through `stage_rows` and a real (tiny) tokenizer."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
from omegaconf import OmegaConf
from rlsys_testing import RecordingPool

from hints.progressive import HintSource, LevelSearch
from rlsys.config.schema import Config
from rlsys.config.validate import ConfigError
from rlsys.data.encode import encode_prompt
from rlsys.data.prompt_length import HINT_CAPPED, TOO_LONG, check_prompt_lengths
from rlsys.data.schema import DataError
from rlsys.rl.collector import GroupCollector
from rlsys.rl.loop import check_rl_prompts
from rlsys.stages.context import StageContext
from rlsys.stages.io import stage_rows
from rlsys.stages.sampling import check_stage_prompts, prompt_limit, sample_rows

LONG = "Add these numbers one by one and give the total. " + " ".join(str(i % 10) for i in range(900))


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir: str):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


def _train_file(tmp_path: Path) -> Path:
    """Row 'long' on line 3 (line 2 is blank)."""
    path = tmp_path / "train.jsonl"
    rows = [{"id": "short-1", "prompt": "What is 2 + 3?", "answer": "5"}, None,
            {"id": "long", "prompt": LONG, "answer": "1"},
            {"id": "short-2", "prompt": "What is 4 + 4?", "answer": "8"}]
    path.write_text("".join((json.dumps(r) if r else "") + "\n" for r in rows))
    return path


def _ctx(tmp_path: Path, **data) -> StageContext:
    cfg = OmegaConf.structured(Config)
    cfg.data.train_files = [str(_train_file(tmp_path))]
    cfg.data = OmegaConf.merge(cfg.data, data)
    stage = OmegaConf.merge(OmegaConf.structured(Config).stages, {"rl": {"kind": "rl"}}).rl
    return StageContext(cfg, "rl", stage, "unused", tmp_path / "out")


def test_error_names_file_line_row_id_tokens_and_keys(tmp_path: Path, tokenizer) -> None:
    ctx = _ctx(tmp_path)
    rows = stage_rows(ctx, "rl")
    with pytest.raises(DataError) as info:
        check_stage_prompts(ctx, tokenizer, rows)
    n = len(encode_prompt(tokenizer, rows[1]))
    message = str(info.value)
    assert message.startswith(f"{tmp_path / 'train.jsonl'} line 3 (row id 'long'): prompt has {n} tokens, more than "
                              "the 384 allowed (rollout.max_model_len 512 - rollout.max_tokens 128)"), message
    for hint in ("rollout.max_model_len", "data.max_prompt_tokens", "data.on_bad_row=skip"):
        assert hint in message


def test_skip_drops_exactly_that_row_and_counts_it(tmp_path: Path, tokenizer, caplog) -> None:
    ctx = _ctx(tmp_path, on_bad_row="skip")
    rows = stage_rows(ctx, "rl")
    with caplog.at_level(logging.WARNING):
        checked = check_stage_prompts(ctx, tokenizer, rows)
    assert [r["id"] for r in checked.rows] == ["short-1", "short-2"] and checked.kept == [0, 2]
    assert checked.prompt_ids == [encode_prompt(tokenizer, r) for r in checked.rows]
    assert ctx.data_metrics == {TOO_LONG: 1.0, HINT_CAPPED: 0.0}
    assert "train.jsonl line 3 (row id 'long')" in caplog.text and TOO_LONG in caplog.text
    # The rows stay as written: nothing of the check reaches the fields rewards see.
    assert checked.rows[0] is rows[0] and checked.rows[1] is rows[2]
    assert not any("train.jsonl" in json.dumps(r) for r in rows)


def test_every_row_dropped_is_an_error(tmp_path: Path, tokenizer) -> None:
    ctx = _ctx(tmp_path, on_bad_row="skip", max_prompt_tokens=3)
    with pytest.raises(DataError, match=r"\(3 of 3 rows are over the limit\).*every row was dropped"):
        check_stage_prompts(ctx, tokenizer, stage_rows(ctx, "rl"))


def test_default_limit_is_max_model_len_minus_max_tokens(tmp_path: Path, tokenizer) -> None:
    cfg = OmegaConf.structured(Config)
    assert cfg.data.max_prompt_tokens is None
    assert prompt_limit(cfg) == (cfg.rollout.max_model_len - cfg.rollout.max_tokens,
                                 f"rollout.max_model_len {cfg.rollout.max_model_len} - rollout.max_tokens "
                                 f"{cfg.rollout.max_tokens}")
    cfg.rollout.max_model_len, cfg.rollout.max_tokens = 600, 100
    assert prompt_limit(cfg)[0] == 500
    assert prompt_limit(cfg, 250, "stages.x.sample.max_tokens")[0] == 350
    cfg.rollout.max_tokens = 600
    with pytest.raises(ConfigError, match="config key 'rollout.max_model_len' = 600 leaves no room"):
        prompt_limit(cfg)
    cfg.data.max_prompt_tokens = 50
    assert prompt_limit(cfg) == (50, "data.max_prompt_tokens = 50")
    cfg.data.max_prompt_tokens = 600
    with pytest.raises(ConfigError, match="config key 'data.max_prompt_tokens' = 600: must be below"):
        prompt_limit(cfg)

    # The limit is inclusive: a prompt of exactly `limit` tokens fits, one more does not.
    row = {"id": "r", "prompt": "What is 12 + 30?", "answer": "42"}
    n = len(encode_prompt(tokenizer, row))
    assert check_prompt_lengths(tokenizer, [row], n, "t", "error").kept == [0]
    with pytest.raises(DataError, match=rf"x row 1 \(row id 'r'\): prompt has {n} tokens, more than the {n - 1}"):
        check_prompt_lengths(tokenizer, [row], n - 1, "t", "error", where="x")


def test_a_hinted_prompt_too_long_caps_the_rows_hints(tmp_path: Path, tokenizer, caplog) -> None:
    ctx = _ctx(tmp_path)
    ctx.cfg.hints.max_level = 3
    short = {"id": "a", "prompt": "What is 2 + 3?", "answer": "5", "hints": ["add", "two plus three", "5"]}
    capped = {"id": "b", "prompt": "What is 4 + 4?", "answer": "8", "hints": ["add", "four plus four", LONG]}
    with caplog.at_level(logging.WARNING):
        checked = check_rl_prompts(ctx, tokenizer, [short, capped])
    assert [r["id"] for r in checked.rows] == ["a", "b"] and checked.hint_caps == {1: 2}
    assert ctx.data_metrics == {TOO_LONG: 0.0, HINT_CAPPED: 1.0}
    assert "row id 'b'): with its level-3 hint" in caplog.text
    # Below the level whose hint is too long nothing is capped; with hints off nothing is measured.
    ctx.cfg.hints.max_level = 2
    assert check_rl_prompts(ctx, tokenizer, [short, capped]).hint_caps == {}
    ctx.cfg.hints.max_level, ctx.cfg.hints.enabled = 3, False
    assert check_rl_prompts(ctx, tokenizer, [short, capped]).hint_caps == {}


def test_capped_rows_are_searched_only_up_to_their_cap() -> None:
    search = LevelSearch({"a": 1, "b": 1}, max_level=3, caps={"a": 2})
    for _ in range(2):
        for pid, level in search.pending().items():
            search.report(pid, level, 0)
    assert search.minimal == {"a": None} and search.pending() == {"b": 3}

    hints = SimpleNamespace(enabled=True, max_level=5)
    rows = [{"id": i, "prompt": "p", "hints": ["h"]} for i in range(3)]
    collector = GroupCollector(rows, None, None, None, HintSource(), SimpleNamespace(hints=hints), None,
                               hint_caps={1: 2, 2: 0})
    assert [collector.max_level(i) for i in range(3)] == [5, 2, 0]
    assert [collector.hintable(i) for i in range(3)] == [True, True, False]


def test_sample_rows_keeps_row_order_around_a_dropped_row(tmp_path: Path, tokenizer) -> None:
    ctx = _ctx(tmp_path, on_bad_row="skip")
    rows = stage_rows(ctx, "rl")
    pool = RecordingPool()
    results = sample_rows(ctx, pool, tokenizer, rows, 2)
    assert [r.request_id for r in pool.requests] == ["rl-0", "rl-2"]
    assert [r.ok for r in results] == [True, False, True]
    assert re.search("too long", results[1].error) and ctx.data_metrics[TOO_LONG] == 1.0

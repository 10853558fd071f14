"""Rows with `images` in the RL collector and offline sampling: the prompt has one image placeholder per image
before the query and the hint after it, the request carries the image paths; text rows take the old path."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf
from rlsys_testing import RecordingPool

from hints.progressive import HintSource
from rlsys.config.schema import Config
from rlsys.data.encode import encode_prompt, encode_vl_prompt
from rlsys.data.loading import load_rows
from rlsys.rl.collector import GroupCollector
from rlsys.stages.context import StageContext
from rlsys.stages.sampling import reward_sample, sample_rows

SMALL = {"tasks": ["arith", "count"], "n_train_per_task": 1, "n_eval_per_task": 1, "n_sft_per_task": 1,
         "n_trap_train": 1, "n_trap_eval": 1, "image_size": 64}
TEXT_ROW = {"id": "t-1", "prompt": "What is 2 + 3?", "answer": "5", "data_source": "rlsys/math",
            "hints": ["Add the two numbers.", "2 + 3 = 5."]}


@pytest.fixture(scope="module")
def vl(tiny_model_dir, tiny_vl_dir):
    """(tokenizer, processor, lm tokenizer) of the tiny Qwen3-VL built around the tiny model."""
    from transformers import AutoProcessor, AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_vl_dir), AutoProcessor.from_pretrained(tiny_vl_dir), (
        AutoTokenizer.from_pretrained(tiny_model_dir))


@pytest.fixture(scope="module")
def rows(tmp_path_factory) -> list[dict]:
    from rlsys.data.embedded import ensure_visual_suite

    files = ensure_visual_suite(str(tmp_path_factory.mktemp("artifacts")), SMALL)
    image_rows, _ = load_rows([files["vl_train"]], "rl", "error")
    return [image_rows[0], dict(TEXT_ROW), image_rows[1]]


def _cfg():
    return OmegaConf.structured(Config)


def test_collector_request_of_an_image_row(vl, rows) -> None:
    tok, processor, lm_tok = vl
    collector = GroupCollector(rows, tok, None, None, HintSource(), _cfg(), None)
    image_req, text_req, plain_req = collector._requests(0, 0, [(0, 2), (1, 1), (2, 0)], 4)
    row = rows[0]
    hint = row["hints"][1]
    assert image_req.images == row["images"] and len(row["images"]) == 1 and Path(row["images"][0]).is_file()
    # The processor counts the placeholders (one per image); the tokenizer renders the same ids.
    assert image_req.prompt_token_ids == encode_vl_prompt(processor, row, None, hint)
    assert image_req.prompt_token_ids.count(processor.image_token_id) == 1
    text = tok.decode(image_req.prompt_token_ids)
    pad, query = text.index("<|image_pad|>"), text.index(row["prompt"])
    assert text.index("<|vision_start|>") < pad < text.index("<|vision_end|>") < query < text.index(hint)
    assert plain_req.images == rows[2]["images"] and hint not in tok.decode(plain_req.prompt_token_ids)
    assert collector.prompt_ids(row) == encode_vl_prompt(processor, row)  # the hint-free training context
    # A text row: exactly the old prompt (as the plain LM tokenizer renders it) and no images.
    assert text_req.images == []
    assert text_req.prompt_token_ids == encode_prompt(tok, rows[1], None, TEXT_ROW["hints"][0])
    assert text_req.prompt_token_ids == encode_prompt(lm_tok, rows[1], None, TEXT_ROW["hints"][0])
    assert "<|image_pad|>" not in tok.decode(text_req.prompt_token_ids)


def test_rewards_see_the_image_paths_and_the_math_reward_scores_visual_rows(rows) -> None:
    from rewards.math import math_reward

    row = rows[0]
    sample = reward_sample(row, row["solution"], 10)
    assert sample["images"] == row["images"] and sample["data_source"] == "rlsys/visual"
    assert math_reward(**sample)["score"] == 1.0
    assert math_reward(**reward_sample(row, "The answer is \\boxed{-1}.", 5))["score"] == 0.0
    reward_cfg = OmegaConf.load(Path(__file__).parents[2] / "conf" / "reward" / "math.yaml")
    assert "rlsys/visual" in reward_cfg.fns[0].data_sources


def test_offline_sampling_sends_images_with_vl_prompts(vl, rows, tmp_path) -> None:
    tok, processor, _ = vl
    cfg = _cfg()
    stage = OmegaConf.merge(cfg.stages, {"s": {"kind": "rft_sample"}}).s
    ctx = StageContext(cfg, "s", stage, tok.name_or_path, tmp_path / "out")
    pool = RecordingPool()
    sample_rows(ctx, pool, tok, rows, 2)
    image_req, text_req, _ = pool.requests
    assert image_req.images == rows[0]["images"]
    assert image_req.prompt_token_ids == encode_vl_prompt(processor, rows[0])
    assert text_req.images == [] and text_req.prompt_token_ids == encode_prompt(tok, rows[1])

"""Prompt lengths of rows with images: measured as the engine sees them (the VL prompt, each placeholder expanded to
its image's tokens), with the tiny Qwen3-VL's processor; text rows exactly as before."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf
from rlsys_testing import draw_image

from rlsys.config.schema import Config
from rlsys.config.validate import ConfigError
from rlsys.data.encode import encode_prompt, encode_vl_prompt
from rlsys.data.prompt_length import check_prompt_lengths
from rlsys.data.schema import DataError
from rlsys.stages.context import StageContext
from rlsys.stages.sampling import check_stage_prompts, image_token_counter

TEXT_ROW = {"id": "t", "prompt": "What is 2 + 3?", "answer": "5"}


@pytest.fixture(scope="module")
def vl(tiny_vl_dir, tmp_path_factory):
    """(model dir, tokenizer, processor, image row) of the tiny Qwen3-VL."""
    from transformers import AutoProcessor, AutoTokenizer

    root = tmp_path_factory.mktemp("vl-prompt-length")
    out = tiny_vl_dir
    row = {"id": "v", "prompt": "How many red circles are there?", "answer": "1",
           "images": [draw_image(root / "a.png", (224, 224)), draw_image(root / "b.png", (96, 96))],
           "hints": ["Count.", "Count the red round shapes in each picture.",
                     "Count the red round shapes in each picture, one by one, then add the two counts together."]}
    return out, AutoTokenizer.from_pretrained(out), AutoProcessor.from_pretrained(out), row


def _expanded(processor, row: dict, hint: str | None = None) -> int:
    from rlsys.learner.vl_inputs import build_vl_inputs

    return build_vl_inputs(processor, encode_vl_prompt(processor, row, None, hint), row["images"])["input_ids"].shape[1]


def test_a_visual_prompt_counts_its_image_tokens(vl) -> None:
    model_dir, tok, processor, row = vl
    counter = image_token_counter(model_dir, "rl")
    expanded = _expanded(processor, row)
    vl_ids = encode_vl_prompt(tok, row)
    assert expanded > len(vl_ids) + 20  # the images are most of the prompt
    # Fits exactly at the expanded length; one token less and it is over, although its text is far shorter.
    ok = check_prompt_lengths(tok, [row, TEXT_ROW], expanded, "test", "error", image_tokens=counter)
    assert ok.rows == [row, TEXT_ROW] and ok.prompt_ids == [vl_ids, encode_prompt(tok, TEXT_ROW)]
    with pytest.raises(DataError, match=rf"row id 'v'\): prompt has {expanded} tokens, more than the {expanded - 1}"):
        check_prompt_lengths(tok, [row, TEXT_ROW], expanded - 1, "test", "error", image_tokens=counter)
    skipped = check_prompt_lengths(tok, [row, TEXT_ROW], expanded - 1, "test", "skip", image_tokens=counter)
    assert skipped.rows == [TEXT_ROW] and skipped.metrics["data/too_long_dropped"] == 1.0
    # Without a counter a row with images cannot be measured.
    with pytest.raises(ValueError, match="row id 'v'.*image token counter"):
        check_prompt_lengths(tok, [row], 10_000, "test", "error")


def test_hinted_visual_prompts_are_measured_with_their_images(vl) -> None:
    model_dir, tok, processor, row = vl
    counter = image_token_counter(model_dir, "rl")
    sizes = [_expanded(processor, row, h) for h in row["hints"]]
    assert sizes[0] < sizes[1] < sizes[2]
    hint_text = lambda r, level: r["hints"][level - 1]  # noqa: E731
    # At the level-2 size, levels 1 and 2 fit and level 3 does not: the row's hints stop at level 2.
    out = check_prompt_lengths(tok, [row], sizes[1], "test", "error", image_tokens=counter, hint_text=hint_text,
                               max_level=3)
    assert out.hint_caps == {0: 2}
    assert check_prompt_lengths(tok, [row], sizes[2], "test", "error", image_tokens=counter, hint_text=hint_text,
                                max_level=3).hint_caps == {}


def test_stage_check_counts_image_tokens_and_refuses_a_text_model(vl, tiny_model_dir, tmp_path) -> None:
    model_dir, tok, processor, row = vl
    cfg = OmegaConf.structured(Config)
    cfg.rollout.max_model_len, cfg.rollout.max_tokens = _expanded(processor, row) + 16, 16
    stage = OmegaConf.merge(cfg.stages, {"rl": {"kind": "rl"}}).rl
    ctx = StageContext(cfg, "rl", stage, model_dir, tmp_path / "out")
    assert check_stage_prompts(ctx, tok, [row]).rows == [row]
    cfg.rollout.max_model_len -= 1
    with pytest.raises(DataError, match="row id 'v'"):
        check_stage_prompts(StageContext(cfg, "rl", stage, model_dir, tmp_path / "out"), tok, [row])
    with pytest.raises(ConfigError, match=r"stage 'rl' reads rows with images.*not a vision-language model"):
        check_stage_prompts(StageContext(cfg, "rl", stage, tiny_model_dir, tmp_path / "out"), tok, [row])
    # Text rows never need the processor (the model path is not even read).
    text_ctx = StageContext(cfg, "rl", stage, "unused", tmp_path / "out")
    assert check_stage_prompts(text_ctx, tok, [TEXT_ROW]).prompt_ids == [encode_prompt(tok, TEXT_ROW)]


@pytest.mark.parametrize("sampling", ["uniform", "slowfast"])
def test_stage_check_counts_video_tokens_as_sent(vl, video_rows, tiny_model_dir, tmp_path, sampling) -> None:
    from rlsys.data.videos import RowVideoItems
    from rlsys.learner.vl_inputs import build_vl_inputs

    model_dir, tok, processor, _ = vl
    row = video_rows[0]
    cfg = OmegaConf.structured(Config)
    cfg.data.video_sampling = sampling
    cfg.data.slowfast.token_budget = 24
    items = RowVideoItems.from_config(cfg.data, model_dir)(row)
    # The length the learner (and the engine) expand the prompt to, with the items the rollout sends.
    ids = encode_vl_prompt(tok, row, cfg.data.system_prompt, None, len(items))
    expanded = build_vl_inputs(processor, ids, [], videos=items)["input_ids"].shape[1]
    assert expanded > len(ids) + 10  # the video items are much of the prompt
    cfg.rollout.max_model_len, cfg.rollout.max_tokens = expanded + 16, 16
    stage = OmegaConf.merge(cfg.stages, {"rl": {"kind": "rl"}}).rl
    ok = check_stage_prompts(StageContext(cfg, "rl", stage, model_dir, tmp_path / "out"), tok, [row])
    assert ok.rows == [row] and ok.prompt_ids == [ids]
    cfg.rollout.max_model_len -= 1
    with pytest.raises(DataError, match=rf"prompt has {expanded} tokens, more than the {expanded - 1}"):
        check_stage_prompts(StageContext(cfg, "rl", stage, model_dir, tmp_path / "out"), tok, [row])
    with pytest.raises(ConfigError, match=r"stage 'rl' reads rows with videos.*not a vision-language model"):
        check_stage_prompts(StageContext(cfg, "rl", stage, tiny_model_dir, tmp_path / "out"), tok, [row])
    with pytest.raises(ValueError, match="no video token counter"):
        check_prompt_lengths(tok, [row], 10_000, "test", "error")

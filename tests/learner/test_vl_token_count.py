"""`image_token_count`: how many tokens one image placeholder becomes, equal to the expansion `build_vl_inputs` makes
(and, for Qwen-VL, to the image grid over merge_size²)."""

from __future__ import annotations

import pytest
from rlsys_testing import draw_image

from rlsys.learner.vl_inputs import build_vl_inputs, image_token_count


@pytest.fixture(scope="module")
def processor(tiny_vl_dir):
    from transformers import AutoProcessor

    return AutoProcessor.from_pretrained(tiny_vl_dir)


@pytest.mark.parametrize("size", [(64, 64), (120, 90), (224, 224), (33, 200)])
def test_count_equals_the_expansion_build_vl_inputs_makes(processor, tmp_path, size) -> None:
    from rlsys.data.encode import encode_vl_prompt

    image = draw_image(tmp_path / "x.png", size, "green", "rectangle")
    prompt = encode_vl_prompt(processor, {"id": "q", "prompt": "What is drawn?", "images": [image]})
    inputs = build_vl_inputs(processor, prompt, [image])
    count = image_token_count(processor, image)
    # The placeholder token is replaced by `count` tokens; every other token stays.
    assert inputs["input_ids"].shape[1] == len(prompt) - 1 + count
    assert (inputs["input_ids"][0] == processor.image_token_id).sum().item() == count
    grid = inputs["image_grid_thw"][0]
    assert count == int(grid.prod()) // processor.image_processor.merge_size ** 2
    # A PIL image counts the same as its file.
    from rlsys.learner.vl_inputs import load_image

    assert image_token_count(processor, load_image(image)) == count


def test_bigger_images_take_more_tokens_and_a_missing_file_names_itself(processor, tmp_path) -> None:
    small, large = draw_image(tmp_path / "s.png", (64, 64), "green", "rectangle"), draw_image(
        tmp_path / "l.png", (256, 256), "green", "rectangle")
    assert image_token_count(processor, large) > image_token_count(processor, small) > 0
    with pytest.raises(ValueError, match="nope.png"):
        image_token_count(processor, str(tmp_path / "nope.png"))

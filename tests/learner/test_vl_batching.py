"""Learner batches whose rows carry images: the batch dict keeps them through sharding, and a
micro-batch built through the VLM's processor scores exactly the sampled tokens (as the reference
`build_vl_inputs` / `completion_logprobs` path does, which tests/model/test_tiny_vl.py checks against vLLM)."""

from __future__ import annotations

import pytest
import torch
from rlsys_testing import draw_image

from rlsys.learner.batching import (
    collate,
    has_images,
    make_batch,
    micro_batches,
    select,
    shard_batch,
    token_logprobs,
)

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def vl_setup(tiny_vl_dir, tmp_path_factory):
    from transformers import AutoProcessor

    root = tmp_path_factory.mktemp("vl-batching")
    model_dir = tiny_vl_dir
    images = [draw_image(root / "a.png", (120, 90), "red"), draw_image(root / "b.png", (64, 64), "blue")]
    return model_dir, AutoProcessor.from_pretrained(model_dir), images


def _prompt(processor, question: str, images: list[str]) -> list[int]:
    from rlsys.data.encode import encode_vl_prompt

    return encode_vl_prompt(processor, {"id": "q", "prompt": question, "images": images})


def test_make_batch_keeps_images_through_select_and_shards():
    batch = make_batch([[1, 2, 3], [4, 5], [6, 7, 8, 9]], [[0, 1, 1], [0, 1], [0, 0, 1, 1]],
                       {"adv": [1.0, 2.0, 3.0]}, images=[["a.png"], [], ["b.png", "c.png"]])
    assert batch["images"] == [["a.png"], [], ["b.png", "c.png"]]
    assert has_images(batch) and has_images(batch, [0]) and not has_images(batch, [1])
    assert select(batch, [2, 1])["images"] == [["b.png", "c.png"], []]
    shards = shard_batch(batch, 2)
    for shard in shards:
        for ids, imgs in zip(shard["input_ids"], shard["images"]):
            assert imgs == batch["images"][batch["input_ids"].index(ids)]
    with pytest.raises(ValueError, match="2 image lists for 3 sequences"):
        make_batch(batch["input_ids"], batch["loss_mask"], images=[[], []])
    # Text batches are the old dicts: no images key, and a processor changes nothing.
    text = make_batch(batch["input_ids"], batch["loss_mask"], {"adv": [1.0, 2.0, 3.0]})
    assert "images" not in text and "images" not in select(text, [0]) and not has_images(text)
    plain, via = collate(text, [0, 2], 0, CPU), collate(text, [0, 2], 0, CPU, processor=object())
    assert via.positions is None and via.model_inputs == {}
    for key in ("input_ids", "attention_mask", "loss_mask"):
        assert torch.equal(getattr(plain, key), getattr(via, key))
    assert set(plain.forward_inputs()) == {"input_ids", "attention_mask"}


def test_image_rows_expand_like_the_processor_and_score_the_sampled_tokens(vl_setup):
    from transformers import AutoModelForImageTextToText

    from rlsys.learner.vl_inputs import build_vl_inputs, completion_logprobs

    model_dir, processor, (red, blue) = vl_setup
    pad = processor.tokenizer.pad_token_id
    rows = [
        (_prompt(processor, "What colour is it?", [red]), [red], [40, 41, 42, 2]),
        (_prompt(processor, "Which is bigger?", [red, blue]), [red, blue], [43, 44]),
        (_prompt(processor, "What is 3 + 4?", []), [], [45, 46, 47]),  # a text row in the same micro-batch
    ]
    seqs = [p + c for p, _, c in rows]
    masks = [[0] * len(p) + [1] * len(c) for p, _, c in rows]
    old = [[0.0] * len(p) + [-0.5 - k for k in range(len(c))] for p, _, c in rows]
    batch = make_batch(seqs, masks, {"old_logprobs": old, "adv": [1.0, -1.0, 0.5]},
                       images=[imgs for _, imgs, _ in rows])
    assert len(micro_batches(batch, 8, 10_000)) == 1
    mb = collate(batch, [0, 1, 2], pad, CPU, processor=processor)

    refs = [build_vl_inputs(processor, p, imgs, c) for p, imgs, c in rows]
    for row, (ref, seq) in enumerate(zip(refs, seqs)):
        n = ref["input_ids"].shape[1]
        assert mb.input_ids[row, :n].tolist() == ref["input_ids"][0].tolist()
        assert mb.attention_mask[row].sum().item() == n
        assert mb.model_inputs["mm_token_type_ids"][row, :n].tolist() == ref["mm_token_type_ids"][0].tolist()
        positions = mb.positions[row]
        assert len(positions) == len(seq) and mb.input_ids[row, positions].tolist() == seq
        # The loss mask and per-token fields moved with their tokens; expansion tokens carry 0.
        assert mb.loss_mask[row].sum().item() == len(rows[row][2])
        assert mb.loss_mask[row, positions].tolist() == masks[row]
        assert mb.fields["old_logprobs"][row, positions].tolist() == old[row]
        assert mb.fields["old_logprobs"][row].abs().sum().item() == pytest.approx(sum(abs(v) for v in old[row]))
    assert mb.model_inputs["image_grid_thw"].tolist() == \
        torch.cat([r["image_grid_thw"] for r in refs if "image_grid_thw" in r]).tolist()
    assert torch.equal(mb.model_inputs["pixel_values"], torch.cat([r["pixel_values"] for r in refs[:2]]))
    assert mb.fields["adv"].tolist() == [1.0, -1.0, 0.5]

    # The learner's scoring (forward_inputs -> token_logprobs -> unexpand) of the sampled tokens equals
    # the reference path's, one sequence at a time.
    model = AutoModelForImageTextToText.from_pretrained(model_dir, dtype=torch.float32).eval()
    with torch.no_grad():
        lp = token_logprobs(model(**mb.forward_inputs()).logits, mb.input_ids)
        for row, ((p, _, c), ref) in enumerate(zip(rows, refs)):
            learner = mb.unexpand(lp, row, len(seqs[row]))
            assert learner.shape[0] == len(seqs[row])
            expected = completion_logprobs(model, ref, len(c))[0]
            assert torch.allclose(learner[len(p):], expected, atol=1e-5), row


def test_too_few_placeholders_is_an_error(vl_setup):
    _, processor, (red, blue) = vl_setup
    prompt = _prompt(processor, "What colour is it?", [red])
    batch = make_batch([prompt + [40]], [[0] * len(prompt) + [1]], images=[[red, blue]])
    with pytest.raises(ValueError, match="1 image placeholders for 2 images"):
        collate(batch, [0], 0, CPU, processor=processor)

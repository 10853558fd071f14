"""The learner's vision-language passes without DeepSpeed: micro-batch budgets on expanded lengths, and the
ZeRO-3 vision-tower pass (a forward without images runs the tower on a dummy row, leaving the real rows'
logits as they were and adding a zero that reaches every tower parameter)."""

from __future__ import annotations

import pytest
import torch
from rlsys_testing import draw_image

from rlsys.learner.batching import collate, make_batch, micro_batches
from rlsys.learner.vl_passes import ImageTokens, VisionSync, engine_logits, padding_pass

CPU = torch.device("cpu")


def _ids(*lengths: int) -> list[list[int]]:
    return [[5] * n for n in lengths]


def test_micro_batches_count_extra_tokens():
    ids = _ids(3, 5, 4, 2)
    batch = make_batch(ids, [[1] * len(x) for x in ids])
    # Unexpanded (as before): sorted lengths 2, 3, 4 fill 3 x 4 = 12 tokens; 5 x 4 = 20 would overshoot.
    assert micro_batches(batch, 4, 12) == [[3, 0, 2], [1]]
    assert micro_batches(batch, 4, 12, [0, 0, 0, 0]) == [[3, 0, 2], [1]]
    # Sequence 2 has an image placeholder that expands by 6 tokens: 10 long, so lengths 2, 3 | 5 | 10.
    assert micro_batches(batch, 4, 12, [0, 0, 6, 0]) == [[3, 0], [1], [2]]
    # A sequence over the budget on its own still gets a micro-batch.
    assert micro_batches(batch, 4, 12, [0, 20, 0, 0]) == [[3, 0, 2], [1]]
    assert micro_batches(batch, 4, 12, [9, 0, 0, 0]) == [[3, 2], [1], [0]]
    # Units stay whole and are as long as their longest sequence.
    pairs = make_batch(ids, [[1] * len(x) for x in ids], unit_size=2)
    assert micro_batches(pairs, 4, 20) == [[2, 3, 0, 1]]
    assert micro_batches(pairs, 4, 20, [0, 0, 4, 0]) == [[0, 1], [2, 3]]
    with pytest.raises(ValueError, match="3 extra-token counts for 4 sequences"):
        micro_batches(batch, 4, 12, [0, 0, 0])


@pytest.fixture(scope="module")
def vl_setup(tiny_vl_dir, tmp_path_factory):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    root = tmp_path_factory.mktemp("vl-passes")
    model_dir = tiny_vl_dir
    images = [draw_image(root / "a.png", (120, 90), "red"), draw_image(root / "b.png", (224, 224), "blue")]
    model = AutoModelForImageTextToText.from_pretrained(model_dir, dtype=torch.float32)
    return model, AutoProcessor.from_pretrained(model_dir), images


def _batch(processor, rows: list[tuple[str, list[str], list[int]]]) -> dict:
    from rlsys.data.encode import encode_vl_prompt

    prompts = [encode_vl_prompt(processor, {"id": q, "prompt": q, "images": imgs}) for q, imgs, _ in rows]
    seqs = [p + c for p, (_, _, c) in zip(prompts, rows)]
    return make_batch(seqs, [[0] * len(p) + [1] * len(c) for p, (_, _, c) in zip(prompts, rows)],
                      images=[imgs for _, imgs, _ in rows])


def test_image_tokens_give_the_expanded_lengths(vl_setup):
    from rlsys.learner.vl_inputs import image_token_count

    _, processor, (red, blue) = vl_setup
    batch = _batch(processor, [("What colour?", [red], [40, 41]), ("What is 3 + 4?", [], [42]),
                               ("Which is bigger?", [red, blue], [43])])
    counter = ImageTokens(processor)
    extra = counter.extra_tokens(batch)
    assert extra == [image_token_count(processor, red) - 1, 0,
                     image_token_count(processor, red) + image_token_count(processor, blue) - 2]
    assert extra[2] > extra[0] > 0 and set(counter.counts) == {red, blue}
    # Exactly what the processor's expansion adds to each sequence.
    mb = collate(batch, [0, 1, 2], processor.tokenizer.pad_token_id, CPU, processor)
    for row, ids in enumerate(batch["input_ids"]):
        assert int(mb.attention_mask[row].sum()) == len(ids) + extra[row]
    text = make_batch(batch["input_ids"][1:2], batch["loss_mask"][1:2])
    assert counter.extra_tokens(text) is None and ImageTokens(None).extra_tokens(batch) is None
    assert counter.extra_tokens({**text, "images": [[]]}) is None


def test_vision_sync_runs_the_tower_and_leaves_the_rows_alone(vl_setup):
    model, processor, (red, _) = vl_setup
    pad = processor.tokenizer.pad_token_id
    batch = _batch(processor, [("What is 3 + 4?", [], [42, 43, 44]), ("Name a colour.", [], [45]),
                               ("What colour?", [red], [40])])
    text_mb, image_mb = collate(batch, [0, 1], pad, CPU, processor), collate(batch, [2], pad, CPU, processor)
    sync = VisionSync(processor, pad, CPU)
    tower_calls: list[int] = []
    hook = model.model.visual.register_forward_hook(lambda *_: tower_calls.append(1))
    try:
        model.zero_grad(set_to_none=True)
        logits, anchor = engine_logits(model, sync, text_mb)
        assert len(tower_calls) == 1 and anchor is not None and anchor.item() == 0.0
        with torch.no_grad():
            plain = model(**text_mb.forward_inputs()).logits
        assert len(tower_calls) == 1  # text alone never runs it
        # Equal at every real token (padding positions are never scored).
        real = text_mb.attention_mask.bool()
        assert logits.shape == plain.shape and torch.allclose(logits[real], plain[real], atol=1e-5)
        # The zero reaches every tower parameter: each gets a gradient, all zeros.
        anchor.backward()
        visual = dict(model.model.visual.named_parameters())
        assert visual and all(p.grad is not None and not p.grad.any() for p in visual.values())
        # A micro-batch with images runs the tower itself, once; no anchor.
        _, none = engine_logits(model, sync, image_mb)
        assert none is None and len(tower_calls) == 2
        # The padding pass (no rows) runs it too; without a sync nothing changes.
        assert padding_pass(model, sync).item() == 0.0 and len(tower_calls) == 3
        _, none = engine_logits(model, None, text_mb)
        assert none is None and len(tower_calls) == 3
    finally:
        hook.remove()
    row = sync.dummy_row()
    assert int((row["input_ids"] == processor.image_token_id).sum()) == int(row["image_grid_thw"].prod()) // processor.image_processor.merge_size ** 2

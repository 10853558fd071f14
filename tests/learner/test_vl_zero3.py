"""ZeRO-3 with two ranks and a vision-language model: a rank whose micro-batch has no image (text rows, a padding
pass, an empty shard) still runs the vision tower, so both ranks gather the same parameters in the same order.
Without that, the ranks' collectives diverge and the step hangs (the group's call timeout turns it into a failure)."""

from __future__ import annotations

import pytest
import torch
from rlsys_testing import draw_image, learner_config

from rlsys.learner.batching import collate, has_images, make_batch, select, shard_batch, token_logprobs

pytestmark = pytest.mark.slow

CPU = torch.device("cpu")
# Seconds one collective group call may take before it counts as hung; a healthy call takes a few seconds.
CALL_TIMEOUT = 240.0


def _rows(processor, red: str, blue: str) -> tuple[list[list[int]], list[list[int]], list[list[str]]]:
    from rlsys.data.encode import encode_vl_prompt

    specs = [("What colour is it?", [red], [40, 41, 42]), ("What is 3 + 4?", [], [45, 46]),
             ("Which is bigger?", [red, blue], [43, 44]), ("Name a colour.", [], [47, 48, 49])]
    seqs, masks, images = [], [], []
    for question, imgs, completion in specs:
        prompt = encode_vl_prompt(processor, {"id": question, "prompt": question, "images": imgs})
        seqs.append(prompt + completion)
        masks.append([0] * len(prompt) + [1] * len(completion))
        images.append(imgs)
    return seqs, masks, images


@pytest.mark.timeout(1500)
def test_zero3_ranks_with_and_without_images_stay_in_step(ray_session, tiny_vl_dir, tmp_path):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from rlsys.learner.group import LearnerGroup

    model_dir = tiny_vl_dir
    processor = AutoProcessor.from_pretrained(model_dir)
    red, blue = draw_image(tmp_path / "a.png", (120, 90), "red"), draw_image(tmp_path / "b.png", (64, 64), "blue")
    seqs, masks, images = _rows(processor, red, blue)
    mixed = make_batch(seqs[:2], masks[:2], images=images[:2])  # one image row, one text row
    # The situation under test: one rank's shard carries images, the other's only text.
    assert sorted(has_images(s) for s in shard_batch(mixed, 2)) == [False, True]
    # One image row: the other rank's shard is empty and it only runs padding passes.
    lone = select(mixed, [0])
    assert [len(s["input_ids"]) for s in shard_batch(lone, 2)] == [1, 0]
    # Four rows, one sequence per micro-batch: ranks with image and text micro-batches in differing orders.
    full = make_batch(seqs, masks, images=images)

    model = AutoModelForImageTextToText.from_pretrained(model_dir, dtype=torch.float32).eval()
    pad = processor.tokenizer.pad_token_id
    with torch.no_grad():
        expected = []
        for i in range(len(seqs)):
            mb = collate(full, [i], pad, CPU, processor)
            expected.append(mb.unexpand(token_logprobs(model(**mb.forward_inputs()).logits, mb.input_ids), 0,
                                        len(seqs[i])))

    group = LearnerGroup(model_dir, learner_config(num_actors=2, zero_stage=3, micro_batch_size=1),
                         timeout=CALL_TIMEOUT)
    try:
        logprobs = group.compute_logprobs(full)
        first = group.train_step(mixed, "sft")
        lone_step = group.train_step(lone, "sft")
        full_step = group.train_step(full, "sft")
        after = group.compute_logprobs(mixed)
    finally:
        group.shutdown()

    # Scores and the first loss are those of the unsharded model: the tower's extra pass changes neither.
    for i, lp in enumerate(logprobs):
        assert torch.allclose(torch.tensor(lp), expected[i], atol=1e-4), i
    nll = -sum(float((expected[i] * torch.tensor(masks[i])).sum()) for i in range(2)) / sum(sum(m) for m in masks[:2])
    assert first["loss"] == pytest.approx(nll, rel=1e-4)
    for step in (lone_step, full_step):
        assert step["loss"] == step["loss"] and step["grad_norm"] > 0
    assert any(not torch.allclose(torch.tensor(a), b[: len(a)]) for a, b in zip(after, expected[:2]))

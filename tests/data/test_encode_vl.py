"""SFT rows and preference pairs with images: one placeholder per image in the first user turn (rendered by
the VLM's processor), the loss mask on the assistant turn only, the image files kept with the sequence,
and text rows encoded exactly as before."""

from __future__ import annotations

import pytest
import torch
from rlsys_testing import draw_image

from rlsys.data.encode import encode_chat, encode_pairs, encode_sft_rows
from rlsys.data.loading import sft_messages

VISION = "<|vision_start|><|image_pad|><|vision_end|>"


@pytest.fixture(scope="module")
def vl(tiny_vl_dir, tmp_path_factory):
    from transformers import AutoProcessor, AutoTokenizer

    root = tmp_path_factory.mktemp("encode-vl")
    images = [draw_image(root / f"{c}.png", (64, 48), c, shape=None) for c in ("red", "blue")]
    return AutoTokenizer.from_pretrained(tiny_vl_dir), AutoProcessor.from_pretrained(tiny_vl_dir), images


def test_an_image_row_gets_one_placeholder_per_image_and_a_mask_on_the_answer(vl) -> None:
    tok, processor, images = vl
    row = {"id": "r1", "prompt": "How many shapes?", "response": "There are 3.", "images": images}
    [(ids, mask, fields, kept)] = encode_sft_rows(tok, [row], 256, "Be brief.", processor)
    assert kept == images and fields == {}
    assert ids.count(processor.image_token_id) == 2
    text = tok.decode(ids)
    assert text == ("<|im_start|>system\nBe brief.<|im_end|>\n"
                    f"<|im_start|>user\n{VISION}{VISION}How many shapes?<|im_end|>\n"
                    "<|im_start|>assistant\nThere are 3.<|im_end|>\n")
    # Only the assistant turn (its end token and the newline after it) is trained.
    start = mask.index(1)
    assert set(mask[:start]) == {0} and set(mask[start:]) == {1}
    assert tok.decode(ids[start:]) == "There are 3.<|im_end|>\n"


def test_text_rows_encode_as_before_with_or_without_a_processor(vl) -> None:
    tok, processor, _ = vl
    rows = [{"id": "t1", "prompt": "2 + 2?", "response": "4"}, {"id": "t2", "prompt": "x" * 600, "response": "y"}]
    before = [encode_chat(tok, sft_messages(rows[0], None), 64)]  # t2's answer lies beyond 64 tokens
    assert encode_sft_rows(tok, rows, 64) == before == encode_sft_rows(tok, rows, 64, None, processor)
    assert len(before[0]) == 2


def test_placeholder_mismatch_and_a_missing_processor_name_the_row(vl) -> None:
    tok, processor, images = vl
    # The row's own messages place one image part, but it names two images.
    row = {"id": "bad-row", "images": images, "messages": [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What?"}]},
        {"role": "assistant", "content": "red"}]}
    with pytest.raises(ValueError, match=r"row 'bad-row': the chat template rendered 1 image placeholders for 2"):
        encode_sft_rows(tok, [row], 256, None, processor)
    with pytest.raises(ValueError, match=r"row 'img-row' has images, but no processor was given"):
        encode_sft_rows(tok, [{"id": "img-row", "prompt": "q", "response": "a", "images": images}], 256)
    with pytest.raises(ValueError, match=r"row 'img-row' has images, but TokenizersBackend has no image_token_id"):
        encode_sft_rows(tok, [{"id": "img-row", "prompt": "q", "response": "a", "images": images}], 256, None, tok)


def test_a_row_cut_before_its_answer_is_left_out(vl) -> None:
    tok, processor, images = vl
    row = {"id": "long", "prompt": "word " * 200, "response": "ok", "images": images}
    assert encode_sft_rows(tok, [row], 64, None, processor) == []


def test_the_learner_expands_the_encoded_row_and_keeps_its_mask(vl) -> None:
    from rlsys.jobs.train import seq_batch
    from rlsys.learner.batching import collate

    tok, processor, images = vl
    rows = [{"id": "r1", "prompt": "Colour?", "response": "red", "images": images[:1]},
            {"id": "t1", "prompt": "2 + 2?", "response": "4"}]
    seqs = encode_sft_rows(tok, rows, 256, None, processor)
    batch = seq_batch(seqs, 1)
    assert batch["images"] == [images[:1], []] and batch["fields"] == {}
    assert "images" not in seq_batch(seqs[1:], 1)  # a text-only batch is the plain dict
    mb = collate(batch, [0, 1], tok.pad_token_id, torch.device("cpu"), processor)
    assert mb.model_inputs["pixel_values"].shape[0] > 0
    assert mb.input_ids.shape[1] > len(seqs[0][0])  # the placeholder became the image's tokens
    for row, seq in enumerate(seqs):
        assert mb.loss_mask[row].sum().item() == sum(seq[1])
        trained = mb.input_ids[row][mb.loss_mask[row] > 0].tolist()
        assert trained == [t for t, m in zip(seq[0], seq[1]) if m]


def test_both_sequences_of_an_image_pair_carry_its_images(vl) -> None:
    tok, processor, images = vl
    rows = [{"id": "p1", "prompt": "Count the shapes.", "chosen": "3\nso 3", "rejected": "4\nso 4", "images": images},
            {"id": "p2", "prompt": "1 + 1?", "chosen": "2", "rejected": "3"}]
    (chosen, rejected), (text_c, text_r) = encode_pairs(tok, rows, 256, None, "full", processor)
    assert chosen[3] == rejected[3] == images and chosen[2] == rejected[2] == {}
    prompt = chosen[0][: chosen[1].index(1)]
    assert prompt == rejected[0][: rejected[1].index(1)] and prompt.count(processor.image_token_id) == 2
    assert tok.decode(chosen[0][chosen[1].index(1):]) == "3\nso 3<|im_end|>"
    assert len(text_c) == len(text_r) == 2  # text pairs as before
    [(c, r), _] = encode_pairs(tok, rows, 256, None, "first_diff_line", processor)
    assert c[3] == r[3] == images and sum(c[2]["pref_mask"]) < sum(c[1])
    with pytest.raises(ValueError, match=r"row 'p1' has images, but no processor was given"):
        encode_pairs(tok, rows, 256)

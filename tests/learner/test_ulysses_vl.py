"""Ulysses sequence parallelism on a Qwen3-VL model (rlsys/learner/ulysses_vl.py): the decoder-input slicing in
one process, then the tiny VLM on real ranks (spawned gloo ranks, and a real LearnerGroup) against one rank."""

from __future__ import annotations

import os
import socket

import pytest
import torch

from rlsys.learner.batching import MicroBatch
from rlsys.learner.ulysses import SequenceParallel, check_model, local_span
from rlsys.learner.ulysses_vl import slice_decoder_inputs, visual_rows_in


# ---------------------------------------------------------------------------------------------- pure
def test_slices_of_the_decoder_inputs_tile_the_sequence():
    """Each rank's slice holds its positions' embeddings, mRoPE ids and deepstack rows; adding the deepstack
    features slice by slice (Qwen3-VL's own `_deepstack_process`) gives the full sequence's result."""
    from transformers.models.qwen3_vl.modeling_qwen3_vl import Qwen3VLTextModel

    b, t, d = 2, 8, 3
    mask = torch.zeros(b, t, dtype=torch.bool)
    mask[0, 2:7] = True  # a picture across the split at 4
    mask[1, 5:8] = True  # one inside rank 1's half
    n = int(mask.sum())
    features = torch.arange(n * d, dtype=torch.float32).reshape(n, d)
    embeds = torch.randn(b, t, d)
    positions = torch.arange(3 * b * t).reshape(3, b, t)
    kwargs = {"inputs_embeds": embeds, "position_ids": positions, "attention_mask": torch.ones(b, t),
              "visual_pos_masks": mask, "deepstack_visual_embeds": [features], "use_cache": False}
    assert visual_rows_in(mask, 0, 4).tolist() == [True, True, False, False, False, False, False, False]
    full = Qwen3VLTextModel._deepstack_process(None, embeds, mask, features)
    parts, rows = [], 0
    for r in range(2):
        start, end = local_span(t, 2, r)
        out = slice_decoder_inputs(kwargs, start, end)
        assert out["attention_mask"] is None and out["use_cache"] is False
        assert torch.equal(out["inputs_embeds"], embeds[:, start:end])
        assert torch.equal(out["position_ids"], positions[..., start:end])
        assert torch.equal(out["visual_pos_masks"], mask[:, start:end])
        rows += out["deepstack_visual_embeds"][0].shape[0]
        parts.append(Qwen3VLTextModel._deepstack_process(None, out["inputs_embeds"], out["visual_pos_masks"],
                                                          out["deepstack_visual_embeds"][0]))
    assert rows == n
    torch.testing.assert_close(torch.cat(parts, dim=1), full)
    # No picture: the model passes no position ids, the slice gets its global ones (0..T-1 on all 3 axes).
    text = slice_decoder_inputs({"inputs_embeds": embeds, "position_ids": None}, 4, 8)
    assert text["position_ids"].shape == (3, b, 4) and text["position_ids"][:, :, 0].eq(4).all()
    assert "visual_pos_masks" not in text or text["visual_pos_masks"] is None
    with pytest.raises(ValueError, match="inputs_embeds"):
        slice_decoder_inputs({"input_ids": torch.zeros(1, 2)}, 0, 1)


def test_localize_pads_the_vl_inputs_with_the_sequence():
    ids = torch.tensor([[5, 6, 7, 8, 9], [5, 6, 0, 0, 0]])
    types = torch.tensor([[0, 1, 1, 0, 0], [0, 0, 0, 0, 0]])
    pixels = torch.randn(2, 5)  # a [patches, features] tensor whose shape happens to be [B, T]: not per position
    mb = MicroBatch(ids, (ids != 0).long(), torch.ones(2, 5), {}, 1,
                    {"mm_token_type_ids": types, "pixel_values": pixels, "image_grid_thw": torch.tensor([[1, 2, 2]])})
    sp = SequenceParallel.__new__(SequenceParallel)
    sp.size, sp.index, sp.group, sp.decoder = 2, 1, None, None
    out = sp.localize(mb, pad_id=0)
    assert out.input_ids.shape == (2, 6)
    assert out.model_inputs["mm_token_type_ids"].tolist() == [[0, 1, 1, 0, 0, 0], [0] * 6]
    assert out.model_inputs["pixel_values"] is pixels and out.model_inputs["image_grid_thw"].shape == (1, 3)


def test_vl_model_checks_name_the_keys(tiny_vl_dir):
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(tiny_vl_dir)
    check_model(config, "causal_lm", tiny_vl_dir, 2, zero_stage=2)
    with pytest.raises(ValueError, match=r"learner\.sequence_parallel=2 .* and learner\.zero_stage=3"):
        check_model(config, "causal_lm", tiny_vl_dir, 2, zero_stage=3)
    with pytest.raises(ValueError, match=r"learner\.sequence_parallel=4 .*num_attention_heads=2"):
        check_model(config, "causal_lm", tiny_vl_dir, 4)
    config.text_config.rope_parameters = {**config.text_config.rope_parameters, "rope_type": "dynamic", "factor": 2.0}
    with pytest.raises(ValueError, match=r"learner\.sequence_parallel=2 .*rope_type='dynamic'"):
        check_model(config, "causal_lm", tiny_vl_dir, 2)
    config.model_type = "llava"
    with pytest.raises(ValueError, match=r"learner\.sequence_parallel=2 .*model_type 'llava' is not supported"):
        check_model(config, "causal_lm", tiny_vl_dir, 2)


# ---------------------------------------------------------------------------------------------- real ranks
def _mixed_batch(processor, video_rows: list[dict], image: str) -> dict:
    """Two short text rows, an image row and a video row (one uniform video item), 15 trained tokens."""
    from rlsys.data.encode import encode_prompt, encode_vl_prompt
    from rlsys.data.videos import video_items
    from rlsys.learner.batching import make_batch

    video_row = next(r for r in video_rows if r["task"] == "video_count")
    items = video_items(video_row)
    prompts = [encode_prompt(processor.tokenizer, {"id": "a", "prompt": "What is 2 + 3?"}),
               encode_prompt(processor.tokenizer, {"id": "b", "prompt": "Hi?"}),
               encode_vl_prompt(processor, {"id": "c", "prompt": "What colour is it?", "images": [image]}),
               encode_vl_prompt(processor, video_row, n_videos=len(items))]
    completions = [[40, 41, 42, 2], [43, 44, 45, 46], [47, 48], [49, 50, 51, 52, 2]]
    return make_batch([p + c for p, c in zip(prompts, completions)],
                      [[0] * len(p) + [1] * len(c) for p, c in zip(prompts, completions)],
                      images=[[], [], [image], []], videos=[[], [], [], items])


def _micro_batches(model_dir: str, batch: dict) -> list[MicroBatch]:
    """The learner's micro-batches of `batch` (2 sequences each): the text rows, then the image and video rows."""
    from transformers import AutoProcessor

    from rlsys.learner.batching import collate, micro_batches
    from rlsys.learner.vl_passes import ImageTokens

    processor = AutoProcessor.from_pretrained(model_dir)
    groups = micro_batches(batch, 2, 1 << 20, ImageTokens(processor).extra_tokens(batch))
    return [collate(batch, idx, processor.tokenizer.pad_token_id, torch.device("cpu"), processor) for idx in groups]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _grad_rank(rank: int, world: int, model_dir: str, batch: dict, pad_id: int, port: int, out_dir: str) -> None:
    """One gloo rank: the token-sum loss of every micro-batch through the SP path, backward, gradients summed."""
    import torch.distributed as dist
    from transformers import AutoModelForImageTextToText

    from rlsys.learner.ulysses import sp_setup

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.set_num_threads(1)
    model = AutoModelForImageTextToText.from_pretrained(model_dir, dtype=torch.float32)
    sp = sp_setup(model, rank, world, model_dir, "causal_lm", world)
    assert sp is not None and sp.decoder is model.model.language_model
    mbs = [sp.localize(mb, pad_id) for mb in _micro_batches(model_dir, batch)]
    den = sum(float(mb.loss_mask.sum()) for mb in mbs)  # the rank's share of the scored tokens
    total = torch.tensor([den])
    dist.all_reduce(total)
    loss = sum(-(sp.logprobs(model, mb) * mb.loss_mask).sum() for mb in mbs) / total
    loss.backward()
    summed = loss.detach().clone()
    dist.all_reduce(summed)
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}
    for g in grads.values():
        dist.all_reduce(g)
    if rank == 0:
        torch.save({"loss": summed, "grads": grads, "tokens": total}, os.path.join(out_dir, "sp.pt"))
    dist.destroy_process_group()


@pytest.mark.slow
def test_two_gloo_ranks_give_the_vlms_loss_and_gradient(tiny_vl_dir, video_rows, tmp_path):
    """The split front end (vision tower, deepstack, mRoPE) and decoder: summed over the ranks, the loss and every
    parameter's gradient equal one process's unsplit forward with its padding mask."""
    import torch.multiprocessing as mp
    from rlsys_testing import draw_image
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from rlsys.learner.batching import token_logprobs

    processor = AutoProcessor.from_pretrained(tiny_vl_dir)
    batch = _mixed_batch(processor, video_rows, draw_image(tmp_path / "red.png", (160, 128), "red"))
    mbs = _micro_batches(tiny_vl_dir, batch)
    # The split must cut a micro-batch with a picture and a video through its visual tokens, at an odd length.
    vl = next(mb for mb in mbs if "pixel_values" in mb.model_inputs)
    assert "pixel_values_videos" in vl.model_inputs and vl.input_ids.shape[1] % 2 == 1
    half = (vl.input_ids.shape[1] + 1) // 2
    types = vl.model_inputs["mm_token_type_ids"]
    assert types[:, :half].gt(0).any() and types[:, half:].gt(0).any()
    (text,) = [mb for mb in mbs if mb is not vl]  # a micro-batch without pictures: mRoPE ids left to the decoder
    assert text.model_inputs == {} and text.input_ids.shape[1] % 2 == 1

    model = AutoModelForImageTextToText.from_pretrained(tiny_vl_dir, dtype=torch.float32)
    den = sum(float(mb.loss_mask.sum()) for mb in mbs)
    loss = sum(-(token_logprobs(model(**mb.forward_inputs()).logits, mb.input_ids) * mb.loss_mask).sum()
               for mb in mbs) / den
    loss.backward()
    mp.spawn(_grad_rank, args=(2, tiny_vl_dir, batch, processor.tokenizer.pad_token_id, _free_port(), str(tmp_path)), nprocs=2)
    got = torch.load(tmp_path / "sp.pt")
    assert float(got["tokens"]) == den == 15
    assert float(got["loss"]) == pytest.approx(float(loss.detach()), abs=1e-5)
    grads = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
    assert any(n.startswith("model.visual.") for n in grads) and set(got["grads"]) == set(grads)
    assert float(grads["model.visual.patch_embed.proj.weight"].abs().max()) > 1e-6
    for name, grad in grads.items():
        torch.testing.assert_close(got["grads"][name], grad, atol=1e-5, rtol=1e-4, msg=name)


def _one_step(model_dir: str, batch: dict, **cfg) -> tuple[dict, dict[str, torch.Tensor], list[list[float]]]:
    import ray
    from rlsys_testing import learner_config

    from rlsys.learner.group import LearnerGroup

    # lr 1 with eps 1 and no clipping: AdamW's first update is about the gradient itself (test_ulysses.py).
    optim = {"lr": 1.0, "eps": 1.0, "grad_clip": 0.0, "weight_decay": 0.0, "warmup_steps": 0, "schedule": "constant"}
    group = LearnerGroup(model_dir, learner_config(optim=optim, micro_batch_size=2, **cfg))
    try:
        logprobs = group.compute_logprobs(batch)
        metrics = group.train_step(batch, "sft", {})
        weights = {name: t for ref in group.export_weights(1 << 30) for name, t in ray.get(ref)}
    finally:
        group.shutdown()
    return metrics, weights, logprobs


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_vlm_sequence_parallel_step_matches_one_rank(ray_session, tiny_vl_dir, video_rows, tmp_path):
    from rlsys_testing import draw_image
    from transformers import AutoModelForImageTextToText, AutoProcessor

    processor = AutoProcessor.from_pretrained(tiny_vl_dir)
    batch = _mixed_batch(processor, video_rows, draw_image(tmp_path / "red.png", (160, 128), "red"))
    one, w1, lp1 = _one_step(tiny_vl_dir, batch)
    two, w2, lp2 = _one_step(tiny_vl_dir, batch, num_actors=2, sequence_parallel=2)
    # Inference scores whole sequences on each rank (the tower's attention falls back to plain SDPA too).
    assert [len(x) for x in lp2] == [len(x) for x in batch["input_ids"]]
    for a, b in zip(lp1, lp2):
        assert b == pytest.approx(a, abs=1e-5)
    assert two["loss"] == pytest.approx(one["loss"], abs=1e-5, rel=1e-6)
    assert two["tokens"] == one["tokens"]
    before = dict(AutoModelForImageTextToText.from_pretrained(tiny_vl_dir, dtype=torch.float32).named_parameters())
    moved = {n: float((w1[n] - before[n].detach()).abs().max()) for n in w1}
    assert max(moved.values()) > 1e-3, "the step should move the weights"
    assert max(v for n, v in moved.items() if n.startswith("model.visual.")) > 1e-4, "the tower should move"
    assert any(n.startswith("model.language_model.") for n in w1)
    for name in w1:
        torch.testing.assert_close(w2[name], w1[name], atol=1e-5, rtol=1e-5, msg=name)

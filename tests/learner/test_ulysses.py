"""Ulysses sequence parallelism (rlsys/learner/ulysses.py): layout logic in one process, then real gloo ranks."""

from __future__ import annotations

import os
import socket

import pytest
import torch
import torch.nn.functional as F

from rlsys.learner.batching import MicroBatch, make_batch
from rlsys.learner.ulysses import (
    KEY,
    SequenceParallel,
    check_layout,
    check_model,
    check_objective,
    local_span,
    pack_head_to_seq,
    pack_seq_to_head,
    padded_length,
    rank_shards,
    scored_span,
    simulate_exchange,
    simulated_attention,
    unpack_head_to_seq,
    unpack_seq_to_head,
)


# ---------------------------------------------------------------------------------------------- pure
def test_spans_tile_the_sequence_once():
    assert padded_length(7, 2) == 8 and padded_length(8, 2) == 8 and padded_length(1, 4) == 4
    assert [local_span(8, 2, r) for r in range(2)] == [(0, 4), (4, 8)]
    # Token t is predicted from position t-1: rank 0 (positions 0..3) scores tokens 1..4, rank 1 tokens 5..7.
    assert [scored_span(8, 2, r) for r in range(2)] == [(1, 5), (5, 8)]
    assert [scored_span(12, 3, r) for r in range(3)] == [(1, 5), (5, 9), (9, 12)]
    with pytest.raises(ValueError, match=KEY):
        local_span(7, 2, 0)


def test_exchange_moves_sequence_shards_to_head_shards_and_back():
    size, b, h, t, d = 2, 1, 4, 6, 1
    full = torch.arange(b * h * t * d, dtype=torch.float32).reshape(b, h, t, d)  # value = head * 6 + position
    seq_shards = [full[:, :, r * 3:(r + 1) * 3] for r in range(size)]
    received = simulate_exchange([pack_seq_to_head(x, size) for x in seq_shards])
    head_shards = [unpack_seq_to_head(r) for r in received]
    # Rank 0 now holds heads 0-1 at all six positions, rank 1 heads 2-3.
    assert head_shards[0][0, :, :, 0].tolist() == [[0, 1, 2, 3, 4, 5], [6, 7, 8, 9, 10, 11]]
    assert head_shards[1][0, :, :, 0].tolist() == [[12, 13, 14, 15, 16, 17], [18, 19, 20, 21, 22, 23]]
    back = [unpack_head_to_seq(r) for r in simulate_exchange([pack_head_to_seq(x, size) for x in head_shards])]
    for r in range(size):
        assert torch.equal(back[r], seq_shards[r])


@pytest.mark.parametrize(("size", "heads", "kv_heads"), [(2, 4, 2), (2, 2, 1), (4, 4, 2), (3, 6, 6)])
def test_simulated_ulysses_attention_equals_causal_sdpa(size, heads, kv_heads):
    torch.manual_seed(0)
    b, t, d = 2, 12, 8
    q = torch.randn(b, heads, t, d)
    k, v = torch.randn(b, kv_heads, t, d), torch.randn(b, kv_heads, t, d)
    groups = heads // kv_heads
    expected = F.scaled_dot_product_attention(q, k.repeat_interleave(groups, 1), v.repeat_interleave(groups, 1),
                                              is_causal=True, scale=0.3)
    chunk = t // size

    def shards(x: torch.Tensor) -> list[torch.Tensor]:
        return [x[:, :, r * chunk:(r + 1) * chunk] for r in range(size)]

    outs = simulated_attention(shards(q), shards(k), shards(v), scaling=0.3)
    torch.testing.assert_close(torch.cat(outs, dim=2), expected, atol=1e-6, rtol=1e-5)


def test_localize_splits_scored_tokens_and_positions_between_ranks():
    ids = torch.tensor([[5, 6, 7, 8, 9, 10, 11], [5, 6, 7, 0, 0, 0, 0]])
    attn = (ids != 0).long()
    loss = torch.tensor([[0, 0, 1, 1, 1, 1, 1], [0, 1, 1, 0, 0, 0, 0]], dtype=torch.float32)
    mb = MicroBatch(ids, attn, loss, {"old": torch.ones(2, 7), "adv": torch.ones(2)}, 1)
    parts = []
    for index in range(2):
        sp = SequenceParallel.__new__(SequenceParallel)
        sp.size, sp.index, sp.group = 2, index, None
        parts.append(sp.localize(mb, pad_id=0))
    assert all(p.input_ids.shape == (2, 8) and p.fields["old"].shape == (2, 8) for p in parts)
    assert parts[0].loss_mask[0].tolist() == [0, 0, 1, 1, 1, 0, 0, 0]
    assert parts[1].loss_mask[0].tolist() == [0, 0, 0, 0, 0, 1, 1, 0]
    # Every loss token and every real token is counted by exactly one rank.
    assert torch.equal(parts[0].loss_mask + parts[1].loss_mask, F.pad(loss, (0, 1)))
    assert int(parts[0].attention_mask.sum() + parts[1].attention_mask.sum()) == int(attn.sum())
    assert parts[0].fields["adv"].shape == (2,)


def test_rank_shards_gives_each_group_one_shard():
    assert rank_shards([{"g": 0}, {"g": 1}], 2) == [{"g": 0}, {"g": 0}, {"g": 1}, {"g": 1}]


# ---------------------------------------------------------------------------------------------- config errors
def test_layout_and_model_errors_name_the_key(tiny_model_dir):
    from transformers import AutoConfig

    from rlsys.learner.objectives import make_objective

    with pytest.raises(ValueError, match=r"learner\.sequence_parallel=2 must divide learner\.num_actors=3"):
        check_layout(3, 2)
    config = AutoConfig.from_pretrained(tiny_model_dir)  # 2 heads, 1 kv head: S=2 works (kv repeated)
    check_model(config, "causal_lm", tiny_model_dir, 2)
    with pytest.raises(ValueError, match=r"learner\.sequence_parallel=4 .*num_attention_heads=2"):
        check_model(config, "causal_lm", tiny_model_dir, 4)
    with pytest.raises(ValueError, match=r"learner\.sequence_parallel=2 .*model_kind='reward_model'"):
        check_model(config, "reward_model", tiny_model_dir, 2)
    # Vision-language models: Qwen3-VL only (tests/learner/test_ulysses_vl.py); others are refused by type.
    config.vision_config = {"depth": 1}
    with pytest.raises(ValueError, match=r"learner\.sequence_parallel=2 .*vision-language model_type 'qwen3'"):
        check_model(config, "causal_lm", tiny_model_dir, 2)
    check_objective(make_objective("sft", {}), 2)
    check_objective(make_objective("ntp", {}), 2)
    for loss, kwargs in (("sft", {"reduction": "sample_mean"}), ("grpo", {}), ("dpo", {})):
        with pytest.raises(ValueError, match=rf"learner\.sequence_parallel=2: loss '{loss}'"):
            check_objective(make_objective(loss, kwargs), 2)


def test_learner_group_refuses_a_world_not_divisible_by_sp(tiny_model_dir):
    from rlsys_testing import learner_config

    from rlsys.learner.group import LearnerGroup

    with pytest.raises(ValueError, match=r"learner\.sequence_parallel=2 must divide learner\.num_actors=3"):
        LearnerGroup(tiny_model_dir, learner_config(num_actors=3, sequence_parallel=2))


# ---------------------------------------------------------------------------------------------- real ranks
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _logits_rank(rank: int, world: int, model_dir: str, port: int, out_dir: str) -> None:
    """One gloo rank: the S=2 forward of a right-padded batch, gathered, next to the plain model's logits."""
    import torch.distributed as dist
    from transformers import AutoModelForCausalLM

    from rlsys.learner.ulysses import sp_setup

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.set_num_threads(1)
    reference = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)  # HF's own SDPA
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    sp = sp_setup(model, rank, world, model_dir, "causal_lm", world)
    assert sp is not None
    lengths = [11, 6, 3]
    gen = torch.Generator().manual_seed(0)
    ids = torch.zeros(len(lengths), 12, dtype=torch.long)  # 12 = 11 padded to a multiple of 2
    attn = torch.zeros_like(ids)
    for row, n in enumerate(lengths):
        ids[row, :n] = torch.randint(5, 300, (n,), generator=gen)
        attn[row, :n] = 1
    start, end = local_span(12, world, sp.index)
    positions = torch.arange(start, end).unsqueeze(0).expand(len(lengths), -1)
    local = model(input_ids=ids[:, start:end], position_ids=positions, ulysses_group=sp.group,
                  ulysses_size=world).logits.detach()
    parts = [torch.empty_like(local) for _ in range(world)]
    dist.all_gather(parts, local)
    plain = reference(input_ids=ids, attention_mask=attn).logits.detach()
    # Without a group the same attention function is plain SDPA with HF's padding mask (inference path).
    fallback = model(input_ids=ids, attention_mask=attn).logits.detach()
    if rank == 0:
        torch.save({"sp": torch.cat(parts, dim=1), "plain": plain, "fallback": fallback, "mask": attn},
                   os.path.join(out_dir, "logits.pt"))
    dist.destroy_process_group()


@pytest.mark.slow
def test_two_gloo_ranks_give_the_plain_models_logits(tiny_model_dir, tmp_path):
    import torch.multiprocessing as mp

    mp.spawn(_logits_rank, args=(2, tiny_model_dir, _free_port(), str(tmp_path)), nprocs=2)
    got = torch.load(tmp_path / "logits.pt")
    real = got["mask"].bool()
    assert real.sum() == 20
    torch.testing.assert_close(got["sp"][real], got["plain"][real], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got["fallback"][real], got["plain"][real], atol=1e-6, rtol=1e-6)


def _batch() -> dict:
    import random

    rng = random.Random(3)
    ids = [[rng.randrange(5, 300) for _ in range(n)] for n in (17, 9, 4, 12)]
    mask = [[0] * 2 + [1] * (len(x) - 2) for x in ids]
    return make_batch(ids, mask)


def _one_step(model_dir: str, **cfg) -> tuple[dict, dict[str, torch.Tensor], list[list[float]]]:
    import ray
    from rlsys_testing import learner_config

    from rlsys.learner.group import LearnerGroup

    # lr 1 with eps 1 and no clipping: AdamW's first update is g / (|g| + 1), about the gradient itself, so
    # the weights after one step compare the two runs' gradients (a sign flip of a tiny gradient stays tiny).
    optim = {"lr": 1.0, "eps": 1.0, "grad_clip": 0.0, "weight_decay": 0.0, "warmup_steps": 0, "schedule": "constant"}
    group = LearnerGroup(model_dir, learner_config(optim=optim, micro_batch_size=2, **cfg))
    try:
        logprobs = group.compute_logprobs(_batch())
        metrics = group.train_step(_batch(), "sft", {})
        weights = {name: t for ref in group.export_weights(1 << 30) for name, t in ray.get(ref)}
    finally:
        group.shutdown()
    return metrics, weights, logprobs


@pytest.mark.slow
def test_sequence_parallel_step_matches_one_rank(ray_session, tiny_model_dir):
    import torch
    from transformers import AutoModelForCausalLM

    one, w1, lp1 = _one_step(tiny_model_dir)
    two, w2, lp2 = _one_step(tiny_model_dir, num_actors=2, sequence_parallel=2)
    # Inference does not split sequences (each rank scores whole ones) and gives the same logprobs.
    assert [len(x) for x in lp2] == [17, 9, 4, 12]
    for a, b in zip(lp1, lp2):
        assert b == pytest.approx(a, abs=1e-5)
    assert two["loss"] == pytest.approx(one["loss"], abs=1e-5, rel=1e-6)
    assert two["tokens"] == one["tokens"] == 42
    before = dict(AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).named_parameters())
    moved = max(float((w1[n] - before[n].detach()).abs().max()) for n in w1)
    assert moved > 1e-3, "the step should move the weights"
    for name in w1:
        torch.testing.assert_close(w2[name], w1[name], atol=1e-5, rtol=1e-5, msg=name)

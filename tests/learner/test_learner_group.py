"""Real DeepSpeed learners on Ray: data parallel equivalence and exact resume."""

from __future__ import annotations

import random

import pytest
from rlsys_testing import learner_config

from rlsys.learner.batching import make_batch
from rlsys.learner.group import LearnerGroup

pytestmark = pytest.mark.slow


# Below the tokenizer's real size: the BPE trainer stops short of the requested vocab on tiny texts.
VOCAB = 300


def _batch(seed: int, n: int = 12) -> dict:
    rng = random.Random(seed)
    ids = [[rng.randrange(5, VOCAB) for _ in range(rng.randrange(6, 40))] for _ in range(n)]
    mask = [[0] * 3 + [1] * (len(x) - 3) for x in ids]
    return make_batch(ids, mask)


def _trajectory(model_dir: str, steps: int, **cfg) -> list[float]:
    group = LearnerGroup(model_dir, learner_config(**cfg))
    try:
        return [group.train_step(_batch(s), "sft", {"reduction": "square"})["loss"] for s in range(steps)]
    finally:
        group.shutdown()


def test_two_zero2_ranks_follow_one_rank(ray_session, tiny_model_dir):
    from transformers import AutoConfig

    assert AutoConfig.from_pretrained(tiny_model_dir).vocab_size > VOCAB
    one = _trajectory(tiny_model_dir, 4)
    two = _trajectory(tiny_model_dir, 4, num_actors=2, zero_stage=2)
    assert one[-1] < one[0], "training should lower the loss"
    assert two == pytest.approx(one, rel=1e-4, abs=1e-5)


def test_save_load_continue_matches_uninterrupted(ray_session, tiny_model_dir, tmp_path):
    straight = _trajectory(tiny_model_dir, 4)

    group = LearnerGroup(tiny_model_dir, learner_config())
    try:
        for s in range(2):
            group.train_step(_batch(s), "sft", {"reduction": "square"})
        group.save_checkpoint(str(tmp_path / "ckpt"), "step2")
    finally:
        group.shutdown()

    resumed = LearnerGroup(tiny_model_dir, learner_config())
    try:
        assert resumed.load_checkpoint(str(tmp_path / "ckpt"), "step2") == 2
        after = [resumed.train_step(_batch(s), "sft", {"reduction": "square"})["loss"] for s in (2, 3)]
    finally:
        resumed.shutdown()
    assert after == pytest.approx(straight[2:], rel=1e-6, abs=1e-7)


def test_zero3_exports_full_weights_and_logprobs(ray_session, tiny_model_dir):
    import ray
    import torch
    from transformers import AutoModelForCausalLM

    group = LearnerGroup(tiny_model_dir, learner_config(num_actors=2, zero_stage=3))
    try:
        batch = _batch(7, n=3)
        lps = group.compute_logprobs(batch)
        refs = group.export_weights(64 << 10)
        named = [item for ref in refs for item in ray.get(ref)]
    finally:
        group.shutdown()
    hf = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    expected = dict(hf.named_parameters())
    assert len(refs) > 1, "small buckets should split the export"
    assert {n for n, _ in named} == set(expected)
    for name, tensor in named:
        assert tensor.shape == expected[name].shape and torch.equal(tensor, expected[name].detach())
    with torch.no_grad():
        ids = torch.tensor([batch["input_ids"][0]])
        ref = hf(ids).logits.log_softmax(-1)[0, :-1].gather(-1, ids[0, 1:, None])[:, 0]
    assert lps[0][0] == 0.0
    assert torch.allclose(torch.tensor(lps[0][1:]), ref, atol=1e-5)


def test_kl_anchor_measures_distance_from_the_start_weights(ray_session, tiny_model_dir):
    """`kl_coef` in an RL loss's kwargs makes the worker load the start weights as the frozen reference
    (how alignment RL anchors the policy): zero KL before the first update, growing after it."""
    group = LearnerGroup(tiny_model_dir, learner_config())
    kwargs = {"eps_low": 0.2, "eps_high": 0.2, "kl_coef": 0.1}
    try:
        batch = _batch(3, n=8)
        start = group.compute_logprobs(batch)
        kls = []
        for _ in range(4):
            old = group.compute_logprobs(batch)
            fields = {"old_logprobs": old, "advantages": [1.0 if i % 2 else -1.0 for i in range(8)]}
            rl_batch = make_batch(batch["input_ids"], batch["loss_mask"], fields)
            kls.append(group.train_step(rl_batch, "gspo", kwargs)["kl"])
        reference = group.compute_logprobs(batch, reference=True)
        moved = group.compute_logprobs(batch)
        # Per-sequence weights (rl.kl_sources) reach the loss: no anchored row, no KL.
        fields["kl_weights"] = [0.0] * 8
        unanchored = group.train_step(make_batch(batch["input_ids"], batch["loss_mask"], fields), "gspo", kwargs)["kl"]
    finally:
        group.shutdown()
    assert kls[0] == pytest.approx(0.0, abs=1e-7)
    assert 0.0 < kls[1] < kls[-1]
    assert unanchored == 0.0
    flat = [x for row in start for x in row]
    assert [x for row in reference for x in row] == pytest.approx(flat, abs=1e-6)
    assert max(abs(a - b) for a, b in zip((x for row in moved for x in row), flat)) > 1e-3

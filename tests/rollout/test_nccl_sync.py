"""NCCL weight sync: manifest and guard rails anywhere; the broadcast itself on two CUDA GPUs."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from rlsys.rollout import nccl_sync

needs_two_gpus = pytest.mark.skipif(
    not torch.cuda.is_available() or torch.cuda.device_count() < 2,
    # NCCL refuses two ranks on one device: the learner and the rollout actor need a GPU each.
    reason="needs two CUDA GPUs",
)


def fake_learner() -> SimpleNamespace:
    module = torch.nn.Sequential(torch.nn.Embedding(10, 4), torch.nn.Linear(4, 3))
    return SimpleNamespace(rank=0, engine=SimpleNamespace(module=module))


def test_manifest_lists_every_parameter_in_send_order():
    learner = fake_learner()
    manifest = nccl_sync.weight_manifest(learner)
    assert manifest == [("0.weight", (10, 4), "float32"), ("1.weight", (3, 4), "float32"), ("1.bias", (3,), "float32")]
    assert {d for _, _, d in nccl_sync.weight_manifest(learner, "bfloat16")} == {"bfloat16"}
    with pytest.raises(ValueError, match="unknown dtype"):
        nccl_sync._dtype("float1000")


def test_receiving_without_a_group_is_a_clear_error():
    worker = SimpleNamespace(name="rollout-x")
    with pytest.raises(RuntimeError, match="rollout-x: not in an NCCL weight group"):
        next(nccl_sync.receive_stream(worker, [("w", (2,), "float32")]))
    with pytest.raises(ValueError, match="rank 0 is the learner"):
        nccl_sync.init_receiver(worker, "127.0.0.1", 1, 0, 2)
    # Leaving without a group is a no-op (abort paths call it unconditionally).
    nccl_sync.leave_group(worker)


def test_a_rank_without_the_group_walks_every_parameter_in_manifest_order():
    learner = fake_learner()
    learner.rank = 1
    learner.gathered_parameters = lambda: iter(learner.engine.module.named_parameters())
    manifest = nccl_sync.weight_manifest(learner)
    assert nccl_sync.send_weights(learner, manifest) >= 0.0
    with pytest.raises(RuntimeError, match="manifest out of step with the learner: '1.weight' listed, '0.weight' next"):
        nccl_sync.send_weights(learner, manifest[1:] + manifest[:1])


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only error")
def test_joining_needs_cuda():
    with pytest.raises(RuntimeError, match="needs CUDA"):
        nccl_sync.join_group("127.0.0.1", 1, 0, 2)


@pytest.mark.gpu
@pytest.mark.slow
@needs_two_gpus
def test_nccl_sync_matches_the_learner(ray_session, tiny_model_dir, engine_kwargs):
    import ray

    from rlsys.learner.batching import make_batch
    from rlsys.learner.group import LearnerGroup
    from rlsys.rollout.pool import PoolPolicy, RolloutPool
    from rlsys.rollout.types import GroupRequest
    from rlsys.runtime.ray_utils import ActorResources

    cfg = {
        "num_actors": 1, "cpus_per_actor": 1.0, "gpus_per_actor": 1.0, "zero_stage": 0, "precision": "fp32",
        "micro_batch_size": 8, "max_tokens_per_micro": 4096, "gradient_checkpointing": False,
        "dist_backend": "auto", "seed": 0,
        "optim": {"lr": 1e-3, "min_lr_ratio": 1.0, "weight_decay": 0.0, "betas": [0.9, 0.999], "eps": 1e-8,
                  "warmup_steps": 0, "schedule": "constant", "total_steps": 10, "grad_clip": 1.0},
    }
    learners = LearnerGroup(tiny_model_dir, cfg, name="nccl-learner", timeout=600)
    pool = RolloutPool(tiny_model_dir, worker_kwargs=engine_kwargs, num_actors=1,
                       policy=PoolPolicy(sync_backend="nccl"), resources=ActorResources(num_cpus=1.0, num_gpus=1.0))
    try:
        group = pool.generate([GroupRequest("g", prompt_token_ids=[5, 6, 7, 8], n=4, max_tokens=16, seed=1)])[0]
        prompt = group.prompt_token_ids
        batch = make_batch([prompt + s.token_ids for s in group.samples],
                           [[0] * len(prompt) + [1] * len(s.token_ids) for s in group.samples])
        learners.train_step(batch, "sft", {"reduction": "token_mean"})
        loads = pool.sync_from_learner(learners, 1)
        assert len(loads) == 1 and pool.actors()[0]["version"] == 1
        trained = [lp[len(prompt):] for lp in learners.compute_logprobs(batch)]
        actor = pool.actors()[0]["handle"]
        engine = [ray.get(actor.score_tokens.remote(prompt, s.token_ids)) for s in group.samples]
        assert max(abs(a - b) for x, y in zip(trained, engine) for a, b in zip(x, y)) < 1e-4
        # A second round reuses the group formed by the first.
        pool.sync_from_learner(learners, 2)
        assert pool.actors()[0]["version"] == 2
    finally:
        pool.shutdown()
        learners.shutdown()

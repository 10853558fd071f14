"""After a learner step and a sync through the pool, vLLM's per-token logprobs equal the learner's."""

from __future__ import annotations

import pytest
import ray

from rlsys.learner.batching import make_batch
from rlsys.learner.group import LearnerGroup
from rlsys.rollout.types import GroupRequest

pytestmark = pytest.mark.slow

TOL = 1e-4


def learner_cfg() -> dict:
    return {
        "num_actors": 1, "cpus_per_actor": 1.0, "gpus_per_actor": 0.0, "zero_stage": 0, "precision": "fp32",
        "micro_batch_size": 8, "max_tokens_per_micro": 4096, "gradient_checkpointing": False,
        "dist_backend": "auto", "seed": 0,
        "optim": {"lr": 1e-3, "min_lr_ratio": 1.0, "weight_decay": 0.0, "betas": [0.9, 0.999], "eps": 1e-8,
                  "warmup_steps": 0, "schedule": "constant", "total_steps": 10, "grad_clip": 1.0},
    }


def max_diff(a: list[list[float]], b: list[list[float]]) -> float:
    assert [len(x) for x in a] == [len(y) for y in b]
    return max(abs(p - q) for x, y in zip(a, b) for p, q in zip(x, y))


def test_logprobs_agree_with_the_learner_after_a_sync(pool, tiny_model_dir):
    learners = LearnerGroup(tiny_model_dir, learner_cfg(), name="sync-learner", timeout=600)
    try:
        # The pool may hold other weights after earlier tests: start from the learner's.
        pool.sync_from_learner(learners, pool.version + 1)
        group = pool.generate([GroupRequest("lp-0", messages=[{"role": "user", "content": "what is 4 plus 9?"}],
                                            n=4, max_tokens=24, seed=5)], timeout=120)[0]
        assert group.ok, group.error
        prompt = group.prompt_token_ids
        batch = make_batch([prompt + s.token_ids for s in group.samples],
                           [[0] * len(prompt) + [1] * len(s.token_ids) for s in group.samples])
        learner_lp = [lp[len(prompt):] for lp in learners.compute_logprobs(batch)]
        assert max_diff(learner_lp, [s.logprobs for s in group.samples]) < TOL

        learners.train_step(batch, "sft", {"reduction": "token_mean"})
        version = pool.version + 1
        loads = pool.sync_from_learner(learners, version)
        assert set(loads) == {a["name"] for a in pool.actors()}
        assert pool.version == version and all(a["version"] == version for a in pool.actors())

        trained_lp = [lp[len(prompt):] for lp in learners.compute_logprobs(batch)]
        assert max_diff(trained_lp, learner_lp) > 100 * TOL, "the step changed the policy"
        actor = pool.actors()[0]["handle"]
        engine_lp = [ray.get(actor.score_tokens.remote(prompt, s.token_ids), timeout=60) for s in group.samples]
        assert max_diff(trained_lp, engine_lp) < TOL

        # Fresh samples carry the new version and the learner scores them the same way.
        fresh = pool.generate([GroupRequest("lp-1", prompt_token_ids=prompt, n=4, max_tokens=24, seed=6)],
                              timeout=120)[0]
        assert fresh.policy_version == version
        fresh_batch = make_batch([prompt + s.token_ids for s in fresh.samples],
                                 [[0] * len(prompt) + [1] * len(s.token_ids) for s in fresh.samples])
        fresh_lp = [lp[len(prompt):] for lp in learners.compute_logprobs(fresh_batch)]
        assert max_diff(fresh_lp, [s.logprobs for s in fresh.samples]) < TOL
    finally:
        learners.shutdown()

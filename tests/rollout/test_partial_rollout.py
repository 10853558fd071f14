"""Partial rollouts on a real vLLM engine: new weights synced while a long generation runs enter it at the next
chunk; each token's logprob is the one its own weights give it (checked against the learner under each version),
which is the behaviour policy GSPO's ratio is taken against."""

from __future__ import annotations

import threading
import time

import pytest
from conftest import ACTOR_CPUS, ENGINE_KWARGS
from test_rollout_learner_sync import TOL, learner_cfg

from rlsys.learner.batching import make_batch
from rlsys.learner.group import LearnerGroup
from rlsys.rollout.pool import PoolPolicy, RolloutPool
from rlsys.rollout.types import GroupRequest
from rlsys.runtime.ray_utils import ActorResources

pytestmark = pytest.mark.slow

CHUNK = 2


def test_weights_synced_mid_generation_enter_at_the_next_chunk(ray_session, tiny_model_dir):
    learners = LearnerGroup(tiny_model_dir, learner_cfg(), name="partial-learner", timeout=600)
    pool = RolloutPool(tiny_model_dir, worker_kwargs=dict(ENGINE_KWARGS, partial_chunk_tokens=CHUNK),
                       policy=PoolPolicy(request_timeout_s=300), resources=ActorResources(num_cpus=ACTOR_CPUS),
                       num_actors=1, name="partial")
    try:
        pool.sync_from_learner(learners, 1)
        prompt_req = GroupRequest("warm", messages=[{"role": "user", "content": "count to twenty"}], n=4,
                                  max_tokens=4, seed=1)
        prompt = pool.generate([prompt_req], timeout=120)[0].prompt_token_ids
        # The next version: one SFT step on some text, exported now, synced while the long generation runs.
        sft = make_batch([prompt + list(range(40, 80))], [[0] * len(prompt) + [1] * 40])
        learners.train_step(sft, "sft", {"reduction": "token_mean"})
        refs = learners.export_weights(pool.policy.sync_bucket_bytes)

        got = {}
        gen = threading.Thread(target=lambda: got.update(r=pool.generate(
            [GroupRequest("long", prompt_token_ids=prompt, n=4, max_tokens=220, seed=3)], timeout=300)[0]))
        gen.start()
        deadline = time.monotonic() + 60
        while not any(a["outstanding"] for a in pool.actors()) and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.05)  # a few chunks in: 220 tokens take about 110 engine calls
        pool.sync_weights(refs, 2)
        gen.join(300)
        res = got["r"]
        assert res.ok, res.error
        assert res.policy_version == 1  # the version the group started with
        switched = [s for s in res.samples if len(s.version_spans) == 2]
        assert switched, [(len(s.token_ids), s.version_spans) for s in res.samples]
        for s in res.samples:
            starts = [i for i, _ in s.version_spans]
            assert starts[0] == 0 and all(i % CHUNK == 0 for i in starts)
            assert [v for _, v in s.version_spans] in ([1], [2], [1, 2])

        # Each token's logprob is its own version's: score the samples under v2 (the learner now) and under v1.
        batch = make_batch([prompt + s.token_ids for s in switched],
                           [[0] * len(prompt) + [1] * len(s.token_ids) for s in switched])
        under_v2 = [lp[len(prompt):] for lp in learners.compute_logprobs(batch)]
        fresh = LearnerGroup(tiny_model_dir, learner_cfg(), name="partial-learner-v1", timeout=600)
        try:
            under_v1 = [lp[len(prompt):] for lp in fresh.compute_logprobs(batch)]
        finally:
            fresh.shutdown()
        for s, v1, v2 in zip(switched, under_v1, under_v2):
            k = s.version_spans[1][0]
            assert max(abs(a - b) for a, b in zip(s.logprobs[:k], v1[:k])) < TOL
            assert max(abs(a - b) for a, b in zip(s.logprobs[k:], v2[k:])) < TOL
            # The two versions really differ on these tokens, so the check above could fail.
            assert max(abs(a - b) for a, b in zip(v1[k:], v2[k:])) > 100 * TOL
    finally:
        pool.shutdown()
        learners.shutdown()

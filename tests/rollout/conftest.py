"""Rollout fixtures: a tiny Qwen3 built once per session, and a pool shared by the rollout tests."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

TINY = SimpleNamespace(
    vocab_size=512, hidden_size=64, intermediate_size=128, num_layers=2, num_heads=2, num_kv_heads=1,
    head_dim=32, max_position_embeddings=512, rope_theta=10000.0,
)

# Fractional CPUs: vLLM actors mostly run one busy thread, and the test Ray declares 6 CPUs.
ACTOR_CPUS = 0.5


def corpus() -> list[str]:
    return [f"Question: what is {a} plus {b}? Answer: {a + b}." for a in range(20) for b in range(15)]


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> str:
    from rlsys.model.tiny import build_tiny_model

    out = tmp_path_factory.mktemp("tiny-rollout") / "model"
    build_tiny_model(out, TINY, corpus(), seed=7)
    return str(out)


# Engine settings for tests: fp32 (logprobs comparable with the learner's), small KV cache.
ENGINE_KWARGS = {"dtype": "float32", "max_model_len": 256, "kv_cache_bytes": 64 << 20, "enforce_eager": True,
                 "in_process": True, "seed": 0}


@pytest.fixture(scope="session")
def engine_kwargs() -> dict:
    return dict(ENGINE_KWARGS)


@pytest.fixture(scope="session")
def pool(ray_session, tiny_model_dir):
    """A pool shared by the rollout tests (engines start once); tests leave it at one actor.

    Few groups in flight per actor, so queued work stays in the pool where a new actor can
    take it (the scaling tests rely on that)."""
    from rlsys.rollout.pool import PoolPolicy, RolloutPool
    from rlsys.runtime.ray_utils import ActorResources

    p = RolloutPool(
        tiny_model_dir,
        worker_kwargs=dict(ENGINE_KWARGS),
        policy=PoolPolicy(min_actors=1, max_actors=2, request_timeout_s=120, scale_down_delay_s=0.0,
                          max_inflight_per_actor=6),
        resources=ActorResources(num_cpus=ACTOR_CPUS),
        num_actors=1,
    )
    yield p
    p.shutdown()

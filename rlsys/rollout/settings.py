"""A rollout worker's constructor arguments and Ray resources, read from the rollout config."""

from __future__ import annotations

from typing import Any

from rlsys.rollout.worker import IN_PROCESS_ENV
from rlsys.runtime.ray_utils import ActorResources


def worker_kwargs(rollout: Any, model_path: str) -> dict[str, Any]:
    """`RolloutWorker(**kwargs)` for the `rollout` config section and a model directory."""
    return {
        "model_path": model_path,
        "dtype": rollout.dtype,
        "max_model_len": rollout.max_model_len,
        "kv_cache_bytes": rollout.kv_cache_bytes,
        "gpu_memory_utilization": rollout.gpu_memory_utilization,
        "enforce_eager": rollout.enforce_eager,
        "in_process": rollout.in_process,
        "seed": rollout.seed,
        "chunked_prefill": rollout.chunked_prefill,
        "max_num_batched_tokens": rollout.max_num_batched_tokens,
        "partial_chunk_tokens": rollout.partial_chunk_tokens if rollout.partial_rollout == "continue" else 0,
    }


def worker_resources(rollout: Any) -> ActorResources:
    """CPUs, GPUs and environment of one rollout actor."""
    env = dict(IN_PROCESS_ENV) if rollout.in_process else {}
    return ActorResources(num_cpus=rollout.cpus_per_actor, num_gpus=rollout.gpus_per_actor, env_vars=env)

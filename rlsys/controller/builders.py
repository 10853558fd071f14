"""Builder functions: everything a job sets up before its loop (Ray, workers, logging)."""

from __future__ import annotations

import logging
import signal
import sys
from typing import Any

from omegaconf import OmegaConf

from rlsys.learner.group import LearnerGroup
from rlsys.rollout.worker import IN_PROCESS_ENV, RolloutWorker
from rlsys.runtime.ray_utils import ActorGroup, ActorResources, init_ray_from_config
from rlsys.tracking.metrics import MetricsLogger

log = logging.getLogger(__name__)


def as_dict(node: Any) -> dict[str, Any]:
    return OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else dict(node)


def start_ray(cfg: Any) -> dict[str, float]:
    """Start or join Ray; a SIGTERM then unwinds the job (finally blocks, actor shutdown).

    Ray installs its own SIGTERM handler in `ray.init`, which leaves a local cluster running
    when the driver is terminated; turning the signal into SystemExit lets `run` shut it down.
    """
    resources = init_ray_from_config(cfg.ray)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    return resources


def build_metrics(cfg: Any, filename: str = "metrics.jsonl") -> MetricsLogger:
    return MetricsLogger(
        cfg.run_dir,
        wandb_enabled=cfg.logging.wandb,
        wandb_project=cfg.logging.wandb_project,
        wandb_mode=cfg.logging.wandb_mode,
        run_name=f"{cfg.exp_name}-{cfg.run_dir.rstrip('/').split('/')[-1]}",
        config=as_dict(cfg),
        filename=filename,
    )


def build_metrics_at(cfg: Any, out_dir: Any, name: str) -> MetricsLogger:
    """Metrics of one stage, written into that stage's own directory."""
    return MetricsLogger(
        out_dir,
        wandb_enabled=cfg.logging.wandb,
        wandb_project=cfg.logging.wandb_project,
        wandb_mode=cfg.logging.wandb_mode,
        run_name=f"{cfg.exp_name}-{name}",
        config=as_dict(cfg),
    )


def build_learners(cfg: Any, model_path: str, *, model_kind: str = "causal_lm", total_steps: int | None = None,
                   name: str = "learner") -> LearnerGroup:
    learner_cfg = as_dict(cfg.learner)
    if total_steps is not None:
        learner_cfg["optim"]["total_steps"] = total_steps
    return LearnerGroup(model_path, learner_cfg, name=name, model_kind=model_kind, timeout=cfg.ray.actor_timeout_s)


def rollout_worker_kwargs(cfg: Any, model_path: str) -> dict[str, Any]:
    r = cfg.rollout
    return {
        "model_path": model_path,
        "dtype": r.dtype,
        "max_model_len": r.max_model_len,
        "kv_cache_bytes": r.kv_cache_bytes,
        "gpu_memory_utilization": r.gpu_memory_utilization,
        "enforce_eager": r.enforce_eager,
        "in_process": r.in_process,
        "seed": r.seed,
        "chunked_prefill": r.chunked_prefill,
        "max_num_batched_tokens": r.max_num_batched_tokens,
    }


def rollout_resources(cfg: Any) -> ActorResources:
    env = dict(IN_PROCESS_ENV) if cfg.rollout.in_process else {}
    return ActorResources(num_cpus=cfg.rollout.cpus_per_actor, num_gpus=cfg.rollout.gpus_per_actor, env_vars=env)


def build_rollout_group(cfg: Any, model_path: str, num_actors: int | None = None) -> ActorGroup:
    kwargs = rollout_worker_kwargs(cfg, model_path)
    return ActorGroup(
        RolloutWorker,
        num_actors or cfg.rollout.num_actors,
        name="rollout",
        resources=rollout_resources(cfg),
        init_kwargs=lambda rank: {**kwargs, "name": f"rollout-{rank}"},
        timeout=cfg.ray.actor_timeout_s,
    )

"""Builders shared by every stage kind: Ray, metrics, learners, the rollout group, the reward pool."""

from __future__ import annotations

import logging
import math
import signal
import sys
from dataclasses import asdict
from typing import Any

from rlsys.config.plain import to_plain
from rlsys.learner.group import LearnerGroup
from rlsys.learner.schedule import Schedule
from rlsys.reward.workers import RewardWorkerPool
from rlsys.rollout.settings import worker_kwargs, worker_resources
from rlsys.rollout.worker import RolloutWorker
from rlsys.runtime.ray_utils import ActorGroup, init_ray_from_config
from rlsys.stages.context import StageContext
from rlsys.tracking.metrics import MetricsLogger

log = logging.getLogger(__name__)


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
        config=to_plain(cfg),
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
        config=to_plain(cfg),
    )


def learner_section(cfg: Any, schedule: Schedule) -> dict[str, Any]:
    """The learner config a LearnerGroup takes: `learner`, with the job's schedule beside the optimizer's
    constants in `optim`."""
    learner_cfg = to_plain(cfg.learner)
    learner_cfg["optim"] |= asdict(schedule)
    return learner_cfg


def build_learners(cfg: Any, model_path: str, schedule: Schedule, *, model_kind: str = "causal_lm",
                   name: str = "learner") -> LearnerGroup:
    return LearnerGroup(model_path, learner_section(cfg, schedule), name=name, model_kind=model_kind,
                        timeout=cfg.ray.actor_timeout_s)


def build_rollout_group(cfg: Any, model_path: str, num_actors: int | None = None) -> ActorGroup:
    kwargs = worker_kwargs(cfg.rollout, model_path)
    return ActorGroup(
        RolloutWorker,
        num_actors or cfg.rollout.num_actors,
        name="rollout",
        resources=worker_resources(cfg.rollout),
        init_kwargs=lambda rank: {**kwargs, "name": f"rollout-{rank}"},
        timeout=cfg.ray.actor_timeout_s,
    )


def total_steps(stage: Any, n_units: int) -> int:
    per_epoch = max(1, math.ceil(n_units / stage.batch_size))
    return stage.max_steps if stage.max_steps > 0 else max(1, math.ceil(stage.epochs * per_epoch))


def build_stage_learners(ctx: StageContext, steps: int, model_kind: str = "causal_lm",
                         learner_overrides: dict[str, Any] | None = None) -> LearnerGroup:
    """The stage's learners, training `steps` optimizer steps on the stage's own schedule; `learner_overrides`
    replace learner settings for this stage's kind (e.g. the contrastive stage's micro-batching)."""
    stage = ctx.stage
    schedule = Schedule(lr=stage.lr, total_steps=steps, warmup_steps=int(stage.warmup_ratio * steps),
                        schedule=stage.schedule, min_lr_ratio=stage.min_lr_ratio, weight_decay=stage.weight_decay,
                        anneal_fraction=stage.anneal_fraction, anneal_lr_ratio=stage.anneal_lr_ratio)
    learner_cfg = learner_section(ctx.cfg, schedule)
    learner_cfg["seed"] = stage.seed
    # Parameters the stage trains (the rest are frozen; rlsys/learner/freeze.py) and the key its errors name.
    learner_cfg["trainable"] = [str(p) for p in stage.trainable]
    learner_cfg["trainable_key"] = f"stages.{ctx.name}.trainable"
    learner_cfg |= learner_overrides or {}
    return LearnerGroup(ctx.input_model, learner_cfg, name=f"learner-{ctx.name}", model_kind=model_kind,
                        timeout=ctx.cfg.ray.actor_timeout_s)


def build_reward_pool(ctx: StageContext) -> Any:
    """Reward workers for the stage: its `reward_fns` when given, else the run's `reward.fns`."""
    fns = ctx.stage.reward_fns
    reward_cfg = to_plain(ctx.cfg.reward) | ({"fns": to_plain(fns)} if fns else {})
    where = f"stages.{ctx.name}.reward_fns" if fns else "reward.fns"
    return RewardWorkerPool(reward_cfg, where=where)

"""DeepSpeed engine construction: config dict and distributed environment."""

from __future__ import annotations

import os
from typing import Any

import torch


def deepspeed_config(cfg: dict[str, Any]) -> dict[str, Any]:
    """Translate the learner config section into a DeepSpeed config."""
    optim = cfg["optim"]
    config: dict[str, Any] = {
        "train_micro_batch_size_per_gpu": cfg["micro_batch_size"],
        # Accumulation is driven by the worker (variable micro-batch counts per step).
        "gradient_accumulation_steps": 1,
        "gradient_clipping": optim["grad_clip"],
        "optimizer": {
            "type": "AdamW",
            "params": {
                "lr": optim["lr"],
                "betas": list(optim["betas"]),
                "eps": optim["eps"],
                "weight_decay": optim["weight_decay"],
                # torch's AdamW: no cpu_adam/fused_adam extension build on first use.
                "torch_adam": True,
            },
        },
        "zero_optimization": {"stage": cfg["zero_stage"]},
        "bf16": {"enabled": cfg["precision"] == "bf16"},
        "steps_per_print": 10**9,
        "wall_clock_breakdown": False,
    }
    if cfg["zero_stage"] == 3:
        # Export for rollout sync gathers full tensors itself; no 16-bit consolidation on save.
        config["zero_optimization"]["stage3_gather_16bit_weights_on_model_save"] = False
    return config


def pick_backend(requested: str) -> str:
    if requested != "auto":
        return requested
    return "nccl" if torch.cuda.is_available() else "gloo"


def set_dist_env(rank: int, world_size: int, master_addr: str, master_port: int) -> None:
    os.environ.update(
        {
            "RANK": str(rank),
            "LOCAL_RANK": "0" if not torch.cuda.is_available() else os.environ.get("LOCAL_RANK", "0"),
            "WORLD_SIZE": str(world_size),
            "MASTER_ADDR": master_addr,
            "MASTER_PORT": str(master_port),
        }
    )

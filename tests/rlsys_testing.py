"""Helpers shared by the integration tests (importable: tests/ is on sys.path)."""

from __future__ import annotations


class TinyArch:
    """A smaller-than-default Qwen3 so integration tests spend seconds, not minutes."""

    vocab_size = 400
    hidden_size = 64
    intermediate_size = 128
    num_layers = 2
    num_heads = 2
    num_kv_heads = 1
    head_dim = 32
    max_position_embeddings = 512
    rope_theta = 10000.0


def tiny_texts() -> list[str]:
    return [f"What is {a} + {b}? The answer is {a + b}." for a in range(30) for b in range(30)] + [
        "Write a short note about the number 7. Here is my answer: 7 is odd."
    ] * 20




def learner_config(**overrides) -> dict:
    """A learner section as the Hydra config would give it (plain dict), for direct group tests."""
    cfg = {
        "num_actors": 1,
        "cpus_per_actor": 0.5,
        "gpus_per_actor": 0.0,
        "zero_stage": 0,
        "precision": "fp32",
        "micro_batch_size": 4,
        "max_tokens_per_micro": 4096,
        "gradient_checkpointing": False,
        "num_threads": 1,
        "dist_backend": "auto",
        "seed": 0,
        "optim": {
            "lr": 1e-3, "min_lr_ratio": 0.1, "weight_decay": 0.0, "betas": [0.9, 0.999], "eps": 1e-8,
            "warmup_steps": 0, "schedule": "cosine", "total_steps": 20, "grad_clip": 1.0,
            "anneal_fraction": 0.0, "anneal_lr_ratio": 0.1,
        },
    }
    optim = overrides.pop("optim", {})
    cfg.update(overrides)
    cfg["optim"].update(optim)
    return cfg

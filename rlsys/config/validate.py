"""Value checks that types alone cannot express; each error names the config key."""

from __future__ import annotations

from typing import Any


class ConfigError(ValueError):
    """A config value is invalid; the message names the key."""


_CHOICES: dict[str, tuple[Any, ...]] = {
    "data.on_bad_row": ("error", "skip"),
    "data.suite.format": ("jsonl", "parquet"),
    "rollout.dtype": ("float32", "bfloat16", "float16", "auto"),
    "rollout.sync_backend": ("object_store", "nccl"),
    "learner.zero_stage": (0, 1, 2, 3),
    "learner.precision": ("fp32", "bf16"),
    "learner.dist_backend": ("auto", "gloo", "nccl"),
    "learner.optim.schedule": ("constant", "cosine"),
}

_POSITIVE: tuple[str, ...] = (
    "rollout.num_actors",
    "rollout.max_model_len",
    "rollout.kv_cache_bytes",
    "rollout.group_size",
    "rollout.max_tokens",
    "rollout.sync_bucket_bytes",
    "learner.num_actors",
    "learner.micro_batch_size",
    "learner.max_tokens_per_micro",
    "learner.optim.lr",
    "reward.num_workers",
    "reward.timeout_s",
    "hints.rollouts_per_level",
)


def _get(cfg: Any, dotted: str) -> Any:
    node = cfg
    for part in dotted.split("."):
        node = node[part] if isinstance(node, dict) else getattr(node, part)
    return node


def validate_config(cfg: Any) -> None:
    """Raise ConfigError for the first out-of-range value, naming its key."""
    for key, choices in _CHOICES.items():
        value = _get(cfg, key)
        if value not in choices:
            raise ConfigError(f"config key '{key}' = {value!r}: must be one of {list(choices)}")
    for key in _POSITIVE:
        value = _get(cfg, key)
        if not value > 0:
            raise ConfigError(f"config key '{key}' = {value!r}: must be > 0")
    if not 0.0 < _get(cfg, "rollout.top_p") <= 1.0:
        raise ConfigError(f"config key 'rollout.top_p' = {_get(cfg, 'rollout.top_p')!r}: must be in (0, 1]")
    if _get(cfg, "rollout.temperature") < 0:
        raise ConfigError("config key 'rollout.temperature' must be >= 0")
    if not 1 <= _get(cfg, "hints.max_level") <= 5:
        raise ConfigError("config key 'hints.max_level' must be in [1, 5]")
    if _get(cfg, "rollout.min_actors") > _get(cfg, "rollout.max_actors"):
        raise ConfigError("config key 'rollout.min_actors' must be <= 'rollout.max_actors'")

"""Which model directory a run uses: a user's HF directory, or the embedded tiny model."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from rlsys.data.embedded import ensure_task_suite, iter_suite_texts
from rlsys.runtime.artifacts import cached_build

log = logging.getLogger(__name__)


def tiny_model_spec(cfg: Any) -> dict[str, Any]:
    from rlsys.data.embedded import suite_identity

    tiny = cfg.model.tiny
    return {
        "arch": {k: tiny[k] for k in tiny},
        "seed": cfg.model.seed,
        # The tokenizer is trained on the suite, so the suite is part of the model's identity.
        "suite": suite_identity(cfg.data.suite),
    }


def ensure_tiny_model(cfg: Any) -> str:
    """Build (or reuse) the randomly initialised tiny Qwen3 + tokenizer for this config."""
    from rlsys.model.tiny import build_tiny_model

    files = ensure_task_suite(cfg.artifacts_dir, cfg.data.suite)

    def build(tmp: Path) -> None:
        build_tiny_model(tmp, cfg.model.tiny, iter_suite_texts(files), cfg.model.seed)

    out = cached_build(cfg.artifacts_dir, "models/tiny-init", tiny_model_spec(cfg), build)
    return str(out)


def resolve_base_model(cfg: Any) -> str:
    """`model.path` when set (must be an HF directory), else the embedded tiny model."""
    if cfg.model.path:
        path = Path(cfg.model.path).expanduser()
        if not (path / "config.json").exists():
            raise FileNotFoundError(f"config key 'model.path' = {cfg.model.path!r}: no config.json there")
        return str(path)
    path = ensure_tiny_model(cfg)
    log.info("embedded tiny model: %s", path)
    return path

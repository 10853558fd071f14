"""Which model directory a run uses: a user's HF directory, or the embedded tiny model (`model.kind`:
"lm" the tiny Qwen3, "vl" a tiny Qwen3-VL built around it)."""

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
    spec: dict[str, Any] = {
        "arch": {k: tiny[k] for k in tiny},
        "seed": cfg.model.seed,
        # The tokenizer is trained on the suite, so the suite is part of the model's identity.
        "suite": suite_identity(cfg.data.suite),
    }
    if model_kind(cfg) == "vl":
        # Only the VLM's key grows: the default (lm) spec, hence every existing cache key, is unchanged.
        spec["vl"] = tiny_vl_spec_identity()
    return spec


def model_kind(cfg: Any) -> str:
    """`model.kind` ("lm" when absent, e.g. a config saved before the field existed)."""
    return str(getattr(cfg.model, "kind", None) or "lm")


def tiny_vl_spec_identity() -> dict[str, Any]:
    from dataclasses import asdict

    from rlsys.model.tiny_vl import TinyVLSpec

    return {"spec": asdict(TinyVLSpec()), "seed_offset": TINY_VL_SEED_OFFSET}


# The vision tower's seed is model.seed + this (so the LM and the tower draw different streams).
TINY_VL_SEED_OFFSET = 1


def ensure_tiny_model(cfg: Any) -> str:
    """Build (or reuse) the randomly initialised tiny Qwen3 + tokenizer for this config."""
    from rlsys.model.tiny import build_tiny_model

    files = ensure_task_suite(cfg.artifacts_dir, cfg.data.suite)

    def build(tmp: Path) -> None:
        build_tiny_model(tmp, cfg.model.tiny, iter_suite_texts(files), cfg.model.seed)

    out = cached_build(cfg.artifacts_dir, "models/tiny-init", _lm_spec(cfg), build)
    return str(out)


def _lm_spec(cfg: Any) -> dict[str, Any]:
    spec = tiny_model_spec(cfg)
    spec.pop("vl", None)
    return spec


def ensure_tiny_vl_model(cfg: Any) -> str:
    """Build (or reuse) the tiny Qwen3-VL around the embedded tiny LM (rlsys/model/tiny_vl.py)."""
    from rlsys.model.tiny_vl import TinyVLSpec, build_tiny_vl

    lm_dir = ensure_tiny_model(cfg)

    def build(tmp: Path) -> None:
        build_tiny_vl(lm_dir, str(tmp), TinyVLSpec(), seed=int(cfg.model.seed) + TINY_VL_SEED_OFFSET)

    out = cached_build(cfg.artifacts_dir, "models/tiny-vl-init", tiny_model_spec(cfg), build)
    return str(out)


def resolve_base_model(cfg: Any) -> str:
    """`model.path` when set (must be an HF directory, LM or VLM), else the embedded tiny model (a tiny
    Qwen3-VL around it when `model.kind` is "vl")."""
    if cfg.model.path:
        path = Path(cfg.model.path).expanduser()
        if not (path / "config.json").exists():
            raise FileNotFoundError(f"config key 'model.path' = {cfg.model.path!r}: no config.json there")
        return str(path)
    if model_kind(cfg) == "vl":
        path = ensure_tiny_vl_model(cfg)
        log.info("embedded tiny vision-language model: %s", path)
        return path
    path = ensure_tiny_model(cfg)
    log.info("embedded tiny model: %s", path)
    return path

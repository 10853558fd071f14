"""`merge` stage: merge expert checkpoints into the input model (linear task vectors or TIES)."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

from rlsys.algorithms.merging import merge_state_dicts
from rlsys.eval.scoring import evaluate_model
from rlsys.stages.builders import build_metrics_at
from rlsys.stages.context import StageContext

log = logging.getLogger(__name__)


def load_state_dict(model_dir: str) -> dict[str, Any]:
    """All tensors of an HF safetensors checkpoint (single file or sharded with an index)."""
    from safetensors.torch import load_file

    root = Path(model_dir)
    index = root / "model.safetensors.index.json"
    files = sorted(set(json.loads(index.read_text())["weight_map"].values())) if index.exists() else ["model.safetensors"]
    state: dict[str, Any] = {}
    for f in files:
        state.update(load_file(str(root / f)))
    return state


def save_like(base_dir: str, out_dir: str, state: dict[str, Any]) -> None:
    """Write `state` as a single-file checkpoint next to a copy of the base's config and tokenizer."""
    from safetensors.torch import save_file

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for item in Path(base_dir).iterdir():
        if item.is_file() and not item.name.startswith("model") and item.suffix != ".safetensors":
            shutil.copy(item, out / item.name)
    save_file({k: v.contiguous() for k, v in state.items()}, str(out / "model.safetensors"), metadata={"format": "pt"})


def run_merge(ctx: StageContext) -> dict[str, Any]:
    stage = ctx.stage
    if not stage.experts:
        raise ValueError(f"config key 'stages.{ctx.name}.experts' is empty: name the expert stages to merge")
    base = load_state_dict(ctx.input_model)
    experts = [load_state_dict(ctx.inputs[name]) for name in stage.experts]
    merged = merge_state_dicts(base, experts, stage.merge_method, list(stage.merge_weights) or None, stage.merge_density)
    model_dir = str(Path(ctx.out_dir) / "model")
    save_like(ctx.input_model, model_dir, merged)
    summary: dict[str, Any] = {"method": stage.merge_method, "experts": list(stage.experts), "density": stage.merge_density}
    if stage.evaluate:
        metrics = build_metrics_at(ctx.cfg, ctx.out_dir, ctx.name)
        summary["eval"] = evaluate_model(ctx.cfg, model_dir)
        for name in stage.experts:
            summary["eval"] |= {f"{k}/{name}": v for k, v in evaluate_model(ctx.cfg, ctx.inputs[name]).items()}
        metrics.log(summary["eval"], step=0)
        metrics.close(plots=False)
    return summary

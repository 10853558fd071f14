"""The `vision_init` stage: a text LM (its input stage's model) becomes a vision-language model.

Keye-VL warm-starts its language side from a trained Qwen3; the embedded default does the same with the
project's own trained tiny Qwen3: `build_tiny_vl` carries the LM's weights over exactly and adds a seeded
vision tower (ViT + patch merger), the vision special tokens and the HF processor. The later vision stages
(ViT pretraining, alignment, multi-task pretraining, ...) take this model as their input. A user with a real
VLM (`model.path=/models/Qwen3-VL-8B-Instruct`) starts those stages from it and needs no such stage.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from rlsys.config.validate import ConfigError
from rlsys.eval.scoring import evaluate_model
from rlsys.learner.worker import is_vision_language
from rlsys.stages.context import StageContext

log = logging.getLogger(__name__)


def run_vision_init(ctx: StageContext) -> dict[str, Any]:
    from rlsys.model.tiny_vl import TinyVLSpec, build_tiny_vl

    if is_vision_language(ctx.input_model):
        raise ConfigError(f"config key 'stages.{ctx.name}.input': {ctx.input_model} is already a vision-language "
                          "model; start the vision stages from it directly (no vision_init stage)")
    model_dir = str(Path(ctx.out_dir) / "model")
    # The stage seed draws the tower's initial weights: two seeds give two independent towers (ablations).
    build_tiny_vl(ctx.input_model, model_dir, TinyVLSpec(), seed=ctx.stage.seed)
    summary: dict[str, Any] = {"lm_dir": ctx.input_model, **_parameter_counts(model_dir)}
    log.info("vision_init: %s + a seeded vision tower -> %s (%d vision parameters)", ctx.input_model, model_dir,
             summary["vision_params"])
    if ctx.stage.evaluate:
        summary["eval"] = evaluate_model(ctx.cfg, model_dir)
    return summary


def _parameter_counts(model_dir: str) -> dict[str, int]:
    """Parameters of the vision tower (merger included) and of the whole model, from the saved weights."""
    from safetensors import safe_open

    counts = {"vision_params": 0, "total_params": 0}
    for path in sorted(Path(model_dir).glob("*.safetensors")):
        with safe_open(str(path), framework="pt") as fh:
            for name in fh.keys():
                numel = fh.get_slice(name).get_shape()
                size = 1
                for dim in numel:
                    size *= int(dim)
                counts["total_params"] += size
                if ".visual." in f".{name}":
                    counts["vision_params"] += size
    return counts

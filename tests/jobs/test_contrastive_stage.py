"""The `contrastive` stage end to end on the tiny Qwen3-VL (real Ray and DeepSpeed learner): 6 caption rows of the
visual suite, 2 steps with only `model.visual.*` training; the vision tower moves, the LM leaves byte-identical,
the saved model loads back with no unexpected key, and retrieval is measured before and after."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from rlsys.config.schema import Config
from rlsys.stages.runner import run_stage_chain
from rlsys.stages.validate import validate_chain

pytestmark = pytest.mark.slow

# vl_caption_train: one row per vl_sft_train scene (3 tasks x 2); vl_caption_eval: one per vl_eval scene.
VISUAL = {"tasks": ["arith", "count", "chart_value"], "n_train_per_task": 1, "n_eval_per_task": 2,
          "n_sft_per_task": 2, "n_trap_train": 1, "n_trap_eval": 1, "image_size": 64}


def test_vit_pretraining_trains_the_tower_only_and_reports_retrieval(ray_session, tiny_vl_dir, tmp_path):
    from safetensors.torch import load_file
    from transformers import AutoModelForImageTextToText

    base = tiny_vl_dir
    cfg = OmegaConf.structured(Config)
    cfg.model.path = base
    cfg.artifacts_dir = str(tmp_path / "artifacts")
    cfg.run_dir = str(tmp_path / "run")
    cfg.logging.plots = False
    cfg.logging.progress = False
    cfg.pipeline = ["vit"]
    cfg = OmegaConf.merge(cfg, {
        "data": {"visual": VISUAL},
        "learner": {"cpus_per_actor": 0.5, "num_threads": 1},
        "stages": {"vit": {"kind": "contrastive", "loss": "siglip", "data": "vl_caption_train",
                           "eval_data": "vl_caption_eval", "trainable": ["model.visual.*"], "batch_size": 3,
                           "epochs": 1.0, "lr": 5e-3, "warmup_ratio": 0.0, "schedule": "constant", "log_every": 1}},
    })
    validate_chain(cfg)
    result = run_stage_chain(cfg, ["vit"])["vit"]

    summary = result.summary
    assert summary["pairs"] == 6 and summary["steps"] == 2 and math.isfinite(summary["final_loss"])
    for key in ("eval/retrieval_i2t_before", "eval/retrieval_i2t", "eval/retrieval_t2i_before", "eval/retrieval_t2i"):
        assert 0.0 <= summary["eval"][key] <= 1.0, key
    assert summary["eval"]["eval/retrieval_chance"] == pytest.approx(1 / 3)  # 6 distinct held-out captions, batches of 3
    logged = [json.loads(line) for line in (Path(result.path) / "metrics.jsonl").read_text().splitlines()]
    assert {"train/loss", "train/temperature", "train/accuracy_i2t"} <= {k for row in logged for k in row}

    start = load_file(str(Path(base) / "model.safetensors"))
    saved = load_file(str(Path(result.model_dir) / "model.safetensors"))
    assert set(saved) == set(start)
    moved = {n for n in start if not saved[n].equal(start[n])}
    assert "model.visual.blocks.0.attn.qkv.weight" in moved and "model.visual.merger.linear_fc1.weight" in moved
    frozen = [n for n in start if not n.startswith("model.visual.")]
    assert frozen and all(saved[n].numpy().tobytes() == start[n].numpy().tobytes() for n in frozen)
    _, info = AutoModelForImageTextToText.from_pretrained(result.model_dir, output_loading_info=True)
    assert not info["unexpected_keys"] and not info["missing_keys"], info
    # The processor travels with the model (vLLM and the next stage read it).
    from transformers import AutoProcessor

    assert AutoProcessor.from_pretrained(result.model_dir).image_processor is not None

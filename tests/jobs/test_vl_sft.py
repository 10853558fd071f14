"""SFT and MPO on rows with images: image rows on a text model fail naming the stage and row; a real short
SFT stage on the tiny Qwen3-VL (a weighted mixture of two visual splits), then MPO on image pairs, train the
vision tower and the LM."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from omegaconf import OmegaConf
from rlsys_testing import SMALL, draw_image, run_rlsys

from rlsys.config.schema import Config
from rlsys.config.validate import ConfigError
from rlsys.jobs.train import input_processor
from rlsys.stages.context import StageContext

VISUAL = {"tasks": ["arith", "count"], "n_train_per_task": 2, "n_eval_per_task": 1, "n_sft_per_task": 4,
          "n_trap_train": 1, "n_trap_eval": 1, "image_size": 64}


def _ctx(tmp_path: Path, model: str, kind: str = "sft") -> StageContext:
    cfg = OmegaConf.structured(Config)
    stage = OmegaConf.merge(OmegaConf.structured(Config).stages, {"vsft": {"kind": kind}}).vsft
    return StageContext(cfg, "vsft", stage, model, tmp_path / "out")


def test_image_rows_need_a_vision_language_model(tmp_path: Path, tiny_model_dir: str, tiny_vl_dir: str) -> None:
    rows = [{"id": "t1", "prompt": "q", "response": "a"}, {"id": "v7", "prompt": "q", "response": "a", "images": ["x.png"]}]
    assert input_processor(_ctx(tmp_path, tiny_model_dir), rows[:1]) is None  # text rows load nothing
    with pytest.raises(ConfigError, match=r"stage 'vsft': row 'v7' has images, but the input model .* is not a "
                                          r"vision-language model"):
        input_processor(_ctx(tmp_path, tiny_model_dir), rows)
    with pytest.raises(ConfigError, match=r"stage 'vsft': row 'v7' has images, but a rm stage trains on text only"):
        input_processor(_ctx(tmp_path, tiny_vl_dir, "rm"), rows, allow=False)
    assert input_processor(_ctx(tmp_path, tiny_vl_dir), rows).image_token_id is not None


def _tensors(path: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(path))


def _pairs_file(tmp_path: Path) -> Path:
    """Four preference rows, each with its own image (absolute paths)."""
    from rlsys.stages.io import write_jsonl

    rows = []
    for i, colour in enumerate(["red", "green", "blue", "black"]):
        image = tmp_path / "pairs" / f"{colour}.png"
        image.parent.mkdir(exist_ok=True)
        rows.append({"id": f"p{i}", "prompt": "What colour is the picture?", "chosen": colour,
                     "rejected": "white", "images": [draw_image(image, (64, 64), colour, shape=None)]})
    return write_jsonl(tmp_path / "pairs" / "pairs.jsonl", rows)


@pytest.mark.slow
def test_short_sft_and_mpo_stages_on_image_rows_train_the_vision_tower(tmp_path: Path, tiny_vl_dir: str) -> None:
    sft, mpo = "stages.vsft.", "stages.vmpo."
    args = [
        "job=pipeline", "pipeline=[vsft,vmpo]", "+stage@stages.vsft=blank", "+stage@stages.vmpo=blank",
        f"{sft}kind=sft", f"{sft}data=vl_sft_train+vl_caption_train", f"{sft}mix_weights=[3,1]", f"{sft}max_steps=3",
        f"{sft}batch_size=4", f"{sft}lr=0.001", f"{sft}warmup_ratio=0", f"{sft}evaluate=false",
        f"{mpo}kind=mpo", f"{mpo}loss=mpo", f"{mpo}input=vsft", f"{mpo}max_steps=2", f"{mpo}batch_size=2",
        f"{mpo}lr=0.001", f"{mpo}warmup_ratio=0", f"{mpo}evaluate=false", f"data.pref_files=[{_pairs_file(tmp_path)}]",
        "eval.max_pairs=2", *SMALL,
        f"model.path={tiny_vl_dir}", f"artifacts_dir={tmp_path / 'artifacts'}", f"hydra.run.dir={tmp_path / 'run'}",
        "ray.num_cpus=2", *(f"data.visual.{k}={json.dumps(v)}" for k, v in VISUAL.items()),
    ]
    run_rlsys(args)
    stages = tmp_path / "run" / "stages"
    summary = json.loads((stages / "vsft" / "summary.json").read_text())
    assert math.isfinite(summary["final_loss"]) and summary["steps"] == 3
    # 8 task rows + 8 captions (one per scene), every one with an image; 12 draws spread over both parts.
    assert summary["sequences"] == summary["image_sequences"] == 16
    epochs = summary["mix_epochs"]
    assert set(epochs) == {"vl_sft_train", "vl_caption_train"}
    assert math.isclose(epochs["vl_sft_train"] * 8 + epochs["vl_caption_train"] * 8, 12)
    assert epochs["vl_sft_train"] > epochs["vl_caption_train"] > 0
    pref = json.loads((stages / "vmpo" / "summary.json").read_text())
    assert math.isfinite(pref["final_loss"]) and pref["steps"] == 2 and pref["pairs"] == 4
    models = [Path(tiny_vl_dir), stages / "vsft" / "model", stages / "vmpo" / "model"]
    for before_dir, after_dir in zip(models, models[1:]):
        before, after = _tensors(before_dir / "model.safetensors"), _tensors(after_dir / "model.safetensors")
        assert set(before) == set(after)
        changed = {n for n in before if not before[n].equal(after[n])}
        assert any(n.startswith("model.visual.") for n in changed), after_dir
        assert any(n.startswith("model.language_model.") for n in changed), after_dir
        assert (after_dir / "processor_config.json").is_file()

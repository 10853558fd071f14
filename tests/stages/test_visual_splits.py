"""Visual suite splits (`vl_train`, ...) as a stage's `data`: rows with absolute image paths from `data.visual`,
and the visual suite's identity in the cache key of those stages only."""

from __future__ import annotations

import os
from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from rlsys.config.schema import Config
from rlsys.data.embedded import suite_identity
from rlsys.run import CONF_DIR, normalize_overrides
from rlsys.stages.context import StageContext
from rlsys.stages.io import stage_rows, visual_splits
from rlsys.stages.plan import plan_stage_chain
from rlsys.stages.runner import data_identity

SMALL = {"tasks": ["arith", "count"], "n_train_per_task": 2, "n_eval_per_task": 1, "n_sft_per_task": 1,
         "n_trap_train": 1, "n_trap_eval": 1, "image_size": 64}


def _ctx(tmp_path: Path, data: str, **visual) -> StageContext:
    cfg = OmegaConf.structured(Config)
    cfg.artifacts_dir = str(tmp_path / "artifacts")
    cfg.data.visual = OmegaConf.merge(cfg.data.visual, SMALL | visual)
    stage = OmegaConf.merge(OmegaConf.structured(Config).stages, {"rl": {"kind": "rl", "data": data}}).rl
    return StageContext(cfg, "rl", stage, "unused", tmp_path / "out")


def test_a_visual_split_gives_rows_with_absolute_existing_images(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path, "vl_train+vl_trap_train")
    rows = stage_rows(ctx, "rl")
    assert len(rows) == 2 * 2 + 1
    assert {r["data_source"] for r in rows} == {"rlsys/visual"}
    for row in rows:
        assert row["images"] and all(os.path.isabs(p) and Path(p).is_file() for p in row["images"])
    assert not (tmp_path / "artifacts" / "data").exists()  # the text suite is not built for visual splits
    picked = stage_rows(_ctx(tmp_path, "vl_train:3"), "rl")
    assert len(picked) == 3 and all(r in rows for r in picked)


def test_only_visual_splits_carry_the_visual_identity(tmp_path: Path) -> None:
    text, visual = _ctx(tmp_path, "math_train"), _ctx(tmp_path, "vl_train")
    # A text split's identity is exactly what it was before the visual suite existed.
    assert data_identity(text.cfg, text.stage) == {"suite": suite_identity(text.cfg.data.suite), "split": "math_train"}
    assert data_identity(text.cfg, text.stage) == data_identity(_ctx(tmp_path, "math_train", seed=7).cfg, text.stage)
    ident = data_identity(visual.cfg, visual.stage)
    assert ident["split"] == "vl_train" and ident["visual"]["n_train_per_task"] == 2 and ident["visual"]["generator"]
    other = _ctx(tmp_path, "vl_train", seed=7)
    assert data_identity(other.cfg, other.stage) != ident
    assert "visual" in data_identity(visual.cfg, _ctx(tmp_path, "math_train+vl_eval:1").stage)
    assert {"vl_train", "vl_eval", "vl_sft_train", "vl_trap_train"} <= visual_splits()


def _keys(tmp_path: Path, *overrides: str) -> dict[str, str]:
    with initialize_config_dir(config_dir=CONF_DIR, version_base=None):
        cfg = compose(config_name="config", overrides=normalize_overrides(
            ["+exp=gspo_hints", f"artifacts_dir={tmp_path}", *overrides]))
    return {p.name: p.path.name for p in plan_stage_chain(cfg, list(cfg.pipeline))}


def test_data_visual_moves_only_the_keys_of_stages_on_visual_splits(tmp_path: Path) -> None:
    base = _keys(tmp_path)
    assert _keys(tmp_path, "data.visual.n_train_per_task=3") == base
    on_visual = _keys(tmp_path, "stages.rl.data=vl_train")
    assert [n for n in base if base[n] != on_visual[n]] == ["rl"]
    resized = _keys(tmp_path, "stages.rl.data=vl_train", "data.visual.image_size=96")
    assert [n for n in base if on_visual[n] != resized[n]] == ["rl"]

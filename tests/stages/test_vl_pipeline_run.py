"""`+exp=vl_pipeline` end to end on the smallest settings: every vision stage kind runs in its chain
(vision_init -> contrastive -> sft (merger only) -> sft mixture -> sft -> pref_sample -> mpo -> rl), freezing
keeps what each stage must not train byte-identical, the pipeline table has the visual columns, and
`+exp=gspo_hints_vl` reuses the same chain up to vl_sft."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from rlsys_testing import SMALL
from safetensors.torch import load_file

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow

VISUAL = ["data.visual.tasks=[arith,count]", "data.visual.n_train_per_task=4", "data.visual.n_eval_per_task=2",
          "data.visual.n_sft_per_task=6", "data.visual.n_trap_train=2", "data.visual.n_trap_eval=1",
          "data.visual.image_size=64"]
TRAINED = ("vit_pretrain", "vl_align", "vl_pretrain", "vl_sft", "vl_mpo")


def _args(tmp_path: Path, exp: str, run: Path) -> list[str]:
    small_stages = [f"stages.{s}.{k}={v}" for s in TRAINED for k, v in (("max_steps", 2), ("batch_size", 4))]
    quiet = [f"stages.{s}.evaluate=false" for s in ("vl_init", "vl_align", "vl_pretrain", "vl_mpo")]
    return [
        sys.executable, "-m", "rlsys.run", f"+exp={exp}", f"artifacts_dir={tmp_path / 'artifacts'}",
        f"hydra.run.dir={run}", *SMALL, *VISUAL, *small_stages, *quiet,
        # The tiny randomly initialised LM stands in for the trained text chain.
        "stages.vl_init.input=null",
        "stages.vl_pretrain.data=vl_caption_train+vl_caption_qa_train+vl_sft_train+sft_train:8",
        "stages.vl_pretrain.mix_weights=[1,1,2,1]", "stages.vl_sft.data=vl_sft_train+vl_trap_train+sft_train:4",
        "stages.vl_sft.mix_weights=[3,1,1]", "stages.vl_pref_sample.sample.max_rows=4",
        "stages.vl_pref_sample.sample.drop_truncated=false",
        "stages.vl_rl.rl.steps=1", "stages.vl_rl.rl.batch_groups=2", "stages.vl_rl.rl.mini_batches=1",
        "stages.vl_rl.rl.save_every=0", "stages.vl_rl.rl.eval_every=0", "stages.vl_rl.rl.max_refill_rounds=2",
        # Rewards a random tiny model can earn both ways, so groups vary and preference pairs exist.
        "stages.vl_rl.reward_fns=[{_target_: rl_test_rewards.even_length, weight: 1.0}]",
        "stages.vl_pref_sample.reward_fns=[{_target_: rl_test_rewards.even_length, weight: 1.0}]",
        "rollout.group_size=2", "rollout.max_tokens=8", "hints.enabled=false", "reward.correct_threshold=0.5",
        "eval.max_visual=2", "eval.max_math=2", "eval.max_ifeval=1", "eval.max_tokens=8", "eval.max_pairs=2",
    ]


def _weights(stage_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(stage_dir / "model" / "model.safetensors"))


def _changed(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> set[str]:
    assert a.keys() == b.keys()
    return {k for k in a if not torch.equal(a[k], b[k])}


def test_vl_pipeline_runs_every_vision_stage_and_gspo_hints_vl_reuses_it(tmp_path: Path) -> None:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO / "tests"), os.environ.get("PYTHONPATH", "")]))
    run = tmp_path / "run"
    proc = subprocess.run(_args(tmp_path, "vl_pipeline", run), cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=1800)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-6000:]
    stages = run / "stages"
    w = {s: _weights(stages / s) for s in ("vl_init", *TRAINED, "vl_rl")}
    # ViT pretraining moves the tower's blocks only; alignment moves the merger only; later stages move the LM.
    vit = _changed(w["vl_init"], w["vit_pretrain"])
    assert vit and all(k.startswith(("model.visual.blocks.", "model.visual.patch_embed.", "model.visual.pos_embed."))
                       for k in vit)
    align = _changed(w["vit_pretrain"], w["vl_align"])
    assert align and all(k.startswith("model.visual.merger.") or "deepstack_merger" in k for k in align)
    assert any(k.startswith("model.language_model.") for k in _changed(w["vl_align"], w["vl_pretrain"]))
    assert any(k.startswith("model.language_model.") for k in _changed(w["vl_mpo"], w["vl_rl"]))
    summary = json.loads((stages / "vl_pretrain" / "summary.json").read_text())
    assert set(summary["mix_epochs"]) == {"vl_caption_train", "vl_caption_qa_train", "vl_sft_train", "sft_train:8"}
    vit_summary = json.loads((stages / "vit_pretrain" / "summary.json").read_text())
    assert "eval/retrieval_i2t" in vit_summary["eval"]
    table = json.loads((run / "pipeline_table.json").read_text())
    names = [row["stage"] for row in table["stages"]]
    assert names[-8:] == ["vl_init", "vit_pretrain", "vl_align", "vl_pretrain", "vl_sft", "vl_pref_sample", "vl_mpo",
                          "vl_rl"]
    header = next(line for line in (run / "pipeline_table.md").read_text().splitlines() if line.startswith("| stage"))
    assert "| vl | vl trap |" in header
    vl_sft = next(row for row in table["stages"] if row["stage"] == "vl_sft")
    assert 0.0 <= vl_sft["eval/vl_acc"] <= 1.0
    # gspo_hints_vl composes from the same stage file: its chain up to vl_sft is already built.
    args = [a for a in _args(tmp_path, "gspo_hints_vl", run)[3:] if not a.startswith("hydra.")]
    plan = subprocess.run([sys.executable, "-m", "rlsys.stages.plan", *args],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert plan.returncode == 0, plan.stderr[-3000:]
    built = {line.split()[0]: line.split()[3] for line in plan.stdout.splitlines()[1:] if line.strip()}
    assert all(built[s] == "yes" for s in ("vl_init", "vit_pretrain", "vl_align", "vl_pretrain", "vl_sft"))
    assert built["vl_rl"] == "no"

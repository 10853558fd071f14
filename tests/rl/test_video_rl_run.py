"""(slow) A real tiny GSPO-with-hints stage on video rows (`model=tiny_vl`, the video suite's rows as the stage's
train file): rollouts send video items, two steps train on the same pixels, and the vision tower changes (it only
moves when the learner got the videos)."""

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

from rlsys.data.tasks.video.suite import VideoSuiteSpec, build_video_suite

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def test_two_gspo_hint_steps_on_video_rows_train_the_vision_tower(tmp_path: Path) -> None:
    files = build_video_suite(str(tmp_path / "video"), VideoSuiteSpec(
        tasks=["video_count", "video_related"], n_train_per_task=3, n_eval_per_task=0, n_sft_per_task=0,
        frame_size=64, n_frames=6))
    run = tmp_path / "run"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO / "tests"), os.environ.get("PYTHONPATH", "")]))
    args = [
        sys.executable, "-m", "rlsys.run", "+exp=gspo_hints", "model=tiny_vl", f"artifacts_dir={tmp_path / 'artifacts'}",
        f"hydra.run.dir={run}", *SMALL, f"data.train_files=[{files['video_train']}]",
        "stages.rl.input=null", "stages.rl.lr=1e-2", "stages.rl.weight_decay=0.0", "stages.rl.rl.steps=2",
        "stages.rl.rl.batch_groups=2", "stages.rl.rl.mini_batches=1", "stages.rl.rl.save_every=0",
        "stages.rl.rl.eval_every=0", "stages.rl.rl.max_refill_rounds=4", "rollout.group_size=2",
        "rollout.max_tokens=8", "rollout.max_model_len=640", "hints.max_level=2", "reward.correct_threshold=0.5",
        "stages.rl.reward_fns=[{_target_: rl_test_rewards.even_length, weight: 1.0}]",
        "eval.max_math=1", "eval.max_ifeval=1", "eval.max_tokens=4", "eval.sample_k=0",
    ]
    proc = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=1500)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-5000:]
    stage = run / "stages" / "rl"
    records = [json.loads(line) for line in (stage / "metrics.jsonl").read_text().splitlines()]
    trained = [r for r in records if "train/loss" in r]
    assert len(trained) == 2 and all(r["train/groups"] >= 1 for r in trained)
    (base,) = (tmp_path / "artifacts" / "models" / "tiny-vl-init").glob("*/model.safetensors")
    before, after = load_file(str(base)), load_file(str(stage / "model" / "model.safetensors"))
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert any(k.startswith("model.language_model.") for k in changed)
    assert any(k.startswith("model.visual.") for k in changed)


def test_gspo_hints_video_exp_runs_sft_then_rl_on_slowfast_streams(tmp_path: Path) -> None:
    """`+exp=gspo_hints_video` (tiny sizes, from model=tiny_vl): the video SFT stage and two GSPO-with-hints steps
    on the video suite's rows, sent as SlowFast streams; the RL stage starts from the SFT stage's model and
    changes its vision tower."""
    run = tmp_path / "run"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO / "tests"), os.environ.get("PYTHONPATH", "")]))
    args = [
        sys.executable, "-m", "rlsys.run", "+exp=gspo_hints_video", "model=tiny_vl",
        f"artifacts_dir={tmp_path / 'artifacts'}", f"hydra.run.dir={run}", *SMALL,
        "data.video.tasks=[video_count,video_when]", "data.video.n_train_per_task=3", "data.video.n_eval_per_task=1",
        "data.video.n_sft_per_task=4", "data.video.frame_size=64", "data.video.n_frames=6",
        "data.slowfast.token_budget=24", "pipeline=[video_sft,video_rl]",
        "stages.video_sft.input=null", "stages.video_sft.data=video_sft_train", "stages.video_sft.mix_weights=[]",
        "stages.video_sft.epochs=1.0", "stages.video_sft.batch_size=4", "stages.video_sft.overrides={}",
        "stages.video_rl.overrides={}", "stages.video_rl.lr=1e-2", "stages.video_rl.rl.steps=2",
        "stages.video_rl.rl.batch_groups=2", "stages.video_rl.rl.mini_batches=1", "stages.video_rl.rl.save_every=0",
        "stages.video_rl.rl.eval_every=0", "stages.video_rl.rl.max_refill_rounds=4", "rollout.group_size=2",
        "rollout.max_tokens=8", "rollout.max_model_len=512", "hints.max_level=2", "reward.correct_threshold=0.5",
        "stages.video_rl.reward_fns=[{_target_: rl_test_rewards.even_length, weight: 1.0}]",
        "eval.max_math=1", "eval.max_ifeval=1", "eval.max_tokens=4", "eval.sample_k=0", "eval.video=true",
    ]
    proc = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=1500)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-5000:]
    # Held-out video questions (one per task) asked with their SlowFast streams, before and after the RL stage.
    records = [json.loads(line) for line in (run / "stages" / "video_rl" / "metrics.jsonl").read_text().splitlines()]
    assert "evaluation requests failed" not in proc.stdout + proc.stderr
    scored = [r for r in records if "eval/video_acc" in r]
    assert len(scored) == 2 and all({"eval/video_acc_video_count", "eval/video_acc_video_when"} <= set(r)
                                    for r in scored)
    sft = json.loads((run / "stages" / "video_sft" / "summary.json").read_text())
    assert sft["sequences"] == 8  # every video SFT row (4 per task), each with its SlowFast video items
    # The RL stage planned its rows' videos (one log line per video) and sent them as slow + fast streams.
    assert "slowfast row vid-video_count-train-" in proc.stdout + proc.stderr + "".join(
        p.read_text() for p in run.rglob("*.log"))
    stage = run / "stages" / "video_rl"
    records = [json.loads(line) for line in (stage / "metrics.jsonl").read_text().splitlines()]
    assert len([r for r in records if "train/loss" in r]) == 2
    (init,) = (tmp_path / "artifacts" / "models" / "tiny-vl-init").glob("*/model.safetensors")
    (sft_model,) = (tmp_path / "artifacts" / "stages" / "video_sft").glob("*/model/model.safetensors")
    weights = [load_file(str(p)) for p in (init, sft_model, stage / "model" / "model.safetensors")]
    for before, after in zip(weights, weights[1:]):  # SFT, then RL, each moved the vision tower
        assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith("model.visual."))

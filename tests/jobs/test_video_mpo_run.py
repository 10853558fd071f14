"""(slow) Preference sampling and MPO on video rows: pref_sample asks the tiny Qwen3-VL the video suite's questions
with their SlowFast streams, its pairs keep the videos, and MPO on them trains the vision tower and the LM."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from rlsys_testing import SMALL, run_rlsys
from safetensors.torch import load_file

from rlsys.data.loading import load_rows

pytestmark = pytest.mark.slow


def test_pref_sample_and_mpo_on_video_rows(tmp_path: Path, tiny_vl_dir: str) -> None:
    pref, mpo = "stages.vpref.", "stages.vmpo."
    args = [
        "job=pipeline", "pipeline=[vpref,vmpo]", "+stage@stages.vpref=blank", "+stage@stages.vmpo=blank",
        f"{pref}kind=pref_sample", f"{pref}data=video_train", f"{pref}evaluate=false",
        f"{pref}sample={{num_samples: 4, max_rows: 6, temperature: 1.0, pairs_per_prompt: 1, max_tokens: 16}}",
        f"{pref}reward_fns=[{{_target_: rl_test_rewards.even_length, weight: 1.0}}]", "reward.correct_threshold=0.5",
        f"{mpo}kind=mpo", f"{mpo}loss=mpo", f"{mpo}input=null", f"{mpo}data_from=vpref", f"{mpo}max_steps=2",
        f"{mpo}batch_size=2", f"{mpo}lr=0.001", f"{mpo}warmup_ratio=0", f"{mpo}evaluate=false", f"{mpo}seq_len=512",
        "data.video.tasks=[video_count,video_when]", "data.video.n_train_per_task=3", "data.video.n_eval_per_task=1",
        "data.video.n_sft_per_task=1", "data.video.frame_size=64", "data.video.n_frames=6",
        "data.video_sampling=slowfast", "data.slowfast.token_budget=24", "rollout.max_model_len=512",
        # The untrained model rarely ends an answer; stop strings give it finished ones to pair.
        "rollout.stop=[e,a,o,t]", "eval.max_pairs=2", *SMALL, f"model.path={tiny_vl_dir}", f"artifacts_dir={tmp_path / 'artifacts'}",
        f"hydra.run.dir={tmp_path / 'run'}", "ray.num_cpus=2",
    ]
    proc = run_rlsys(args)
    stages = tmp_path / "run" / "stages"
    # The questions went out with their videos planned into SlowFast streams (one log line per planned video; the
    # pairs' own lines, planned again for MPO, carry a "-pair" id).
    logs = proc.stdout + proc.stderr + "".join(p.read_text() for p in (tmp_path / "run").rglob("*.log"))
    assert re.search(r"slowfast row vid-video_count-train-\S+ video 0", logs.replace("-pair0 ", " PAIR ")), logs[-3000:]
    pairs, _ = load_rows([str(stages / "vpref" / "data.jsonl")], "preference", "error")
    assert pairs and all(p["videos"] and p["fps"] > 0 for p in pairs)
    summary = json.loads((stages / "vmpo" / "summary.json").read_text())
    assert summary["steps"] == 2 and summary["pairs"] == len(pairs)
    before = load_file(str(Path(tiny_vl_dir) / "model.safetensors"))
    after = load_file(str(stages / "vmpo" / "model" / "model.safetensors"))
    changed = {n for n in before if not before[n].equal(after[n])}
    assert any(n.startswith("model.visual.") for n in changed) and any(n.startswith("model.language_model.")
                                                                      for n in changed)

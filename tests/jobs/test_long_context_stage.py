"""(slow) The long-context stage end to end on the tiny Qwen3-VL: RoPE base and context raised, two phases of
growing length on long rows packed from video, picture and text SFT rows mixed by weight, held-out accuracy by
input length before and after, through real Ray, DeepSpeed and vLLM."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rlsys_testing import SMALL, run_rlsys
from safetensors.torch import load_file

pytestmark = pytest.mark.slow

VISUAL = ["data.visual.tasks=[arith,count]", "data.visual.n_train_per_task=2", "data.visual.n_eval_per_task=3",
          "data.visual.n_sft_per_task=4", "data.visual.n_trap_train=1", "data.visual.n_trap_eval=1",
          "data.visual.image_size=64"]
VIDEO = ["data.video.tasks=[video_count,video_when]", "data.video.n_train_per_task=1", "data.video.n_eval_per_task=2",
         "data.video.n_sft_per_task=3", "data.video.frame_size=64", "data.video.n_frames=6"]


def test_long_context_stage_on_video_image_and_text(tmp_path: Path, tiny_vl_dir: str) -> None:
    s = "stages.long."
    phases = ("[{seq_len: 384, items: [1, 2], share: 0.5}, {seq_len: 768, items: [2, 3], share: 0.5}]")
    args = [
        "job=pipeline", "pipeline=[long]", "+stage@stages.long=blank", f"{s}kind=long_context", f"{s}input=null",
        f"{s}loss=sft", f"{s}data=video_sft_train+vl_sft_train+sft_train:12", f"{s}mix_weights=[24,50,26]",
        f"{s}max_steps=2", f"{s}batch_size=3", f"{s}lr=0.001", f"{s}warmup_ratio=0",
        f"{s}long_context.phases={phases}", f"{s}long_context.max_position_embeddings=1024",
        f"{s}long_context.eval_splits=[math_eval,vl_eval,video_eval]", f"{s}long_context.eval_items=[1,3]",
        f"{s}long_context.eval_rows=2", "eval.max_tokens=8", *VISUAL, *VIDEO, *SMALL, f"model.path={tiny_vl_dir}",
        f"artifacts_dir={tmp_path / 'artifacts'}", f"hydra.run.dir={tmp_path / 'run'}", "ray.num_cpus=2",
    ]
    run_rlsys(args)
    stage = tmp_path / "run" / "stages" / "long"
    summary = json.loads((stage / "summary.json").read_text())
    # Both phases trained, the second on longer sequences than the first could hold.
    assert [summary[f"phase{i}"]["steps"] for i in (0, 1)] == [1, 1]
    assert summary["phase1"]["seq_len"] == 768 and summary["steps"] == 2
    # The saved model has the raised base and context (a VLM keeps them in text_config).
    text = json.loads((stage / "model" / "config.json").read_text())["text_config"]
    base = json.loads((Path(tiny_vl_dir) / "config.json").read_text())["text_config"]
    assert text["rope_parameters"]["rope_theta"] == 8 * base["rope_parameters"]["rope_theta"]
    assert text["max_position_embeddings"] == 1024
    # Held-out buckets of every kind, before and after, the packed ones longer than the short ones.
    for when in ("eval_before", "eval"):
        got = summary[when]
        for split in ("math_eval", "vl_eval", "video_eval"):
            assert 0.0 <= got[f"eval/long/{split}_k1"] <= 1.0 and 0.0 <= got[f"eval/long/{split}_k3"] <= 1.0
            # Two more tasks, each with its "Task i:" line and prompt (and pictures / videos).
            assert got[f"eval/long/{split}_k3_tokens"] > got[f"eval/long/{split}_k1_tokens"] + 60
    assert "| vl_eval | 3 |" in (stage / "eval_table.md").read_text()
    # The short evaluation ran on both models too.
    assert 0.0 <= summary["eval_before"]["eval/math_acc"] <= 1.0 and 0.0 <= summary["eval"]["eval/math_acc"] <= 1.0
    # The vision tower and the LM both trained.
    before = load_file(str(Path(tiny_vl_dir) / "model.safetensors"))
    after = load_file(str(stage / "model" / "model.safetensors"))
    changed = {n for n in before if not before[n].equal(after[n])}
    assert any(n.startswith("model.visual.") for n in changed)
    assert any(n.startswith("model.language_model.") for n in changed)
    assert not (stage / "start_model").exists() and not (stage / "before_model").exists()

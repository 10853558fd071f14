"""rlsys.eval.compare on two hand-made artifact roots."""

from __future__ import annotations

import json
from pathlib import Path

from rlsys.eval import compare


def _stage(root: Path, weights: bytes, loss: float, step_s: float) -> Path:
    stage = root / "stages" / "sft" / "k1"
    (stage / "model").mkdir(parents=True)
    (stage / "model" / "model.safetensors").write_bytes(weights)
    (stage / "checkpoints").mkdir()
    (stage / "checkpoints" / "model.safetensors").write_bytes(step_s.hex().encode())
    lines = [{"step": 1, "time": step_s * 1000, "train/loss": loss, "time/step_s": step_s, "train/tokens_per_s": 1 / step_s}]
    (stage / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    (stage / "summary.json").write_text(json.dumps({"eval": {"math_acc": 0.5}, "wall_s": step_s}))
    return stage


def test_same_build_with_other_timings_is_identical(tmp_path) -> None:
    a = _stage(tmp_path / "a", b"w", 0.25, 1.0)
    b = _stage(tmp_path / "b", b"w", 0.25, 2.0)
    (tmp_path / "a" / "stages" / "rl" / "only-a").mkdir(parents=True)
    assert compare.shared_builds(tmp_path / "a", tmp_path / "b") == [Path("stages/sft/k1")]
    # Timings (time, *_s, *per_s) and checkpoints differ; 3 numbers are compared: step, loss, math_acc.
    assert compare.compare_build(a, b) == {"weights": "identical", "data": "-", "metrics": 3, "metrics_differ": 0,
                                           "only_one_side": 0, "max_abs_diff": 0.0, "first_differing": []}


def test_differing_weights_and_metrics_are_named(tmp_path) -> None:
    a = _stage(tmp_path / "a", b"w", 0.25, 1.0)
    b = _stage(tmp_path / "b", b"v", 0.5, 1.0)
    out = compare.compare_build(a, b)
    assert out["weights"] == "1/1 differ"
    assert (out["metrics_differ"], out["max_abs_diff"], out["first_differing"]) == (1, 0.25, ["metrics.jsonl/0/train/loss"])

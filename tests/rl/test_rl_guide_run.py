"""A short real RL run with off-policy guidance: a barely trained model meets no IF row's every
constraint, so its groups get the rows' reference answers, and GSPO raises their likelihood."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from test_gspo_hints_run import _finish, _records, _run

pytestmark = pytest.mark.slow

GUIDE = [
    "stages.rl.data=ifeval_train", "hints.enabled=false", "rollout.max_tokens=24",
    "stages.rl.reward_fns=[{_target_: ifeval, weight: 1.0}]",
    "reward.correct_by=[{data_source: rlsys/ifeval, term: ifeval, threshold: 1.0}]",
    "stages.rl.rl.guide_field=response", "stages.rl.rl.guide_sources=[rlsys/ifeval]",
    "stages.rl.rl.steps=2", "stages.rl.rl.eval_every=0", "stages.rl.rl.filter_inclusive=true",
]


def _reference_logprob(model_dir: Path, rows: list[dict]) -> float:
    """Mean per-token log-prob of the rows' reference answers after their prompts."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rlsys.data.encode import encode_completion, encode_prompt

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for row in rows:
            prompt, answer = encode_prompt(tok, row), encode_completion(tok, row, row["response"])
            logits = model(torch.tensor([prompt + answer])).logits[0, len(prompt) - 1 : -1]
            total += logits.log_softmax(-1).gather(1, torch.tensor(answer)[:, None]).sum().item()
            count += len(answer)
    return total / count


def test_all_fail_groups_get_the_reference_and_learn_it(tmp_path, seeded_artifacts):
    run = tmp_path / "run"
    _finish(_run(GUIDE, tmp_path, run))
    steps = [r for r in _records(run / "stages" / "rl") if "train/loss" in r]
    assert len(steps) == 2
    for r in steps:
        # No sampled answer meets every constraint, so every kept group is a guided one.
        assert r["rollout/accuracy"] == 0.0
        assert r["filter/guided"] == r["filter/kept"] == 4
        assert r.get("filter/guide_reference_failed", 0.0) == 0.0
    artifacts = tmp_path / "artifacts"
    rows_file = next(artifacts.glob("data/*/ifeval_train.jsonl"))
    rows = [json.loads(line) for line in rows_file.read_text().splitlines()[:40]]
    before = _reference_logprob((run / "stages" / "sft_more").resolve() / "model", rows)
    after = _reference_logprob(run / "stages" / "rl" / "model", rows)
    assert after > before + 0.01, (before, after)

"""(slow) The reasoning-data stages end to end on the untrained tiny model through real Ray, vLLM and reward
workers: `sft_pass_filter` drops exactly the SFT rows whose pass rate reaches the threshold, `cold_start`
keeps exactly the paths whose answer is the gold and the majority's and whose steps hold, and up-samples the
top quality band. The untrained model never answers the math, so the verifiers are test plug-ins it passes
about half the time (tests/rl_test_rewards.py); each kept or dropped row is checked against them here."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from rlsys_testing import SMALL, run_rlsys

from rewards.steps import check_statements
from rlsys.data.loading import load_rows

pytestmark = pytest.mark.slow
K_FILTER, K_PATHS, MAX_TOKENS = 4, 5, 16


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_sft_pass_filter_and_cold_start_stages(tmp_path: Path) -> None:
    f, c = "stages.filt.", "stages.cold."
    args = [
        "job=pipeline", "pipeline=[filt,cold]", "+stage@stages.filt=blank", "+stage@stages.cold=blank",
        f"{f}kind=sft_pass_filter", f"{f}input=null", f"{f}data=sft_train", f"{f}evaluate=false",
        f"{f}sample.num_samples={K_FILTER}", f"{f}sample.max_rows=8", f"{f}sample.drop_pass_rate=0.5",
        f"{f}reward_fns=[{{_target_: rl_test_rewards.even_length}}]",
        f"{c}kind=cold_start", f"{c}input=null", f"{c}data=math_train", f"+{c}where.tier=[3]",
        f"{c}evaluate=false", f"{c}sample.num_samples={K_PATHS}", f"{c}sample.max_rows=6", f"{c}sample.min_steps=0",
        f"{c}sample.keep_paths=0", f"{c}sample.length_weight=0.5", f"{c}sample.up_sample=3",
        f"{c}sample.up_sample_quality=0.5", f"{c}reward_fns=[{{_target_: rl_test_rewards.parity_answer}}]",
        # Untrained answers rarely end: a stop string ends most of them within a few tokens (a cut path is no path).
        f"rollout.max_tokens={MAX_TOKENS}", "rollout.stop=[e]", *SMALL,
        f"artifacts_dir={tmp_path / 'artifacts'}", f"hydra.run.dir={tmp_path / 'run'}", "ray.num_cpus=2",
    ]
    run_rlsys(args)
    stages = tmp_path / "run" / "stages"

    # sft_pass_filter: the rows at pass rate >= 2/4 are gone, every other row is written, as it was.
    summary = json.loads((stages / "filt" / "summary.json").read_text())
    rows = _jsonl(stages / "filt" / "data.jsonl")
    hist = summary["pass_hist"]
    assert summary["sampled_rows"] == 8 == summary["measured_rows"] + summary["failed_requests"]
    assert summary["dropped"] == sum(hist[f"{n}/{K_FILTER}"] for n in range(2, K_FILTER + 1)) > 0
    assert len(rows) == summary["kept"] == summary["rows"] - summary["dropped"]
    measured = [r for r in rows if "pass_rate" in r]
    assert len(measured) == summary["measured_rows"] - summary["dropped"]
    assert all(r["pass_rate"] < 0.5 for r in measured)
    assert len({r["id"] for r in rows}) == len(rows)
    assert summary["not_sampled"] + summary["no_gold"] + summary["multi_turn"] + 8 == summary["rows"]

    # cold_start: each path's verdict recomputed from its text with the test verifier and the step checker.
    summary = json.loads((stages / "cold" / "summary.json").read_text())
    paths = _jsonl(stages / "cold" / "paths.jsonl")
    assert summary["paths"] == len(paths) == K_PATHS * summary["problems"] and summary["problems"] == 6
    by_problem: dict[str, list[dict]] = {}
    for p in paths:
        by_problem.setdefault(p["id"], []).append(p)
    expected_rows = 0
    for group in by_problem.values():
        parities = ["odd" if len(p["text"]) % 2 else "even" for p in group]
        majority = Counter(parities).most_common(1)[0][0]  # 5 paths, 2 answers: never a tie
        for p, parity in zip(group, parities):
            assert p["answer"] == parity and p["gold_ok"] == (parity == "even")
            assert p["false_statements"] == sum(not ok for ok, _ in check_statements(p["text"]))
            assert p["kept"] == (parity == "even" == majority and not p["truncated"] and p["false_statements"] == 0)
            agreeing = [q for q, other in zip(group, parities) if other == parity]
            steps = sum(q["false_statements"] == 0 for q in agreeing) / len(agreeing)
            length = 1 - 0.5 * min(1.0, p["tokens"] / MAX_TOKENS)
            assert p["quality"] == pytest.approx(len(agreeing) / K_PATHS * steps * length, abs=1e-6)
        written = {p["text"].strip() for p in group if p["written"]}
        assert written == {p["text"].strip() for p in group if p["kept"] and p["text"].strip()}
        expected_rows += sum((3 if p["quality"] >= 0.5 else 1) for p in group if p["written"])
    assert summary["kept_paths"] == sum(p["kept"] for p in paths) > 0
    data = _jsonl(stages / "cold" / "data.jsonl")
    assert len(data) == summary["rows_in_file"] == expected_rows
    up = [r for r in data if r["copies"] == 3]
    assert len(up) == 3 * summary["up_sampled"] and all(r["quality"] >= 0.5 for r in up)
    assert all(r["quality"] < 0.5 for r in data if r["copies"] == 1)
    assert up and any(r["copies"] == 1 for r in data)  # both sides of the band (seeded sampling)
    # The rows are SFT rows a following sft stage (data_from: cold) reads: prompt -> the kept path.
    loaded, _ = load_rows([str(stages / "cold" / "data.jsonl")], "sft")
    assert len(loaded) == len(data) and all(r["response"].strip() and "answer" in r for r in loaded)

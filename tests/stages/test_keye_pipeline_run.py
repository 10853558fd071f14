"""`+exp=keye_pipeline` end to end with tiny budgets: real Ray, vLLM (rollout pool and the served judge) and
DeepSpeed in a subprocess. A bad reward target in the last stage fails at start-up, naming its key, before
anything is built. The first run's alignment stage names a reward model directory that turns out missing once
its `stage:` reference is resolved: the run fails naming the stage; the second run, fixed, reuses every
earlier stage and finishes with the table.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf
from rlsys_testing import BASE_STAGES, SHORT_EVAL, SMALL, seed_artifacts

from rlsys.runtime.artifacts import DONE

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow

RL_STAGES = ("rl", "rft_rl", "judge_check_rl", "align")
TINY = [
    *SMALL,
    "rollout.group_size=4", "rollout.max_tokens=16", "hints.rollouts_per_level=4", "hints.max_level=2",
    *SHORT_EVAL,
    *BASE_STAGES,
    "stages.mpo.max_steps=2", "stages.mpo.batch_size=4", "stages.mpo.evaluate=false",
    "stages.pref_sample.sample.max_rows=12", "stages.pref_sample.sample.drop_truncated=false",
    "stages.rm.max_steps=2", "stages.rm.batch_size=4", "stages.rm.length_anneal_epochs=0",
    *(f"stages.{s}.rl.{k}" for s in RL_STAGES for k in ("steps=2", "batch_groups=4", "eval_every=0", "save_every=0")),
    *(f"stages.{s}.rl.eval_before=false" for s in ("rl", "rft_rl")),
    # Two steps of a barely trained model may keep no group: these runs check the chain, not the filter.
    *(f"stages.{s}.rl.max_skipped_share=1" for s in RL_STAGES),
    "stages.rft_sample.sample.max_rows=12", "stages.rft_sample.sample.num_samples=2",
    "stages.rft_sft.max_steps=2", "stages.rft_sft.batch_size=8", "stages.rft_sft.evaluate=false",
    "stages.pass_filter.sample.max_rows=12", "stages.pass_filter.sample.num_samples=4",
    # An untrained model never solves the math: a plug-in it passes about half the time gives mixed pass
    # rates, so the (0, 1) filter keeps some problems and drops others.
    *(f"stages.{s}.reward_fns=[{{_target_: rl_test_rewards.even_length}}]"
      for s in ("pref_sample", "pass_filter", "rft_rl", "judge_data")),
    # The chain's judge checks one response at a time, on the suite's IF pairs plus a few drawn for held-out.
    "stages.judge_check_data.sample.train_pairs=0", "stages.judge_check_data.sample.eval_if_pairs=4",
    "stages.judge_check_sft.max_steps=3", "stages.judge_check_sft.batch_size=8",
    "stages.judge_check_rl.overrides.rollout.max_tokens=16", "stages.judge_check_rl.sample.max_tokens=16",
    # The pairwise judge's data stage, solving first (off by default), runs after the chain: it samples sft_more.
    "stages.judge_data.sample.judge_solve=true", "stages.judge_data.input=sft_more",
    "stages.judge_data.sample.max_rows=12", "stages.judge_data.sample.num_samples=2",
    # The small suite has few IF rows: keep align's math share small so its steps see IF prompts.
    "stages.align.data=ifeval_train+format_train+math_train:4", "stages.align.overrides.rollout.max_tokens=16",
]
# The default chain without pass_before (a measurement: pass_filter's kind on another model, nothing reads it), then
# the pairwise judge's data. align_rules, the rule checkers' RL, differs from align by its reward entries only; the
# start-up check covers both (tests/stages/test_validate_chain.py), as it covers pass_before.
CHAIN = [s for s in OmegaConf.load(REPO / "conf" / "exp" / "keye_pipeline.yaml").pipeline if s != "pass_before"]
PIPELINE = [*CHAIN, "judge_data"]


def _run(tmp: Path, run_dir: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path(__file__).parents[1]), os.environ.get("PYTHONPATH", "")]))
    return subprocess.run(
        [sys.executable, "-m", "rlsys.run", "+exp=keye_pipeline", f"artifacts_dir={tmp / 'artifacts'}",
         f"hydra.run.dir={run_dir}", *TINY, *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=1800,
    )


def _summary(run: Path, stage: str) -> dict:
    return json.loads((run / "stages" / stage / "summary.json").read_text())


def test_keye_pipeline_fails_naming_the_stage_then_resumes_and_writes_the_table(tmp_path, base_artifacts):
    proc = _run(tmp_path, tmp_path / "bad", "stages.align.reward_fns=[{_target_: no_such_module.reward_fn}]")
    assert proc.returncode != 0
    assert "config error: stages.align.reward_fns[0] ('no_such_module.reward_fn')" in proc.stderr + proc.stdout
    assert not (tmp_path / "artifacts").exists()
    seed_artifacts(base_artifacts, tmp_path / "artifacts")

    first = tmp_path / "first"
    # pass_filter writes data, not a model: its `stage:` model directory does not exist.
    proc = _run(tmp_path, first, f"pipeline=[{','.join(CHAIN)}]",
                'stages.align.reward_fns=[{_target_: reward_model, kwargs: {model_path: "stage:pass_filter"}}]')
    assert proc.returncode != 0
    assert "stage 'align' (rl) failed" in proc.stderr + proc.stdout
    partial = json.loads((first / "pipeline_table.json").read_text())
    built = [r["stage"] for r in partial["stages"]]
    assert "align" not in built and {"rft_rl", "judge_check_rl", "pass_filter"} <= set(built)

    run = tmp_path / "second"
    proc = _run(tmp_path, run, f"pipeline=[{','.join(PIPELINE)}]")
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-5000:]
    table = json.loads((run / "pipeline_table.json").read_text())
    status = {r["stage"]: r["status"] for r in table["stages"]}
    assert status.pop("align") == status.pop("judge_data") == "trained"
    assert set(status.values()) == {"reused"}, status
    assert set(status) >= {"pretrain", "sft", "sft_more", "pref_sample", "mpo", "rl", "rm", "rft_sample", "rft_sft", "pass_filter",
                           "rft_rl", "judge_check_data", "judge_check_sft", "judge_check_rl"}
    for name in ("pipeline_table.md", "pipeline_curves.png", "rl_curves.png", "constraint_rates.md"):
        assert (run / name).is_file(), name

    # MPO trained on the pairs pref_sample drew from the sft_more model: a pair per mixed problem.
    pref = _summary(run, "pref_sample")
    pairs = [json.loads(x) for x in (run / "stages" / "pref_sample" / "data.jsonl").read_text().splitlines()]
    mixed = sum(n for key, n in pref["correct_hist"].items() if key not in ("0/4", "4/4"))
    assert len(pairs) == pref["pairs"] == pref["problems_with_pairs"] > 0 and pref["problems"] == 12
    assert pref["pairs"] <= mixed and pref["truncated_samples"] > 0  # truncated answers kept: drop_truncated=false
    assert all(p["chosen"] != p["rejected"] and len(p["chosen"]) % 2 == 0 != len(p["rejected"]) % 2 for p in pairs)
    spec = json.loads((run / "stages" / "mpo" / DONE).read_text())
    assert spec["data"] == {"from": "pref_sample"} and set(spec["inputs"]) == {"sft_more", "pref_sample"}

    # Rejection sampling rewrote the whole SFT set, replacing only rows it sampled.
    rft = _summary(run, "rft_sample")
    rows = [json.loads(x) for x in (run / "stages" / "rft_sample" / "data.jsonl").read_text().splitlines()]
    assert len(rows) == rft["rows"] and rft["sampled_rows"] == 12
    assert sum(bool(r.get("rft_replaced")) for r in rows) == rft["replaced"] <= 12
    assert rft["gold_sources"].get("joined", 0) + rft["gold_sources"].get("stored_boxed", 0) > 0

    # The filter kept exactly the problems with pass rate in (0, 1), and RFT-RL trained on them.
    kept = [json.loads(x) for x in (run / "stages" / "pass_filter" / "data.jsonl").read_text().splitlines()]
    hist = _summary(run, "pass_filter")["pass_hist"]
    assert len(kept) == sum(hist.values()) - hist["0/4"] - hist["4/4"] and all(0 < r["pass_rate"] < 1 for r in kept)
    assert _summary(run, "rft_rl")["steps"] == 2
    spec = json.loads((run / "stages" / "rft_rl" / DONE).read_text())
    assert spec["data"] == {"from": "pass_filter"} and set(spec["inputs"]) == {"rft_sft", "pass_filter"}

    # The judge solves first: its data holds the input model's accepted solutions (here: even-length
    # answers), and pairs it never solved are left out.
    jd = _summary(run, "judge_data")
    judge = [json.loads(x) for x in (run / "stages" / "judge_data" / "data.jsonl").read_text().splitlines()]
    assert jd["solved"] > 0 and jd["solved"] + jd["dropped_unsolved"] <= 12 and len(judge) == jd["rows"]
    assert len(judge) + jd["dropped_unsolved"] + jd["dropped_long"] == 12
    solved_rows = sum("\nMine is " in r["response"] for r in judge)
    assert solved_rows <= jd["solved"] and (jd["dropped_long"] > 0 or solved_rows == jd["solved"])
    # The judge: held-out pairwise accuracy (by pointwise checks) after SFT and after RL; then served as
    # align's reward on the IF rows.
    checks = _summary(run, "judge_check_data")
    assert checks["rows"] > 0 and checks["eval_pairs"] > 0
    for stage in ("judge_check_sft", "judge_check_rl"):
        ev = _summary(run, stage)["eval"]
        assert 0.0 <= ev["eval/judge_pair_acc"] <= 1.0 and 0.0 <= ev["eval/judge_decided"] <= 1.0
    align = _summary(run, "align")
    assert "eval/ifeval_all_pass" in align["eval_before"] and "eval/math_acc_tier1" in align["eval"]
    records = [json.loads(x) for x in (run / "stages" / "align" / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in records if "train/loss" in r]
    assert len(steps) == 2 and all("reward/rm/mean" in r for r in steps)
    assert any("reward/judge/mean" in r for r in steps)
    assert any(k.startswith("reward/ifeval/constraint/") for r in steps for k in r)

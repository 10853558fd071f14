"""Alignment with soft instructions: the judge's agreement on held-out soft checks, and models' hard / soft pass.

    .venv/bin/python -m rlsys.eval align --judge artifacts/stages/judge_check_sft/<hash>/model \
        before=artifacts/stages/rft_rl/<hash>/model after=artifacts/stages/align/<hash>/model [--max-rows 100]

Rows: the suite's `align_eval` split (2-6 instructions each, hard and soft; rlsys/data/tasks/ifeval_soft.py).
The judge (`--judge DIR`, served here through `rlsys.serve`; or `--judge-url URL --judge-model NAME`, any
OpenAI-compatible endpoint) scores soft instructions through the alignment reward (rewards/alignment.py).

1. Judge agreement: each row's reference response (every soft instruction met) and its broken variants (one
   not met): the share of soft marks the judge gets right, and of (reference, variant) pairs where it gives
   the reference the higher soft score (a tie counts half).
2. Per model (greedy answers through a vLLM actor): hard pass share by rule, soft pass share by the judge,
   all met, and the paired difference of each against the first model (± standard error over prompts).
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def agreement(judge: object, rows: list[dict]) -> dict[str, float]:
    """Soft-mark accuracy (a mark the judge left out is wrong) and pair accuracy of `judge` (an
    AlignmentReward) on the rows' references and broken variants."""
    from rewards.alignment import soft_tags

    items = [(r, r["response"], ["ok"] * len(r["soft_constraints"])) for r in rows]
    items += [(r, v["response"], v["marks"]) for r in rows for v in r["soft_variants"]]
    outs = judge.score_batch([r["prompt"] for r, _, _ in items], [t for _, t, _ in items],
                             [{"soft_constraints": r["soft_constraints"]} for r, _, _ in items])
    right = total = 0
    for (r, _, marks), out in zip(items, outs):
        for tag, mark in zip(soft_tags(r["soft_constraints"]), marks):
            got = out.get(f"soft/{tag}")
            right += got is not None and got == float(mark == "ok")
            total += 1
    ref = {r["id"]: out.get("soft_pass", 0.0) for (r, _, _), out in zip(items[: len(rows)], outs)}
    points = [1.0 if ref[r["id"]] > out.get("soft_pass", 0.0) else 0.5 if ref[r["id"]] == out.get("soft_pass", 0.0)
              else 0.0 for (r, _, _), out in zip(items[len(rows):], outs[len(rows):])]
    return {"mark_agreement": right / max(1, total), "pair_acc": statistics.mean(points) if points else float("nan"),
            "pairs": float(len(points)), "fallback": sum(o.get("fallback", 0.0) for o in outs) / max(1, len(outs))}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("models", nargs="*", help="name=model_dir; the first is the baseline")
    parser.add_argument("--judge", default=None, help="judge checkpoint to serve (e.g. judge_check_sft's model)")
    parser.add_argument("--judge-url", default=None, help="or an OpenAI-compatible endpoint (…/v1)")
    parser.add_argument("--judge-model", default=None, help="the endpoint's model name")
    parser.add_argument("--max-rows", type=int, default=100)
    parser.add_argument("--exp", default="keye_pipeline")


def run(args: argparse.Namespace) -> int:
    if bool(args.judge) == bool(args.judge_url):
        raise SystemExit("give exactly one of --judge (a checkpoint) or --judge-url (an endpoint)")
    from rewards.alignment import AlignmentReward
    from rlsys.config.store import compose_config
    from rlsys.data.embedded import ensure_task_suite
    from rlsys.data.loading import load_rows
    from rlsys.eval.scoring import model_completions, paired_difference
    from rlsys.runtime.ray_utils import init_ray

    cfg = compose_config([f"+exp={args.exp}"])
    cfg.artifacts_dir = str(REPO / cfg.artifacts_dir)
    files = ensure_task_suite(cfg.artifacts_dir, cfg.data.suite)
    rows = load_rows([files["align_eval"]], "ifeval")[0][: args.max_rows]
    judge = AlignmentReward(model_path=args.judge, base_url=args.judge_url, model=args.judge_model)
    try:
        agree = agreement(judge, rows)
        print(f"judge agreement on {len(rows)} rows: soft marks {agree['mark_agreement']:.3f}, "
              f"pairs {agree['pair_acc']:.3f} of {int(agree['pairs'])}, fallback {agree['fallback']:.3f}", flush=True)
        if not args.models:
            return 0
        init_ray(num_cpus=4)
        scores: dict[str, dict[str, list[float]]] = {}
        for spec in args.models:
            name, path = spec.split("=", 1)
            texts = [t[0] if t else "" for t in model_completions(cfg, path, rows)]
            outs = judge.score_batch([r["prompt"] for r in rows], texts,
                                     [{"constraints": r["constraints"], "soft_constraints": r["soft_constraints"]}
                                      for r in rows])
            scores[name] = {k: [o.get(k, 0.0) for o in outs] for k in ("hard_pass", "soft_pass", "all_pass", "score")}
            print(name, {k: round(statistics.mean(v), 3) for k, v in scores[name].items()}, flush=True)
    finally:
        judge.close()
    base = next(iter(scores))
    keys = ("hard_pass", "soft_pass", "all_pass")
    print(f"\n| model | hard pass | soft pass (judge) | all met | Δ hard | Δ soft | Δ all (vs {base}) |")
    print("|---|---|---|---|---|---|---|")
    for name, s in scores.items():
        means = " | ".join(f"{statistics.mean(s[k]):.3f}" for k in keys)
        print(f"| {name} | {means} | {' | '.join(paired_difference(scores[base][k], s[k]) for k in keys)} |")
    return 0

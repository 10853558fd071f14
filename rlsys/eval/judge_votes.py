"""Held-out pair accuracy of pointwise checkers, greedy and by K-sample vote, with paired differences.

    .venv/bin/python -m rlsys.eval judge-votes sft=artifacts/stages/judge_check_sft/<hash>/model \\
        rl=artifacts/stages/judge_check_rl/<hash>/model [--data artifacts/stages/judge_check_data/<hash>/eval.jsonl] \\
        [--samples 8] [--temperature 1.0] [--served 40]

A greedy checker gives each response an integer count of failed marks, so a pair ties whenever both counts
are equal (about 4 pairs in 10 for the SFT checker) and counts half. Sampling K check answers per response and
comparing mean failed-mark counts (self-consistency) breaks most ties by the checker's own uncertainty. GSPO
trains the checker on samples at temperature 1, which the greedy answer may not show; the vote reads them.
Per model: greedy pair accuracy and decided share, vote pair accuracy and decided share, mark accuracy of
single samples; then each model's paired differences from the first in vote pair accuracy and in single-sample
mark accuracy (SE over pairs).
`--served N` also scores the first N pairs through the reward align uses, `PairwiseJudgeReward(mode="pointwise")`
on the first model served by `rlsys.serve` (vLLM's OpenAI-compatible server): each chosen response against its
rejected one as the reference, greedy and with `votes=--samples`.

`scripts/eval_judge_votes.py` runs the same command.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("models", nargs="+", help="name=model_dir; the first is the baseline")
    parser.add_argument("--data", type=Path, default=None,
                        help="check rows (default: the only judge_check_data artifact's eval.jsonl)")
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--max-tokens", type=int, default=96)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--exp", default="keye_pipeline")
    parser.add_argument("--served", type=int, default=0, help="pairs to score through the served reward too")


def run(args: argparse.Namespace) -> int:
    if args.samples < 2 or args.temperature <= 0:
        raise SystemExit("a vote needs --samples >= 2 and --temperature > 0")
    data = args.data
    if data is None:
        found = sorted((REPO / "artifacts/stages/judge_check_data").glob("*/eval.jsonl"))
        if len(found) != 1:
            raise SystemExit(f"give --data: {len(found)} judge_check_data eval files found")
        data = found[0]
    from rlsys.config.store import compose_config
    from rlsys.eval.judge import check_accuracy, pair_mark_accuracy, vote_points, voted_check_accuracy
    from rlsys.eval.scoring import model_completions, paired_difference
    from rlsys.runtime.ray_utils import init_ray
    from rlsys.stages.io import read_jsonl

    rows = read_jsonl(data)
    cfg = compose_config([f"+exp={args.exp}", f"eval.max_tokens={args.max_tokens}"])
    print(f"{len(rows)} check rows from {data}", flush=True)
    init_ray(num_cpus=4)
    points: dict[str, dict[str, float]] = {}
    marks: dict[str, dict[str, float]] = {}
    lines = []
    for spec in args.models:
        name, path = spec.split("=", 1)
        greedy = [t[0] for t in model_completions(cfg, path, rows)]
        sampled = model_completions(cfg, path, rows, n=args.samples, temperature=args.temperature, seed=args.seed)
        g, v = check_accuracy(rows, greedy), voted_check_accuracy(rows, sampled)
        points[name] = vote_points(rows, sampled)
        marks[name] = pair_mark_accuracy(rows, sampled)
        lines.append(f"| {name} | {g['eval/judge_pair_acc']:.3f} | {g['eval/judge_decided']:.3f} | "
                     f"{v['eval/judge_vote_pair_acc']:.3f} | {v['eval/judge_vote_decided']:.3f} | "
                     f"{g['eval/judge_mark_acc']:.3f} | {v['eval/judge_vote_mark_acc']:.3f} |")
        print(name, g, v, flush=True)
    base = next(iter(points))
    print(f"\n| model | greedy pair acc | greedy decided | vote@{args.samples} pair acc | vote decided | "
          "greedy marks right | sampled marks right |")
    print("|---|---|---|---|---|---|---|")
    print("\n".join(lines))
    for label, per_pair in (("vote pair accuracy", points), ("single-sample marks right", marks)):
        print(f"\n{label} vs {base} (paired over {len(per_pair[base])} pairs):")
        ids = list(per_pair[base])
        for name, p in per_pair.items():
            print(f"  {name}: {paired_difference([per_pair[base][k] for k in ids], [p[k] for k in ids])}")
    if args.served:
        served(rows, args.models[0], args)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


def served(rows: list[dict], model_spec: str, args: argparse.Namespace) -> None:
    """Mean reward of each chosen response against its rejected one, greedy and voted, through the server."""
    import time
    from collections import Counter

    from rewards.pairwise_judge import PairwiseJudgeReward, split_check_prompt

    pairs: dict[str, dict[str, tuple[str, str]]] = {}
    for row in rows:
        pairs.setdefault(row["pair_id"], {})[row["role"]] = split_check_prompt(row["prompt"])
    chosen = [p for p in pairs.values() if len(p) == 2][: args.served]
    path = model_spec.split("=", 1)[1]
    print(f"\nserved checker ({path}), chosen vs rejected on {len(chosen)} pairs:")
    for votes in (1, args.samples):
        started = time.perf_counter()
        reward = PairwiseJudgeReward(model_path=path, mode="pointwise", votes=votes,
                                     vote_temperature=args.temperature, max_tokens=args.max_tokens)
        try:
            out = reward.score_batch([p["chosen"][0] for p in chosen], [p["chosen"][1] for p in chosen],
                                     [{"response": p["rejected"][1]} for p in chosen])
        finally:
            reward.close()
        scores = Counter(o["score"] for o in out)
        print(f"  votes={votes}: mean {statistics.mean(o['score'] for o in out):.3f} (wins {scores[1.0]}, "
              f"ties {scores[0.5]}, losses {scores[0.0]}, parse errors {sum(o['parse_error'] for o in out):.0f}), "
              f"{time.perf_counter() - started:.0f} s with start-up", flush=True)

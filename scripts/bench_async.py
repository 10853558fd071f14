"""Synchronous vs asynchronous RL (`rl.max_staleness`) on `+exp=gspo_hints`: step time, samples/s, overlap.

    .venv/bin/python scripts/bench_async.py --steps 8 --rounds 2
    .venv/bin/python scripts/bench_async.py --wall-s 600 --variants sync async1   # equal wall time, held-out acc

Each variant runs the main job from the cached `sft_more` model with the same seed; variants alternate within
each round, so machine load hits them alike. With `--steps` evaluation is off (before and along the way) and
the RL step time is the median over steps 2.. (step 1 waits for the first batch in every mode; `--eval-every N`
adds periodic evaluations, whose cost shows in loop_wall_s and eval_s); with `--wall-s`
the runs share an RL wall budget and evaluate every 10 steps and at the end. Prints one markdown table.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from statistics import mean, median

REPO = Path(__file__).resolve().parents[1]
VARIANTS = {
    "sync": ["stages.rl.rl.max_staleness=0"],
    "async1": ["stages.rl.rl.max_staleness=1"],
    "async2": ["stages.rl.rl.max_staleness=2"],
    # The learner with one thread, so that it and the rollout actor each hold one of the two cores.
    "async1_1thread": ["stages.rl.rl.max_staleness=1", "learner.num_threads=1"],
    "sync_1thread": ["stages.rl.rl.max_staleness=0", "learner.num_threads=1"],
    # Periodic evaluations on their own rollout actor, on a weight snapshot (`eval.background`).
    "async1_bg": ["stages.rl.rl.max_staleness=1", "eval.background=true"],
    "async2_bg": ["stages.rl.rl.max_staleness=2", "eval.background=true"],
}


def run(name: str, args: argparse.Namespace, extra: list[str]) -> Path:
    run_dir = REPO / "runs" / "bench_async" / f"{name}-{time.strftime('%Y-%m-%d_%H-%M-%S')}"
    budget = (["stages.rl.rl.steps=100000", f"stages.rl.rl.max_wall_s={args.wall_s}", "stages.rl.rl.eval_every=10"]
              if args.wall_s else [f"stages.rl.rl.steps={args.steps}", f"stages.rl.rl.eval_every={args.eval_every}",
                                   "stages.rl.rl.eval_before=false"])
    cmd = [sys.executable, "-m", "rlsys.run", "+exp=gspo_hints", f"hydra.run.dir={run_dir}", "stages.rl.rl.save_every=0",
           f"stages.rl.seed={args.seed}", *budget, *VARIANTS[name], *extra]
    print("$", " ".join(cmd), flush=True)
    subprocess.run(cmd, cwd=REPO, check=True)
    return run_dir


def summarize(run_dir: Path, group_size: int) -> dict[str, float]:
    stage = run_dir / "stages" / "rl"
    recs = [json.loads(line) for line in (stage / "metrics.jsonl").read_text().splitlines() if line.strip()]
    steps = [r for r in recs if "time/step_s" in r]
    later = steps[1:] or steps
    summary = json.loads((stage / "rl_summary.json").read_text())
    cores = [k for k in steps[0] if k.startswith("cpu/core")]
    return {
        "steps": len(steps),
        "loop_wall_s": summary["wall_s"],
        "step_s": median(r["time/step_s"] for r in later),
        "samples_per_s": sum(r.get("filter/kept", 0.0) * group_size for r in later) / sum(r["time/step_s"] for r in later),
        "rollout_tokens_per_s": mean(r.get("pool/tokens_per_s", 0.0) for r in later),
        "rollout_s": median(r.get("time/rollout_s", 0.0) for r in later),
        "train_s": median(r.get("time/train_s", 0.0) for r in later),
        "eval_s": sum(r.get("time/eval_s", 0.0) for r in steps),
        "wait_s": median(r.get("time/rollout_wait_s", r.get("time/rollout_s", 0.0)) for r in later),
        "cores_busy": sum(mean(r[k] for r in later) for k in cores),
        "staleness": mean(r.get("async/staleness_mean", 0.0) for r in later),
        "clip_frac": mean(r.get("train/clip_frac", 0.0) for r in later),
        "greedy": summary["eval"].get("eval/math_acc", float("nan")),
        "avg4": summary["eval"].get("eval/math_sampled_acc", float("nan")),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", default=["sync", "async1"], choices=sorted(VARIANTS))
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--wall-s", type=float, default=0.0, help="equal RL wall budget instead of --steps")
    parser.add_argument("--eval-every", type=int, default=0, help="with --steps: evaluate every N steps")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--group-size", type=int, default=8, help="rollout.group_size of the exp (for samples/s)")
    parser.add_argument("extra", nargs="*", help="overrides for every run (after --)")
    args = parser.parse_args()
    results: dict[str, list[dict[str, float]]] = {v: [] for v in args.variants}
    for _ in range(args.rounds):
        for name in args.variants:
            results[name].append(summarize(run(name, args, args.extra), args.group_size))
    base = median(r["step_s"] for r in results[args.variants[0]])
    keys = list(next(iter(results.values()))[0])
    print(f"\n| variant | {' | '.join(keys)} | step time vs {args.variants[0]} |")
    print("|---|" + "---|" * (len(keys) + 1))
    for name, runs in results.items():
        for r in runs:
            cells = " | ".join(f"{r[k]:.3g}" for k in keys)
            print(f"| {name} | {cells} | {r['step_s'] / base:.2f}× |")


if __name__ == "__main__":
    main()

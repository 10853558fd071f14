"""GSPO with hints vs without, same seed and wall-time budget; tables for BENCHMARKS.md.

    .venv/bin/python scripts/bench_gspo.py --wall-s 900 [-- extra overrides ...]
    .venv/bin/python scripts/bench_gspo.py --from-runs RUN_DIR_WITH_HINTS RUN_DIR_WITHOUT

Runs `+exp=gspo_hints` twice (hints on, then `hints=off`) with `stages.rl.rl.max_wall_s` set, or
reads two finished runs, and prints: held-out accuracy per tier before/after, the share of
all-fail groups, the Table-9-style hint table, and the RL step time split into rollout / reward /
train / sync / eval / other (the controller's own overhead).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from statistics import mean

REPO = Path(__file__).resolve().parents[1]


def run(name: str, wall_s: float, extra: list[str]) -> Path:
    run_dir = REPO / "runs" / "bench_gspo" / f"{name}-{time.strftime('%Y-%m-%d_%H-%M-%S')}"
    cmd = [sys.executable, "-m", "rlsys.run", "+exp=gspo_hints", f"hydra.run.dir={run_dir}",
           f"stages.rl.rl.max_wall_s={wall_s}", "stages.rl.rl.steps=100000", *extra]
    print("$", " ".join(cmd), flush=True)
    subprocess.run(cmd, cwd=REPO, check=True)
    return run_dir


def records(run_dir: Path) -> list[dict]:
    path = run_dir / "stages" / "rl" / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def summarize(run_dir: Path) -> dict:
    recs = records(run_dir)
    steps = [r for r in recs if "time/step_s" in r]
    evals = [r for r in recs if "eval/math_acc" in r]
    parts = ("rollout_s", "reward_s", "train_s", "sync_s", "eval_s", "other_s")
    total = sum(r["time/step_s"] for r in steps)
    split = {p: sum(r.get(f"time/{p}", 0.0) for r in steps) / total for p in parts} if total else {}
    summary = json.loads((run_dir / "stages" / "rl" / "rl_summary.json").read_text())
    return {
        "steps": len(steps),
        "wall_s": round(summary["wall_s"]),
        "before": {k: v for k, v in evals[0].items() if k.startswith("eval/math")},
        "after": {k: v for k, v in evals[-1].items() if k.startswith("eval/math")},
        "all_fail_share": mean(r.get("rollout/all_fail_share", 0.0) for r in steps) if steps else float("nan"),
        "mean_step_s": total / len(steps) if steps else float("nan"),
        "time_split": split,
        "hint_table": summary["hint_table"],
    }


def print_tables(named: dict[str, dict]) -> None:
    tiers = ["eval/math_acc_tier1", "eval/math_acc_tier2", "eval/math_acc_tier3", "eval/math_acc",
             "eval/math_sampled_acc_tier3", "eval/math_sampled_acc"]
    # Composed problems (tier 4) are scored only with eval.max_chain > 0.
    if any("eval/math_acc_tier4" in s["after"] for s in named.values()):
        tiers.insert(3, "eval/math_acc_tier4")
    print("\n| run | steps | wall s | " + " | ".join(t.split("/")[1] + " before→after" for t in tiers) + " | all-fail share |")
    print("|---|---|---|" + "---|" * len(tiers) + "---|")
    for name, s in named.items():
        cells = [f"{s['before'].get(t, float('nan')):.2f}→{s['after'].get(t, float('nan')):.2f}" for t in tiers]
        print(f"| {name} | {s['steps']} | {s['wall_s']} | " + " | ".join(cells) + f" | {s['all_fail_share']:.3f} |")
    for name, s in named.items():
        print(f"\nStep time split ({name}, mean step {s['mean_step_s']:.1f} s):")
        print("| " + " | ".join(s["time_split"]) + " |")
        print("|" + "---|" * len(s["time_split"]))
        print("| " + " | ".join(f"{v:.1%}" for v in s["time_split"].values()) + " |")
        if s["hint_table"]:
            keys = list(s["hint_table"][0])
            print(f"\nHint table ({name}):\n| " + " | ".join(keys) + " |\n|" + "---|" * len(keys))
            for row in s["hint_table"]:
                print("| " + " | ".join(f"{v:.3f}" if isinstance(v, float) else str(v) for v in row.values()) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wall-s", type=float, default=900.0)
    parser.add_argument("--from-runs", nargs=2, metavar=("WITH_HINTS", "WITHOUT_HINTS"))
    parser.add_argument("extra", nargs="*", help="more overrides for both runs")
    args = parser.parse_args()
    if args.from_runs:
        dirs = {"hints": Path(args.from_runs[0]), "no hints": Path(args.from_runs[1])}
    else:
        dirs = {"hints": run("hints", args.wall_s, args.extra),
                "no hints": run("no_hints", args.wall_s, ["hints=off", *args.extra])}
    print_tables({name: summarize(d) for name, d in dirs.items()})


if __name__ == "__main__":
    main()

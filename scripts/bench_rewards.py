"""Scoring throughput (samples/s) of the math and instruction-following checkers through the reward pool.

Samples are task-suite rows (rlsys.data.tasks) with completions shaped like a policy's: worked solutions
inside think blocks, wrong final answers, other answer formats, unclosed think blocks (math); verified
responses and responses that break some of their constraints (IF). Each configuration scores the same
distinct batches after one warm-up batch (which loads the checkers in the workers); configurations
are interleaved batch by batch so that other load on the machine affects them alike.

    .venv/bin/python scripts/bench_rewards.py --batch-size 256 --batches 4 --workers 1 2
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import statistics
import time
from collections.abc import Callable
from contextlib import ExitStack

from rlsys.data.tasks.ifeval_tasks import ifeval_rows
from rlsys.data.tasks.math_tasks import math_rows
from rlsys.reward.manager import RewardManager
from rlsys.reward.plugins import load_reward_fns
from rlsys.reward.workers import RewardWorkerPool
from rlsys.runtime.ray_utils import init_ray

MATH_SOURCE = "rlsys/math"
IF_SOURCE = "rlsys/ifeval"
RAY_WORKER_NICENESS = 15
CHECKERS = {
    "math": {"_target_": "math", "data_sources": [MATH_SOURCE]},
    "ifeval": {"_target_": "ifeval", "data_sources": [IF_SOURCE]},
}


def _math_completion(row: dict, rng: random.Random) -> str:
    steps, _, _ = row["solution"].rpartition("\n")
    answer = row["answer"]
    wrong = str(int(answer) + rng.choice([-10, -1, 1, 2, 10])) if answer.lstrip("-").isdigit() else answer + "1"
    kind = rng.random()
    if kind < 0.40:
        return f"<think>\n{steps}\n</think>\nThe answer is \\boxed{{{answer}}}."
    if kind < 0.70:
        return f"<think>\n{steps}\n</think>\nThe answer is \\boxed{{{wrong}}}."
    if kind < 0.82:
        return row["solution"]
    if kind < 0.90:
        return f"<think>\n{steps}\n</think>\nAnswer: {answer}.0"
    if kind < 0.95:
        return f"{steps}\nSo the result is {rng.choice([answer, wrong])}"
    return f"<think>\n{steps}\nNow I need to check the"  # ran out of tokens mid-reasoning


def _break(response: str, rng: random.Random) -> str:
    edits: list[Callable[[str], str]] = [
        str.upper,
        str.lower,
        lambda s: s + "\n\nAlso, one more thing, and another, and so on.",
        lambda s: s.split("\n")[0],
        lambda s: f'"{s}"',
        lambda s: "Sure! " + s,
    ]
    return rng.choice(edits)(response)


def make_samples(n_math: int, n_if: int, seed: int) -> dict[str, list[dict]]:
    """Task-suite rows with policy-like completions: {"math": [...], "ifeval": [...]} (sample dicts)."""
    rng = random.Random(seed)
    per_tier = -(-n_math // 3)
    math_samples = []
    for row in math_rows(per_tier, "train", seed)[:n_math]:
        fields = {k: row[k] for k in ("id", "data_source", "tier", "answer")}
        math_samples.append({"prompt": row["prompt"], "completion": _math_completion(row, rng), **fields})
    rows, _ = ifeval_rows(n_if, seed, "train")
    if_samples = []
    for row in rows:
        completion = row["response"] if rng.random() < 0.5 else _break(row["response"], rng)
        fields = {k: row[k] for k in ("id", "data_source", "constraints")}
        if_samples.append({"prompt": row["prompt"], "completion": completion, **fields})
    return {"math": math_samples, "ifeval": if_samples}


def _batches(samples: list[dict], batch_size: int, count: int) -> list[list[dict]]:
    return [samples[i * batch_size : (i + 1) * batch_size] for i in range(count)]


def _measure(scorers: dict[str, Callable[[list[dict]], tuple]], batches: list[list[dict]]) -> dict[str, dict]:
    """Time every scorer on the same batches, interleaved: each batch goes through all scorers in turn
    (the order rotating), so load from other processes falls on every configuration alike."""
    names = list(scorers)
    for name in names:
        scorers[name](batches[0])  # warm-up: starts the scoring processes and imports the checkers
    rates: dict[str, list[float]] = {name: [] for name in names}
    scores: dict[str, list[float]] = {name: [] for name in names}
    errors = dict.fromkeys(names, 0.0)
    for r, batch in enumerate(batches[1:]):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            start = time.perf_counter()
            batch_scores, _, metrics = scorers[name](batch)
            rates[name].append(len(batch) / (time.perf_counter() - start))
            scores[name].extend(batch_scores)
            errors[name] += metrics["reward/errors/total"]
    return {
        name: {"samples_per_s": statistics.median(rates[name]), "min": min(rates[name]), "max": max(rates[name]),
               "mean_reward": sum(scores[name]) / len(scores[name]), "errors": errors[name]}
        for name in names
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--batches", type=int, default=4, help="timed batches per configuration")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--cpus-per-worker", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()

    # Ray starts its workers at niceness 15; the driver (and the no-Ray baseline's scoring process it
    # spawns) takes the same, so on a shared machine the baseline does not win merely by priority.
    os.nice(max(0, RAY_WORKER_NICENESS - os.nice(0)))
    load_before = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    n = args.batch_size * (args.batches + 1)
    data = make_samples(n, n, args.seed)
    # Logical CPUs for every pool at once (they sit idle while another configuration runs).
    init_ray(num_cpus=max(2, math.ceil(sum(args.workers) * args.cpus_per_worker)))
    results = []
    for checker, entry in CHECKERS.items():
        batches = _batches(data[checker], args.batch_size, args.batches + 1)
        with ExitStack() as stack:
            # The same checker in one plain process without Ray: the baseline for the pool's overhead.
            manager = stack.enter_context(RewardManager(load_reward_fns([entry]), timeout_s=10.0))
            scorers: dict[str, Callable[[list[dict]], tuple]] = {"manager only": manager.score_batch}
            for workers in args.workers:
                cfg = {"fns": [entry], "num_workers": workers, "cpus_per_worker": args.cpus_per_worker,
                       "timeout_s": 10.0}
                scorers[str(workers)] = stack.enter_context(RewardWorkerPool(cfg)).score
            for name, measured in _measure(scorers, batches).items():
                results.append({"checker": checker, "workers": name, **measured})

    # Other processes on the machine skew these numbers; the load average shows whether it was quiet.
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"\nbatch size {args.batch_size}, {args.batches} timed batches, {os.cpu_count()} CPUs, "
          f"python {platform.python_version()}, load average before/after: {load_before} / {load}")
    print("| checker | reward workers | samples/s (median) | min-max | mean reward | errors |")
    print("|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['checker']} | {r['workers']} | {r['samples_per_s']:.0f} | {r['min']:.0f}-{r['max']:.0f} "
              f"| {r['mean_reward']:.3f} | {r['errors']:.0f} |")
    if args.json:
        with open(args.json, "w") as out:
            json.dump({"args": vars(args), "load_average": [load_before, load], "results": results}, out, indent=2)


if __name__ == "__main__":
    main()

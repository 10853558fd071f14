"""Math verifier: agreement with hand-labelled truth and scoring throughput, old vs new, in one run.

Agreement: every (completion, gold, truth) case of tests/rewards/data/math_agreement.jsonl scored by the
committed verifier (`git show <rev>:rewards/math.py`), by plain math-verify on the whole completion, and
by the working-tree verifier; a verdict agrees when (score >= 0.5) equals the truth label.
Throughput: the old and new reward functions called in-process on the same policy-like task-suite
samples (scripts/bench_rewards.py) and on the agreement set, rounds interleaved so machine load falls
on both alike; samples/s is the median over rounds.

    .venv/bin/python scripts/bench_math_verifier.py --rounds 7
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

from math_verify import parse, verify

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rewards.math import math_reward  # noqa: E402

DATA = ROOT / "tests" / "rewards" / "data" / "math_agreement.jsonl"
_KEYS = {"class", "prompt", "completion", "gold", "truth"}


def load_cases(path: Path) -> list[dict]:
    """The agreement cases; a malformed row raises naming the file and line."""
    cases = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        row = json.loads(line)
        missing = _KEYS - set(row)
        if missing or row["truth"] not in (0, 1):
            raise ValueError(f"{path}:{n}: need keys {sorted(_KEYS)} and truth 0/1, got {sorted(row)}")
        cases.append(row)
    return cases


def load_old(rev: str) -> ModuleType:
    """rewards/math.py as committed at `rev`, imported under its own name."""
    source = subprocess.run(["git", "show", f"{rev}:rewards/math.py"], cwd=ROOT, check=True,
                            capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp()) / "math_old.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("math_old", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def plain_math_verify(prompt: str, completion: str, answer: str, **_: object) -> dict:
    gold = parse(f"${answer}$", parsing_timeout=None)
    return {"score": float(bool(gold) and verify(gold, parse(completion, parsing_timeout=None), timeout_seconds=None))}


def agreement(fn: Callable[..., dict], cases: list[dict]) -> tuple[int, list[dict]]:
    misses = []
    for case in cases:
        fields = {"finish_reason": case["finish_reason"]} if "finish_reason" in case else {}
        verdict = fn(case["prompt"], case["completion"], answer=case["gold"], **fields)["score"] >= 0.5
        if verdict != bool(case["truth"]):
            misses.append(case)
    return len(cases) - len(misses), misses


def throughput(fns: dict[str, Callable[..., dict]], samples: list[dict], rounds: int) -> dict[str, float]:
    """Median samples/s per function over `rounds` passes, the order rotating each round."""
    names = list(fns)
    for name in names:
        for s in samples[:32]:  # warm-up: sympy and math-verify caches
            fns[name](**s)
    rates: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            start = time.perf_counter()
            for s in samples:
                fns[name](**s)
            rates[name].append(len(samples) / (time.perf_counter() - start))
    return {name: statistics.median(v) for name, v in rates.items()}


def suite_samples(n: int, seed: int) -> list[dict]:
    spec = importlib.util.spec_from_file_location("bench_rewards", ROOT / "scripts" / "bench_rewards.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    return bench.make_samples(n, 0, seed)["math"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old-rev", default="addb5b6", help="git revision of the old rewards/math.py (the last before the #28 verifier)")
    parser.add_argument("--suite-samples", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    logging.getLogger("math_verify").setLevel(logging.ERROR)

    cases = load_cases(DATA)
    old = load_old(args.old_rev)
    verifiers = {f"old ({args.old_rev})": old.math_reward, "plain math-verify": plain_math_verify, "new": math_reward}
    agree = {name: agreement(fn, cases) for name, fn in verifiers.items()}
    suite = suite_samples(args.suite_samples, args.seed)
    case_samples = [{"prompt": c["prompt"], "completion": c["completion"], "answer": c["gold"]} for c in cases]
    fns = {"old": old.math_reward, "new": math_reward}
    sets = {"task suite": suite, "agreement set": case_samples}
    rates = {name: throughput(fns, samples, args.rounds) for name, samples in sets.items()}
    means = {name: {f: statistics.mean(fn(**s)["score"] for s in samples) for f, fn in fns.items()}
             for name, samples in sets.items()}

    truth = Counter(c["truth"] for c in cases)
    print(f"\nagreement set: {len(cases)} cases ({truth[1]} right, {truth[0]} wrong), {DATA.relative_to(ROOT)}")
    print("| verifier | agrees | false credit | false miss |")
    print("|---|---|---|---|")
    for name, (n, misses) in agree.items():
        credit = sum(1 for m in misses if not m["truth"])
        print(f"| {name} | {n}/{len(cases)} | {credit} | {len(misses) - credit} |")
    print(f"\nthroughput, in-process, median of {args.rounds} rounds:")
    print("| samples | n | old samples/s | new samples/s | new/old | mean score old / new |")
    print("|---|---|---|---|---|---|")
    for name, r in rates.items():
        m = means[name]
        print(f"| {name} | {len(sets[name])} | {r['old']:.0f} | {r['new']:.0f} | {r['new'] / r['old']:.2f} "
              f"| {m['old']:.3f} / {m['new']:.3f} |")
    for name, (_, misses) in agree.items():
        print(f"\n{name} disagrees on:")
        for m in misses:
            print(f"  [{m['class']}] truth={m['truth']} gold={m['gold']!r} {m['completion'][:70]!r}")
    if args.json:
        with open(args.json, "w") as out:
            json.dump({"args": vars(args), "agreement": {k: v[0] for k, v in agree.items()}, "rates": rates,
                       "mean_score": means}, out, indent=2)


if __name__ == "__main__":
    main()

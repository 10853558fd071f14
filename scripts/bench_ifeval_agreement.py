"""Agreement of the IF checkers with hand-labelled reference cases per type, and checking throughput,
for the committed checkers (`git show <rev>:rewards/ifeval/...`, loaded as a temporary package) against
the working tree's, in one run.

Reference cases: tests/rewards/ifeval_reference_cases.json (`type`, `params`, `response`, `label`, `why`,
optional `prompt`), labelled by IFEval's definitions. A type the old checkers lack counts as a miss.
Throughput: `check_constraints` over generated IF rows' verified responses and broken copies of them
(only types both versions sample), timed in alternating rounds so other load hits both alike.

    .venv/bin/python scripts/bench_ifeval_agreement.py --rev HEAD --rows 400 --rounds 7
"""

from __future__ import annotations

import argparse
import importlib
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from types import ModuleType

import rewards.ifeval as new_ifeval
from rlsys.data.tasks.ifeval_tasks import ifeval_rows

ROOT = Path(__file__).resolve().parents[1]
CASES = ROOT / "tests" / "rewards" / "ifeval_reference_cases.json"
MODULES = ("__init__", "_base", "content", "layout", "language")


def load_old(rev: str, into: Path) -> ModuleType:
    """The package as committed at `rev`, importable as `ifeval_old` (modules it lacked are skipped)."""
    pkg = into / "ifeval_old"
    pkg.mkdir()
    for name in MODULES:
        shown = subprocess.run(["git", "show", f"{rev}:rewards/ifeval/{name}.py"], cwd=ROOT,
                               capture_output=True, text=True)
        if shown.returncode == 0:
            (pkg / f"{name}.py").write_text(shown.stdout.replace("rewards.ifeval.", "ifeval_old."))
    sys.path.insert(0, str(into))
    return importlib.import_module("ifeval_old")


def agreement(module: ModuleType, cases: list[dict]) -> dict[str, tuple[int, int]]:
    """type -> (agreeing cases, cases)."""
    out: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for case in cases:
        entry = [{"type": case["type"], "params": case["params"]}]
        try:
            got = module.check_constraints(case["response"], entry, case.get("prompt", ""))[0]
        except (KeyError, ValueError):  # a type or parameter the version does not know
            got = None
        out[case["type"]][0] += got == case["label"]
        out[case["type"]][1] += 1
    return {t: (a, n) for t, (a, n) in out.items()}


def _broken(response: str, rng: random.Random) -> str:
    edits = (str.upper, str.lower, lambda r: r.replace("\n", " "), lambda r: r + ", and 42 more words here.",
             lambda r: r[: len(r) // 2])
    return rng.choice(edits)(response)


def throughput_samples(n_rows: int, old: ModuleType) -> list[tuple[str, list[dict], str]]:
    rng = random.Random(0)
    rows, _ = ifeval_rows(n_rows, 5, "train")
    out = []
    for row in rows:
        if all(c["type"] in old.CONSTRAINTS for c in row["constraints"]):
            out.append((row["response"], row["constraints"], row["prompt"]))
            out.append((_broken(row["response"], rng), row["constraints"], row["prompt"]))
    return out


def _rate(module: ModuleType, samples: list[tuple[str, list[dict], str]]) -> float:
    start = time.perf_counter()
    for response, constraints, prompt in samples:
        module.check_constraints(response, constraints, prompt)
    return len(samples) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rev", default="e895f8c", help="git revision of the old checkers (the last before the #28 IFEval fixes)")
    parser.add_argument("--rows", type=int, default=400, help="generated IF rows for the throughput run")
    parser.add_argument("--rounds", type=int, default=7, help="alternating timing rounds per version")
    args = parser.parse_args()
    cases = json.loads(CASES.read_text())
    with tempfile.TemporaryDirectory() as tmp:
        old = load_old(args.rev, Path(tmp))
        before, after = agreement(old, cases), agreement(new_ifeval, cases)
        samples = throughput_samples(args.rows, old)
        rates: dict[str, list[float]] = {"old": [], "new": []}
        for _ in range(args.rounds):
            rates["old"].append(_rate(old, samples))
            rates["new"].append(_rate(new_ifeval, samples))
    print("| type | cases | old agree | new agree |\n|---|---|---|---|")
    for t in sorted(after):
        print(f"| `{t}` | {after[t][1]} | {before[t][0]} | {after[t][0]} |")
    total_old = sum(a for a, _ in before.values())
    total_new = sum(a for a, _ in after.values())
    print(f"| **all** | {len(cases)} | {total_old} | {total_new} |")
    old_rate, new_rate = statistics.median(rates["old"]), statistics.median(rates["new"])
    print(f"\nthroughput over {len(samples)} responses, median of {args.rounds} rounds: "
          f"old {old_rate:,.0f}/s, new {new_rate:,.0f}/s, new/old {new_rate / old_rate:.2f}")


if __name__ == "__main__":
    main()

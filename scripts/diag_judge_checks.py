"""What a `recompute` judge's equation checks say (BENCHMARKS.md "Pairwise judge").

Reads the held-out judgments a judge stage wrote (`judge_eval.jsonl` next to its model) and counts each
"X = c; X is v; ok|no" triple: is v the true value of X, and does the ok / no follow c == v?

    .venv/bin/python scripts/diag_judge_checks.py artifacts/stages/judge_sft/<hash>/judge_eval.jsonl
"""

from __future__ import annotations

import argparse
import json
import re

from rlsys.controller.rft_rewards import equation_value

TRIPLE = re.compile(r"(\d+(?: [-+*/] \d+)+) = (\d+); \1 is (-?[\d.]+); (ok|no)")


def count(outputs: list[str]) -> dict[str, float]:
    n = value_right = own = said_ok = claim_same = 0
    for text in outputs:
        for left, claim, value, verdict in TRIPLE.findall(text):
            try:
                truth = equation_value(left)
            except ZeroDivisionError:
                continue
            n += 1
            value_right += str(truth) == value
            claim_same += claim == value
            said_ok += verdict == "ok"
            own += (verdict == "ok") == (claim == value)
    d = max(1, n)
    return {"triples": n, "recomputed_right": value_right / d, "verdict_follows_own_numbers": own / d,
            "claim_equals_own_value": claim_same / d, "said_ok": said_ok / d}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("judgments", help="judge_eval.jsonl written by a judge_sft / judge_rl stage")
    args = parser.parse_args()
    with open(args.judgments) as fh:
        outputs = [json.loads(line)["output"] for line in fh if line.strip()]
    print(json.dumps({k: round(v, 3) for k, v in count(outputs).items()}, indent=2))


if __name__ == "__main__":
    main()

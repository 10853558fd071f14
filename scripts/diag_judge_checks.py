"""What a `recompute` judge's equation checks and an `if_checks` judge's constraint checks say
(docs/benchmarks/judge.md).

Reads the held-out judgments a judge stage wrote (`judge_eval.jsonl` next to its model) and counts each
"X = c; X is v; ok|no" triple: is v the true value of X, and does the ok / no follow c == v? Also the
share of pairs given the same text in both orders.
With `--rows` (the judge_data stage's eval.jsonl, whose targets hold the true checks), also each
"<constraint>: A ok|no, B ok|no." line of the IF judgments against the target's: constraint named, each
mark right, and whether the verdict follows the judge's own marks.
With `--tokenizer` too, where it fails: accuracy by prompt length in tokens (the raw prompt, before the
chat template), and the share of copied equations found verbatim in the response they name, by the token
position where that response starts.

    .venv/bin/python scripts/diag_judge_checks.py artifacts/stages/judge_sft/<hash>/judge_eval.jsonl \
        [--rows artifacts/stages/judge_data/<hash>/eval.jsonl --tokenizer MODEL_DIR]
"""

from __future__ import annotations

import argparse
import json
import re

from rewards.pairwise_judge import parse_verdict
from rlsys.jobs.equations import equation_value

TRIPLE = re.compile(r"(\d+(?: [-+*/] \d+)+) = (\d+); \1 is (-?[\d.]+); (ok|no)")
CHECK = re.compile(r"^(.+): A (ok|no), B (ok|no)\.$", re.M)
SIDE = re.compile(r"^([AB]): (.+ (?:ok|no))\.$", re.M)


def if_checks(text: str) -> dict[str, tuple[str, str]]:
    """Constraint tag -> (A mark, B mark) from either IF layout ("tag: A ok, B no." lines, or one
    "A: tag ok, tag no." line per response)."""
    found = {tag: (a, b) for tag, a, b in CHECK.findall(text)}
    if found:
        return found
    sides: dict[str, dict[str, str]] = {"A": {}, "B": {}}
    for side, items in SIDE.findall(text):
        for item in items.split(", "):
            tag, _, mark = item.rpartition(" ")
            if mark in ("ok", "no") and "=" not in tag:
                sides[side][tag] = mark
    return {tag: (sides["A"].get(tag, ""), sides["B"].get(tag, "")) for tag in {**sides["A"], **sides["B"]}}


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


def constraint_checks(judgments: list[dict], rows: dict[str, dict]) -> dict[str, float]:
    """The IF judgments' constraint lines against their targets' (rows whose target has such lines)."""
    n_rows = named = marks = marks_right = follows = right = 0
    for judged in judgments:
        want = if_checks(rows[judged["id"]]["response"])
        if not want:
            continue
        got = if_checks(judged["output"])
        n_rows += 1
        right += parse_verdict(judged["output"]) == judged["label"]
        named += set(got) == set(want)
        for tag, truth in want.items():
            marks += 2
            marks_right += sum(x == y for x, y in zip(got.get(tag, ("", "")), truth))
        # The side whose every constraint the judge marked ok (when exactly one is).
        clean = [side for i, side in enumerate("AB") if got and all(m[i] == "ok" for m in got.values())]
        follows += len(clean) == 1 and parse_verdict(judged["output"]) == clean[0]
    d = max(1, n_rows)
    return {"if_judgments": n_rows, "if_accuracy": right / d, "if_constraints_named": named / d,
            "if_marks_right": marks_right / max(1, marks), "if_verdict_follows_own_marks": follows / d}


def by_position(judgments: list[dict], rows: dict[str, dict], n_tokens, width: int = 64) -> dict[str, dict]:
    """Accuracy by prompt length and verbatim-copy rate by the copied response's start position."""
    acc: dict[int, list[int]] = {}
    copied: dict[str, list[int]] = {}
    for judged in judgments:
        prompt = rows[judged["id"]]["prompt"]
        length = n_tokens(prompt) // width * width
        hit = acc.setdefault(length, [0, 0])
        hit[0] += parse_verdict(judged["output"]) == judged["label"]
        hit[1] += 1
        starts = {label: prompt.index(f"Response {label}:") for label in "AB"}
        spans = {"A": prompt[starts["A"]:starts["B"]], "B": prompt[starts["B"]:]}
        for label, span in spans.items():
            line = re.search(rf"^{label}: (.*)$", judged["output"], re.M)
            key = f"{label} from token {n_tokens(prompt[:starts[label]]) // 100 * 100}"
            for chunk in (line.group(1).split(", ") if line else []):
                equation = chunk.split(";")[0].strip().rstrip(".")
                if " = " in equation:
                    seen = copied.setdefault(key, [0, 0])
                    seen[0] += equation in span
                    seen[1] += 1
    return {
        "accuracy_by_prompt_tokens": {f"{k}-{k + width - 1}": f"{a / n:.3f} (n={n})" for k, (a, n) in sorted(acc.items())},
        "copied_verbatim_by_response_start": {k: f"{a / n:.2f} (n={n})" for k, (a, n) in sorted(copied.items())},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("judgments", help="judge_eval.jsonl written by a judge_sft / judge_rl stage")
    parser.add_argument("--rows", help="the judge_data stage's eval.jsonl (prompts of the judged rows)")
    parser.add_argument("--tokenizer", help="model dir whose tokenizer counts prompt tokens")
    args = parser.parse_args()
    if args.tokenizer and not args.rows:
        parser.error("--tokenizer needs --rows")
    with open(args.judgments) as fh:
        judgments = [json.loads(line) for line in fh if line.strip()]
    report: dict = {k: round(v, 3) for k, v in count([j["output"] for j in judgments]).items()}
    # Held-out pairs are judged in both orders (ids "...-a" / "...-b"): the same text for both means the
    # judgment did not depend on where each response stood.
    orders: dict[str, set[str]] = {}
    for j in judgments:
        orders.setdefault(j["id"].rsplit("-", 1)[0], set()).add(j["output"])
    report["same_text_both_orders"] = round(sum(len(o) == 1 for o in orders.values()) / max(1, len(orders)), 3)
    if args.rows:
        with open(args.rows) as fh:
            rows = {r["id"]: r for r in map(json.loads, fh)}
        report.update({k: round(v, 3) for k, v in constraint_checks(judgments, rows).items()})
    if args.tokenizer:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(args.tokenizer)
        report.update(by_position(judgments, rows, lambda text: len(tokenizer(text)["input_ids"])))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

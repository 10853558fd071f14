"""Held-out evaluation on a wider set than the stages use, with paired differences against a baseline.

    .venv/bin/python -m rlsys.eval wide start=artifacts/stages/rft_rl/<hash>/model \
        align=artifacts/stages/align/<hash>/model [...] [--n-if 600] [--n-format 200] [--max-math 600] \
        [--dump DIR] [--samples K --temperature T]

The stages evaluate on 100 IF prompts and 40 format prompts, where one checkpoint moves ±0.04 between
evals: too coarse to tell a +0.03 IF gain from noise. This draws more rows of the same held-out splits
from the suite's generators (the first 100 IF rows are the stages' own eval rows, which this
checks; format prompts are deduplicated), answers them greedily with each model through a vLLM actor, and prints each
model's scores plus its paired difference from the first model with a standard error over prompts. `--dump DIR`
writes each model's answers and per-prompt scores to DIR/<name>.jsonl, to read what changed.
`--samples K --temperature T` scores K seeded samples per prompt instead (every model sees the same per-prompt
seeds) and averages each prompt's scores over them (avg@K): RL trains on samples at the rollout temperature,
and a gain there need not reach the greedy answer.

A second table splits the IF prompts by how much each model's answer grew against the first model's
(in words) and gives the paired IF-share difference within each part, with each model's mean IF answer
length and the share of IF answers past `ref_length`'s default bound (1.5 x the reference + 10 words).
A third gives each IF constraint type's pass rate per model, the baseline's weakest first. A fourth gives, for
markup a constraint can ask for (placeholders, a postscript, highlights, a title, quotes, JSON), how often each
model's IF answers carry it where the prompt did not ask for it: a gain on a constraint from a habit spilling
onto every answer shows there, which no IF checker penalises.

`scripts/eval_wide.py` runs the same command.
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def per_prompt(rows: dict[str, list[dict]], texts: list[str]) -> tuple[dict[str, list[float]], list[list[bool]]]:
    """Per-prompt scores (math correct, IF constraint share, IF all pass, format pass) and each IF
    prompt's per-constraint pass/fail."""
    from rlsys.eval.scoring import format_hits, ifeval_checks, ifeval_scores, math_hits

    n_math, n_if = len(rows["math"]), len(rows["ifeval"])
    checks = ifeval_checks(rows["ifeval"], texts[n_math:n_math + n_if])
    share, all_pass = ifeval_scores(checks)
    return {"math": math_hits(rows["math"], texts[:n_math]), "if_share": share, "if_all": all_pass,
            "format": format_hits(rows["format"], texts[n_math + n_if:])}, checks


def per_prompt_avg(rows: dict[str, list[dict]], samples: list[list[str]]
                   ) -> tuple[dict[str, list[float]], list[list[float]], list[float]]:
    """`per_prompt` averaged over each prompt's samples (`samples[i]` holds prompt i's K answers), plus
    each IF prompt's mean answer length in words."""
    k = max(len(s) for s in samples)
    if any(len(s) != k for s in samples):
        raise SystemExit(f"a prompt got fewer than {k} samples (a failed generate): not averaging over unequal sets")
    runs = [per_prompt(rows, [s[j] for s in samples]) for j in range(k)]
    scores = {key: [statistics.mean(v) for v in zip(*(r[0][key] for r in runs))] for key in runs[0][0]}
    checks = [[statistics.mean(map(float, c)) for c in zip(*per)] for per in zip(*(r[1] for r in runs))]
    n_math, n_if = len(rows["math"]), len(rows["ifeval"])
    words = [statistics.mean(len(t.split()) for t in s) for s in samples[n_math:n_math + n_if]]
    return scores, checks, words


# (lo, hi]: sampled lengths are means over K answers, so the bins must cover fractions too.
LENGTH_BINS = (("grew <= 5 words", -10**9, 5), ("grew 5-30", 5, 30), ("grew > 30", 30, 10**9))


def length_table(words: dict[str, list[float]], ref_words: list[int], share: dict[str, list[float]]) -> list[str]:
    """Markdown rows: IF answer length per model and the paired IF-share difference by length change."""
    from rewards.length import reference_word_limit

    base = next(iter(words))
    head = " | ".join(f"Δ IF share, {name} (n)" for name, _, _ in LENGTH_BINS)
    lines = [f"| model | IF words | past ref_length bound | {head} |", "|---" * (3 + len(LENGTH_BINS)) + "|"]
    for name, w in words.items():
        past = sum(n > reference_word_limit(r) for n, r in zip(w, ref_words))
        cells = []
        for _, lo, hi in LENGTH_BINS:
            idx = [i for i, (a, b) in enumerate(zip(words[base], w)) if lo < b - a <= hi]
            diffs = [share[name][i] - share[base][i] for i in idx]
            cells.append(f"{statistics.mean(diffs):+.3f} ({len(idx)})" if idx else "- (0)")
        lines.append(f"| {name} | {statistics.mean(w):.1f} | {past / len(w):.3f} | {' | '.join(cells)} |")
    return lines


def constraint_table(rows: list[dict], if_checks: dict[str, list[list[float]]]) -> list[str]:
    """Markdown rows: per IF constraint type, its prompts and each model's pass rate (baseline's lowest first)."""
    rates: dict[str, dict[str, list[float]]] = {}
    for name, checks in if_checks.items():
        per: dict[str, list[float]] = defaultdict(list)
        for row, passed in zip(rows, checks):
            for entry, ok in zip(row["constraints"], passed):
                per[entry["type"]].append(float(ok))
        rates[name] = per
    base = rates[next(iter(rates))]
    lines = ["| constraint | prompts | " + " | ".join(rates) + " |", "|---" * (2 + len(rates)) + "|"]
    for kind in sorted(base, key=lambda k: (statistics.mean(base[k]), k)):
        cells = " | ".join(f"{statistics.mean(r[kind]):.2f}" for r in rates.values())
        lines.append(f"| {kind} | {len(base[kind])} | {cells} |")
    return lines


def unasked_table(rows: list[dict], answers: dict[str, list[list[str]]]) -> list[str]:
    """Markdown rows: per markup type the `unasked_markup` reward probes, the share of each model's IF answers
    (all samples) that carry it, among the prompts where the reward probes it (those that neither ask for it
    nor excuse it nor carry it in their own text)."""
    from rewards.unasked_markup import PROBES, unasked_markup_penalty

    flags = {name: [[unasked_markup_penalty(row["prompt"], t, row["constraints"]) for t in model_answers[i]]
                    for i, row in enumerate(rows)] for name, model_answers in answers.items()}
    lines = ["| markup (not asked for) | prompts | " + " | ".join(answers) + " |", "|---" * (2 + len(answers)) + "|"]
    for kind in PROBES:
        # Which types a row probes depends on the row alone: read it off any answer's flags.
        idx = [i for i, row_flags in enumerate(next(iter(flags.values()))) if f"unasked/{kind}" in row_flags[0]]
        cells = [f"{statistics.mean(out[f'unasked/{kind}'] for i in idx for out in flags[name][i]):.2f}"
                 if idx else "-" for name in answers]
        lines.append(f"| {kind} | {len(idx)} | {' | '.join(cells)} |")
    return lines


def dump(path: Path, rows: dict[str, list[dict]], samples: list[list[str]], scores: dict[str, list[float]]) -> None:
    """One line per prompt, in eval order: split, id, prompt, answer (`answers` when sampled K > 1) and its scores."""
    path.parent.mkdir(parents=True, exist_ok=True)
    keys = {"math": ("math",), "ifeval": ("if_share", "if_all"), "format": ("format",)}
    start = 0
    with path.open("w") as f:
        for split in ("math", "ifeval", "format"):
            for i, row in enumerate(rows[split]):
                answers = samples[start + i]
                said = {"answer": answers[0]} if len(answers) == 1 else {"answers": answers}
                line = {"split": split, "id": row.get("id"), "prompt": row["prompt"]} | said
                f.write(json.dumps(line | {k: scores[k][i] for k in keys[split]}) + "\n")
            start += len(rows[split])


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("models", nargs="+", help="name=model_dir; the first is the baseline")
    parser.add_argument("--n-if", type=int, default=600)
    parser.add_argument("--n-format", type=int, default=200)
    parser.add_argument("--max-math", type=int, default=600)
    parser.add_argument("--exp", default="keye_pipeline")
    parser.add_argument("--dump", type=Path, default=None, help="write <name>.jsonl of answers and scores here")
    parser.add_argument("--samples", type=int, default=1, help="answers per prompt (K > 1 needs --temperature > 0)")
    parser.add_argument("--temperature", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=0, help="per-prompt sampling seeds start here")


def run(args: argparse.Namespace) -> int:
    if args.samples < 1 or (args.samples > 1 and args.temperature <= 0):
        raise SystemExit("--samples must be >= 1, and > 1 only with --temperature > 0 (greedy answers repeat)")
    from rlsys.config.store import compose_config
    from rlsys.data.tasks.format_tasks import format_rows
    from rlsys.data.tasks.ifeval_tasks import ifeval_rows
    from rlsys.eval.scoring import eval_prompts, eval_rows, model_completions, paired_difference
    from rlsys.runtime.ray_utils import init_ray

    cfg = compose_config([f"+exp={args.exp}", f"eval.max_math={args.max_math}"])
    cfg.artifacts_dir = str(REPO / cfg.artifacts_dir)
    rows = eval_rows(cfg)
    seed = cfg.data.suite.seed
    wide_if = ifeval_rows(args.n_if, seed, "eval")[0]
    if [r["prompt"] for r in wide_if[: len(rows["ifeval"])]] != [r["prompt"] for r in rows["ifeval"]]:
        raise SystemExit("the widened IF rows do not start with the stages' eval rows: suite changed?")
    # Code prompts are few, so a longer format draw repeats them (and draws differently once they run
    # out): keep each prompt once and say how many of the stages' 40 are among them.
    wide_format = list({r["prompt"]: r for r in format_rows(args.n_format, seed, "eval")}.values())
    shared = len({r["prompt"] for r in rows["format"]} & {r["prompt"] for r in wide_format})
    print(f"rows: math {len(rows['math'])}, IF {len(wide_if)}, format {len(wide_format)} "
          f"({shared} of the stages' {len(rows['format'])} format rows among them)", flush=True)
    rows = {"math": rows["math"], "ifeval": wide_if, "format": wide_format}
    init_ray(num_cpus=4)
    scores: dict[str, dict[str, list[float]]] = {}
    if_words: dict[str, list[float]] = {}
    if_checks: dict[str, list[list[float]]] = {}
    if_answers: dict[str, list[list[str]]] = {}
    for spec in args.models:
        name, path = spec.split("=", 1)
        samples = model_completions(cfg, path, eval_prompts(rows), n=args.samples, temperature=args.temperature,
                                    seed=args.seed if args.temperature > 0 else None)
        scores[name], if_checks[name], if_words[name] = per_prompt_avg(rows, samples)
        if_answers[name] = samples[len(rows["math"]):len(rows["math"]) + len(rows["ifeval"])]
        if args.dump:
            dump(args.dump / f"{name}.jsonl", rows, samples, scores[name])
        print(name, {k: round(statistics.mean(v), 3) for k, v in scores[name].items()}, flush=True)
    base = next(iter(scores))
    print(f"\n| model | math | IF share | IF all | format | Δ math | Δ IF share | Δ IF all | Δ format (vs {base}) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, s in scores.items():
        means = " | ".join(f"{statistics.mean(s[k]):.3f}" for k in ("math", "if_share", "if_all", "format"))
        deltas = " | ".join(paired_difference(scores[base][k], s[k]) for k in ("math", "if_share", "if_all", "format"))
        print(f"| {name} | {means} | {deltas} |")
    print()
    ref_words = [len(r["response"].split()) for r in rows["ifeval"]]
    print("\n".join(length_table(if_words, ref_words, {k: s["if_share"] for k, s in scores.items()})))
    print()
    print("\n".join(constraint_table(rows["ifeval"], if_checks)))
    print()
    print("\n".join(unasked_table(rows["ifeval"], if_answers)))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))

"""The generative pairwise reward model (Keye-VL 1.5 §4.2), trained by SFT then RL inside the pipeline.

- `judge_data`: preference pairs -> judge rows. Each pair is shown once with a seeded random order of its
  two responses (label = the position of the chosen one); the row holds the judge prompt, the target
  answer in the fixed format (rewards/pairwise_judge.py; the reasoning names both final answers and
  each response's first false arithmetic step) and `label`. Held-out rows come from the eval
  split (`pref_eval`), each pair in both orders. Writes `data.jsonl` and `eval.jsonl`.
  With `sample.judge_solve` the judge solves the request itself (a generative verifier, as in GenRM-CoT):
  for pairs whose responses reach different final answers, the input model samples `num_samples`
  solutions; the first one the verifier accepts goes into the reasoning, which then sets each
  response's final answer against it. Pairs it never solves are left out of training (counted).
  With `sample.judge_pointwise` it writes pointwise check rows instead: one request and one response (both
  responses of each IF pair), the target a mark per constraint; the pairwise verdict is then the response
  with fewer failed marks (`check_accuracy`). `sample.soft_checks` adds soft-instruction checks from the
  alignment rows (rlsys/jobs/judge_soft.py; held out as their own pairs, reported per pair source).
- `judge_sft`: an SFT stage on those rows (`data_from: judge_data`); `judge_rl`: a GSPO stage on the same
  prompts with the format + outcome rewards. Both report greedy pairwise accuracy on the held-out rows:
  `eval/judge_pair_acc` (share of judgments right), `eval/judge_pair_consistent` (pairs right in both
  orders), `eval/judge_parse_rate`, `eval/judge_picked_a` (position bias; 0.5 is unbiased).
"""

from __future__ import annotations

import logging
import random
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from rewards.pairwise_judge import (
    check_prompt,
    check_target,
    judge_prompt,
    judge_target,
)
from rlsys.config.schema_stages import JUDGE_IF_LAYOUTS
from rlsys.config.validate import ConfigError
from rlsys.data.tasks.ifeval_tasks import DATA_SOURCE as IF_SOURCE
from rlsys.eval.judge import CHECK_TASK, ROLES, evaluate_judge
from rlsys.jobs.judge_soft import JUDGE_SOURCE, soft_check_rows
from rlsys.jobs.train import run_sft
from rlsys.stages.context import StageContext
from rlsys.stages.io import (
    DATA_FILE,
    EVAL_FILE,
    pick_rows,
    select_rows,
    stage_rows,
    write_jsonl,
)
from rlsys.stages.sampling import sample_and_judge

log = logging.getLogger(__name__)

_MAX_ANSWER_CHARS = 24


def final_answer(text: str) -> str:
    """A response's final answer for the judge's reasoning line (shortened: non-math answers can be
    whole sentences)."""
    from rewards.math import extract_answer

    found = " ".join((extract_answer(text) or "no final answer").split())
    return found if len(found) <= _MAX_ANSWER_CHARS else found[:_MAX_ANSWER_CHARS] + "..."


def judge_rationale(a: str, b: str) -> str:
    """The reasoning an SFT target gives before its verdict, without naming the better response: the
    final answer each response reaches and, for each, its first false arithmetic step (a rule check
    standing in for a stronger model's reasoning, as Keye distils its judge's)."""
    from rlsys.jobs.equations import first_wrong_equation

    def steps(label: str, text: str) -> str:
        wrong = first_wrong_equation(text)
        return f"{label}: {wrong} is wrong." if wrong else f"{label}: steps hold."

    return f"A ends with {final_answer(a)}. B ends with {final_answer(b)}. {steps('A', a)} {steps('B', b)}"


def recheck_rationale(a: str, b: str, recompute: bool = False) -> str:
    """The reasoning of a judge that re-checks the work, response by response, each up to its first false
    equation (where the check stops):
    - recheck: each equation copied, then "ok" or "no" ("3 + 2 + 1 = 16 no");
    - recompute: each equation copied, its left side worked out again, then the verdict
      ("3 + 2 + 1 = 16; 3 + 2 + 1 is 6; no"): the result comes from the model's own arithmetic (after
      "is", where copying the response cannot help) and the check compares two nearby numbers."""
    from rewards._common import answer_part
    from rlsys.jobs.equations import equation_checks, equation_value

    def walk(label: str, text: str) -> str:
        parts = []
        # Only the answer part: a response's reasoning block is not what the judge rules on.
        for eq, ok in equation_checks(answer_part(text) or ""):
            verdict = "ok" if ok else "no"
            if recompute:
                left = eq.split(" = ")[0]
                try:
                    value = str(equation_value(left))
                except ZeroDivisionError:
                    value = "undefined"
                parts.append(f"{eq}; {left} is {value}; {verdict}")
            else:
                parts.append(f"{eq} {verdict}")
            if not ok:
                break
        return f"{label}: {', '.join(parts) if parts else 'no equations'}."

    return f"{walk('A', a)}\n{walk('B', b)}"


def solved_rationale(solution: str, a: str, b: str) -> str:
    """The reasoning of a judge that solves the request itself: both final answers (copied first, while
    the responses are the nearest context), its own worked solution, then each answer set against its own
    one at a time (a tiny model copies and compares reliably in short steps, not in one lookup)."""
    own, fa, fb = final_answer(solution), final_answer(a), final_answer(b)

    def check(label: str, found: str) -> str:
        return f"{label}: {found}, {'same' if found == own else 'not mine'}."

    return f"A ends with {fa}. B ends with {fb}.\n{solution.strip()}\nMine is {own}. {check('A', fa)} {check('B', fb)}"


def constraint_tag(entry: dict) -> str:
    """A short name for a constraint in the judge's reasoning: its type and its short parameters
    ("keyword frequency garden 2"); phrases and options stay in the request, where the judge reads them."""
    shown = []
    for value in (entry.get("params") or {}).values():
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, int) or (isinstance(item, str) and len(item.split()) <= 2 and len(item) <= 12):
                shown.append(str(item))
    return " ".join([entry["type"].replace("_", " "), *shown])




def constraint_marks(text: str, constraints: list[dict], request: str) -> list[str]:
    """"ok" / "no" for each of `constraints` on response `text`."""
    from rewards.ifeval import check_constraints

    return ["ok" if ok else "no" for ok in check_constraints(text.strip(), constraints, request)]


def if_rationale(request: str, a: str, b: str, layout: str = "constraint") -> str | None:
    """The reasoning of a judge that checks each instruction of the request on both responses; None when the
    request holds no known constraint. Layout "constraint": one line per constraint ("keyword include melody:
    A no, B ok."); "response": one line per response, so each line reads one response only ("A: keyword
    include melody no, all uppercase ok.")."""
    from rewards.ifeval.recover import constraints_in

    if layout not in JUDGE_IF_LAYOUTS:
        raise ValueError(f"layout must be one of {JUDGE_IF_LAYOUTS}, got {layout!r}")
    constraints = constraints_in(request)
    if not constraints:
        return None
    marks = [constraint_marks(text, constraints, request) for text in (a, b)]
    tags = [constraint_tag(c) for c in constraints]
    if layout == "response":
        return "\n".join(f"{side}: {', '.join(f'{t} {m}' for t, m in zip(tags, side_marks))}."
                         for side, side_marks in zip("AB", marks))
    return "\n".join(f"{t}: A {m_a}, B {m_b}." for t, m_a, m_b in zip(tags, *marks))


def check_rows(pairs: list[dict]) -> tuple[list[dict], int]:
    """Pointwise check rows (`sample.judge_pointwise`): for each IF pair whose request holds known
    constraints, its chosen then its rejected response, each with a mark per constraint. Returns the rows
    and the number of pairs left out."""
    from rewards.ifeval.recover import constraints_in

    rows, skipped = [], 0
    for pair in pairs:
        constraints = constraints_in(pair["prompt"]) if pair.get("data_source") == IF_SOURCE else []
        if not constraints:
            skipped += 1
            continue
        tags = [constraint_tag(c) for c in constraints]
        for role in ROLES:
            text = pair[role].strip()
            marks = constraint_marks(text, constraints, pair["prompt"])
            rows.append({
                "id": f"check-{pair['id']}-{role}", "data_source": JUDGE_SOURCE, "task": CHECK_TASK,
                "pair_id": str(pair["id"]), "pair_source": pair.get("data_source"), "role": role,
                "prompt": check_prompt(pair["prompt"], text), "response": check_target(tags, marks),
                "tags": tags, "marks": marks,
            })
    return rows, skipped


def has_distinct_answers(pair: dict) -> bool:
    """Whether the two responses reach different final answers (the pairs a solving judge can decide)."""
    from rewards.math import extract_answer

    chosen, rejected = extract_answer(pair["chosen"]), extract_answer(pair["rejected"])
    return chosen is not None and rejected is not None and chosen.strip() != rejected.strip()


def judge_row(pair: dict, label: str, think: bool, suffix: str = "", solution: str | None = None,
              reasoning: str = "steps", if_checks: str | None = None) -> dict:
    """The judge row for a preference pair with the chosen response at position `label` (reasoning from
    the judge's own `solution` when given, the request's constraints checked on both responses for an IF
    pair with `if_checks` (its layout, see `if_rationale`), else re-checked equations or the step check)."""
    a, b = (pair["chosen"], pair["rejected"]) if label == "A" else (pair["rejected"], pair["chosen"])
    is_if = if_checks and pair.get("data_source") == IF_SOURCE
    if not think:
        rationale = ""
    elif is_if and (checked := if_rationale(pair["prompt"], a, b, if_checks)):
        rationale = checked
    elif solution:
        rationale = solved_rationale(solution, a, b)
    else:
        rationale = judge_rationale(a, b) if reasoning == "steps" else recheck_rationale(a, b, reasoning == "recompute")
    return {
        "id": f"judge-{pair['id']}{suffix}",
        "data_source": JUDGE_SOURCE,
        "task": "judge",
        "pair_id": str(pair["id"]),
        "pair_source": pair.get("data_source"),
        "prompt": judge_prompt(pair["prompt"], a, b, think),
        "response": judge_target(label, rationale, think),
        "label": label,
    }


def judge_rows(pairs: list[dict], seed: int, think: bool, both_orders: bool = False,
               solutions: dict[str, str] | None = None, reasoning: str = "steps",
               if_checks: str | None = None) -> list[dict]:
    """Judge rows from preference pairs: one seeded random order per pair, or both orders. `solutions`
    (pair id -> the judge's own verified solution) switches those pairs to solve-first reasoning; with
    `if_checks` (a layout) IF pairs check their request's constraints; the others reason as `reasoning` says (see
    `JUDGE_REASONING` in the schema)."""
    rng = random.Random(f"judge|{seed}")
    solutions = solutions or {}
    rows = []
    for pair in pairs:
        solution = solutions.get(str(pair["id"]))
        if both_orders:
            rows += [judge_row(pair, "A", think, "-a", solution, reasoning, if_checks),
                     judge_row(pair, "B", think, "-b", solution, reasoning, if_checks)]
        else:
            rows.append(judge_row(pair, "A" if rng.random() < 0.5 else "B", think, solution=solution,
                                  reasoning=reasoning, if_checks=if_checks))
    return rows


def solve_pairs(ctx: StageContext, pairs: list[dict]) -> tuple[dict[str, str], set[str]]:
    """The input model's first verified solution to the request of each pair with distinct final answers
    (the chosen response's answer is the gold), by pair id, and the ids of those it never solved."""
    from rewards._common import answer_part
    from rewards.math import extract_answer

    asks = [{"id": f"solve-{p['id']}", "pair_id": str(p["id"]), "prompt": p["prompt"], "data_source": "rlsys/math",
             "answer": extract_answer(p["chosen"])} for p in pairs if has_distinct_answers(p)]
    ok, samples, correct = sample_and_judge(ctx, asks, ctx.stage.sample.num_samples)
    solutions = {}
    for j, texts, marks in zip(ok, samples, correct):
        good = [answer_part(s.text) for s, right in zip(texts, marks) if right]
        good = [g.strip() for g in good if g and g.strip()]
        if good:
            solutions[asks[j]["pair_id"]] = good[0]
    log.info("judge_data %s: solved %d/%d pairs with distinct answers", ctx.name, len(solutions), len(asks))
    return solutions, {a["pair_id"] for a in asks} - set(solutions)


def more_pairs(ctx: StageContext, have: list[dict], split: str, want: int, key: str,
               source: str | None = None) -> list[dict]:
    """`want` more preference pairs of `split` (only those of data source `source` when given), drawn from the
    suite's preference generator past the suite's own rows `have`, which the draw must reproduce first
    (config key `key` is named otherwise)."""
    from rlsys.data.tasks.preference import preference_rows

    if want <= 0:
        return []
    n = len(have) + (20 if source else 2) * want
    while True:
        drawn = preference_rows(n, ctx.cfg.data.suite.seed, split)
        if drawn[: len(have)] != have:
            raise ConfigError(f"config key 'stages.{ctx.name}.{key}': the {split} pairs are not the suite's own "
                              "rows, so the generator cannot extend them")
        extra = [r for r in drawn[len(have):] if source is None or r["data_source"] == source]
        if len(extra) >= want:
            return extra[:want]
        if n > 1000 * (len(have) + want):
            raise ConfigError(f"config key 'stages.{ctx.name}.{key}': the generator gave only {len(extra)} "
                              f"{source or ''} pairs of {split} in {n} rows")
        n *= 2


def _fits(tokenizer: Any, rows: list[dict], max_tokens: int) -> list[dict]:
    from rlsys.data.encode import encode_prompt

    return [r for r in rows if len(encode_prompt(tokenizer, r)) <= max_tokens]


def judge_pairs(ctx: StageContext) -> tuple[list[dict], list[dict]]:
    """The preference pairs a judge_data stage turns into train and held-out rows: the suite's (or the
    user's) pairs, extended from the suite's generator (`sample.train_pairs`, `sample.eval_if_pairs`), then
    selected by `where` (e.g. IF pairs only) after the extension, which must start from the suite's own rows."""

    stage = ctx.stage
    pairs = stage_rows(ctx, "preference", select=False)
    pairs += more_pairs(ctx, pairs, "train", stage.sample.train_pairs - len(pairs), "sample.train_pairs")
    eval_pairs = stage_rows(ctx, "preference", stage.eval_data or "pref_eval", select=False)[: ctx.cfg.eval.max_pairs]
    eval_pairs += more_pairs(ctx, eval_pairs, "eval", stage.sample.eval_if_pairs, "sample.eval_if_pairs", IF_SOURCE)
    if stage.where:
        pairs = select_rows(pairs, stage.where, f"stages.{ctx.name}.where")
        eval_pairs = select_rows(eval_pairs, stage.where, f"stages.{ctx.name}.where")
    return pairs, eval_pairs


def run_judge_data(ctx: StageContext) -> dict[str, Any]:
    from transformers import AutoTokenizer


    stage = ctx.stage
    if stage.sample.judge_solve and not stage.input:
        raise ConfigError(f"config key 'stages.{ctx.name}.input': judge_solve needs a model to solve with")
    if stage.sample.judge_solve and stage.sample.judge_pointwise:
        raise ConfigError(f"config key 'stages.{ctx.name}.sample.judge_solve': a pointwise check "
                          "(judge_pointwise) has no pairwise reasoning to solve for; set one of the two")
    if stage.sample.soft_checks and not stage.sample.judge_pointwise:
        raise ConfigError(f"config key 'stages.{ctx.name}.sample.soft_checks': soft checks are pointwise check rows; "
                          "set sample.judge_pointwise: true")
    tokenizer = AutoTokenizer.from_pretrained(ctx.input_model)
    think, limit = stage.sample.judge_think, stage.sample.max_prompt_tokens
    pairs, eval_pairs = judge_pairs(ctx)
    pairs = [pairs[i] for i in pick_rows(len(pairs), stage.sample.max_rows, stage.seed)]
    solutions, unsolved = solve_pairs(ctx, pairs) if stage.sample.judge_solve and think else ({}, set())
    pairs = [p for p in pairs if str(p["id"]) not in unsolved]
    reasoning = stage.sample.judge_reasoning
    if_checks = stage.sample.judge_if_layout if stage.sample.judge_if_checks else None
    skipped = 0
    if stage.sample.judge_pointwise:
        train_rows, skipped = check_rows(pairs)
        eval_rows = check_rows(eval_pairs)[0]
        if stage.sample.soft_checks:
            train_rows += soft_check_rows(stage_rows(ctx, "ifeval", "align_train")[: stage.sample.soft_checks], False)
            eval_rows += soft_check_rows(stage_rows(ctx, "ifeval", "align_eval"), True)[: 2 * ctx.cfg.eval.max_pairs]
    else:
        train_rows = judge_rows(pairs, stage.seed, think, solutions=solutions, reasoning=reasoning, if_checks=if_checks)
        eval_rows = judge_rows(eval_pairs, stage.seed, think, both_orders=True, reasoning=reasoning, if_checks=if_checks)
    train, held_out = _fits(tokenizer, train_rows, limit), _fits(tokenizer, eval_rows, limit)
    # A pair counts in the held-out set only when both of its orders (pointwise: both responses) fit.
    per_pair: dict[str, int] = {}
    for r in held_out:
        per_pair[r["pair_id"]] = per_pair.get(r["pair_id"], 0) + 1
    held_out = [r for r in held_out if per_pair[r["pair_id"]] == 2]
    write_jsonl(Path(ctx.out_dir) / DATA_FILE, train)
    write_jsonl(Path(ctx.out_dir) / EVAL_FILE, held_out)
    summary = {
        "rows": len(train),
        "dropped_long": len(train_rows) - len(train),
        "pairs_not_checkable": skipped,
        "solved": len(solutions),
        "dropped_unsolved": len(unsolved),
        "label_a_share": sum(r.get("label") == "A" for r in train) / max(1, len(train)),
        "eval_rows": len(held_out),
        "eval_pairs": len(held_out) // 2,
        "think": think,
        "data_file": DATA_FILE,  # in the stage's artifact directory
    }
    log.info("judge_data %s: %d train rows, %d held-out judgments", ctx.name, len(train), len(held_out))
    return summary


def run_judge_sft(ctx: StageContext) -> dict[str, Any]:
    """SFT on the judge rows, then pairwise accuracy (the math / IF evaluation does not apply)."""
    ctx.stage = OmegaConf.merge(ctx.stage, {"evaluate": False})
    summary = run_sft(ctx)
    summary["eval"] = summary.get("eval", {}) | evaluate_judge(ctx, str(Path(ctx.out_dir) / "model"))
    return summary

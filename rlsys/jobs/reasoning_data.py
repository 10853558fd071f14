"""Keye's reasoning-data stages: pass-rate filtered SFT (Keye-VL 1.5 §4.1) and multi-path cold-start data with
confidence selection (the automatable steps of its LongCoT pipeline).

- `sft_pass_filter`: the input model answers each SFT prompt `sample.num_samples` times on the rollout pool,
  judged by the stage's reward workers against the row's gold (`answer`, or for the suite's SFT rows the gold
  rft.py joins back: `attach_gold`). Rows whose pass rate is at or above `sample.drop_pass_rate` teach the model
  nothing it does not already do, and are dropped. Rows without a gold, multi-turn rows, rows whose request
  failed and rows left out by `sample.max_rows` are kept as they are (and counted): nothing measured them.
- `cold_start`: the input model writes `sample.num_samples` reasoning paths per problem (rows with a gold
  `answer`). A path is kept when it passes
  (a) the answer check: the verifier accepts its final answer against the gold (the reward's `correct`) and
      that answer is the majority answer of the problem's paths (the most frequent final answer, a unique top;
      answers compare by value, `0.5` = `1/2`), and it was not cut at the length limit;
  (b) the process check: the step verifier (rewards/steps.py) finds no false statement in it, and at least
      `sample.min_steps` checked ones.
  Its quality is `agree x steps x (1 - length_weight x tokens / max_tokens)`: `agree` the share of the
  problem's paths that reach its answer (answer confidence), `steps` the share of those that also pass the
  process check (process confidence), the last term favouring shorter paths; in [0, 1]. The best
  `sample.keep_paths` distinct kept paths per problem become SFT rows (prompt -> path) with their `quality`;
  rows with quality >= `sample.up_sample_quality` are written `sample.up_sample` times, so an sft stage with
  `data_from: <this stage>` sees them more often.

The final answer of a path is the one the verifier read (an entry's `extracted` extra, as rewards.math reports
it), else rewards.math's own extraction. Every path and its checks are written to `paths.jsonl`.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlsys.jobs.rft import attach_gold, has_gold, pass_rate_histogram, suite_gold_index
from rlsys.stages.context import StageContext
from rlsys.stages.io import DATA_FILE, pick_rows, stage_rows, write_jsonl
from rlsys.stages.sampling import sample_and_judge, sample_and_score

log = logging.getLogger(__name__)

PATHS_FILE = "paths.jsonl"
# Pass rates are k-ths: a threshold equal to one (0.75 with k = 4) must count as reached despite float rounding.
_EPS = 1e-9
# Row fields a cold-start SFT row does not carry over from its problem (the problem's own worked answer and hints).
_PROBLEM_ONLY = ("hints", "solution", "response", "messages", "key")


# ----------------------------------------------------------------------------------- sft_pass_filter, pure
def dropped_by_pass_rate(rates: Sequence[float], threshold: float) -> list[bool]:
    """Per row: True when its pass rate is at or above `threshold` (the model already solves it)."""
    return [rate >= threshold - _EPS for rate in rates]


# ----------------------------------------------------------------------------------- cold_start, pure
@dataclass(frozen=True)
class PathFacts:
    """What the checks need to know about one sampled path."""

    answer: str | None  # the final answer as the verifier read it; None = none stated
    gold_ok: bool  # the verifier accepted it against the gold
    truncated: bool  # cut at the length limit
    statements: int  # checked statements (rewards/steps.py)
    false_statements: int
    tokens: int


@dataclass(frozen=True)
class PathVerdict:
    majority_ok: bool  # its answer is the problem's majority answer
    answer_ok: bool  # (a): gold and majority, not truncated
    steps_ok: bool  # (b): no false statement, at least min_steps checked
    agree: float  # share of the problem's paths with its answer
    steps: float  # share of those that pass the process check
    quality: float

    @property
    def kept(self) -> bool:
        return self.answer_ok and self.steps_ok


def answer_key(answer: str | None) -> str | None:
    """The value an answer compares by in the majority vote: an exact number for a plain number, else the
    normalised text (rewards.math_extract); None for no answer."""
    from rewards.math_extract import as_rational, normalise

    if answer is None or not str(answer).strip():
        return None
    text = normalise(str(answer))
    value = as_rational(text)
    return f"={value}" if value is not None else text


def majority_answer(keys: Sequence[str | None]) -> str | None:
    """The most frequent answer among the paths (None never votes); None when there is none or a tie at the top."""
    counts = Counter(k for k in keys if k is not None).most_common(2)
    if not counts or (len(counts) == 2 and counts[0][1] == counts[1][1]):
        return None
    return counts[0][0]


def judge_paths(paths: Sequence[PathFacts], min_steps: int, max_tokens: int, length_weight: float) -> list[PathVerdict]:
    """The answer check, the process check and the quality of each of one problem's paths (module doc)."""
    keys = [answer_key(p.answer) for p in paths]
    majority = majority_answer(keys)
    steps_ok = [p.false_statements == 0 and p.statements >= min_steps for p in paths]
    out = []
    for p, key, ok_steps in zip(paths, keys, steps_ok):
        same = [j for j, other in enumerate(keys) if key is not None and other == key]
        agree = len(same) / len(paths)
        steps = sum(steps_ok[j] for j in same) / len(same) if same else 0.0
        length = 1.0 - length_weight * min(1.0, p.tokens / max(1, max_tokens))
        majority_ok = key is not None and key == majority
        out.append(PathVerdict(majority_ok, majority_ok and p.gold_ok and not p.truncated, ok_steps, agree, steps,
                               round(agree * steps * length, 6)))
    return out


def choose_paths(verdicts: Sequence[PathVerdict], texts: Sequence[str], keep_paths: int) -> list[int]:
    """Indices of the kept paths written as rows: distinct non-empty texts, best quality first (the earlier path
    on ties), at most `keep_paths` (0 = all)."""
    order = sorted((j for j, v in enumerate(verdicts) if v.kept), key=lambda j: (-verdicts[j].quality, j))
    chosen, seen = [], set()
    for j in order:
        text = texts[j].strip()
        if not text or text in seen:
            continue
        seen.add(text)
        chosen.append(j)
    return chosen[:keep_paths] if keep_paths else chosen


def copies(quality: float, up_sample: int, threshold: float) -> int:
    """Times a row is written: `up_sample` in the top quality band (quality >= threshold), else once."""
    return up_sample if quality >= threshold - _EPS else 1


# ----------------------------------------------------------------------------------- stages
def run_sft_pass_filter(ctx: StageContext) -> dict[str, Any]:
    stage, k = ctx.stage, ctx.stage.sample.num_samples
    threshold = stage.sample.drop_pass_rate
    rows = stage_rows(ctx, "sft")
    gold = attach_gold(rows, suite_gold_index(ctx))
    single_turn = [i for i, r in enumerate(rows) if r.get("prompt") and r.get("response") and not r.get("messages")]
    with_gold = [i for i in single_turn if has_gold(rows[i])]
    chosen = [with_gold[i] for i in pick_rows(len(with_gold), stage.sample.max_rows, stage.seed)]
    ok, _, correct = sample_and_judge(ctx, [rows[i] for i in chosen], k)
    n_correct = [sum(c) for c in correct]
    rates = [c / len(flags) for c, flags in zip(n_correct, correct)]
    measured = {chosen[j]: rate for j, rate in zip(ok, rates)}
    drop = {i for i, gone in zip(measured, dropped_by_pass_rate(list(measured.values()), threshold)) if gone}
    kept = [rows[i] | ({"pass_rate": measured[i]} if i in measured else {}) for i in range(len(rows)) if i not in drop]
    hist = pass_rate_histogram(n_correct, k)
    if not kept:
        raise RuntimeError(f"stage {ctx.name}: every row was dropped (pass-rate histogram {hist}); raise "
                           f"stages.{ctx.name}.sample.drop_pass_rate (now {threshold}) or give it more rows")
    write_jsonl(Path(ctx.out_dir) / DATA_FILE, kept)
    dropped_by_task = Counter(rows[i].get("task", "generic") for i in drop)
    summary = {
        "rows": len(rows),
        "kept": len(kept),
        "dropped": len(drop),
        "dropped_share": len(drop) / max(1, len(measured)),
        "dropped_by_task": dict(dropped_by_task),
        "sampled_rows": len(chosen),
        "measured_rows": len(measured),
        "failed_requests": len(chosen) - len(ok),
        "no_gold": len(single_turn) - len(with_gold),
        "multi_turn": len(rows) - len(single_turn),
        "not_sampled": len(with_gold) - len(chosen),
        "samples_per_row": k,
        "drop_pass_rate": threshold,
        "pass_hist": hist,
        "mean_pass_rate": sum(rates) / max(1, len(rates)),
        "gold_sources": dict(gold),
        "data_file": DATA_FILE,  # in the stage's artifact directory
    }
    log.info("sft_pass_filter %s: dropped %d of %d measured rows (pass rate >= %g), kept %d of %d; histogram %s",
             ctx.name, len(drop), len(measured), threshold, len(kept), len(rows), hist)
    return summary


def path_facts(sample: Any, extra: dict) -> PathFacts:
    """One sampled path's facts: the verifier's verdict and answer (its extras), the step verifier's counts."""
    from rewards.math import extract_answer
    from rewards.steps import check_statements

    read = [v for key, v in extra.items() if key.endswith("/extracted") and isinstance(v, str)]
    answer = read[0] if read else extract_answer(sample.text)
    found = [ok for ok, _ in check_statements(sample.text)]
    return PathFacts(answer or None, bool(extra.get("correct")), sample.finish_reason == "length", len(found),
                     found.count(False), len(sample.token_ids))


def cold_start_row(row: dict, text: str, verdict: PathVerdict, path: int, copy: int, n_copies: int) -> dict:
    """The SFT row of one kept path (prompt -> path), or of its `copy`-th up-sampled repeat."""
    out = {key: value for key, value in row.items() if key not in _PROBLEM_ONLY}
    out["id"] = f"{row['id']}-path{path}" + (f"-copy{copy}" if copy else "")
    if row.get("prompt"):
        out["response"] = text
    else:
        out["messages"] = [*row["messages"], {"role": "assistant", "content": text}]
    return out | {"quality": verdict.quality, "agree": verdict.agree, "copies": n_copies}


def run_cold_start(ctx: StageContext) -> dict[str, Any]:
    stage, s = ctx.stage, ctx.stage.sample
    k, max_tokens = s.num_samples, s.max_tokens or ctx.cfg.rollout.max_tokens
    rows = stage_rows(ctx, "rl")
    with_gold = [r for r in rows if r.get("answer")]
    picked = [with_gold[i] for i in pick_rows(len(with_gold), s.max_rows, stage.seed)]
    ok, samples, extras = sample_and_score(ctx, picked, k)
    out_rows: list[dict] = []
    records: list[dict] = []
    counts: Counter = Counter()
    quality_sum = 0.0
    for j, paths, path_extras in zip(ok, samples, extras):
        row = picked[j]
        facts = [path_facts(p, e) for p, e in zip(paths, path_extras)]
        verdicts = judge_paths(facts, s.min_steps, max_tokens, s.length_weight)
        chosen = choose_paths(verdicts, [p.text for p in paths], s.keep_paths)
        counts["problems_with_majority"] += any(v.majority_ok for v in verdicts)
        counts["problems_with_rows"] += bool(chosen)
        for i, (p, f, v) in enumerate(zip(paths, facts, verdicts)):
            counts["paths"] += 1
            counts["truncated"] += f.truncated
            counts["gold_ok"] += f.gold_ok
            counts["majority_ok"] += v.majority_ok
            counts["answer_ok"] += v.answer_ok
            counts["steps_ok"] += v.steps_ok
            counts["kept_paths"] += v.kept
            records.append({"id": row["id"], "path": i, "text": p.text, "answer": f.answer, "gold_ok": f.gold_ok,
                            "truncated": f.truncated, "majority_ok": v.majority_ok, "answer_ok": v.answer_ok,
                            "statements": f.statements, "false_statements": f.false_statements,
                            "steps_ok": v.steps_ok, "kept": v.kept, "written": i in chosen, "tokens": f.tokens,
                            "agree": v.agree, "steps": v.steps, "quality": v.quality})
        for i in chosen:
            n = copies(verdicts[i].quality, s.up_sample, s.up_sample_quality)
            counts["rows"] += 1
            quality_sum += verdicts[i].quality
            counts["up_sampled"] += n > 1
            out_rows += [cold_start_row(row, paths[i].text, verdicts[i], i, c, n) for c in range(n)]
    write_jsonl(Path(ctx.out_dir) / PATHS_FILE, records)
    summary = {
        "problems": len(ok),
        "failed_requests": len(picked) - len(ok),
        "no_gold": len(rows) - len(with_gold),
        "paths_per_problem": k,
        **{key: counts[key] for key in ("paths", "truncated", "gold_ok", "majority_ok", "answer_ok", "steps_ok",
                                        "kept_paths", "problems_with_majority", "problems_with_rows", "rows",
                                        "up_sampled")},
        "rows_in_file": len(out_rows),
        "mean_quality": quality_sum / max(1, counts["rows"]),
        "data_file": DATA_FILE,  # in the stage's artifact directory
        "paths_file": PATHS_FILE,
    }
    if not out_rows:
        checks = {key: summary[key] for key in ("problems", "paths", "gold_ok", "majority_ok", "answer_ok", "steps_ok")}
        raise RuntimeError(f"stage {ctx.name}: no path passed both checks ({checks}); use a stronger input model "
                           f"(stages.{ctx.name}.input), more paths (sample.num_samples) or sample.min_steps = 0")
    write_jsonl(Path(ctx.out_dir) / DATA_FILE, out_rows)
    log.info("cold_start %s: %d of %d paths kept (answer check %d, process check %d); %d rows, %d up-sampled x%d",
             ctx.name, counts["kept_paths"], counts["paths"], counts["answer_ok"], counts["steps_ok"],
             counts["rows"], counts["up_sampled"], s.up_sample)
    return summary

"""Scoring a trained judge: pairwise verdict accuracy, pointwise check accuracy, votes over samples.

A judge row asks for a verdict on a pair (A or B, `label` is the right one); a check row (`task:
judge_check`) asks for a mark per constraint on one response, and a pair counts as right when its chosen
response gets fewer failed marks than its rejected one.
"""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import OmegaConf

from rewards.pairwise_judge import parse_marks, parse_verdict
from rlsys.eval.scoring import greedy_completions
from rlsys.stages.context import StageContext
from rlsys.stages.io import EVAL_FILE, input_data_file, read_jsonl, write_jsonl

log = logging.getLogger(__name__)

CHECK_TASK = "judge_check"
ROLES = ("chosen", "rejected")


def check_accuracy(rows: list[dict], texts: list[str]) -> dict[str, float]:
    """Scores of pointwise check answers `texts` to check rows `rows`: mark accuracy (a missing mark is
    wrong) against the always-"ok" prior, and the pairwise accuracy over each pair's two rows: fewer failed
    marks wins (`check_preference`), a tie counts half; `judge_decided` is the share of pairs without a tie.
    The one-answer case of `voted_check_accuracy`."""
    pair_acc, decided, mark_acc = _check_scores(rows, [[t] for t in texts])
    total = prior = 0
    for row, _ in zip(rows, texts):
        total += len(row["marks"])
        prior += row["marks"].count("ok")
    out = {
        "eval/judge_pair_acc": pair_acc,
        "eval/judge_decided": decided,
        "eval/judge_mark_acc": mark_acc,
        "eval/judge_mark_prior": prior / max(1, total),
    }
    # Per kind of pair when there are several (IF preference pairs vs soft-instruction pairs).
    by_source: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        by_source.setdefault(str(row.get("pair_source") or "").rsplit("/", 1)[-1], []).append(i)
    if len(by_source) > 1:
        for kind, idx in sorted(by_source.items()):
            kind_acc, _, kind_marks = _check_scores([rows[i] for i in idx], [[texts[i]] for i in idx])
            out |= {f"eval/judge_pair_acc_{kind}": kind_acc, f"eval/judge_mark_acc_{kind}": kind_marks}
    return out


def vote_points(rows: list[dict], samples: list[list[str]]) -> dict[str, float]:
    """Per pair id, from K sampled check answers per row: 1 if the chosen response's mean failed-mark count
    (over its K answers; a missing mark is not a failure) is lower than the rejected one's, 0.5 if equal."""
    fails: dict[str, dict[str, float]] = {}
    for row, texts in zip(rows, samples):
        if not texts:
            raise ValueError(f"check row {row['id']!r} got no sampled answer")
        counts = [parse_marks(t, row["tags"]).count("no") for t in texts]
        fails.setdefault(row["pair_id"], {})[row["role"]] = sum(counts) / len(counts)
    return {pid: 0.5 if f["chosen"] == f["rejected"] else float(f["chosen"] < f["rejected"])
            for pid, f in fails.items() if set(f) == set(ROLES)}


def _mark_tallies(rows: list[dict], samples: list[list[str]]) -> dict[str, list[int]]:
    """Per pair id: [marks right, marks] over both rows' sampled answers (a missing mark is wrong)."""
    tallies: dict[str, list[int]] = {}
    for row, texts in zip(rows, samples):
        tally = tallies.setdefault(row["pair_id"], [0, 0])
        for text in texts:
            tally[0] += sum(g == m for g, m in zip(parse_marks(text, row["tags"]), row["marks"]))
            tally[1] += len(row["marks"])
    return tallies


def pair_mark_accuracy(rows: list[dict], samples: list[list[str]]) -> dict[str, float]:
    """Per pair id: the share of marks right over both rows' sampled answers (a missing mark is wrong)."""
    return {pid: right / total for pid, (right, total) in _mark_tallies(rows, samples).items() if total}


def _check_scores(rows: list[dict], samples: list[list[str]]) -> tuple[float, float, float]:
    """Pair accuracy (`vote_points`, a tie half), share of pairs decided, and mark accuracy over all answers."""
    points = list(vote_points(rows, samples).values())
    tallies = list(_mark_tallies(rows, samples).values())
    n = max(1, len(points))
    return (sum(points) / n, sum(p != 0.5 for p in points) / n,
            sum(r for r, _ in tallies) / max(1, sum(t for _, t in tallies)))


def voted_check_accuracy(rows: list[dict], samples: list[list[str]]) -> dict[str, float]:
    """`check_accuracy` by self-consistency over K sampled answers per row (`vote_points`): a pair ties
    only when both mean counts are equal. `judge_vote_mark_acc` is the mark accuracy of single samples."""
    pair_acc, decided, mark_acc = _check_scores(rows, samples)
    return {"eval/judge_vote_pair_acc": pair_acc, "eval/judge_vote_decided": decided,
            "eval/judge_vote_mark_acc": mark_acc}


def judge_accuracy(rows: list[dict], texts: list[str]) -> dict[str, float]:
    """Pairwise accuracy of judge answers `texts` to judge rows `rows` (see the module doc)."""
    verdicts = [parse_verdict(t) for t in texts]
    right = [v == r["label"] for v, r in zip(verdicts, rows)]
    parsed = [v for v in verdicts if v is not None]
    by_pair: dict[str, list[bool]] = {}
    for r, ok in zip(rows, right):
        by_pair.setdefault(r["pair_id"], []).append(ok)
    n = max(1, len(rows))
    out = {
        "eval/judge_pair_acc": sum(right) / n,
        "eval/judge_pair_consistent": sum(all(v) for v in by_pair.values()) / max(1, len(by_pair)),
        "eval/judge_parse_rate": len(parsed) / n,
        "eval/judge_picked_a": sum(v == "A" for v in parsed) / max(1, len(parsed)),
    }
    # Per kind of pair (math / ifeval), from the pair's data source ("rlsys/math" -> "math").
    by_source: dict[str, list[bool]] = {}
    for r, ok in zip(rows, right):
        if r.get("pair_source"):
            by_source.setdefault(str(r["pair_source"]).rsplit("/", 1)[-1], []).append(ok)
    out |= {f"eval/judge_pair_acc_{kind}": sum(v) / len(v) for kind, v in sorted(by_source.items())}
    return out


def evaluate_judge(ctx: StageContext, model_dir: str) -> dict[str, float]:
    """Greedy judge answers on the held-out rows of the `data_from` stage, scored."""
    rows = read_jsonl(input_data_file(ctx, EVAL_FILE))
    if not rows:
        return {}
    # A judge that solves first writes a whole solution before its verdict.
    max_tokens = ctx.stage.sample.max_tokens or ctx.cfg.rollout.max_tokens
    cfg = OmegaConf.merge(ctx.cfg, {"eval": {"max_tokens": max_tokens}})
    texts = greedy_completions(cfg, model_dir, rows)
    out = check_accuracy(rows, texts) if rows[0].get("task") == CHECK_TASK else judge_accuracy(rows, texts)
    # The judgments themselves, next to the model, for reading what the judge does.
    write_jsonl(Path(model_dir).parent / "judge_eval.jsonl",
                [{"id": r["id"], "label": r.get("label", r["response"]), "output": t} for r, t in zip(rows, texts)])
    log.info("judge eval %s: %s", ctx.name, {k: round(v, 3) for k, v in out.items()})
    return out

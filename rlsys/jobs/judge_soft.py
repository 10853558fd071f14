"""Soft-instruction check rows for the pointwise judge (`judge_data` with `sample.soft_checks`).

From alignment rows (rlsys/data/tasks/ifeval_soft.py): the judge reads the request, one response and a
rubric line per soft instruction (rewards/alignment.py `soft_check_prompt`, the prompt the alignment
reward sends), and its target marks each one ok / no. Training rows: each row's response (every mark ok)
and its broken variants (one mark no each). Held-out rows come as pairs - the response (chosen) against
one broken variant (rejected) - so the judge stages report soft pair accuracy beside the hard one.
"""

from __future__ import annotations

from rewards.alignment import soft_check_prompt, soft_check_target, soft_tags
from rlsys.data.tasks.ifeval_soft import DATA_SOURCE as ALIGN_SOURCE
from rlsys.eval.judge import CHECK_TASK

JUDGE_SOURCE = "rlsys/judge"


def _check_row(row: dict, pair_id: str, role: str, text: str, marks: list[str]) -> dict:
    soft = row["soft_constraints"]
    return {"id": f"check-{pair_id}-{role}", "data_source": JUDGE_SOURCE, "task": CHECK_TASK, "pair_id": pair_id,
            "pair_source": ALIGN_SOURCE, "role": role, "prompt": soft_check_prompt(row["prompt"], text, soft),
            "response": soft_check_target(soft, marks), "tags": soft_tags(soft), "marks": marks}


def soft_check_rows(rows: list[dict], pairs: bool) -> list[dict]:
    """Check rows of alignment `rows`: with `pairs`, (response, variant) pairs for held-out scoring; else
    each response once plus every variant, for training. Rows without soft instructions give none."""
    out = []
    for r in rows:
        soft = r.get("soft_constraints") or []
        variants = r.get("soft_variants") or []
        if not soft or not variants:
            continue
        if not pairs:
            out.append(_check_row(r, f"soft-{r['id']}", "chosen", r["response"], ["ok"] * len(soft)))
        for i, v in enumerate(variants):
            pair_id = f"soft-{r['id']}-{i}"
            if pairs:
                out.append(_check_row(r, pair_id, "chosen", r["response"], ["ok"] * len(soft)))
            out.append(_check_row(r, pair_id, "rejected", v["response"], v["marks"]))
    return out

"""The table (and curves) a pipeline run ends with: one row per stage, in the order they finished.

Columns: held-out greedy math accuracy per tier and overall, IF pass rates (all constraints / share
of constraints), preference accuracy where the stage measures one (MPO's implicit reward, the scalar
RM, the pairwise judge), whether the artifact was trained now or reused, the wall time of this run
and of the artifact's build, and what a data stage did. Written to the run directory as
`pipeline_table.md` / `pipeline_table.json` (plus `pipeline.json`, eval metrics by stage), with
`pipeline_curves.png` (metrics across stages), `rl_curves.png` (reward and accuracy per RL step) and
`constraint_rates.md` (per-constraint IF pass rates at the start and end of each RL stage that logs them).
Visual accuracy columns (`eval.visual`) appear when a stage measured them. `heldout_table` is the per-tier
(and per visual task) before/after table an RL stage ends with.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

EVAL_COLUMNS = (
    ("math T1", "eval/math_acc_tier1"),
    ("math T2", "eval/math_acc_tier2"),
    ("math T3", "eval/math_acc_tier3"),
    ("math", "eval/math_acc"),
    ("IF all", "eval/ifeval_all_pass"),
    ("IF share", "eval/ifeval_constraint_pass"),
    ("format", "eval/format_pass"),
)
# Shown only when some stage has them (eval.visual).
VL_COLUMNS = (
    ("vl", "eval/vl_acc"),
    ("vl trap", "eval/vl_trap_acc"),
)
PREF_KEYS = ("eval/pref_acc", "eval/rm_pair_acc", "eval/judge_pair_acc")
RL_KINDS = ("rl", "judge_rl")
CONSTRAINT_PREFIX = "reward/ifeval/constraint/"


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def stage_notes(kind: str, summary: dict[str, Any]) -> str:
    """One line on what a stage did beyond its evaluation."""
    if kind == "rft_sample":
        return (f"replaced {summary.get('replaced', 0)}/{summary.get('sampled_rows', 0)} sampled rows "
                f"{summary.get('replaced_by_task', {})}, {summary.get('replaced_on_tie_break', 0)} on the tie-break")
    if kind == "pass_filter":
        return f"kept {summary.get('kept', 0)}/{summary.get('problems', 0)}; pass-rate histogram {summary.get('pass_hist', {})}"
    if kind == "pref_sample":
        return (f"{summary.get('pairs', 0)} pairs from {summary.get('problems', 0)} problems; "
                f"correct-count histogram {summary.get('correct_hist', {})}")
    if kind == "judge_data":
        return f"{summary.get('rows', 0)} judge rows, {summary.get('eval_pairs', 0)} held-out pairs"
    parts = []
    if kind in RL_KINDS and "steps" in summary:
        parts.append(f"{summary['steps']} steps")
        for label, key in (("math", "eval/math_acc"), ("vl", "eval/vl_acc")):
            before = summary.get("eval_before", {}).get(key)
            if before is not None:
                parts.append(f"{label} before {before:.3f}")
        rescued = summary.get("filter_totals", {}).get("filter/rescued")
        if rescued:
            parts.append(f"{int(rescued)} groups rescued by hints")
    ev = summary.get("eval", {})
    if "eval/pref_acc_before" in ev:
        parts.append(f"pref acc before {ev['eval/pref_acc_before']:.3f}")
    if "eval/pref_likelihood_acc" in ev:
        parts.append(f"likelihood pref acc {ev['eval/pref_likelihood_acc_before']:.3f} -> {ev['eval/pref_likelihood_acc']:.3f}")
    if "eval/judge_decided" in ev:
        parts.append(f"pointwise checks: pairs decided {ev['eval/judge_decided']:.3f}, marks right "
                     f"{ev['eval/judge_mark_acc']:.3f} (all ok: {ev['eval/judge_mark_prior']:.3f})")
    elif "eval/judge_pair_acc" in ev:
        parts.append(f"judge consistent {ev.get('eval/judge_pair_consistent', 0):.3f}, "
                     f"parsed {ev.get('eval/judge_parse_rate', 0):.3f}, picked A {ev.get('eval/judge_picked_a', 0):.3f}")
    return "; ".join(parts)


def table_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for name, r in results.items():
        ev = r.summary.get("eval", {})
        pref = next((ev[k] for k in PREF_KEYS if k in ev), None)
        rows.append({
            "stage": name, "kind": r.kind, "status": "reused" if r.reused else "trained",
            "wall_s": round(r.wall_s, 1), "build_wall_s": round(float(r.summary.get("wall_s", r.wall_s)), 1),
            **{key: ev.get(key) for _, key in (*EVAL_COLUMNS, *VL_COLUMNS)}, "pref_acc": pref,
            "notes": stage_notes(r.kind, r.summary), "path": r.path,
        })
    return rows


def _columns(rows: list[dict[str, Any]]) -> tuple[tuple[str, str], ...]:
    """The eval columns of the table: the text ones, and the visual ones when some stage has them."""
    return (*EVAL_COLUMNS, *(c for c in VL_COLUMNS if any(r.get(c[1]) is not None for r in rows)))


def markdown_table(rows: list[dict[str, Any]], run_wall_s: float) -> str:
    columns = _columns(rows)
    head = ["stage", "kind", "status", "wall s (run)", "wall s (build)", *(c for c, _ in columns), "pref acc", "notes"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        cells = [row["stage"], row["kind"], row["status"], f"{row['wall_s']:.0f}", f"{row['build_wall_s']:.0f}",
                 *(_fmt(row.get(key)) for _, key in columns), _fmt(row["pref_acc"]), row["notes"]]
        lines.append("| " + " | ".join(cells) + " |")
    build_total = sum(r["build_wall_s"] for r in rows)
    return (
        f"Pipeline wall time this run: {run_wall_s:.0f} s; all stages' build time (reused included): "
        f"{build_total:.0f} s.\nHeld-out greedy evaluation: math accuracy per tier, IF pass rate (all constraints "
        "/ share of constraints), preference accuracy (MPO implicit reward, scalar RM, or pairwise judge)"
        + (", visual accuracy (held-out picture questions; trap: things not in the picture)" if len(columns) > len(EVAL_COLUMNS)
           else "") + ".\n\n"
        + "\n".join(lines) + "\n"
    )


def heldout_rows(before: dict[str, float], after: dict[str, float]) -> list[dict[str, Any]]:
    """Before/after rows of the held-out accuracies: math per tier and overall, then (eval.visual) visual
    accuracy per tier, per task, overall and on the trap questions, then (eval.video) video accuracy per tier,
    per task and overall. A metric missing on one side is None."""
    keys = set(before) | set(after)

    def pick(prefix: str) -> list[str]:
        return sorted(k for k in keys if k.startswith(prefix))

    vl_tiers, video_tiers = pick("eval/vl_acc_tier"), pick("eval/video_acc_tier")
    order = [*pick("eval/math_acc_tier"), "eval/math_acc", *vl_tiers,
             *(k for k in pick("eval/vl_acc_") if k not in vl_tiers), "eval/vl_acc", "eval/vl_trap_acc",
             *video_tiers, *(k for k in pick("eval/video_acc_") if k not in video_tiers), "eval/video_acc"]
    rows = []
    for key in (k for k in order if k in keys):
        a, b = before.get(key), after.get(key)
        rows.append({"metric": key.removeprefix("eval/"), "before": a, "after": b,
                     "change": b - a if a is not None and b is not None else None})
    return rows


def heldout_table(before: dict[str, float], after: dict[str, float]) -> str:
    """`heldout_rows` as markdown."""
    lines = ["Held-out greedy accuracy before and after the stage, per tier (and per visual / video task).", "",
             "| metric | before | after | change |", "|---|---|---|---|"]
    for row in heldout_rows(before, after):
        change = "-" if row["change"] is None else f"{row['change']:+.3f}"
        lines.append(f"| {row['metric']} | {_fmt(row['before'])} | {_fmt(row['after'])} | {change} |")
    return "\n".join(lines) + "\n"


def _metrics(stage_dir: str) -> list[dict[str, Any]]:
    from rlsys.tracking.metrics import read_metrics

    path = Path(stage_dir) / "metrics.jsonl"
    return read_metrics(path) if path.is_file() else []


def constraint_rates(records: list[dict[str, Any]], window: int = 3) -> dict[str, tuple[float, float]]:
    """Per IF constraint type: mean pass rate over the first and the last `window` logged RL steps."""
    steps = [r for r in records if any(k.startswith(CONSTRAINT_PREFIX) for k in r)]
    out: dict[str, tuple[float, float]] = {}
    keys = sorted({k for r in steps for k in r if k.startswith(CONSTRAINT_PREFIX)})
    for key in keys:
        values = [float(r[key]) for r in steps if isinstance(r.get(key), (int, float))]
        if values:
            w = min(window, len(values))
            out[key.removeprefix(CONSTRAINT_PREFIX)] = (sum(values[:w]) / w, sum(values[-w:]) / w)
    return out


def _plot(rows: list[dict[str, Any]], results: dict[str, Any], out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    columns = _columns(rows)
    evaluated = [r for r in rows if any(r.get(key) is not None for _, key in columns) or r["pref_acc"] is not None]
    if evaluated:
        fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(evaluated)), 4))
        xs = range(len(evaluated))
        for label, key in (*columns, ("pref acc", "pref_acc")):
            ys = [r[key] if r.get(key) is not None else float("nan") for r in evaluated]
            if any(not math.isnan(y) for y in ys):
                ax.plot(xs, ys, marker="o", label=label)
        ax.set_xticks(list(xs), [r["stage"] for r in evaluated], rotation=30, ha="right")
        ax.set_ylabel("held-out score")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out / "pipeline_curves.png", dpi=80)
        plt.close(fig)
        written.append(out / "pipeline_curves.png")
    rl_stages = [(n, _metrics(r.path)) for n, r in results.items() if r.kind in RL_KINDS]
    rl_stages = [(n, recs) for n, recs in rl_stages if any("rollout/reward_mean" in x for x in recs)]
    if rl_stages:
        fig, axes = plt.subplots(2, 1, figsize=(7, 5), squeeze=False)
        for name, recs in rl_stages:
            for ax, key in zip(axes[:, 0], ("rollout/reward_mean", "rollout/accuracy")):
                pts = [(x["step"], x[key]) for x in recs if key in x and "step" in x]
                if pts:
                    ax.plot(*zip(*pts), marker=".", label=name)
                    ax.set_title(key, fontsize=9)
        for ax in axes[:, 0]:
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
        axes[-1, 0].set_xlabel("RL step")
        fig.tight_layout()
        fig.savefig(out / "rl_curves.png", dpi=80)
        plt.close(fig)
        written.append(out / "rl_curves.png")
    return written


def write_pipeline_outputs(cfg: Any, results: dict[str, Any], run_wall_s: float) -> Path | None:
    """Write the table, its json, the constraint rates and the curves into the run directory."""
    if not cfg.run_dir:
        return None
    out = Path(cfg.run_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = table_rows(results)
    text = markdown_table(rows, run_wall_s)
    (out / "pipeline_table.md").write_text(text)
    (out / "pipeline_table.json").write_text(json.dumps(
        {"run_wall_s": run_wall_s, "pipeline": list(cfg.pipeline), "stages": rows}, indent=1, default=str))
    legacy = {n: {"reused": r.reused, "wall_s": round(r.wall_s, 1), **r.summary.get("eval", {})} for n, r in results.items()}
    (out / "pipeline.json").write_text(json.dumps(legacy, indent=2, default=str))
    rates = {n: constraint_rates(_metrics(r.path)) for n, r in results.items() if r.kind in RL_KINDS}
    rates = {n: v for n, v in rates.items() if v}
    if rates:
        lines = ["Per-constraint IF pass rate on training rollouts: mean of the first / last 3 RL steps.", ""]
        for name, per_type in rates.items():
            lines += [f"## {name}", "", "| constraint | start | end |", "|---|---|---|"]
            lines += [f"| {t} | {a:.3f} | {b:.3f} |" for t, (a, b) in per_type.items()] + [""]
        (out / "constraint_rates.md").write_text("\n".join(lines))
    if cfg.logging.plots:
        try:
            _plot(rows, results, out)
        except Exception as exc:  # a plotting problem must not hide the table or a stage's error
            log.warning("pipeline plots: %s", exc)
    log.info("pipeline table (%s):\n%s", out / "pipeline_table.md", text)
    return out / "pipeline_table.md"

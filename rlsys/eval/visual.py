"""Held-out visual evaluation (`eval.visual`): greedy answers to picture questions, scored by the math verifier.

The rows are the visual suite's `vl_eval` split (spread over its tasks) and its `vl_trap_eval` split (counts of
something not in the picture, answer 0), each capped at `eval.max_visual`; with `data.eval_files` they are
those files' rows that carry `images` (rows of task "trap" are the trap rows). Metrics: `eval/vl_acc`,
`eval/vl_acc_tier{t}`, `eval/vl_acc_{task}` and `eval/vl_trap_acc`. `eval.drop_images` scores the same rows
with their images removed (no placeholder, no image): the blind baseline a model must beat to show it reads
the pictures.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from rlsys.config.validate import ConfigError

# Keys of `eval_rows(cfg)` holding the visual rows, in the order `eval_prompts` lists them.
VISUAL_PARTS = ("visual", "visual_trap")
TRAP_TASK = "trap"


def visual_eval_rows(cfg: Any, user_rows: list[dict] | None = None) -> dict[str, list[dict]]:
    """The visual held-out rows by part (empty when `eval.visual` is false). `user_rows` are the rows of
    `data.eval_files` when given; else the visual suite (`data.visual`) is built or reused."""
    ev = cfg.eval
    if not ev.visual:
        if ev.drop_images:
            raise ConfigError("config key 'eval.drop_images' = true needs 'eval.visual' = true (it scores the "
                              "visual rows blind)")
        return {}
    if user_rows is not None:
        pictured = [r for r in user_rows if r.get("images") and r.get("answer") is not None]
        if not pictured:
            raise ConfigError("config key 'eval.visual' = true, but no row of data.eval_files has `images` and an "
                              "`answer`; add such rows or set eval.visual=false")
        tasks = [r for r in pictured if r.get("task") != TRAP_TASK]
        traps = [r for r in pictured if r.get("task") == TRAP_TASK]
    else:
        from rlsys.data.embedded import ensure_visual_suite
        from rlsys.data.loading import load_rows

        files = ensure_visual_suite(cfg.artifacts_dir, cfg.data.visual)
        tasks, _ = load_rows([files["vl_eval"]], "rl")
        traps, _ = load_rows([files["vl_trap_eval"]], "rl")
    out = {"visual": spread_tasks(tasks, ev.max_visual), "visual_trap": traps[: ev.max_visual]}
    if ev.drop_images:
        out = {part: [without_images(r) for r in rows] for part, rows in out.items()}
    return out


def spread_tasks(rows: list[dict], limit: int) -> list[dict]:
    """Up to `limit` rows taken in turn from each task (tasks in name order), so every task is represented."""
    by_task: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        by_task[str(r.get("task", ""))].append(r)
    queues = [by_task[t] for t in sorted(by_task)]
    out: list[dict] = []
    depth = 0
    while len(out) < limit and any(depth < len(q) for q in queues):
        out += [q[depth] for q in queues if depth < len(q)][: limit - len(out)]
        depth += 1
    return out


def without_images(row: dict) -> dict:
    """The row as a text prompt: no `images`, so no placeholder and no image is sent."""
    return {k: v for k, v in row.items() if k != "images"}


def check_visual_model(cfg: Any, model_path: str) -> None:
    """`eval.visual` sends images and `eval.video` videos, which a text-only model cannot take (images unless
    `eval.drop_images`)."""
    from rlsys.rollout.worker import vision_language_config

    if getattr(cfg.eval, "video", False) and vision_language_config(model_path) is None:
        raise ConfigError(f"config key 'eval.video' = true needs a vision-language model (a vision_config in "
                          f"config.json), but {model_path} is text-only; set eval.video=false")
    if cfg.eval.visual and not cfg.eval.drop_images and vision_language_config(model_path) is None:
        raise ConfigError(
            f"config key 'eval.visual' = true needs a vision-language model (a vision_config in config.json), but "
            f"{model_path} is text-only; set eval.visual=false, or eval.drop_images=true to score the visual "
            "rows without their images"
        )


def score_visual(rows: list[dict], texts: list[str], trap_rows: list[dict], trap_texts: list[str],
                 blind: bool = False) -> dict[str, float]:
    """Accuracy of the answers to the visual rows: overall, per tier and per task; and on the trap rows.
    `blind` adds `eval/vl_blind` = 1 (the rows were answered without their images)."""
    out: dict[str, list[float]] = defaultdict(list)
    for row, ok in zip(rows, visual_hits(rows, texts)):
        out["eval/vl_acc"].append(ok)
        out[f"eval/vl_acc_{row.get('task', 'unknown')}"].append(ok)
        if row.get("tier") is not None:
            out[f"eval/vl_acc_tier{row['tier']}"].append(ok)
    out["eval/vl_trap_acc"] += visual_hits(trap_rows, trap_texts)
    metrics = {k: sum(v) / len(v) for k, v in sorted(out.items()) if v}
    return metrics | ({"eval/vl_blind": 1.0} if blind and metrics else {})


def visual_hits(rows: list[dict], texts: list[str]) -> list[float]:
    """1.0 where the math verifier accepts the answer to a visual row, per row."""
    from rewards.math import math_reward

    if len(rows) != len(texts):
        raise ValueError(f"{len(texts)} answers for {len(rows)} visual rows")
    return [float(math_reward(row["prompt"], text, answer=row["answer"])["score"] >= 0.5)
            for row, text in zip(rows, texts)]

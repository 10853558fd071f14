"""Held-out video evaluation (`eval.video`): greedy answers to video questions, scored by the math verifier.

The rows are the video suite's `video_eval` split (spread over its tasks, capped at `eval.max_video`); with
`data.eval_files` they are those files' rows that carry `videos` and an `answer`. Each row's frames reach the
model as the training rows' do (`data.video_sampling`: every frame, or SlowFast slow + fast streams).
Metrics: `eval/video_acc`, `eval/video_acc_tier{t}` and `eval/video_acc_{task}`.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from rlsys.config.validate import ConfigError
from rlsys.eval.visual import spread_tasks, visual_hits

# Keys of `eval_rows(cfg)` holding the video rows, in the order `eval_prompts` lists them.
VIDEO_PARTS = ("video",)


def video_eval_rows(cfg: Any, user_rows: list[dict] | None = None) -> dict[str, list[dict]]:
    """The video held-out rows (empty when `eval.video` is false). `user_rows` are the rows of
    `data.eval_files` when given; else the video suite (`data.video`) is built or reused."""
    if not cfg.eval.video:
        return {}
    if user_rows is not None:
        rows = [r for r in user_rows if r.get("videos") and r.get("answer") is not None]
        if not rows:
            raise ConfigError("config key 'eval.video' = true, but no row of data.eval_files has `videos` and an "
                              "`answer`; add such rows or set eval.video=false")
    else:
        from rlsys.data.embedded import ensure_video_suite
        from rlsys.data.loading import load_rows

        rows, _ = load_rows([ensure_video_suite(cfg.artifacts_dir, cfg.data.video)["video_eval"]], "rl")
    return {"video": spread_tasks(rows, cfg.eval.max_video)}


def video_identity_settings(cfg: Any) -> dict[str, Any]:
    """What, besides `eval.video`, decides a stage's video evaluation: the suite and how frames are sent."""
    from rlsys.data.tasks.video.suite import VideoSuiteSpec, video_identity

    sampling = str(cfg.data.get("video_sampling", "uniform"))
    out = {"video_suite": video_identity(VideoSuiteSpec.from_config(cfg.data.video)), "video_sampling": sampling}
    return out | ({"slowfast": dict(cfg.data.slowfast)} if sampling == "slowfast" else {})


def score_video(rows: list[dict], texts: list[str]) -> dict[str, float]:
    """Accuracy of the answers to the video rows: overall, per tier and per task."""
    out: dict[str, list[float]] = defaultdict(list)
    for row, ok in zip(rows, visual_hits(rows, texts)):
        out["eval/video_acc"].append(ok)
        out[f"eval/video_acc_{row.get('task', 'unknown')}"].append(ok)
        if row.get("tier") is not None:
            out[f"eval/video_acc_tier{row['tier']}"].append(ok)
    return {k: sum(v) / len(v) for k, v in sorted(out.items()) if v}

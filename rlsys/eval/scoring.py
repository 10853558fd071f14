"""Held-out evaluation: greedy math accuracy per tier, IF pass rate and format adherence through a vLLM actor;
with `eval.visual`, accuracy on held-out picture questions too (rlsys/eval/visual.py)."""

from __future__ import annotations

import logging
import math
import statistics
from collections import defaultdict
from typing import Any

from rlsys.data.encode import encode_prompt, encode_vl_prompt
from rlsys.data.videos import RowVideoItems
from rlsys.eval.video import VIDEO_PARTS, score_video, video_eval_rows
from rlsys.eval.visual import VISUAL_PARTS, check_visual_model, score_visual, visual_eval_rows
from rlsys.rollout.types import GroupRequest
from rlsys.stages.builders import build_rollout_group

log = logging.getLogger(__name__)


def eval_rows(cfg: Any) -> dict[str, list[dict]]:
    """Held-out rows: the user's eval files, else the suite's math/IF/format eval splits (math and IF
    capped; the format split is small and taken whole); with `eval.visual` also the visual rows
    (`visual_eval_rows`), with `eval.video` the video rows (`video_eval_rows`). Rows of the user's files that
    carry `images` / `videos` are only scored by `eval.visual` / `eval.video`."""
    from rlsys.data.loading import load_rows

    chains: list[dict] = []
    if cfg.data.eval_files:
        loaded, _ = load_rows(list(cfg.data.eval_files), "rl", cfg.data.on_bad_row)
        rows = [r for r in loaded if not r.get("images") and not r.get("videos")]
        if len(rows) < len(loaded) and not (cfg.eval.visual or cfg.eval.video):
            log.warning("data.eval_files: %d rows with images or videos are not scored (set eval.visual=true / "
                        "eval.video=true)", len(loaded) - len(rows))
        visual = visual_eval_rows(cfg, loaded) | video_eval_rows(cfg, loaded)
        math_rows = [r for r in rows if r.get("answer") is not None]
        if_rows = [r for r in rows if r.get("constraints")]
        format_rows = [r for r in rows if r.get("format") and r.get("answer") is None and not r.get("constraints")]
    else:
        from rlsys.data.embedded import ensure_task_suite

        files = ensure_task_suite(cfg.artifacts_dir, cfg.data.suite)
        math_rows, _ = load_rows(files["math_eval"], "rl")
        if_rows, _ = load_rows(files["ifeval_eval"], "rl")
        format_rows, _ = load_rows(files["format_eval"], "rl") if "format_eval" in files else ([], {})
        visual = visual_eval_rows(cfg) | video_eval_rows(cfg)
        if cfg.eval.max_chain:
            # Tier 4 on top of the spread tiers 1-3, so turning it on leaves their rows as they were.
            chains = load_rows(files["math_chain_eval"], "rl")[0][: cfg.eval.max_chain]
    return {"math": _spread(math_rows, cfg.eval.max_math) + chains, "ifeval": if_rows[: cfg.eval.max_ifeval],
            "format": format_rows} | visual


def eval_prompts(rows: dict[str, list[dict]]) -> list[dict]:
    """All held-out rows in the order `score_eval` expects their answers."""
    return (rows["math"] + rows["ifeval"] + rows.get("format", [])
            + [r for part in (*VISUAL_PARTS, *VIDEO_PARTS) for r in rows.get(part, [])])


def score_eval(rows: dict[str, list[dict]], texts: list[str]) -> dict[str, float]:
    """Math, IF, format (and visual) scores of `texts`, the answers to `eval_prompts(rows)`."""
    n_math, n_if, n_format = len(rows["math"]), len(rows["ifeval"]), len(rows.get("format", []))
    out = score_math(rows["math"], texts[:n_math]) | score_ifeval(rows["ifeval"], texts[n_math : n_math + n_if])
    out |= score_format(rows.get("format", []), texts[n_math + n_if : n_math + n_if + n_format])
    # How long the greedy answers are: length drift shows here before accuracy moves.
    out["eval/answer_chars"] = sum(map(len, texts)) / max(1, len(texts))
    visual, trap, video = rows.get("visual", []), rows.get("visual_trap", []), rows.get("video", [])
    start = n_math + n_if + n_format
    if visual or trap:
        # Visual rows always carry images, unless `eval.drop_images` took them away.
        blind = not any(r.get("images") for r in visual + trap)
        out |= score_visual(visual, texts[start : start + len(visual)], trap,
                            texts[start + len(visual) : start + len(visual) + len(trap)], blind)
    if video:
        out |= score_video(video, texts[start + len(visual) + len(trap) :])
    return out


def _spread(rows: list[dict], limit: int) -> list[dict]:
    """Up to `limit` rows with the tiers equally represented."""
    by_tier: dict[Any, list[dict]] = defaultdict(list)
    for r in rows:
        by_tier[r.get("tier")].append(r)
    per = max(1, limit // max(1, len(by_tier)))
    return [r for tier in sorted(by_tier, key=str) for r in by_tier[tier][:per]]


def math_hits(rows: list[dict], completions: list[str]) -> list[float]:
    """1.0 where the verifier accepts the answer, per row."""
    from rewards.math import math_reward

    return [float(math_reward(row["prompt"], text, answer=row["answer"])["score"] >= 0.5)
            for row, text in zip(rows, completions)]


def ifeval_checks(rows: list[dict], completions: list[str]) -> list[list[bool]]:
    """Per row: pass/fail of each of its constraints, in the row's order."""
    from rewards.ifeval import check_constraints

    return [check_constraints(text, row["constraints"], row["prompt"]) for row, text in zip(rows, completions)]


def ifeval_scores(passed: list[list[bool]]) -> tuple[list[float], list[float]]:
    """Per row: the share of its constraints met, and 1.0 where all of them are."""
    return [sum(p) / len(p) for p in passed], [float(all(p)) for p in passed]


def ifeval_hits(rows: list[dict], completions: list[str]) -> tuple[list[float], list[float]]:
    """Per row: the share of its constraints met, and 1.0 where all of them are."""
    return ifeval_scores(ifeval_checks(rows, completions))


def format_hits(rows: list[dict], completions: list[str]) -> list[float]:
    """1.0 where the answer passes its row's format checker (JSON / markdown / code / think tags)."""
    from rewards.format import format_reward

    return [float(format_reward(row["prompt"], text, mode="auto", format=row.get("format"))["score"] >= 0.5)
            for row, text in zip(rows, completions)]


def score_math(rows: list[dict], completions: list[str]) -> dict[str, float]:
    hits: dict[str, list[float]] = defaultdict(list)
    for row, ok in zip(rows, math_hits(rows, completions)):
        hits[f"eval/math_acc_tier{row.get('tier', 0)}"].append(ok)
        hits["eval/math_acc"].append(ok)
    return {k: sum(v) / len(v) for k, v in sorted(hits.items())}


def score_ifeval(rows: list[dict], completions: list[str]) -> dict[str, float]:
    if not rows:
        return {}
    share, all_pass = ifeval_hits(rows, completions)
    return {"eval/ifeval_constraint_pass": sum(share) / len(share), "eval/ifeval_all_pass": sum(all_pass) / len(all_pass)}


def score_format(rows: list[dict], completions: list[str]) -> dict[str, float]:
    """Share of format rows whose answer passes their checker."""
    if not rows:
        return {}
    ok = format_hits(rows, completions)
    return {"eval/format_pass": sum(ok) / len(ok)}


def greedy_texts(cfg: Any, tokenizer: Any, rows: list[dict], generate: Any) -> list[str]:
    """Greedy answers to `rows` through `generate(requests) -> results` (a pool or one actor)."""
    return [texts[0] if texts else "" for texts in sampled_texts(cfg, tokenizer, rows, generate, n=1, temperature=0.0)]


def sampled_texts(cfg: Any, tokenizer: Any, rows: list[dict], generate: Any, n: int, temperature: float,
                  seed: int | None = None) -> list[list[str]]:
    """`n` answers per row (seeded, so evaluations of different policies see the same noise). A row with
    `images` is asked through its VL prompt (one placeholder per image) with its images sent along; one with
    `videos` with its video items (`data.video_sampling`, as the training rows are sent)."""
    system = cfg.data.system_prompt
    items_of = (RowVideoItems.from_config(cfg.data, tokenizer.name_or_path) if any(r.get("videos") for r in rows)
                else None)
    requests = []
    for i, row in enumerate(rows):
        videos = items_of(row) if items_of is not None and row.get("videos") else []
        vl = row.get("images") or videos
        requests.append(GroupRequest(
            f"eval-{i}",
            prompt_token_ids=(encode_vl_prompt(tokenizer, row, system, None, len(videos)) if vl
                              else encode_prompt(tokenizer, row, system)),
            n=n,
            temperature=temperature,
            max_tokens=cfg.eval.max_tokens,
            seed=None if seed is None else seed + i,
            images=list(row.get("images") or []),
            videos=videos,
        ))
    results = generate(requests)
    failed = [r for r in results if not r.ok]
    if failed:  # scored as wrong answers; said here so a broken input does not pass for a weak model
        log.warning("%d of %d evaluation requests failed and count as wrong answers; first: %s: %s", len(failed),
                    len(results), failed[0].request_id, failed[0].error)
    return [[s.text for s in r.samples] if r.ok else [] for r in results]


def score_math_sampled(rows: list[dict], texts: list[list[str]]) -> dict[str, float]:
    """Mean accuracy over each row's samples (avg@k), per tier and overall."""
    flat_rows = [row for row, ts in zip(rows, texts) for _ in ts]
    scored = score_math(flat_rows, [t for ts in texts for t in ts])
    return {k.replace("eval/math_acc", "eval/math_sampled_acc"): v for k, v in scored.items()}


def paired_difference(a: list[float], b: list[float]) -> str:
    """Mean of b - a over paired items (prompts, pairs) and its standard error, as "+0.012 ± 0.004"."""
    diffs = [y - x for x, y in zip(a, b)]
    se = statistics.stdev(diffs) / math.sqrt(len(diffs)) if len(diffs) > 1 else float("nan")
    return f"{statistics.mean(diffs):+.3f} ± {se:.3f}"


def greedy_completions(cfg: Any, model_path: str, rows: list[dict]) -> list[str]:
    """Greedy answers from a temporary vLLM actor serving `model_path`."""
    return [texts[0] if texts else "" for texts in model_completions(cfg, model_path, rows)]


def model_completions(cfg: Any, model_path: str, rows: list[dict], n: int = 1, temperature: float = 0.0,
                      seed: int | None = None) -> list[list[str]]:
    """`n` answers per row from a temporary vLLM actor serving `model_path` (greedy by default; seeded
    sampling gives two models the same per-row seeds)."""
    from transformers import AutoTokenizer

    from rlsys.runtime.ray_utils import get

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    group = build_rollout_group(cfg, model_path, num_actors=1)
    actor = group.actors[0]
    try:
        return sampled_texts(
            cfg, tokenizer, rows,
            lambda reqs: get(actor.generate.remote(reqs), timeout=cfg.ray.actor_timeout_s, what="eval.generate"),
            n=n, temperature=temperature, seed=seed,
        )
    finally:
        group.shutdown()


def evaluate_model(cfg: Any, model_path: str) -> dict[str, float]:
    """Math accuracy per tier and IF pass rates (and with `eval.visual` visual accuracy) of `model_path` on the
    held-out rows."""
    rows = held_out_rows(cfg, model_path)
    return held_out_scores(model_path, rows, greedy_completions(cfg, model_path, eval_prompts(rows)))


def held_out_rows(cfg: Any, model_path: str) -> dict[str, list[dict]]:
    """`evaluate_model`'s rows, for a caller that asks its own engine (answer `eval_prompts(rows)`)."""
    check_visual_model(cfg, model_path)
    return eval_rows(cfg)


def held_out_scores(model_path: str, rows: dict[str, list[dict]], texts: list[str]) -> dict[str, float]:
    """`evaluate_model`'s metrics of `texts`, the answers to `eval_prompts(rows)` (metrics without rows left out)."""
    out = score_eval(rows, texts)
    log.info("eval %s: %s", model_path, {k: round(v, 3) for k, v in out.items()})
    return {k: v for k, v in out.items() if not math.isnan(v)}

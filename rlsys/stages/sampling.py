"""Offline sampling and scoring shared by stage kinds: answers from the rollout pool, rewards from the
reward workers, in the exact form the RL loop uses (`reward_sample`, `sample_seed`)."""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Sequence
from typing import Any

from rlsys.config.validate import ConfigError
from rlsys.data.prompt_length import HintText, ImageTokens, PromptCheck, VideoTokens, check_prompt_lengths
from rlsys.rollout.types import GroupRequest, GroupResult
from rlsys.stages.builders import build_reward_pool
from rlsys.stages.context import StageContext

log = logging.getLogger(__name__)

# Groups per rollout call in offline sampling: bounds the wait between progress lines.
_CHUNK = 256
# Row fields that are not passed to reward functions (large or controller-only). A row's `images` (absolute
# paths) do reach them: a custom reward may read the picture.
NOT_FOR_REWARD = {"hints", "solution", "messages", "prompt"}


def sample_seed(*parts: Any) -> int:
    """A 31-bit sampling seed derived from `parts` (stable across processes and runs)."""
    digest = hashlib.sha256("/".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def prompt_limit(cfg: Any, max_tokens: int | None = None, answer_key: str = "rollout.max_tokens") -> tuple[int, str]:
    """The longest prompt a stage may send, in tokens, and where that limit comes from: `data.max_prompt_tokens`,
    else `rollout.max_model_len` minus the answer length (`max_tokens`, default `rollout.max_tokens`)."""
    model_len, answer = cfg.rollout.max_model_len, max_tokens or cfg.rollout.max_tokens
    if cfg.data.max_prompt_tokens is not None:
        limit = int(cfg.data.max_prompt_tokens)
        if limit >= model_len:
            raise ConfigError(f"config key 'data.max_prompt_tokens' = {limit}: must be below rollout.max_model_len "
                              f"= {model_len}, which holds the prompt and the answer")
        return limit, f"data.max_prompt_tokens = {limit}"
    if model_len - answer <= 0:
        raise ConfigError(f"config key 'rollout.max_model_len' = {model_len} leaves no room for a prompt beside a "
                          f"{answer}-token answer ({answer_key}); raise it or lower {answer_key}")
    return model_len - answer, f"rollout.max_model_len {model_len} - {answer_key} {answer}"


def check_stage_prompts(ctx: StageContext, tokenizer: Any, rows: Sequence[dict], max_tokens: int | None = None,
                        answer_key: str = "rollout.max_tokens", hint_text: HintText | None = None,
                        max_level: int = 0) -> PromptCheck:
    """The stage's rows checked against `prompt_limit` (rlsys/data/prompt_length.py) by `data.on_bad_row`, before
    any rollout: the first over-long prompt is an error naming its file, line and row id, or over-long rows are
    dropped; the counts are added to `ctx.data_metrics` (the stage's summary.json). Rows with `images` count each
    image's tokens as the stage's model expands them (`image_token_counter`), rows with `videos` each video item's
    (`video_token_counter`)."""
    cfg = ctx.cfg
    limit, limit_text = prompt_limit(cfg, max_tokens, answer_key)
    counter = image_token_counter(ctx.input_model, ctx.name) if any(r.get("images") for r in rows) else None
    videos = video_token_counter(cfg, ctx.input_model, ctx.name) if any(r.get("videos") for r in rows) else None
    checked = check_prompt_lengths(tokenizer, rows, limit, limit_text, cfg.data.on_bad_row,
                                   system_prompt=cfg.data.system_prompt, origins=ctx.row_origins,
                                   hint_text=hint_text, max_level=max_level, where=f"stage '{ctx.name}'",
                                   image_tokens=counter, video_tokens=videos)
    for key, value in checked.metrics.items():
        ctx.data_metrics[key] = ctx.data_metrics.get(key, 0.0) + value
    return checked


def video_token_counter(cfg: Any, model_path: str, stage: str) -> VideoTokens:
    """Row -> the tokens each of its video items expands to under `model_path`'s processor, the items made as the
    rollout makes them (`data.video_sampling`, `data.slowfast`); a text-only model is an error naming the stage."""
    from transformers import AutoProcessor

    from rlsys.data.videos import RowVideoItems
    from rlsys.learner.vl_passes import ImageTokens as ItemTokens
    from rlsys.rollout.worker import vision_language_config

    if vision_language_config(model_path) is None:
        raise ConfigError(f"stage '{stage}' reads rows with videos, but its model {model_path} is not a "
                          "vision-language model (no vision_config in its config.json)")
    items_of = RowVideoItems.from_config(cfg.data, model_path)
    counts = ItemTokens(AutoProcessor.from_pretrained(model_path))
    return lambda row: [counts.video_count(item) for item in items_of(row)]


def image_token_counter(model_path: str, stage: str) -> ImageTokens:
    """Image path -> the tokens its placeholder expands to under `model_path`'s HF processor (memoised per path);
    a text-only model is an error naming the stage, since its rows carry images."""
    from transformers import AutoProcessor

    from rlsys.learner.vl_inputs import ImageTokenCounter
    from rlsys.rollout.worker import vision_language_config

    if vision_language_config(model_path) is None:
        raise ConfigError(f"stage '{stage}' reads rows with images, but its model {model_path} is not a "
                          "vision-language model (no vision_config in its config.json)")
    return ImageTokenCounter(AutoProcessor.from_pretrained(model_path))


def sampling_prompts(ctx: StageContext, tokenizer: Any, rows: Sequence[dict],
                     max_tokens: int | None = None) -> list[list[int] | None]:
    """Each row's prompt tokens for `sample_rows`, None for a row dropped as over-long (`check_stage_prompts`)."""
    sample = ctx.stage.sample
    answer_key = f"stages.{ctx.name}.sample.max_tokens" if not max_tokens and sample.max_tokens else "rollout.max_tokens"
    checked = check_stage_prompts(ctx, tokenizer, rows, max_tokens or sample.max_tokens or None, answer_key)
    prompts: list[list[int] | None] = [None] * len(rows)
    items_of = video_items_of(ctx, tokenizer, rows)
    for i, ids in zip(checked.kept, checked.prompt_ids):
        # A row with `images` has its VL prompt here (one placeholder per image), sent with the images (`sample_rows`);
        # one with `videos` one placeholder per video item. The engine checks a video row's expanded length.
        if items_of is not None and rows[i].get("videos"):
            from rlsys.data.encode import encode_vl_prompt

            ids = encode_vl_prompt(tokenizer, rows[i], ctx.cfg.data.system_prompt, None, len(items_of(rows[i])))
        prompts[i] = ids
    return prompts


def video_items_of(ctx: StageContext, tokenizer: Any, rows: Sequence[dict]) -> Any:
    """Row -> the video items its requests send (`data.video_sampling`, as RL sends them); None without videos."""
    if not any(r.get("videos") for r in rows):
        return None
    from rlsys.data.videos import RowVideoItems

    return RowVideoItems.from_config(ctx.cfg.data, getattr(tokenizer, "name_or_path", ctx.input_model))


def sample_rows(ctx: StageContext, pool: Any, tokenizer: Any, rows: Sequence[dict], n: int,
                temperature: float | None = None, max_tokens: int | None = None,
                prompts: Sequence[list[int] | None] | None = None) -> list[GroupResult]:
    """`n` sampled answers per row from the pool, in row order (failed requests keep `error`).

    `prompts` are the rows' prompt tokens from `sampling_prompts` (computed here when not given); a row
    dropped there as over-long is not sent and its result is failed."""
    cfg, sample = ctx.cfg, ctx.stage.sample
    temperature = sample.temperature if temperature is None else temperature
    if prompts is None:
        prompts = sampling_prompts(ctx, tokenizer, rows, max_tokens)
    max_tokens = max_tokens or sample.max_tokens or cfg.rollout.max_tokens
    items_of = video_items_of(ctx, tokenizer, rows)
    requests = [
        GroupRequest(
            f"{ctx.name}-{i}", prompt_token_ids=ids, n=n,
            temperature=temperature, top_p=cfg.rollout.top_p, max_tokens=max_tokens, stop=list(cfg.rollout.stop),
            seed=sample_seed(cfg.seed, ctx.name, ctx.stage.seed, i), images=list(rows[i].get("images") or []),
            videos=items_of(rows[i]) if items_of is not None and rows[i].get("videos") else [],
        )
        for i, ids in enumerate(prompts) if ids is not None
    ]
    results: list[GroupResult] = []
    started = time.perf_counter()
    for start in range(0, len(requests), _CHUNK):
        results += pool.generate(requests[start : start + _CHUNK])
        log.info("stage %s: sampled %d/%d prompts x %d (%.0f s)", ctx.name, len(results), len(requests), n,
                 time.perf_counter() - started)
    if requests and not any(r.ok for r in results):
        raise RuntimeError(f"stage {ctx.name}: every sampling request failed, e.g. {results[0].error}")
    sent = iter(results)
    return [next(sent) if ids is not None else
            GroupResult(f"{ctx.name}-{i}", [], [], -1, error="prompt too long: dropped at load (data/too_long_dropped)")
            for i, ids in enumerate(prompts)]


def reward_sample(row: dict, completion: str, completion_tokens: int, **extra: Any) -> dict:
    """One sample as the reward workers take it (the row's fields minus controller-only ones)."""
    fields = {k: v for k, v in row.items() if k not in NOT_FOR_REWARD}
    return {"prompt": row.get("prompt", ""), "completion": completion, "completion_tokens": completion_tokens,
            **fields, **extra}


def score_all(rewards: Any, samples: list[dict], chunk: int = 1024) -> tuple[list[float], list[dict], dict]:
    """Score `samples` in chunks; returns scores, extras and the reward metrics of the last chunk."""
    scores: list[float] = []
    extras: list[dict] = []
    metrics: dict = {}
    for start in range(0, len(samples), chunk):
        s, e, metrics = rewards.score(samples[start : start + chunk])
        scores += s
        extras += e
    return scores, extras, metrics


def sample_and_judge(ctx: StageContext, rows: Sequence[dict], k: int) -> tuple[list[int], list[list[Any]], list[list[bool]]]:
    """`k` answers per row from the stage's input model, judged by the stage's reward workers.

    Returns the indices of the rows whose request succeeded and, for each of them, its samples and
    whether each was correct (the reward's `correct` extra).
    """
    ok, kept, extras = sample_and_score(ctx, rows, k)
    return ok, kept, [[bool(e.get("correct")) for e in ex] for ex in extras]


def sample_and_score(ctx: StageContext, rows: Sequence[dict], k: int) -> tuple[list[int], list[list[Any]], list[list[dict]]]:
    """`sample_and_judge` with each sample's reward extras (`correct`, `<entry>/<extra>`) instead of its verdict."""
    from transformers import AutoTokenizer

    from rlsys.rollout.pool import RolloutPool

    tokenizer = AutoTokenizer.from_pretrained(ctx.input_model)
    prompts = sampling_prompts(ctx, tokenizer, rows)  # before anything starts: an over-long prompt fails here
    rewards = build_reward_pool(ctx)
    pool = RolloutPool.from_config(ctx.cfg.rollout, ctx.input_model)
    try:
        results = sample_rows(ctx, pool, tokenizer, rows, k, prompts=prompts)
        pool.shutdown()
        ok = [j for j, r in enumerate(results) if r.ok and r.samples]
        kept = [results[j].samples for j in ok]
        samples = [reward_sample(rows[j], s.text, len(s.token_ids), finish_reason=s.finish_reason)
                   for j, ss in zip(ok, kept) for s in ss]
        _, extras, _ = score_all(rewards, samples)
    finally:
        pool.shutdown()
        rewards.close()
    grouped, pos = [], 0
    for ss in kept:
        grouped.append(extras[pos : pos + len(ss)])
        pos += len(ss)
    return ok, kept, grouped

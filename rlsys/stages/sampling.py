"""Offline sampling and scoring shared by stage kinds: answers from the rollout pool, rewards from the
reward workers, in the exact form the RL loop uses (`reward_sample`, `sample_seed`)."""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Sequence
from typing import Any

from rlsys.data.encode import encode_prompt
from rlsys.rollout.types import GroupRequest, GroupResult
from rlsys.stages.builders import build_reward_pool
from rlsys.stages.context import StageContext

log = logging.getLogger(__name__)

# Groups per rollout call in offline sampling: bounds the wait between progress lines.
_CHUNK = 256
# Row fields that are not passed to reward functions (large or controller-only).
NOT_FOR_REWARD = {"hints", "solution", "messages", "prompt"}


def sample_seed(*parts: Any) -> int:
    """A 31-bit sampling seed derived from `parts` (stable across processes and runs)."""
    digest = hashlib.sha256("/".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def sample_rows(ctx: StageContext, pool: Any, tokenizer: Any, rows: Sequence[dict], n: int,
                temperature: float | None = None, max_tokens: int | None = None) -> list[GroupResult]:
    """`n` sampled answers per row from the pool, in row order (failed requests keep `error`)."""
    cfg, sample = ctx.cfg, ctx.stage.sample
    temperature = sample.temperature if temperature is None else temperature
    max_tokens = max_tokens or sample.max_tokens or cfg.rollout.max_tokens
    requests = [
        GroupRequest(
            f"{ctx.name}-{i}", prompt_token_ids=encode_prompt(tokenizer, row, cfg.data.system_prompt), n=n,
            temperature=temperature, top_p=cfg.rollout.top_p, max_tokens=max_tokens, stop=list(cfg.rollout.stop),
            seed=sample_seed(cfg.seed, ctx.name, ctx.stage.seed, i),
        )
        for i, row in enumerate(rows)
    ]
    results: list[GroupResult] = []
    started = time.perf_counter()
    for start in range(0, len(requests), _CHUNK):
        results += pool.generate(requests[start : start + _CHUNK])
        log.info("stage %s: sampled %d/%d prompts x %d (%.0f s)", ctx.name, len(results), len(requests), n,
                 time.perf_counter() - started)
    if requests and not any(r.ok for r in results):
        raise RuntimeError(f"stage {ctx.name}: every sampling request failed, e.g. {results[0].error}")
    return results


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
    from transformers import AutoTokenizer

    from rlsys.rollout.pool import RolloutPool

    tokenizer = AutoTokenizer.from_pretrained(ctx.input_model)
    rewards = build_reward_pool(ctx)
    pool = RolloutPool.from_config(ctx.cfg.rollout, ctx.input_model)
    try:
        results = sample_rows(ctx, pool, tokenizer, rows, k)
        pool.shutdown()
        ok = [j for j, r in enumerate(results) if r.ok and r.samples]
        kept = [results[j].samples for j in ok]
        samples = [reward_sample(rows[j], s.text, len(s.token_ids)) for j, ss in zip(ok, kept) for s in ss]
        _, extras, _ = score_all(rewards, samples)
    finally:
        pool.shutdown()
        rewards.close()
    correct, pos = [], 0
    for ss in kept:
        correct.append([bool(e.get("correct")) for e in extras[pos : pos + len(ss)]])
        pos += len(ss)
    return ok, kept, correct

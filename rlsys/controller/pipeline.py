"""Pipeline plumbing for multi-stage runs: data files passed between stages, `stage:<name>` model
references, per-stage config overrides, equal-wall-time budgets, and offline sampling + scoring.

Data stages (rft_sample, pass_filter, pref_sample, judge_data) write `data.jsonl` into their artifact; a stage with
`data_from: <stage>` reads its rows from there. Reward kwargs and `overrides` values may be the string
`stage:<name>`; it becomes that stage's model directory when the stage runs, and the named stage is a
dependency (built first, part of the cache key).
"""

from __future__ import annotations

import json
import logging
import random
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from rlsys.controller.builders import as_dict
from rlsys.controller.rl_rollout import _NOT_FOR_REWARD, sample_seed
from rlsys.controller.stages import StageContext, StageFailed, StageResult
from rlsys.data.encode import encode_prompt
from rlsys.rollout.types import GroupRequest, GroupResult

log = logging.getLogger(__name__)

DATA_FILE = "data.jsonl"
EVAL_FILE = "eval.jsonl"
_REF_RE = re.compile(r"^stage:([A-Za-z0-9_.-]+)$")
# Groups per rollout call in offline sampling: bounds the wait between progress lines.
_CHUNK = 256


# ---------------------------------------------------------------------------------- data files
def write_jsonl(path: str | Path, rows: Sequence[dict]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path


def read_jsonl(path: str | Path) -> list[dict]:
    with Path(path).open() as fh:
        return [json.loads(line) for line in fh if line.strip()]


def input_data_file(ctx: StageContext, name: str = DATA_FILE) -> Path:
    """The data file written by the stage named in `data_from`."""
    src = ctx.stage.data_from
    if not src or src not in ctx.artifacts:
        raise KeyError(f"config key 'stages.{ctx.name}.data_from' = {src!r}: not a built dependency")
    path = Path(ctx.artifacts[src]) / name
    if not path.is_file():
        raise FileNotFoundError(
            f"config key 'stages.{ctx.name}.data_from' = {src!r}: that stage wrote no {name} "
            "(stage kinds that write one: rft_sample, pass_filter, pref_sample, judge_data)"
        )
    return path


def pick_rows(n: int, max_rows: int, seed: int) -> list[int]:
    """Indices of up to `max_rows` rows (all when 0), a seeded choice kept in file order."""
    if max_rows <= 0 or max_rows >= n:
        return list(range(n))
    return sorted(random.Random(f"pick|{seed}").sample(range(n), max_rows))


# ------------------------------------------------------------------- references and overrides
def _container(node: Any) -> Any:
    return OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node


def stage_refs(value: Any) -> list[str]:
    """Stage names referenced as "stage:<name>" anywhere inside `value` (nested dicts / lists)."""
    value = _container(value)
    found: list[str] = []
    if isinstance(value, str):
        match = _REF_RE.match(value)
        if match:
            found.append(match.group(1))
    elif isinstance(value, dict):
        for v in value.values():
            found += stage_refs(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            found += stage_refs(v)
    return found


def referenced_stages(stage: Any) -> list[str]:
    """Stages whose models the stage's reward entries or overrides name."""
    return list(dict.fromkeys(stage_refs(stage.reward_fns) + stage_refs(stage.overrides)))


def resolve_refs(value: Any, models: dict[str, str]) -> Any:
    """`value` with every "stage:<name>" string replaced by that stage's model directory."""
    value = _container(value)
    if isinstance(value, str):
        match = _REF_RE.match(value)
        return models[match.group(1)] if match else value
    if isinstance(value, dict):
        return {k: resolve_refs(v, models) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [resolve_refs(v, models) for v in value]
    return value


def build_wall_s(result: StageResult) -> float:
    """The wall time a stage's artifact cost to build (also for a stage reused from the cache)."""
    return float(result.summary.get("wall_s", result.wall_s))


def prepare_stage(cfg: Any, name: str, stage: Any, deps: dict[str, StageResult]) -> tuple[Any, Any]:
    """The run config and stage config a stage runs with: references resolved, the equal-wall
    budget set (`match_wall`), `overrides` merged into the run config."""
    models = {d: r.model_dir for d, r in deps.items()}
    updates: dict[str, Any] = {}
    if stage.reward_fns:
        updates["reward_fns"] = resolve_refs(stage.reward_fns, models)
    if stage.match_wall:
        budget = sum(build_wall_s(deps[d]) for d in stage.match_wall)
        log.info("stage %s: rl.max_wall_s = %.0f s (build time of %s)", name, budget, list(stage.match_wall))
        updates["rl"] = {"max_wall_s": budget}
    if updates:
        stage = OmegaConf.merge(stage, updates)
    if stage.overrides:
        try:
            cfg = OmegaConf.merge(cfg, resolve_refs(stage.overrides, models))
        except Exception as exc:
            raise StageFailed(f"stage '{name}': config key 'stages.{name}.overrides' is invalid: {exc}") from exc
    return cfg, stage


# ------------------------------------------------------------------ offline sampling + scoring
def build_reward_pool(ctx: StageContext) -> Any:
    """Reward workers for the stage: its `reward_fns` when given, else the run's `reward.fns`."""
    from rlsys.reward.workers import RewardWorkerPool

    fns = ctx.stage.reward_fns
    reward_cfg = as_dict(ctx.cfg.reward) | ({"fns": _container(fns)} if fns else {})
    where = f"stages.{ctx.name}.reward_fns" if fns else "reward.fns"
    return RewardWorkerPool(reward_cfg, where=where)


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
    fields = {k: v for k, v in row.items() if k not in _NOT_FOR_REWARD}
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
    pool = RolloutPool.from_config(ctx.cfg, ctx.input_model)
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

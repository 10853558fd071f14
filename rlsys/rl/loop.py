"""The RL controller: GSPO with progressive hint sampling and an online difficulty filter.

One step: sample problems -> rollout groups on the pool -> score on the reward workers ->
filter by pass rate -> hints for all-fail groups -> refill -> GSPO update in mini-batches on the
learner group -> weight sync -> periodic eval and checkpoint. Setup lives in `build_rl`; the loop
in `run_rl` keeps its state in `RLState`, which a checkpoint saves whole.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hints.progressive import HintSource, format_table
from rlsys.algorithms.advantages import get_advantage
from rlsys.algorithms.credit import decode_with_char_ends, error_token_advantages, tokens_in_spans
from rlsys.config.plain import to_plain
from rlsys.config.validate import ConfigError
from rlsys.data.prompt_length import PromptCheck
from rlsys.eval.scoring import (
    eval_prompts,
    eval_rows,
    greedy_texts,
    sampled_texts,
    score_eval,
    score_math_sampled,
)
from rlsys.eval.visual import check_visual_model
from rlsys.learner.batching import make_batch
from rlsys.learner.group import LearnerGroup
from rlsys.rl.background_eval import BackgroundEval
from rlsys.rl.collector import Group, GroupCollector
from rlsys.rl.overlap import Ahead, Batch, InTurn, check_overlap
from rlsys.rl.state import (
    ProblemSampler,
    RLState,
    find_resume_dir,
    load_checkpoint,
    load_pending,
    save_checkpoint,
    truncate_lines,
)
from rlsys.stages.builders import build_metrics_at, build_stage_learners
from rlsys.stages.context import StageContext
from rlsys.stages.io import stage_rows
from rlsys.stages.sampling import check_stage_prompts, sample_seed
from rlsys.stages.tables import heldout_rows, heldout_table
from rlsys.tracking.cpu import CoreBusy

log = logging.getLogger(__name__)

# `rl.max_skipped_share` is measured over at least this many steps (or `rl.steps`, when fewer) while the run
# goes on, so one skipped first step does not stop it; at the end, over the steps that ran.
SKIP_GRACE_STEPS = 4


class TrainingStalled(RuntimeError):
    """Too many RL steps had no group to train on: the stage stops and publishes no model."""


@dataclass
class RLSetup:
    """Everything the loop talks to, built once per stage."""
    learners: LearnerGroup
    pool: Any
    rewards: Any
    collector: GroupCollector
    sampler: ProblemSampler
    metrics: Any
    eval_rows: dict[str, list[dict]]
    out_dir: Path
    credit: TokenCredit | None = None
    # `eval.background`: periodic evaluations on their own pool, off the critical path.
    background_eval: BackgroundEval | None = None
    # The pool's failure totals when last logged (pool_failures() logs the change).
    pool_seen: dict[str, float] = field(default_factory=dict)
    # Counts from checking the rows at load (`data/too_long_dropped`, ...): on a fresh run's first metrics line.
    data_metrics: dict[str, float] = field(default_factory=dict)

    def pool_failures(self) -> dict[str, float]:
        """Rollout actor deaths, replacements, re-dispatched, timed-out and failed groups since the last call
        (the first call counts from the pool's start): one metrics line's share, so none is lost or repeated."""
        now = self.pool.failure_counts()
        delta = {k: v - self.pool_seen.get(k, 0.0) for k, v in now.items()}
        self.pool_seen = now
        return delta

    def shutdown(self) -> None:
        closers = [self.pool.shutdown, self.rewards.close, self.learners.shutdown]
        if self.background_eval is not None:
            closers.insert(0, self.background_eval.shutdown)
        for closer in closers:
            try:
                closer()
            except Exception as exc:  # shutting down a dead actor must not hide the real error
                log.warning("shutdown: %s", exc)


@dataclass
class TokenCredit:
    """`rl.credit=error_tokens`: per-token advantages from a step verifier (see algorithms/credit.py)."""
    decode: Callable[[list[int]], str]
    verifier: Callable[[str], list[tuple[int, int]]]
    step_penalty: float = 0.0

    def advantages(self, token_ids: list[int], advantage: float) -> tuple[list[float], bool, int]:
        """Per-token advantages, whether the blame was localised, and the number of false-result tokens."""
        text, ends = decode_with_char_ends(self.decode, token_ids)
        spans = self.verifier(text)
        wrong = tokens_in_spans(ends, spans) if spans else [False] * len(ends)
        adv, localised = error_token_advantages(advantage, wrong, self.step_penalty)
        return adv, localised, sum(wrong)


def build_credit(ctx: StageContext, tokenizer: Any) -> TokenCredit | None:
    from rewards.registry import import_target

    rl, key = ctx.stage.rl, f"stages.{ctx.name}.rl"
    if rl.credit not in ("sequence", "error_tokens"):
        raise ConfigError(f"config key '{key}.credit' = {rl.credit!r}: must be one of ['sequence', 'error_tokens']")
    if rl.credit == "sequence":
        return None
    if rl.loss == "gspo":
        raise ConfigError(f"config key '{key}.credit' = 'error_tokens' needs a loss with per-token advantages "
                          f"(gspo_token, grpo); '{key}.loss' is 'gspo'")
    if rl.step_penalty < 0:
        raise ConfigError(f"config key '{key}.step_penalty' = {rl.step_penalty!r}: must be >= 0")
    try:
        verifier = import_target(rl.step_verifier)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"config key '{key}.step_verifier' = {rl.step_verifier!r}: {exc}") from exc
    return TokenCredit(lambda ids: tokenizer.decode(ids, skip_special_tokens=True), verifier, rl.step_penalty)


def check_kl_sources(rl: Any, key: str) -> None:
    """`kl_sources` only means something with a KL term."""
    if rl.kl_sources and not float(rl.loss_kwargs.get("kl_coef", 0.0)) > 0.0:
        raise ConfigError(f"config key '{key}.kl_sources' = {list(rl.kl_sources)!r} needs "
                          f"'{key}.loss_kwargs.kl_coef' > 0")


def build_rl(ctx: StageContext) -> RLSetup:
    from transformers import AutoTokenizer

    from rlsys.reward.workers import RewardWorkerPool, check_reward_coverage
    from rlsys.rollout.pool import RolloutPool

    cfg, rl = ctx.cfg, ctx.stage.rl
    check_visual_model(cfg, ctx.input_model)
    rows = stage_rows(ctx, "rl")
    tokenizer = AutoTokenizer.from_pretrained(ctx.input_model)
    checked = check_rl_prompts(ctx, tokenizer, rows)
    rows = checked.rows
    credit = build_credit(ctx, tokenizer)
    check_kl_sources(rl, f"stages.{ctx.name}.rl")
    check_overlap(rl, cfg.rollout.pool.get("sync_backend", "object_store"), f"stages.{ctx.name}.rl")
    reward_cfg = to_plain(cfg.reward) | ({"fns": as_dict_list(ctx.stage.reward_fns)} if ctx.stage.reward_fns else {})
    where = f"stages.{ctx.name}.reward_fns" if ctx.stage.reward_fns else "reward.fns"
    check_reward_coverage(reward_cfg, where, rows)

    def start_pools(started: ExitStack) -> list[RolloutPool]:
        pools = [RolloutPool.from_config(cfg.rollout, ctx.input_model, wait=False)]
        started.callback(pools[0].shutdown)
        if cfg.eval.background and rl.eval_every:
            pools.append(RolloutPool.from_config(cfg.rollout, ctx.input_model, num_actors=1, name="eval",
                                                 auto_scale=False, wait=False))
            started.callback(pools[1].shutdown)
        return pools

    # On CPUs the engines start while the reward workers and learners set up, so their start-ups overlap. On a
    # GPU they start after the learners: vLLM sizes its KV cache from the memory free when it starts.
    with ExitStack() as started:  # a part that fails to start shuts down the parts started before it
        pools = [] if cfg.rollout.gpus_per_actor else start_pools(started)
        rewards = RewardWorkerPool(reward_cfg, where=where)
        started.callback(rewards.close)
        learners = build_stage_learners(ctx, rl.steps * rl.mini_batches)
        started.callback(learners.shutdown)
        pools = pools or start_pools(started)
        for p in pools:
            p.wait_ready(p.policy.start_timeout_s)
        started.pop_all()
    pool, eval_pool = pools[0], (pools[1] if len(pools) > 1 else None)
    pool.listen_for_scaling(cfg.run_dir or ctx.out_dir)  # `python -m rlsys.scale <run dir> --rollout N`
    generator = None
    if cfg.hints.generator:
        from hydra.utils import instantiate

        generator = instantiate(cfg.hints.generator)
    hint_sources = None if cfg.hints.data_sources is None else list(cfg.hints.data_sources)
    collector = GroupCollector(rows, tokenizer, pool, rewards, HintSource(generator, hint_sources), cfg, rl,
                               hint_caps=checked.hint_caps)
    setup = RLSetup(
        learners=learners, pool=pool, rewards=rewards, collector=collector,
        sampler=ProblemSampler(len(rows), ctx.stage.seed), metrics=None, eval_rows=eval_rows(cfg),
        out_dir=Path(ctx.out_dir), credit=credit, data_metrics=checked.metrics,
    )
    if eval_pool is not None:
        setup.background_eval = BackgroundEval(eval_pool, lambda generate: background_scores(setup, cfg, generate))
    return setup


def check_rl_prompts(ctx: StageContext, tokenizer: Any, rows: list[dict]) -> PromptCheck:
    """The stage's rows whose prompts fit the engine, checked before anything starts (`check_stage_prompts`):
    the plain prompt, and with hints on the prompt with the row's longest hint up to `hints.max_level` (a row
    whose hinted prompt is too long keeps a lower hint ceiling). A hint generator's hints are not known yet."""
    hints = ctx.cfg.hints
    row_hints = HintSource(None, None if hints.data_sources is None else list(hints.data_sources))

    def hint_text(row: dict, level: int) -> str | None:
        return row_hints.hint(row, level) if row_hints.available(row) else None

    return check_stage_prompts(ctx, tokenizer, rows, hint_text=hint_text if hints.enabled else None,
                               max_level=hints.max_level if hints.enabled else 0)


def as_dict_list(node: Any) -> list[Any]:
    from omegaconf import OmegaConf

    return OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else list(node)


def run_rl(ctx: StageContext) -> dict[str, Any]:
    rl = ctx.stage.rl
    resume_dir = find_resume_dir(ctx.cfg, ctx.name)
    if resume_dir is not None:
        ctx.out_dir = resume_dir
    setup = build_rl(ctx)
    source: InTurn | Ahead | None = None
    try:
        state, pending = _start_state(ctx, setup, resume_dir)
        setup.metrics = build_metrics_at(ctx.cfg, setup.out_dir, ctx.name)
        # The load-time data counts go on a fresh run's first metrics line (a resumed run logged them already).
        first_line = setup.data_metrics if state.step == 0 else {}
        if state.step == 0 and rl.eval_before:
            setup.metrics.log(evaluate(setup, ctx.cfg) | {"policy_version": 0} | setup.pool_failures() | first_line,
                              step=0)
            first_line = {}
        started = time.perf_counter() - state.wall_s
        source = batch_source(setup, state, rl, pending, ctx.cfg.rollout.partial_rollout)
        cores = CoreBusy()
        while state.step < rl.steps and not (rl.max_wall_s and time.perf_counter() - started > rl.max_wall_s):
            t0 = time.perf_counter()
            batch = source.next(state.step)
            train_metrics, t_train = update_policy(setup.learners, batch.groups, ctx.cfg, rl, state.step, setup.credit)
            t_sync = source.publish()
            state.step += 1
            step_metrics = batch.metrics | train_metrics | {"time/train_s": t_train, "time/sync_s": t_sync}
            if rl.eval_every and state.step % rl.eval_every == 0:
                step_metrics |= periodic_eval(setup, ctx.cfg, source, state)
            finished: list[dict[str, float]] = []
            if setup.background_eval is not None:
                finished, skipped = setup.background_eval.drain()
                step_metrics |= skipped
            step_metrics |= setup.pool_failures() | setup.pool.step_metrics() | first_line | source.step_metrics()
            first_line = {}
            step_s = time.perf_counter() - t0
            step_metrics |= step_timing(step_metrics, step_s) | {"policy_version": state.version}
            step_metrics |= cores.sample() | {"async/learner_busy_share": (t_train + t_sync) / max(step_s, 1e-9)}
            state.add_totals({k: v for k, v in step_metrics.items()
                              if k.startswith("filter/") or k in ("train/skipped", "async/dropped_stale")})
            for line in [step_metrics, *finished]:
                setup.metrics.log(line, step=state.step)
                state.metric_lines += 1
            state.wall_s = time.perf_counter() - started
            log.info("rl step %d: %s", state.step, _brief(step_metrics))
            check_skipped(state, rl, ctx.name)
            if rl.save_every and (state.step % rl.save_every == 0 or state.step == rl.steps):
                with source.paused() as in_flight:
                    state.sampler = setup.sampler.state_dict()
                    save_checkpoint(setup.out_dir / "checkpoints", state, setup.learners, rl.keep_checkpoints,
                                    pending=in_flight)
        source.close()
        if setup.background_eval is not None:  # finished after the last step's line
            finished, skipped = setup.background_eval.close()
            for line in [*finished, *([skipped] if skipped else [])]:
                setup.metrics.log(line, step=state.step)
        check_skipped(state, rl, ctx.name, at_end=True)
        return finish(ctx, setup, state)
    finally:
        if source is not None:
            source.close(wait=False)
        setup.shutdown()


def check_skipped(state: RLState, rl: Any, name: str, at_end: bool = False) -> None:
    """Raise TrainingStalled when more than `rl.max_skipped_share` of the steps so far trained on nothing
    (no group kept). While running the share is taken over at least min(rl.steps, SKIP_GRACE_STEPS) steps."""
    skipped = int(state.totals.get("train/skipped", 0.0))
    over = state.step if at_end else max(state.step, min(rl.steps, SKIP_GRACE_STEPS))
    if not skipped or skipped <= rl.max_skipped_share * over:
        return
    totals = {k.removeprefix("filter/"): int(state.totals.get(k, 0.0))
              for k in ("filter/sampled", "filter/too_easy", "filter/too_hard", "filter/unsolved")}
    raise TrainingStalled(
        f"stage '{name}': {skipped} of {state.step} RL steps kept no group to train on, more than config key "
        f"'stages.{name}.rl.max_skipped_share' = {rl.max_skipped_share} allows; stopping without publishing "
        f"a model (groups so far: {', '.join(f'{k} {v}' for k, v in totals.items())}). Check the difficulty "
        f"filter ('stages.{name}.rl.filter_low/filter_high/filter_inclusive') against rollout.group_size, "
        "the stage's rows and its rewards"
    )


def _start_state(ctx: StageContext, setup: RLSetup, resume_dir: Path | None) -> tuple[RLState, list[Batch]]:
    """The controller state to start from, and the batches a checkpoint saved collected but not trained."""
    if resume_dir is None:
        return RLState(), []
    state = load_checkpoint(resume_dir / "checkpoints", setup.learners)
    pending = load_pending(resume_dir / "checkpoints")
    setup.sampler.load_state_dict(state.sampler)
    # +1 for the step-0 evaluation line, written before the first step.
    truncate_lines(resume_dir / "metrics.jsonl", state.metric_lines + int(ctx.stage.rl.eval_before))
    sync_weights(setup, state, bump=False)
    log.info("resumed %s at step %d (policy version %d, %d batch(es) collected ahead)", resume_dir, state.step,
             state.version, len(pending))
    return state, pending


def batch_source(setup: RLSetup, state: RLState, rl: Any, pending: list[Batch],
                 partial_rollout: str = "finish") -> InTurn | Ahead:
    """Where the loop's batches come from: collected in turn, or ahead of training (`rl.max_staleness`)."""
    if rl.max_staleness == 0:
        return InTurn(setup, state)
    return Ahead(setup, state, rl.max_staleness, rl.steps, pending, push_now=partial_rollout == "continue")


def group_advantages(groups: list[Group], estimator: str) -> list[list[float]]:
    import torch

    # One call over the whole step, so batch-level estimators see every group.
    fn = get_advantage(estimator)
    ids = [gi for gi, g in enumerate(groups) for _ in g.scores]
    flat = fn(torch.tensor([s for g in groups for s in g.scores], dtype=torch.float32), group_ids=torch.tensor(ids))
    return [part.tolist() for part in flat.split([len(g.scores) for g in groups])]


def update_policy(learners: LearnerGroup, groups: list[Group], cfg: Any, rl: Any, step: int,
                  credit: TokenCredit | None = None) -> tuple[dict[str, float], float]:
    """GSPO on the step's groups, split (by group) into `rl.mini_batches` optimizer steps. A mini-batch holding
    a row with `images` carries each sequence's image paths (`make_batch(images=)`) and one with videos the video
    items its rollout sent (`make_batch(videos=)`), so the learner scores (and recomputes old and reference
    logprobs from) the pixels the rollout saw; a text-only one has neither."""
    started = time.perf_counter()
    if not groups:
        return {"train/skipped": 1.0}, 0.0
    advantages = group_advantages(groups, rl.advantage)
    order = list(range(len(groups)))
    random.Random(sample_seed(cfg.seed, "minibatch", step)).shuffle(order)
    n_mini = max(1, min(rl.mini_batches, len(groups)))
    sums: dict[str, float] = {}
    blame = {"negative": 0, "localised": 0, "error_tokens": 0, "tokens": 0}
    anchored = set(rl.kl_sources)
    for m in range(n_mini):
        chosen = order[m::n_mini]
        ids, masks, old, adv, kl_weights, images, videos = [], [], [], [], [], [], []
        for gi in chosen:
            g = groups[gi]
            for sample, a in zip(g.samples, advantages[gi]):
                if not sample.token_ids:
                    continue
                p = len(g.train_prompt_ids)
                ids.append(g.train_prompt_ids + sample.token_ids)
                masks.append([0] * p + [1] * len(sample.token_ids))
                old.append([0.0] * p + sample.logprobs)
                kl_weights.append(float(g.row.get("data_source") in anchored))
                images.append(list(g.row.get("images") or []))
                videos.append(list(g.videos))
                if credit is None:
                    adv.append(a)
                    continue
                token_adv, localised, hits = credit.advantages(sample.token_ids, a)
                adv.append([0.0] * p + token_adv)
                blame["negative"] += a < 0
                blame["localised"] += localised
                blame["error_tokens"] += hits
                blame["tokens"] += len(sample.token_ids)
        if not ids:
            continue
        fields = {"old_logprobs": old, "advantages": adv} | ({"kl_weights": kl_weights} if anchored else {})
        batch = make_batch(ids, masks, fields, images=images if any(images) else None,
                           videos=videos if any(videos) else None)
        if rl.recompute_old_logprobs or not all(groups[gi].rollout_logprobs_valid for gi in chosen):
            batch["fields"]["old_logprobs"] = learners.compute_logprobs(batch)
        out = learners.train_step(batch, rl.loss, to_plain(rl.loss_kwargs))
        for k, v in out.items():
            sums[k] = sums.get(k, 0.0) + v / n_mini
    metrics = {f"train/{k}": v for k, v in sums.items()}
    metrics["train/groups"] = float(len(groups))
    if credit is not None:
        metrics["train/credit_localised"] = blame["localised"] / max(1, blame["negative"])
        metrics["train/credit_error_token_share"] = blame["error_tokens"] / max(1, blame["tokens"])
    return metrics, time.perf_counter() - started


def sync_weights(setup: RLSetup, state: RLState, bump: bool = True) -> float:
    started = time.perf_counter()
    if bump:
        state.version += 1
    setup.pool.sync_from_learner(setup.learners, state.version)
    return time.perf_counter() - started


def step_timing(metrics: dict[str, float], total_s: float) -> dict[str, float]:
    """Step time split into rollout / reward / train / sync / eval and the controller's own rest."""
    parts = ("time/rollout_s", "time/reward_s", "time/train_s", "time/sync_s", "time/eval_s")
    accounted = sum(metrics.get(k, 0.0) for k in parts)
    return {"time/step_s": total_s, "time/other_s": max(0.0, total_s - accounted)}


def periodic_eval(setup: RLSetup, cfg: Any, source: InTurn | Ahead, state: RLState) -> dict[str, float]:
    """The loop's evaluation every `rl.eval_every` steps: inline on the training pool (at the policy just
    published), or handed to the background evaluator as a weight snapshot of this version."""
    if setup.background_eval is None:
        with source.pool_current():
            return evaluate(setup, cfg)
    started = time.perf_counter()
    setup.background_eval.submit(state.version, setup.learners.export_weights(setup.pool.policy.sync_bucket_bytes))
    return {"time/eval_s": time.perf_counter() - started}


def background_scores(setup: RLSetup, cfg: Any, generate: Any) -> dict[str, float]:
    """A background evaluation's scores; its duration is not a share of the step it lands on."""
    out = evaluate(setup, cfg, generate)
    return out | {"eval/took_s": out.pop("time/eval_s")}


def evaluate(setup: RLSetup, cfg: Any, generate: Any = None) -> dict[str, float]:
    """Held-out scores through `generate` (default: the training pool's)."""
    started = time.perf_counter()
    rows = setup.eval_rows
    tokenizer = setup.collector.tokenizer
    generate = generate or setup.pool.generate
    out = score_eval(rows, greedy_texts(cfg, tokenizer, eval_prompts(rows), generate))
    if cfg.eval.sample_k > 0:
        sampled = sampled_texts(cfg, tokenizer, rows["math"], generate, cfg.eval.sample_k,
                                cfg.eval.sample_temperature, seed=sample_seed(cfg.seed, "eval"))
        out |= score_math_sampled(rows["math"], sampled)
    return out | {"time/eval_s": time.perf_counter() - started}


def finish(ctx: StageContext, setup: RLSetup, state: RLState) -> dict[str, Any]:
    """Save the policy, write the hint table, the held-out before/after table and learning curves, return the
    stage summary."""
    model_dir = setup.out_dir / "model"
    setup.learners.save_hf(str(model_dir))
    final_eval = evaluate(setup, ctx.cfg)
    setup.metrics.log(final_eval | {"policy_version": state.version} | setup.pool_failures(), step=state.step)
    table = state.hint_stats.table(ctx.cfg.rollout.group_size)
    (setup.out_dir / "hint_table.md").write_text(
        "Per hint level: problems sampled at that level, share with no correct answer, mean correct.\n\n"
        + format_table(table)
    )
    (setup.out_dir / "hint_table.json").write_text(json.dumps(table, indent=1))
    plots = setup.metrics.close(plots=ctx.cfg.logging.plots)
    from rlsys.tracking.metrics import read_metrics

    records = read_metrics(setup.metrics.path)
    before = next((r for r in records if r.get("step") == 0 and any(k.startswith("eval/") for k in r)), {})
    eval_before = {k: v for k, v in before.items() if k.startswith("eval/")}
    eval_after = {k: v for k, v in final_eval.items() if k.startswith("eval/")}
    (setup.out_dir / "eval_table.md").write_text(heldout_table(eval_before, eval_after))
    (setup.out_dir / "eval_table.json").write_text(json.dumps(heldout_rows(eval_before, eval_after), indent=1))
    summary = {
        "steps": state.step,
        "policy_version": state.version,
        "wall_s": state.wall_s,
        "filter_totals": state.totals,
        "hint_table": table,
        "eval_before": eval_before,
        "eval": eval_after,
        "plots": [str(p) for p in plots],
    }
    (setup.out_dir / "rl_summary.json").write_text(json.dumps(summary, indent=1, default=str))
    return summary


def _brief(metrics: dict[str, float]) -> str:
    keys = ("rollout/accuracy", "rollout/reward_mean", "filter/kept", "filter/rescued", "train/loss",
            "train/clip_frac", "eval/math_acc", "eval/vl_acc", "time/step_s")
    return " ".join(f"{k.split('/')[-1]}={metrics[k]:.3g}" for k in keys if k in metrics)

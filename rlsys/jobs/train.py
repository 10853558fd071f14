"""Learner jobs as pipeline stages: pretrain, SFT (with annealing tail), MPO, reward model."""

from __future__ import annotations

import logging
import math
import random
import time
from pathlib import Path
from typing import Any

from rlsys.config.validate import ConfigError
from rlsys.data.encode import encode_pairs, encode_sft_rows, pack_documents
from rlsys.eval.scoring import evaluate_model
from rlsys.learner.batching import make_batch
from rlsys.learner.group import LearnerGroup
from rlsys.stages.builders import build_metrics_at, build_stage_learners, total_steps
from rlsys.stages.context import StageContext
from rlsys.stages.io import stage_rows

log = logging.getLogger(__name__)


def epoch_batches(lengths: list[int], batch: int, steps: int, seed: int, group_window: int = 64) -> list[list[int]]:
    """`steps` batches of unit indices, reshuffled every epoch (deterministic by seed).

    Length-grouped: each epoch's shuffled order is cut into windows of `group_window` batches,
    sorted by length inside a window and cut into batches, and the batches are shuffled again.
    Batches then hold similar lengths (little padding) while staying random across the epoch.
    """
    rng = random.Random(seed)
    queue: list[list[int]] = []
    out: list[list[int]] = []
    while len(out) < steps:
        if not queue:
            order = list(range(len(lengths)))
            rng.shuffle(order)
            span = batch * group_window
            for start in range(0, len(order), span):
                window = sorted(order[start : start + span], key=lambda i: lengths[i])
                queue.extend(window[i : i + batch] for i in range(0, len(window), batch))
            rng.shuffle(queue)
        out.append(queue.pop())
    return out


def train_loop(
    ctx: StageContext,
    learners: LearnerGroup,
    units: list[list[tuple[list[int], list[int]]]],
    loss: str,
    loss_kwargs: dict[str, Any],
    steps: int,
    metrics: Any,
    step_offset: int = 0,
) -> dict[str, float]:
    """Train on `units` (each a list of (ids, mask) sequences kept together) for `steps` steps."""
    from tqdm import tqdm

    group = len(units[0])
    last: dict[str, float] = {}
    tokens = 0
    started = time.perf_counter()
    progress = tqdm(total=steps, desc=f"{ctx.name}", disable=not ctx.cfg.logging.progress, mininterval=5)
    lengths = [max(len(seq[0]) for seq in unit) for unit in units]
    for step, picked in enumerate(epoch_batches(lengths, ctx.stage.batch_size, steps, ctx.stage.seed + step_offset)):
        seqs = [seq for i in picked for seq in units[i]]
        # A third element holds per-token fields (e.g. the preference terms' `pref_mask`).
        fields = {k: [s[2][k] for s in seqs] for k in seqs[0][2]} if len(seqs[0]) > 2 else None
        batch = make_batch([s[0] for s in seqs], [s[1] for s in seqs], fields, unit_size=group)
        last = learners.train_step(batch, loss, loss_kwargs)
        tokens += int(last["tokens"])
        progress.update(1)
        global_step = step_offset + step + 1
        if global_step % ctx.stage.log_every == 0 or step == steps - 1:
            elapsed = time.perf_counter() - started
            metrics.log({f"train/{k}": v for k, v in last.items()} | {"train/tokens_per_s": tokens / elapsed}, step=global_step)
            progress.set_postfix(loss=f"{last.get('loss', float('nan')):.4f}")
    progress.close()
    elapsed = time.perf_counter() - started
    return {"final_loss": last.get("loss", float("nan")), "steps": steps, "train_s": elapsed, "tokens_per_s": tokens / max(elapsed, 1e-9)}


def _finish(ctx: StageContext, learners: LearnerGroup, summary: dict[str, Any], metrics: Any) -> dict[str, Any]:
    model_dir = str(Path(ctx.out_dir) / "model")
    learners.save_hf(model_dir)
    learners.shutdown()
    if ctx.stage.evaluate and summary.get("model_kind", "causal_lm") == "causal_lm":
        summary["eval"] = summary.get("eval", {}) | evaluate_model(ctx.cfg, model_dir)
        metrics.log(summary["eval"], step=summary.get("steps", 0))
    metrics.close(plots=ctx.cfg.logging.plots)
    return summary


def run_pretrain(ctx: StageContext) -> dict[str, Any]:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(ctx.input_model)
    texts = [r["text"] for r in stage_rows(ctx, "pretrain")]
    blocks = pack_documents(tokenizer, texts, ctx.stage.seq_len, ctx.stage.seed)
    units = [[(b, [1] * len(b))] for b in blocks]
    steps = total_steps(ctx.stage, len(units))
    log.info("pretrain: %d docs -> %d blocks of %d tokens, %d steps", len(texts), len(blocks), ctx.stage.seq_len, steps)
    metrics = build_metrics_at(ctx.cfg, ctx.out_dir, ctx.name)
    learners = build_stage_learners(ctx, steps)
    summary = train_loop(ctx, learners, units, ctx.stage.loss or "ntp", dict(ctx.stage.loss_kwargs), steps, metrics)
    return _finish(ctx, learners, summary | {"blocks": len(blocks)}, metrics)


def run_sft(ctx: StageContext) -> dict[str, Any]:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(ctx.input_model)
    rows = stage_rows(ctx, "sft")
    encoded = encode_sft_rows(tokenizer, rows, ctx.stage.seq_len, ctx.cfg.data.system_prompt)
    units = [[e] for e in encoded]
    steps = total_steps(ctx.stage, len(units))
    log.info("sft: %d rows -> %d sequences, %d steps", len(rows), len(units), steps)
    metrics = build_metrics_at(ctx.cfg, ctx.out_dir, ctx.name)
    learners = build_stage_learners(ctx, steps)
    kwargs = {"reduction": "square"} | dict(ctx.stage.loss_kwargs)
    summary = train_loop(ctx, learners, units, ctx.stage.loss, kwargs, steps, metrics)
    return _finish(ctx, learners, summary | {"sequences": len(units)}, metrics)


def _pair_units(ctx: StageContext, rows: list[dict], scope: str = "full") -> list[list[tuple]]:
    from transformers import AutoTokenizer

    from rlsys.data.encode import PAIR_SCOPES

    if scope not in PAIR_SCOPES:
        raise ConfigError(f"config key 'stages.{ctx.name}.pair_scope' = {scope!r}: must be one of {list(PAIR_SCOPES)}")
    tokenizer = AutoTokenizer.from_pretrained(ctx.input_model)
    return [[c, r] for c, r in encode_pairs(tokenizer, rows, ctx.stage.seq_len, ctx.cfg.data.system_prompt, scope)]


def _pair_batch(units: list) -> tuple[list, dict[str, Any]]:
    seqs = [seq for u in units for seq in u]
    return seqs, make_batch([s[0] for s in seqs], [s[1] for s in seqs], unit_size=2)


def rm_pair_accuracy(learners: LearnerGroup, units: list) -> float:
    """Share of held-out pairs the reward model scores chosen above rejected (ties count half)."""
    if not units:
        return float("nan")
    scores = learners.compute_scores(_pair_batch(units)[1])
    return _ranked([scores[i] - scores[i + 1] for i in range(0, len(scores), 2)])


def policy_pair_accuracies(learners: LearnerGroup, units: list) -> dict[str, float]:
    """Preference accuracy of a policy on held-out pairs, from one pass over policy and reference.

    `implicit`: the implicit reward β·log π/π_ref ranks chosen higher (0 for every pair before
    training, so ties count half). `likelihood`: chosen has the higher mean token logprob; it needs
    no reference, so it compares a model before and after.
    """
    if not units:
        return {"implicit": float("nan"), "likelihood": float("nan")}
    seqs, batch = _pair_batch(units)
    pol = learners.compute_logprobs(batch)
    ref = learners.compute_logprobs(batch, reference=True)
    implicit = [sum(p - q for p, q, m in zip(lp, rp, s[1]) if m) for lp, rp, s in zip(pol, ref, seqs)]
    mean_lp = [sum(p for p, m in zip(lp, s[1]) if m) / max(1, sum(s[1])) for lp, s in zip(pol, seqs)]
    return {
        "implicit": _ranked([implicit[i] - implicit[i + 1] for i in range(0, len(seqs), 2)]),
        "likelihood": _ranked([mean_lp[i] - mean_lp[i + 1] for i in range(0, len(seqs), 2)]),
    }


def _ranked(margins: list[float]) -> float:
    return sum(1.0 if m > 0 else 0.5 if m == 0 else 0.0 for m in margins) / len(margins)


def run_mpo(ctx: StageContext) -> dict[str, Any]:
    units = _pair_units(ctx, stage_rows(ctx, "preference"), ctx.stage.pair_scope)
    eval_units = _pair_units(ctx, stage_rows(ctx, "preference", ctx.stage.eval_data or "pref_eval"))[: ctx.cfg.eval.max_pairs]
    steps = total_steps(ctx.stage, len(units))
    metrics = build_metrics_at(ctx.cfg, ctx.out_dir, ctx.name)
    learners = build_stage_learners(ctx, steps)
    learners.enable_reference()
    before = policy_pair_accuracies(learners, eval_units)
    summary = train_loop(ctx, learners, units, ctx.stage.loss or "mpo", dict(ctx.stage.loss_kwargs), steps, metrics)
    after = policy_pair_accuracies(learners, eval_units)
    summary["eval"] = {
        "eval/pref_acc_before": before["implicit"],
        "eval/pref_acc": after["implicit"],
        "eval/pref_likelihood_acc_before": before["likelihood"],
        "eval/pref_likelihood_acc": after["likelihood"],
    }
    return _finish(ctx, learners, summary | {"pairs": len(units)}, metrics)


def _length_ratio(unit: list[tuple[list[int], list[int]]]) -> float:
    a, b = (sum(s[1]) for s in unit)
    return max(a, b) / max(1, min(a, b))


def run_rm(ctx: StageContext) -> dict[str, Any]:
    """Scalar reward model (value head on the LM), Bradley-Terry on preference pairs.

    Pairs whose response lengths differ by more than `max_length_ratio` are dropped; then an
    annealing pass over pairs whose chosen answer is the shorter one counters length bias.
    """
    if ctx.stage.pair_scope != "full":

        raise ConfigError(f"config key 'stages.{ctx.name}.pair_scope' = {ctx.stage.pair_scope!r}: a reward model "
                          "scores whole responses; only 'full' applies")
    all_units = _pair_units(ctx, stage_rows(ctx, "preference"))
    units = [u for u in all_units if _length_ratio(u) <= ctx.stage.max_length_ratio]
    shorter = [u for u in units if sum(u[0][1]) < sum(u[1][1])]
    eval_units = _pair_units(ctx, stage_rows(ctx, "preference", ctx.stage.eval_data or "pref_eval"))[: ctx.cfg.eval.max_pairs]
    steps = total_steps(ctx.stage, len(units))
    anneal_steps = math.ceil(ctx.stage.length_anneal_epochs * len(shorter) / ctx.stage.batch_size) if shorter else 0
    metrics = build_metrics_at(ctx.cfg, ctx.out_dir, ctx.name)
    learners = build_stage_learners(ctx, steps + anneal_steps, model_kind="reward_model")
    before = rm_pair_accuracy(learners, eval_units)
    summary = train_loop(ctx, learners, units, ctx.stage.loss or "bradley_terry", dict(ctx.stage.loss_kwargs), steps, metrics)
    if anneal_steps:
        anneal = train_loop(ctx, learners, shorter, ctx.stage.loss or "bradley_terry", dict(ctx.stage.loss_kwargs),
                            anneal_steps, metrics, step_offset=steps)
        summary["anneal_final_loss"] = anneal["final_loss"]
    after = rm_pair_accuracy(learners, eval_units)
    shorter_eval = [u for u in eval_units if sum(u[0][1]) < sum(u[1][1])]
    summary["eval"] = {
        "eval/rm_pair_acc_before": before,
        "eval/rm_pair_acc": after,
        "eval/rm_pair_acc_shorter_chosen": rm_pair_accuracy(learners, shorter_eval),
    }
    summary.update(pairs=len(units), dropped_long_gap=len(all_units) - len(units), anneal_pairs=len(shorter),
                   anneal_steps=anneal_steps, model_kind="reward_model")
    return _finish(ctx, learners, summary, metrics)

"""Learner jobs as pipeline stages: pretrain, SFT (with annealing tail), MPO, reward model."""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rlsys.config.validate import ConfigError
from rlsys.data.encode import encode_pairs, encode_sft_rows, pack_documents
from rlsys.data.loading import hint_sft_rows
from rlsys.data.mixture import check_mix_weights, mixture_batches
from rlsys.data.videos import RowVideoItems
from rlsys.eval.scoring import evaluate_model
from rlsys.learner.batching import make_batch
from rlsys.learner.group import LearnerGroup
from rlsys.learner.worker import is_vision_language
from rlsys.stages.builders import build_metrics_at, build_stage_learners, total_steps
from rlsys.stages.context import StageContext
from rlsys.stages.io import stage_row_parts, stage_rows

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


def seq_batch(seqs: list[tuple], unit_size: int) -> dict[str, Any]:
    """The learner batch of (ids, mask[, fields[, images]]) sequences. A third element holds per-token
    fields (e.g. the preference terms' `pref_mask`), a fourth the sequence's image files; the batch has
    an `images` key only when some sequence has images, so text batches stay as they were; a fifth element
    holds the sequence's video items (a `videos` key likewise)."""
    fields = {k: [s[2][k] for s in seqs] for k in seqs[0][2]} if len(seqs[0]) > 2 else None
    images = [list(s[3]) if len(s) > 3 else [] for s in seqs]
    videos = [list(s[4]) if len(s) > 4 else [] for s in seqs]
    return make_batch([s[0] for s in seqs], [s[1] for s in seqs], fields, unit_size=unit_size,
                      images=images if any(images) else None, videos=videos if any(videos) else None)


def train_loop(
    ctx: StageContext,
    learners: LearnerGroup,
    units: list[list[tuple]],
    loss: str,
    loss_kwargs: dict[str, Any],
    steps: int,
    metrics: Any,
    step_offset: int = 0,
    batches: list[list[int]] | None = None,
) -> dict[str, float]:
    """Train on `units` (each a list of sequences kept together, see `seq_batch`) for `steps` steps, on
    `batches` of unit indices when given (a weighted mixture), else on length-grouped epochs."""
    from tqdm import tqdm

    group = len(units[0])
    last: dict[str, float] = {}
    tokens = 0
    started = time.perf_counter()
    progress = tqdm(total=steps, desc=f"{ctx.name}", disable=not ctx.cfg.logging.progress, mininterval=5)
    lengths = [max(len(seq[0]) for seq in unit) for unit in units]
    if batches is None:
        batches = epoch_batches(lengths, ctx.stage.batch_size, steps, ctx.stage.seed + step_offset)
    for step, picked in enumerate(batches[:steps]):
        batch = seq_batch([seq for i in picked for seq in units[i]], group)
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


def _no_mix(ctx: StageContext) -> None:
    if ctx.stage.mix_weights:
        raise ConfigError(f"config key 'stages.{ctx.name}.mix_weights': weighted mixtures apply to sft and mpo "
                          f"stages, not {ctx.stage.kind!r}")


def input_processor(ctx: StageContext, rows: list[dict], allow: bool = True) -> Any:
    """The input model's HF processor when some row has images, else None. Image rows on a model that is
    not a vision-language one (or on a stage that cannot take them, `allow`) are an error naming the row."""
    first = next((r for r in rows if r.get("images") or r.get("videos")), None)
    if first is None:
        return None
    where = f"row {first.get('id')!r}" + (f" ({ctx.row_origins.of(first)})" if ctx.row_origins.of(first) else "")
    if not allow:
        raise ConfigError(f"stage {ctx.name!r}: {where} has images, but a {ctx.stage.kind} stage trains on text only")
    if not is_vision_language(ctx.input_model):
        raise ConfigError(f"stage {ctx.name!r}: {where} has images, but the input model {ctx.input_model} is not a "
                          "vision-language model (no vision_config in its config.json), so it cannot see them")
    from transformers import AutoProcessor

    return AutoProcessor.from_pretrained(ctx.input_model)


def stage_parts(ctx: StageContext, kind: str) -> list[tuple[str, list[dict]]]:
    """The stage's rows as one part, or with `mix_weights` its checked data parts."""
    if not ctx.stage.mix_weights:
        return [("", stage_rows(ctx, kind))]
    parts = stage_row_parts(ctx, kind)
    check_mix_weights(ctx.stage.mix_weights, [name for name, _ in parts], f"stages.{ctx.name}.mix_weights")
    return parts


def _part_units(ctx: StageContext, parts: list[tuple[str, list[dict]]],
                encode: Callable[[list[dict]], list]) -> tuple[list, list[tuple[str, int]]]:
    """Units of every part laid end to end, and (part, units) of each part (none without `mix_weights`)."""
    units: list = []
    sizes: list[tuple[str, int]] = []
    for name, rows in parts:
        part = encode(rows)
        if ctx.stage.mix_weights and not part:
            raise ConfigError(f"config key 'stages.{ctx.name}.data': part {name!r} has no row that fits "
                              f"seq_len {ctx.stage.seq_len}")
        units += part
        sizes.append((name, len(part)))
    return units, sizes if ctx.stage.mix_weights else []


def _mix_plan(ctx: StageContext, sizes: list[tuple[str, int]], steps: int) -> tuple[list[list[int]] | None, dict]:
    """A weighted mixture's batches (seeded by the stage seed) and its summary: epochs drawn per part."""
    if not sizes:
        return None, {}
    batches, epochs = mixture_batches([n for _, n in sizes], ctx.stage.mix_weights, ctx.stage.batch_size, steps,
                                      ctx.stage.seed)
    mix = {name: round(e, 3) for (name, _), e in zip(sizes, epochs)}
    log.info("%s: mixture weights %s over %s -> epochs per part %s", ctx.name, list(ctx.stage.mix_weights),
             dict(sizes), mix)
    return batches, {"mix_epochs": mix}


def run_pretrain(ctx: StageContext) -> dict[str, Any]:
    from transformers import AutoTokenizer

    _no_mix(ctx)
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
    parts, hinted = [], 0
    for name, part in stage_parts(ctx, "sft"):
        part, n = hint_sft_rows(part, ctx.cfg.data.sft_hint_share, ctx.stage.seed)
        parts.append((name, part))
        hinted += n
    rows = [r for _, part in parts for r in part]
    processor = input_processor(ctx, rows)

    # Video rows reach the model as the RL stages send them (`data.video_sampling`: every frame or SlowFast).
    video_items_of = RowVideoItems.from_config(ctx.cfg.data, ctx.input_model) if processor is not None else None

    def encode(part: list[dict]) -> list:
        return [[e] for e in encode_sft_rows(tokenizer, part, ctx.stage.seq_len, ctx.cfg.data.system_prompt, processor,
                                             video_items_of)]

    units, sizes = _part_units(ctx, parts, encode)
    steps = total_steps(ctx.stage, len(units))
    batches, mix = _mix_plan(ctx, sizes, steps)
    with_images = sum(len(u[0]) > 3 for u in units)
    log.info("sft: %d rows (%d hinted) -> %d sequences (%d with images), %d steps", len(rows), hinted, len(units),
             with_images, steps)
    metrics = build_metrics_at(ctx.cfg, ctx.out_dir, ctx.name)
    learners = build_stage_learners(ctx, steps)
    kwargs = {"reduction": "square"} | dict(ctx.stage.loss_kwargs)
    summary = train_loop(ctx, learners, units, ctx.stage.loss, kwargs, steps, metrics, batches=batches)
    extra = {"sequences": len(units), "hinted_rows": hinted} | ({"image_sequences": with_images} if with_images else {}) | mix
    return _finish(ctx, learners, summary | extra, metrics)


def _pair_units(ctx: StageContext, rows: list[dict], scope: str = "full", images: bool = True) -> list[list[tuple]]:
    """(chosen, rejected) units; rows with images go through the input model's processor (`images`: allowed)."""
    from transformers import AutoTokenizer

    from rlsys.data.encode import PAIR_SCOPES

    if scope not in PAIR_SCOPES:
        raise ConfigError(f"config key 'stages.{ctx.name}.pair_scope' = {scope!r}: must be one of {list(PAIR_SCOPES)}")
    processor = input_processor(ctx, rows, allow=images)
    tokenizer = AutoTokenizer.from_pretrained(ctx.input_model)
    video_items_of = RowVideoItems.from_config(ctx.cfg.data, ctx.input_model) if processor is not None else None
    return [[c, r] for c, r in encode_pairs(tokenizer, rows, ctx.stage.seq_len, ctx.cfg.data.system_prompt, scope,
                                            processor, video_items_of)]


def _pair_batch(units: list) -> tuple[list, dict[str, Any]]:
    seqs = [(*seq[:2], {}, *seq[3:]) for u in units for seq in u]
    return seqs, seq_batch(seqs, 2)


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
    parts = stage_parts(ctx, "preference")
    units, sizes = _part_units(ctx, parts, lambda rows: _pair_units(ctx, rows, ctx.stage.pair_scope))
    eval_units = _pair_units(ctx, stage_rows(ctx, "preference", ctx.stage.eval_data or "pref_eval"))[: ctx.cfg.eval.max_pairs]
    steps = total_steps(ctx.stage, len(units))
    batches, mix = _mix_plan(ctx, sizes, steps)
    metrics = build_metrics_at(ctx.cfg, ctx.out_dir, ctx.name)
    learners = build_stage_learners(ctx, steps)
    learners.enable_reference()
    before = policy_pair_accuracies(learners, eval_units)
    summary = train_loop(ctx, learners, units, ctx.stage.loss or "mpo", dict(ctx.stage.loss_kwargs), steps, metrics,
                         batches=batches)
    after = policy_pair_accuracies(learners, eval_units)
    summary["eval"] = {
        "eval/pref_acc_before": before["implicit"],
        "eval/pref_acc": after["implicit"],
        "eval/pref_likelihood_acc_before": before["likelihood"],
        "eval/pref_likelihood_acc": after["likelihood"],
    }
    return _finish(ctx, learners, summary | {"pairs": len(units)} | mix, metrics)


def _length_ratio(unit: list[tuple[list[int], list[int]]]) -> float:
    a, b = (sum(s[1]) for s in unit)
    return max(a, b) / max(1, min(a, b))


def run_rm(ctx: StageContext) -> dict[str, Any]:
    """Scalar reward model (value head on the LM), Bradley-Terry on preference pairs.

    Pairs whose response lengths differ by more than `max_length_ratio` are dropped; then an
    annealing pass over pairs whose chosen answer is the shorter one counters length bias.
    """
    _no_mix(ctx)
    if ctx.stage.pair_scope != "full":
        raise ConfigError(f"config key 'stages.{ctx.name}.pair_scope' = {ctx.stage.pair_scope!r}: a reward model "
                          "scores whole responses; only 'full' applies")
    all_units = _pair_units(ctx, stage_rows(ctx, "preference"), images=False)
    units = [u for u in all_units if _length_ratio(u) <= ctx.stage.max_length_ratio]
    shorter = [u for u in units if sum(u[0][1]) < sum(u[1][1])]
    eval_units = _pair_units(ctx, stage_rows(ctx, "preference", ctx.stage.eval_data or "pref_eval"),
                             images=False)[: ctx.cfg.eval.max_pairs]
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

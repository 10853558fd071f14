"""The `contrastive` stage: Keye-VL's first vision stage, ViT pretraining with SigLIP's sigmoid loss on
image-caption pairs, as a learner job.

Each row of the stage's data (`data: vl_caption_train`: `images` with one image, the caption in `response`)
becomes one learner row: the caption's tokens (the text alone, no chat template, no image placeholder) and its
image. The learner pools the vision tower's output tokens per image and the language model's last hidden
state per caption, and trains `loss: siglip` with a learnable temperature and bias that stay out of the saved
HF model (rlsys/learner/contrastive.py). What trains is `trainable`: `[model.visual.*]` trains the ViT with
its merger (the image embedding is the merger's output, already in the LM's width) and leaves the LM frozen.

In-batch negatives are the other rows of the same micro-batch on the same rank: the stage sizes micro-batches
so each rank's share of a batch is one micro-batch (`learner.micro_batch_size` and `max_tokens_per_micro`
are raised to fit), so with one learner a step's loss is SigLIP's over the whole batch; with N learners it is
the sum of N per-rank SigLIP losses, each over its batch/N rows, divided by the batch's image count.

Evaluation (`evaluate: true`) before and after training, on held-out captions (`eval_data`, default
vl_caption_eval): image->text and text->image top-1 retrieval among the captions of each eval batch
(`batch_size` rows in file order), from cosine similarity of the pooled embeddings.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

from rlsys.algorithms.registry import loss_kind
from rlsys.config.validate import ConfigError
from rlsys.jobs.train import epoch_batches, train_loop
from rlsys.learner.batching import make_batch
from rlsys.learner.group import LearnerGroup
from rlsys.learner.worker import is_vision_language
from rlsys.stages.builders import build_metrics_at, build_stage_learners, total_steps
from rlsys.stages.context import StageContext
from rlsys.stages.io import stage_rows

log = logging.getLogger(__name__)

DEFAULT_EVAL_DATA = "vl_caption_eval"


def caption_units(ctx: StageContext, tokenizer: Any, rows: list[dict]) -> tuple[list[list[tuple]], list[str], int]:
    """One unit per row: (caption ids, all-ones mask, no fields, [image]); the captions; how many were cut to
    `seq_len`. A row without exactly one image or without a caption is an error naming it."""
    units: list[list[tuple]] = []
    captions: list[str] = []
    cut = 0
    for row in rows:
        origin = ctx.row_origins.of(row)
        where = f"stage {ctx.name!r}: row {row.get('id')!r}" + (f" ({origin})" if origin else "")
        images = list(row.get("images") or [])
        if len(images) != 1:
            raise ConfigError(f"{where} has {len(images)} images; a contrastive stage pairs each caption "
                              "(`response`) with exactly one image")
        caption = str(row.get("response") or "").strip()
        ids = tokenizer(caption, add_special_tokens=False)["input_ids"] if caption else []
        if not ids:
            raise ConfigError(f"{where} has no caption: a contrastive row's caption is its `response`")
        if len(ids) > ctx.stage.seq_len:
            ids, cut = ids[: ctx.stage.seq_len], cut + 1
        units.append([(ids, [1] * len(ids), {}, images)])
        captions.append(caption)
    return units, captions, cut


def pair_batch(units: list[list[tuple]]) -> dict[str, Any]:
    """The learner batch of caption units (rlsys/learner/contrastive.py reads it)."""
    seqs = [unit[0] for unit in units]
    return make_batch([s[0] for s in seqs], [s[1] for s in seqs], images=[list(s[3]) for s in seqs])


def retrieval_accuracy(image_emb: list[list[float]], text_emb: list[list[float]], captions: list[str],
                       batch_size: int) -> dict[str, float]:
    """Top-1 retrieval within consecutive batches of `batch_size` rows, by cosine similarity: `i2t` the share
    of images whose best caption is theirs, `t2i` of captions whose best image is theirs. A pick whose caption
    text equals the right one counts (two scenes can share a caption); `chance` is the expected i2t of a
    random pick."""
    import torch

    if not captions:
        return {"i2t": float("nan"), "t2i": float("nan"), "chance": float("nan")}
    img = torch.nn.functional.normalize(torch.tensor(image_emb, dtype=torch.float64), dim=-1)
    txt = torch.nn.functional.normalize(torch.tensor(text_emb, dtype=torch.float64), dim=-1)
    i2t = t2i = chance = 0.0
    for start in range(0, len(captions), batch_size):
        names = captions[start : start + batch_size]
        sim = img[start : start + batch_size] @ txt[start : start + batch_size].T  # [n, n] image x caption
        best_text, best_image = sim.argmax(dim=1).tolist(), sim.argmax(dim=0).tolist()
        i2t += sum(names[j] == names[i] for i, j in enumerate(best_text))
        t2i += sum(names[i] == names[j] for j, i in enumerate(best_image))
        chance += sum(names.count(name) / len(names) for name in names)
    n = len(captions)
    return {"i2t": i2t / n, "t2i": t2i / n, "chance": chance / n}


def _evaluate(learners: LearnerGroup, units: list[list[tuple]], captions: list[str], batch_size: int) -> dict:
    if not units:
        return {}
    images, texts = learners.compute_embeddings(pair_batch(units))
    return retrieval_accuracy(images, texts, captions, batch_size)


def contrastive_learner_settings(ctx: StageContext, units: list[list[tuple]]) -> dict[str, Any]:
    """What a contrastive stage's learners need beyond the run's settings: the head (its key names the stage
    in errors) and micro-batches that hold a rank's whole share of a batch (in-batch negatives)."""
    learner = ctx.cfg.learner
    share = math.ceil(ctx.stage.batch_size / int(learner.num_actors))
    longest = max(len(unit[0][0]) for unit in units)
    return {
        "contrastive": f"stages.{ctx.name}",
        "micro_batch_size": max(int(learner.micro_batch_size), share),
        "max_tokens_per_micro": max(int(learner.max_tokens_per_micro), share * longest),
    }


def check_contrastive_stage(ctx: StageContext) -> None:
    """The stage's loss is a contrastive one and its input model a vision-language model (ConfigError)."""
    key = f"stages.{ctx.name}"
    try:
        kind = loss_kind(ctx.stage.loss)
    except KeyError as exc:
        raise ConfigError(f"config key '{key}.loss' = {ctx.stage.loss!r}: {exc}") from None
    if kind != "contrastive":
        raise ConfigError(f"config key '{key}.loss' = {ctx.stage.loss!r}: a contrastive stage trains a loss of kind "
                          f"'contrastive' (siglip), not {kind!r}")
    if not is_vision_language(ctx.input_model):
        raise ConfigError(f"stage {ctx.name!r} (contrastive): its input model {ctx.input_model} is not a "
                          "vision-language model (no vision_config in its config.json); start it from a VLM")


def run_contrastive(ctx: StageContext) -> dict[str, Any]:
    from transformers import AutoTokenizer

    check_contrastive_stage(ctx)
    tokenizer = AutoTokenizer.from_pretrained(ctx.input_model)
    rows = stage_rows(ctx, "sft")
    units, captions, cut = caption_units(ctx, tokenizer, rows)
    eval_units: list[list[tuple]] = []
    eval_captions: list[str] = []
    if ctx.stage.evaluate:
        eval_rows = stage_rows(ctx, "sft", ctx.stage.eval_data or DEFAULT_EVAL_DATA)
        eval_units, eval_captions, _ = caption_units(ctx, tokenizer, eval_rows)
    if cut:
        log.warning("stage %s: %d captions longer than seq_len %d were cut", ctx.name, cut, ctx.stage.seq_len)
    steps = total_steps(ctx.stage, len(units))
    log.info("contrastive: %d caption-image pairs, %d steps of %d, %d held-out pairs", len(units), steps,
             ctx.stage.batch_size, len(eval_units))
    metrics = build_metrics_at(ctx.cfg, ctx.out_dir, ctx.name)
    learners = build_stage_learners(ctx, steps, learner_overrides=contrastive_learner_settings(ctx, units))
    try:
        before = _evaluate(learners, eval_units, eval_captions, ctx.stage.batch_size)
        # Uniformly shuffled batches, not length-grouped ones: a caption's negatives are its batch, and grouping by
        # length would fill batches with captions of one kind (equal lengths keep the shuffled order).
        batches = epoch_batches([0] * len(units), ctx.stage.batch_size, steps, ctx.stage.seed)
        summary = train_loop(ctx, learners, units, ctx.stage.loss, dict(ctx.stage.loss_kwargs), steps, metrics,
                             batches=batches)
        after = _evaluate(learners, eval_units, eval_captions, ctx.stage.batch_size)
        learners.save_hf(str(Path(ctx.out_dir) / "model"))
    finally:
        learners.shutdown()
    summary |= {"pairs": len(units), "captions_cut": cut, "trainable_params": learners.parameter_counts["trainable_params"]}
    if after:
        summary["eval"] = {
            "eval/retrieval_i2t_before": before["i2t"], "eval/retrieval_i2t": after["i2t"],
            "eval/retrieval_t2i_before": before["t2i"], "eval/retrieval_t2i": after["t2i"],
            "eval/retrieval_chance": after["chance"],
        }
        metrics.log(summary["eval"], step=steps)
    metrics.close(plots=ctx.cfg.logging.plots)
    return summary

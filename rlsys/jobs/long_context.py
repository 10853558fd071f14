"""The `long_context` stage: Keye-VL 1.5's long-context annealing (its last pretraining stage), scaled down.

Keye raises the RoPE base 1M -> 8M and the context 8K -> 128K, and trains on long videos, long text and many
images at video:image:text = 24:50:26 with context parallelism. Here the stage
1. writes the input model with its RoPE base x `long_context.rope_theta_scale` and its context
   (`max_position_embeddings`) raised (`scaled_config`; weights linked, not copied),
2. trains it through `long_context.phases` of growing `seq_len`: each phase packs its data parts into long
   rows of `items` rows (rlsys/data/long_context.py), keeps `keep_short` of the plain rows, and trains its
   `share` of `max_steps` on the parts mixed by `mix_weights`, under one LR schedule over all phases,
3. measures held-out accuracy by input length on the input model (context raised, base kept) and on the
   result (rlsys/eval/long_context.py), plus the usual short evaluation on both, and writes `eval_table.md`.
On GPUs, `learner.sequence_parallel` splits each long sequence over that many ranks (Ulysses).
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

from rlsys.config.validate import ConfigError
from rlsys.data.long_context import check_phases, long_rows, phase_steps
from rlsys.data.mixture import mixture_batches
from rlsys.stages.context import StageContext

log = logging.getLogger(__name__)


def scaled_config(config: dict[str, Any], rope_scale: float, positions: int) -> dict[str, Any]:
    """An HF config.json with its RoPE base x `rope_scale` and max_position_embeddings = `positions`, in the
    top-level and the `text_config` section alike (a VLM keeps its LM's there). The base is `rope_theta`,
    inside `rope_parameters` (transformers 5) or at the top of the section (older configs); a section with
    neither raises, as does a rope type other than default (its own scaling would stack on this one)."""
    out = json.loads(json.dumps(config))
    sections = [s for s in (out, out.get("text_config")) if isinstance(s, dict)]
    touched = False
    for section in sections:
        rope = section.get("rope_parameters")
        if isinstance(rope, dict) and "rope_theta" in rope:
            if rope.get("rope_type", "default") != "default":
                raise ValueError(f"long_context: rope type {rope['rope_type']!r} already rescales RoPE; only the "
                                 "default type is raised here")
            rope["rope_theta"] = float(rope["rope_theta"]) * rope_scale
            touched = True
        elif "rope_theta" in section:
            section["rope_theta"] = float(section["rope_theta"]) * rope_scale
            touched = True
        if "max_position_embeddings" in section:
            section["max_position_embeddings"] = int(positions)
    if not touched:
        raise ValueError("long_context: the model's config.json names no rope_theta (top level or text_config)")
    return out


def write_scaled_model(src: str, dst: Path, rope_scale: float, positions: int) -> str:
    """`src` with `scaled_config` at `dst`: config.json rewritten (and the tokenizer's model_max_length raised to
    the context), every other file linked (a real model's weights are not copied). Returns `dst`."""
    if dst.exists():
        shutil.rmtree(dst)
    dst.mkdir(parents=True)
    rewritten = ("config.json", "tokenizer_config.json")
    for path in Path(src).iterdir():
        if path.name not in rewritten:
            (dst / path.name).symlink_to(path.resolve())
    config = json.loads((Path(src) / "config.json").read_text())
    (dst / "config.json").write_text(json.dumps(scaled_config(config, rope_scale, positions), indent=2))
    tok = Path(src) / "tokenizer_config.json"
    if tok.is_file():
        # The tokenizer warns about (and some callers cut at) its own model_max_length: keep it with the context.
        tok_cfg = json.loads(tok.read_text())
        if isinstance(tok_cfg.get("model_max_length"), int) and tok_cfg["model_max_length"] < positions:
            tok_cfg["model_max_length"] = int(positions)
        (dst / tok.name).write_text(json.dumps(tok_cfg, indent=2))
    return str(dst)


def run_long_context(ctx: StageContext) -> dict[str, Any]:
    from transformers import AutoTokenizer

    from rlsys.data.encode import encode_sft_rows
    from rlsys.data.videos import RowVideoItems
    from rlsys.eval.long_context import long_context_eval, long_table
    from rlsys.jobs.train import epoch_batches, input_processor, stage_parts, train_loop
    from rlsys.stages.builders import build_metrics_at, build_stage_learners
    from rlsys.stages.validate import check_long_context

    lc, key = ctx.stage.long_context, f"stages.{ctx.name}.long_context"
    phases = check_phases(lc.phases, f"{key}.phases")
    check_long_context(ctx.name, ctx.stage)
    positions = int(lc.max_position_embeddings) or max(p.seq_len for p in phases)
    out = Path(ctx.out_dir)
    start = write_scaled_model(ctx.input_model, out / "start_model", float(lc.rope_theta_scale), positions)
    train_ctx = replace(ctx, input_model=start)
    parts = stage_parts(train_ctx, "sft")
    processor = input_processor(train_ctx, [r for _, rows in parts for r in rows])
    tokenizer = AutoTokenizer.from_pretrained(start)
    video_items_of = RowVideoItems.from_config(ctx.cfg.data, start) if processor is not None else None
    metrics = build_metrics_at(ctx.cfg, ctx.out_dir, ctx.name)

    summary: dict[str, Any] = {"rope_theta_scale": float(lc.rope_theta_scale), "max_position_embeddings": positions}
    before: dict[str, float] = {}
    if lc.eval_before:
        # The input model with room for long prompts but its own RoPE base: what it does past its training length.
        before_model = write_scaled_model(ctx.input_model, out / "before_model", 1.0, positions)
        before = long_context_eval(ctx.cfg, lc, before_model, positions, ctx.stage.seed, short=ctx.stage.evaluate)
        summary["eval_before"] = before

    steps = phase_steps(phases, ctx.stage.max_steps)
    learners = build_stage_learners(train_ctx, sum(steps))
    offset, last = 0, {}
    for i, (phase, n_steps) in enumerate(zip(phases, steps)):
        units, sizes, dropped = [], [], 0
        for name, rows in parts:
            packed = long_rows(rows, phase.items, ctx.stage.seed + i, f"{name}|{i}")
            short = rows[: int(round(lc.keep_short * len(rows)))]
            encoded = encode_sft_rows(tokenizer, packed + short, phase.seq_len, ctx.cfg.data.system_prompt,
                                      processor, video_items_of)
            if not encoded:
                raise ConfigError(f"config key '{key}.phases[{i}]': no packed row of part {name!r} fits seq_len "
                                  f"{phase.seq_len}; raise it or lower items")
            dropped += len(packed) + len(short) - len(encoded)
            units += [[e] for e in encoded]
            sizes.append(len(encoded))
        if ctx.stage.mix_weights:
            batches, _ = mixture_batches(sizes, ctx.stage.mix_weights, ctx.stage.batch_size, n_steps,
                                         ctx.stage.seed + i)
        else:
            lengths = [len(u[0][0]) for u in units]
            batches = epoch_batches(lengths, ctx.stage.batch_size, n_steps, ctx.stage.seed + i)
        log.info("%s phase %d: seq_len %d, items %s, %d sequences (%d too long dropped), %d steps", ctx.name, i,
                 phase.seq_len, list(phase.items), len(units), dropped, n_steps)
        # The loss's own defaults (sft: a mean over tokens, as pretraining takes it, which sequence parallelism
        # can split), not the SFT stages' square-root weighting.
        kwargs = dict(ctx.stage.loss_kwargs)
        last = train_loop(train_ctx, learners, units, ctx.stage.loss, kwargs, n_steps, metrics, step_offset=offset,
                          batches=batches)
        summary[f"phase{i}"] = {"seq_len": phase.seq_len, "sequences": len(units), "too_long": dropped,
                                "steps": n_steps, "train_s": last["train_s"], "tokens_per_s": last["tokens_per_s"]}
        offset += n_steps

    model_dir = str(out / "model")
    learners.save_hf(model_dir)
    learners.shutdown()
    after = long_context_eval(ctx.cfg, lc, model_dir, positions, ctx.stage.seed, short=ctx.stage.evaluate)
    summary |= {"steps": offset, "final_loss": last.get("final_loss"), "eval": after}
    metrics.log(after, step=offset)
    metrics.close(plots=ctx.cfg.logging.plots)
    table = long_table(before, after)
    (out / "eval_table.md").write_text(f"# {ctx.name}: held-out accuracy by input length\n\n{table}")
    log.info("%s: accuracy by input length (before -> after)\n%s", ctx.name, table)
    if lc.eval_before:
        shutil.rmtree(out / "before_model")
    shutil.rmtree(out / "start_model")
    return summary

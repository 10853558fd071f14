"""Held-out visual accuracy of several models: with their pictures, blind (no picture) and with another row's picture.

    .venv/bin/python -m rlsys.eval vision vl_init=runs/vl_pipeline/<time>/stages/vl_init/model \
        vl_sft=runs/vl_pipeline/<time>/stages/vl_sft/model [...] [--max-visual 90] [--exp vl_pipeline]
    .venv/bin/python -m rlsys.eval vision --from-run runs/vl_pipeline/<time>
    # one task on a larger held-out draw (held-out keys stay held-out: the split hashes the problem, not the seed)
    .venv/bin/python -m rlsys.eval vision --from-run RUN --max-visual 100 \
        --set 'data.visual.tasks=[identify]' --set data.visual.n_eval_per_task=100

`--from-run` takes every stage model of a pipeline run (its `stages/stages.jsonl`, in run order) whose model is a
vision-language one. Each model answers the visual suite's held-out rows (`vl_eval`, spread over the tasks, and
the trap questions) greedily three times: with the pictures, with the pictures removed from the prompt (blind),
and with each task row given the next task row's pictures (swapped). A model that reads the pictures beats both.
Blind changes the prompt's form as well (no image placeholder: a model may answer it as it answers trap
questions); swapped keeps the form and only takes the information away, so with − swapped is the cleaner test.
Prints one markdown table (overall, per tier, trap; then per task) with both paired differences and their
standard errors.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def run_models(run_dir: Path) -> list[tuple[str, str]]:
    """(stage name, model dir) of every stage of `run_dir` with a vision-language model, in run order, once each."""
    from rlsys.learner.worker import is_vision_language

    record = run_dir / "stages" / "stages.jsonl"
    if not record.is_file():
        raise SystemExit(f"--from-run {run_dir}: no stages/stages.jsonl (not a pipeline run directory?)")
    seen: dict[str, str] = {}
    for line in record.read_text().splitlines():
        item = json.loads(line)
        if item["name"] not in seen and is_vision_language(item["model_dir"]):
            seen[item["name"]] = item["model_dir"]
    if not seen:
        raise SystemExit(f"--from-run {run_dir}: no stage of this run has a vision-language model")
    return list(seen.items())


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("models", nargs="*", help="name=model_dir of a vision-language model")
    parser.add_argument("--from-run", type=Path, default=None, help="a pipeline run directory: every stage's VL model")
    parser.add_argument("--max-visual", type=int, default=90, help="held-out task rows (and at most as many traps)")
    parser.add_argument("--exp", default="vl_pipeline", help="the exp whose data.visual and prompts are used")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a config override on top of the exp (e.g. data.visual.n_eval_per_task=100); repeatable")


def eval_config(args: argparse.Namespace) -> Any:
    """The exp's config with the visual evaluation on, `--max-visual` rows and the `--set` overrides."""
    from rlsys.config.store import compose_config

    cfg = compose_config([f"+exp={args.exp}", "eval.visual=true", f"eval.max_visual={args.max_visual}", *args.set])
    cfg.artifacts_dir = str(REPO / cfg.artifacts_dir)
    return cfg


def run(args: argparse.Namespace) -> int:
    from rlsys.eval.scoring import model_completions, paired_difference
    from rlsys.eval.visual import score_visual, visual_eval_rows, visual_hits, without_images
    from rlsys.runtime.ray_utils import init_ray

    models = [tuple(spec.split("=", 1)) for spec in args.models]
    if any(len(m) != 2 for m in models):
        raise SystemExit("models are given as name=model_dir")
    if args.from_run:
        models += run_models(args.from_run)
    if not models:
        raise SystemExit("name at least one model (name=model_dir) or a run (--from-run)")
    cfg = eval_config(args)
    rows = visual_eval_rows(cfg)
    pictured = rows["visual"] + rows["visual_trap"]
    blind = [without_images(r) for r in pictured]
    swapped = other_pictures(rows["visual"])
    n = len(rows["visual"])
    print(f"rows: {n} held-out task rows, {len(rows['visual_trap'])} trap rows", flush=True)
    init_ray(num_cpus=4)
    table: dict[str, dict[str, float]] = {}
    gaps: dict[str, tuple[str, str]] = {}
    for name, path in models:
        seen = [t[0] if t else "" for t in model_completions(cfg, path, pictured)]
        unseen = [t[0] if t else "" for t in model_completions(cfg, path, blind)]
        misled = [t[0] if t else "" for t in model_completions(cfg, path, swapped)]
        with_images = score_visual(rows["visual"], seen[:n], rows["visual_trap"], seen[n:])
        without = score_visual(rows["visual"], unseen[:n], rows["visual_trap"], unseen[n:])
        hits = visual_hits(rows["visual"], seen[:n])
        other = visual_hits(rows["visual"], misled)
        table[name] = (with_images | {k.replace("eval/vl_", "eval/blind_"): v for k, v in without.items()}
                       | {"eval/swapped_acc": sum(other) / max(1, n)})
        gaps[name] = (paired_difference(visual_hits(rows["visual"], unseen[:n]), hits), paired_difference(other, hits))
        print(name, {k: round(v, 3) for k, v in table[name].items() if "_acc_" not in k}, flush=True)
    print(markdown(table, gaps))
    return 0


def other_pictures(rows: list[dict]) -> list[dict]:
    """Each row with the next row's pictures (the last with the first's): the same prompt, another picture."""
    return [dict(r, images=rows[(i + 1) % len(rows)]["images"]) for i, r in enumerate(rows)]


def markdown(table: dict[str, dict[str, float]], gaps: dict[str, tuple[str, str]]) -> str:
    """Overall/tier/trap columns per model with, without and with swapped images, the paired gaps (with − blind,
    with − swapped); then accuracy per task."""
    def cell(scores: dict[str, float], key: str) -> str:
        return f"{scores[key]:.3f}" if key in scores else "—"

    tiers = sorted({k for s in table.values() for k in s if k.startswith("eval/vl_acc_tier")})
    tasks = sorted({k for s in table.values() for k in s if k.startswith("eval/vl_acc_") and k not in tiers})
    head = ["model", "vl acc", "blind", "with − blind", "swapped", "with − swapped", *[t.rsplit("_", 1)[1] for t in tiers],
            "trap", "trap blind"]
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for name, s in table.items():
        cells = [name, cell(s, "eval/vl_acc"), cell(s, "eval/blind_acc"), gaps[name][0], cell(s, "eval/swapped_acc"),
                 gaps[name][1],
                 *[cell(s, t) for t in tiers], cell(s, "eval/vl_trap_acc"), cell(s, "eval/blind_trap_acc")]
        lines.append("| " + " | ".join(cells) + " |")
    names = [t.removeprefix("eval/vl_acc_") for t in tasks]
    lines += ["", "| model | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for name, s in table.items():
        lines.append(f"| {name} | " + " | ".join(cell(s, t) for t in tasks) + " |")
    return "\n".join(lines)

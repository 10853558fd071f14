"""SlowFast vs uniform frame sampling at the same video token budget: accuracy per task, tokens per video and
rollout speed, one model, one vLLM actor, every variant in one run.

"uniform" is the SlowFast planner with `threshold: 1.0`: no frame is ever fast, so every frame is sent at the one
resolution whose total fits the budget (what uniform sampling at that budget is); "slowfast" is the default
planner (threshold 0.95, fast frames at 30% of a slow frame's tokens). For each budget and variant:
- greedy accuracy on the video rows the model never trained on (`video_eval`, plus `video_train` when the model
  is an SFT model: the SFT stage trains on its own stream `video_sft_train`), overall and per task;
- tokens per video (the plans' totals) and the share of frames sent slow;
- rollout speed: `--samples` answers per row at temperature 1, generated tokens/s and prompt tokens/s (video
  tokens expanded) over the wall time of the batch.
Variants run in turn, `--rounds` times in alternating order; speeds are medians over rounds.

    .venv/bin/python scripts/bench_video.py --model artifacts/stages/video_sft/<hash>/model --budgets 24 64
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

VARIANTS = {"slowfast": 0.95, "uniform": 1.0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="a vision-language model directory")
    ap.add_argument("--budgets", type=int, nargs="+", default=[24, 64], help="video token budgets per video")
    ap.add_argument("--samples", type=int, default=8, help="answers per row for the speed measurement")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--held-out-only", action="store_true", help="score video_eval only (e.g. after RL on train)")
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    args = ap.parse_args()

    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf
    from transformers import AutoTokenizer

    from rlsys.config.store import register_configs
    from rlsys.data.embedded import ensure_video_suite
    from rlsys.data.loading import load_rows
    from rlsys.data.videos import RowVideoItems
    from rlsys.eval.long_context import PromptTokens
    from rlsys.eval.scoring import sampled_texts
    from rlsys.eval.visual import visual_hits
    from rlsys.run import CONF_DIR, normalize_overrides
    from rlsys.runtime.ray_utils import get, init_ray
    from rlsys.stages.builders import build_rollout_group

    register_configs()
    with initialize_config_dir(config_dir=CONF_DIR, version_base=None):
        base = compose(config_name="config", overrides=normalize_overrides(["+exp=gspo_hints_video"]))
    files = ensure_video_suite(str(ROOT / base.artifacts_dir), base.data.video)
    rows = load_rows([files["video_eval"]], "rl")[0]
    if not args.held_out_only:
        rows += load_rows([files["video_train"]], "rl")[0]
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    init_ray(num_cpus=4)
    group = build_rollout_group(base, args.model, num_actors=1)
    actor = group.actors[0]
    results: dict[str, dict] = {}
    speeds: dict[str, list[dict]] = defaultdict(list)
    try:
        names = [(b, v) for b in args.budgets for v in VARIANTS]
        for rnd in range(args.rounds):
            for budget, variant in names if rnd % 2 == 0 else names[::-1]:
                key = f"{variant}@{budget}"
                cfg = OmegaConf.merge(base, {"data": {"video_sampling": "slowfast", "slowfast": {
                    "token_budget": budget, "threshold": VARIANTS[variant]}}})
                items = RowVideoItems.from_config(cfg.data, args.model)
                for r in rows:
                    items(r)
                plans = [p for per_row in items.plans.values() for p in per_row]
                measure = PromptTokens(args.model, cfg)
                prompt_tokens = sum(measure(r) for r in rows)
                timing: dict[str, float] = {}

                def generate(reqs: list, timing: dict = timing) -> list:
                    started = time.perf_counter()
                    out = get(actor.generate.remote(reqs), timeout=3600, what="bench.generate")
                    timing["wall"] = time.perf_counter() - started
                    timing["gen"] = sum(len(s.token_ids) for r in out for s in r.samples)
                    return out

                if rnd == 0:
                    texts = [t[0] if t else "" for t in sampled_texts(cfg, tokenizer, rows, generate, 1, 0.0)]
                    hits = visual_hits(rows, texts)
                    per_task: dict[str, list[float]] = defaultdict(list)
                    for r, h in zip(rows, hits):
                        per_task[r["task"]].append(h)
                    results[key] = {
                        "accuracy": statistics.mean(hits), "rows": len(rows),
                        "per_task": {t: statistics.mean(v) for t, v in sorted(per_task.items())},
                        "tokens_per_video": statistics.mean(p["total_tokens"] for p in plans),
                        "slow_share": sum(sum(p["slow"]) for p in plans) / sum(len(p["slow"]) for p in plans),
                        "prompt_tokens_per_row": prompt_tokens / len(rows),
                    }
                sampled_texts(cfg, tokenizer, rows, generate, args.samples, 1.0, seed=rnd * 100_000)
                speeds[key].append({"gen_tok_s": timing["gen"] / timing["wall"],
                                    "prompt_tok_s": prompt_tokens * args.samples / timing["wall"],
                                    "wall_s": timing["wall"]})
                print(f"round {rnd} {key}: {speeds[key][-1]}", flush=True)
    finally:
        group.shutdown()
    for key, runs in speeds.items():
        results[key] |= {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    tasks = sorted({t for r in results.values() for t in r["per_task"]})
    print("| variant | budget | tokens/video | slow frames | prompt tokens/row | accuracy | " + " | ".join(tasks)
          + " | gen tokens/s | prompt tokens/s |")
    print("|---" * (8 + len(tasks)) + "|")
    for key, r in results.items():
        variant, budget = key.split("@")
        print(f"| {variant} | {budget} | {r['tokens_per_video']:.1f} | {r['slow_share']:.2f} | "
              f"{r['prompt_tokens_per_row']:.0f} | {r['accuracy']:.3f} ({r['rows']}) | "
              + " | ".join(f"{r['per_task'].get(t, float('nan')):.2f}" for t in tasks)
              + f" | {r['gen_tok_s']:.0f} | {r['prompt_tok_s']:.0f} |")
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

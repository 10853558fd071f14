"""Can the tiny model learn the IF judge's atomic skill, checking ONE response against its request's constraints?

    .venv/bin/python scripts/diag_pointwise_check.py build OUT_DIR [--train 16000] [--eval 300]
    .venv/bin/python scripts/diag_pointwise_check.py score MODEL_DIR OUT_DIR/eval.jsonl

The pairwise judge with per-constraint checks stays at chance (BENCHMARKS.md, "Pairwise judge"): its marks do
not depend on the responses. This separates the two things that judge has to do at once. `build` writes
pointwise rows from the suite's IF preference generator (both the chosen and the rejected response of each
pair, so half the rows fail a constraint): the prompt holds the request and one response, the target one line
per constraint ("keyword include melody: no."). Train rows come from the train split, held-out rows from the
eval split. Train them with an SFT stage on the user file (see BENCHMARKS.md for the command); `score` answers
the held-out rows greedily and reports mark accuracy against the "always ok" prior, and the pair accuracy a
pointwise judge would get by preferring the response with no failed mark (ties count half).
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CHECK_PROMPT = "Request:\n{request}\n\nResponse:\n{response}\n\nCheck the response against each instruction of the request."


def check_rows(n_pairs: int, seed: int, split: str) -> list[dict]:
    """Pointwise check rows from `n_pairs` IF preference pairs of `split` (chosen row first)."""
    from rewards.ifeval import check_constraints
    from rlsys.controller.judge_rm import constraint_tag
    from rlsys.data.tasks.preference import if_pair

    rng = random.Random(f"check|{seed}|{split}")
    rows: list[dict] = []
    tries = 0
    while len(rows) < 2 * n_pairs:
        tries += 1
        if tries > 200 * n_pairs + 1000:
            raise RuntimeError(f"only {len(rows) // 2} IF pairs in {tries} draws")
        found = if_pair(rng, split)
        if not found:
            continue
        pair, draft = found
        tags = [constraint_tag(c) for c in draft.constraints]
        for role in ("chosen", "rejected"):
            marks = ["ok" if ok else "no" for ok in check_constraints(pair[role], draft.constraints, pair["prompt"])]
            rows.append({
                "id": f"check-{split}-{len(rows) // 2:06d}-{role}",
                "data_source": "rlsys/ifeval_check",
                "prompt": CHECK_PROMPT.format(request=pair["prompt"].strip(), response=pair[role].strip()),
                "response": "\n".join(f"{t}: {m}." for t, m in zip(tags, marks)),
                "tags": tags,
                "marks": marks,
            })
    return rows


def read_marks(text: str, tags: list[str]) -> list[str | None]:
    """The mark the model wrote for each tag ("ok" / "no"; None when the tag's line is missing)."""
    found = {}
    for line in text.splitlines():
        tag, sep, mark = line.strip().rpartition(": ")
        if sep:
            found.setdefault(tag, mark.rstrip(".").strip())
    return [found.get(t) if found.get(t) in ("ok", "no") else None for t in tags]


def score(rows: list[dict], texts: list[str]) -> dict[str, float]:
    """Mark accuracy (missing marks are wrong), the always-"ok" prior, and the pointwise judge's pair accuracy."""
    right = total = oks = 0
    pair_points = []
    for i in range(0, len(rows), 2):
        failed = []
        for row, text in zip(rows[i:i + 2], texts[i:i + 2]):
            got = read_marks(text, row["tags"])
            right += sum(g == m for g, m in zip(got, row["marks"]))
            total += len(row["marks"])
            oks += row["marks"].count("ok")
            failed.append(any(g != "ok" for g in got))
        chosen_fails, rejected_fails = failed
        pair_points.append(1.0 if rejected_fails and not chosen_fails else 0.0 if chosen_fails and not rejected_fails else 0.5)
    return {"marks": total, "mark_acc": right / max(1, total), "always_ok": oks / max(1, total),
            "pair_acc": sum(pair_points) / max(1, len(pair_points)), "pairs": len(pair_points)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    build = sub.add_parser("build")
    build.add_argument("out_dir")
    build.add_argument("--train", type=int, default=8000, help="train pairs (two rows each)")
    build.add_argument("--eval", type=int, default=150, help="held-out pairs")
    build.add_argument("--seed", type=int, default=0)
    grade = sub.add_parser("score")
    grade.add_argument("model_dir")
    grade.add_argument("eval_file")
    grade.add_argument("--max-tokens", type=int, default=96)
    args = parser.parse_args()
    if args.cmd == "build":
        out = Path(args.out_dir)
        out.mkdir(parents=True, exist_ok=True)
        for name, n, split in (("train", args.train, "train"), ("eval", args.eval, "eval")):
            rows = check_rows(n, args.seed, split)
            with open(out / f"{name}.jsonl", "w") as f:
                f.writelines(json.dumps(r) + "\n" for r in rows)
            print(f"{name}: {len(rows)} rows, always-ok prior {score(rows, [r['response'] for r in rows])['always_ok']:.3f}")
        return
    from hydra import compose, initialize_config_dir

    from rlsys.config.store import register_configs
    from rlsys.controller.evaluate import greedy_completions
    from rlsys.run import CONF_DIR, normalize_overrides
    from rlsys.runtime.ray_utils import init_ray

    register_configs()
    with initialize_config_dir(config_dir=CONF_DIR, version_base=None):
        cfg = compose(config_name="config", overrides=normalize_overrides(
            ["+exp=keye_pipeline", f"eval.max_tokens={args.max_tokens}"]))
    rows = [json.loads(line) for line in open(args.eval_file)]
    init_ray(num_cpus=4)
    texts = greedy_completions(cfg, args.model_dir, rows)
    with open(Path(args.model_dir).parent / "check_eval.jsonl", "w") as f:
        f.writelines(json.dumps({"id": r["id"], "target": r["response"], "output": t}) + "\n" for r, t in zip(rows, texts))
    print(json.dumps({k: round(v, 3) for k, v in score(rows, texts).items()}))


if __name__ == "__main__":
    main()

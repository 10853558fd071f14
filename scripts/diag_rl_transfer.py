"""Does GSPO learning on training problems transfer to held-out ones? A direct probe of the policy
update, outside the controller (same learner group, rollout pool and math reward).

    .venv/bin/python scripts/diag_rl_transfer.py --model artifacts/stages/sft/<hash>/model \
        --mode fresh --iters 15 --lr 5e-5 [--neg-scale 1.0]

Each iteration samples G=8 answers at T=1 for 32 training problems (`--mode repeat`: the same 48
problems every time; `fresh`: new ones), takes one GSPO step on the groups with mixed results,
syncs the weights into vLLM and prints the training pass rate; every 5th iteration (and the first
and last) it also prints held-out greedy and T=1 accuracy on 150 eval problems. `--neg-scale`
multiplies negative advantages (1.0 = plain GSPO). The first iteration also prints how one update
moves answers' mean token logprob by sign of advantage.
"""

from __future__ import annotations

import argparse
import random
import statistics
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--mode", choices=["fresh", "repeat"], default="fresh")
    ap.add_argument("--iters", type=int, default=15)
    ap.add_argument("--lr", type=float, default=5e-5)
    ap.add_argument("--neg-scale", type=float, default=1.0)
    args = ap.parse_args()

    from hydra import compose, initialize_config_dir
    from transformers import AutoTokenizer

    from rewards.math import math_reward
    from rlsys.config.schema import learner_settings
    from rlsys.config.store import register_configs
    from rlsys.data.embedded import ensure_task_suite
    from rlsys.data.encode import encode_prompt
    from rlsys.data.loading import load_rows
    from rlsys.learner.batching import make_batch
    from rlsys.learner.group import LearnerGroup
    from rlsys.rollout.pool import RolloutPool
    from rlsys.rollout.types import GroupRequest
    from rlsys.run import CONF_DIR, normalize_overrides
    from rlsys.runtime.ray_utils import init_ray

    register_configs()
    with initialize_config_dir(config_dir=CONF_DIR, version_base=None):
        cfg = compose(config_name="config", overrides=normalize_overrides(["+exp=gspo_hints"]))
    init_ray(num_cpus=4)
    files = ensure_task_suite(str(REPO / cfg.artifacts_dir), cfg.data.suite)
    train, _ = load_rows(files["math_train"], "rl")
    random.Random(0).shuffle(train)
    held_out = load_rows(files["math_eval"], "rl")[0][::2][:150]
    tok = AutoTokenizer.from_pretrained(args.model)
    pool = RolloutPool.from_config(cfg.rollout, args.model)
    learner_cfg = learner_settings({"lr": args.lr, "min_lr_ratio": 1.0, "anneal_lr_ratio": 1.0},
                                   micro_batch_size=4, num_threads=2)
    learners = LearnerGroup(args.model, learner_cfg)

    def generate(rows: list[dict], n: int, temperature: float, tag: str) -> tuple[list, list]:
        reqs = [GroupRequest(f"{tag}-{i}", prompt_token_ids=encode_prompt(tok, r, cfg.data.system_prompt), n=n,
                             temperature=temperature, max_tokens=cfg.rollout.max_tokens, seed=i)
                for i, r in enumerate(rows)]
        return reqs, pool.generate(reqs)

    def score(row: dict, text: str) -> float:
        return float(math_reward(row["prompt"], text, answer=row["answer"])["score"])

    def accuracy(rows: list[dict], results: list) -> float:
        return statistics.mean(score(r, s.text) for r, res in zip(rows, results) for s in res.samples)

    try:
        for it in range(args.iters):
            rows = train[:48] if args.mode == "repeat" else train[it * 32 : (it + 1) * 32]
            reqs, results = generate(rows, 8, 1.0, f"t{it}")
            ids, masks, old, adv, seen = [], [], [], [], []
            for req, res, row in zip(reqs, results, rows):
                scores = [score(row, s.text) for s in res.samples]
                seen += scores
                mean, std = statistics.mean(scores), statistics.pstdev(scores)
                if std == 0:
                    continue
                for s, x in zip(res.samples, scores):
                    a = (x - mean) / (std + 1e-6)
                    p = len(req.prompt_token_ids)
                    ids.append(req.prompt_token_ids + s.token_ids)
                    masks.append([0] * p + [1] * len(s.token_ids))
                    old.append([0.0] * p + list(s.logprobs))
                    adv.append(a if a > 0 else a * args.neg_scale)
            batch = make_batch(ids, masks, {"old_logprobs": old, "advantages": adv})
            before = learners.compute_logprobs(batch) if it == 0 else None
            out = learners.train_step(batch, "gspo", {"eps_low": 3e-4, "eps_high": 4e-4})
            line = f"iter {it}: train T=1 acc {statistics.mean(seen):.3f} entropy {out['entropy']:.4f}"
            if before is not None:
                after = learners.compute_logprobs(batch)
                delta = [sum((b - a) * m for a, b, m in zip(x, y, k)) / max(1, sum(k))
                         for x, y, k in zip(before, after, masks)]
                line += (f" | one update, mean token logprob change: A>0 {statistics.mean(d for d, a in zip(delta, adv) if a > 0):+.4f}"
                         f" A<0 {statistics.mean(d for d, a in zip(delta, adv) if a < 0):+.4f}"
                         f" corr(change, A) {statistics.correlation(delta, adv):.2f}")
            pool.sync_from_learner(learners, it + 1)
            if it % 5 == 4 or it in (0, args.iters - 1):
                greedy = accuracy(held_out, generate(held_out, 1, 0.0, f"g{it}")[1])
                sampled = accuracy(held_out, generate(held_out, 4, 1.0, f"s{it}")[1])
                line += f" | held-out greedy {greedy:.3f} T=1 {sampled:.3f}"
            print(line, flush=True)
    finally:
        pool.shutdown()
        learners.shutdown()


if __name__ == "__main__":
    main()

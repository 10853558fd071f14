"""Learner throughput: tokens/s for ZeRO stage x data-parallel actors, next to the matmul peak.

    .venv/bin/python scripts/bench_learner.py [--steps 6] [--model-dir DIR]

Trains the embedded default architecture (untrained weights are fine for speed) on fixed-size
batches of packed 256-token blocks with the `ntp` loss, through the real LearnerGroup (Ray +
DeepSpeed). Efficiency = achieved FLOP/s (6 * params * tokens/s) / this machine's measured fp32
matmul peak with the same number of threads. All configurations run in one invocation, so the
ratios between them are comparable.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from types import SimpleNamespace

import torch


def matmul_peak_gflops(threads: int, n: int = 1024, reps: int = 10) -> float:
    torch.set_num_threads(threads)
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(3):
        a @ b
    started = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * n**3 * reps / (time.perf_counter() - started) / 1e9


def default_model(out_dir: str) -> str:
    from rlsys.config.schema import TinyModelConfig
    from rlsys.model.tiny import build_tiny_model

    texts = [f"What is {a} + {b}? The answer is {a + b}." for a in range(100) for b in range(100)]
    build_tiny_model(out_dir, TinyModelConfig(), texts, seed=0)
    return out_dir


def learner_cfg(num_actors: int, zero: int, threads: int) -> dict:
    from rlsys.config.schema import learner_settings

    return learner_settings({"lr": 1e-4, "total_steps": 100}, num_actors=num_actors, zero_stage=zero,
                            micro_batch_size=16, max_tokens_per_micro=8192, num_threads=threads)


def run(args: SimpleNamespace) -> list[dict]:
    from transformers import AutoConfig

    from rlsys.learner.batching import make_batch
    from rlsys.learner.group import LearnerGroup
    from rlsys.runtime.ray_utils import init_ray

    init_ray(num_cpus=4)
    model_dir = args.model_dir
    cfg = AutoConfig.from_pretrained(model_dir)
    rng = random.Random(0)
    blocks = [[rng.randrange(10, cfg.vocab_size) for _ in range(256)] for _ in range(32)]
    batch = make_batch(blocks, [[1] * 256 for _ in blocks])
    results = []
    for zero in (0, 2, 3):
        for actors in (1, 2):
            threads = max(1, 2 // actors)
            group = LearnerGroup(model_dir, learner_cfg(actors, zero, threads))
            try:
                group.train_step(batch, "ntp")  # warm-up (first step builds buffers)
                started = time.perf_counter()
                for _ in range(args.steps):
                    group.train_step(batch, "ntp")
                elapsed = time.perf_counter() - started
            finally:
                group.shutdown()
            tok_s = args.steps * 32 * 256 / elapsed
            results.append({"zero": zero, "actors": actors, "threads_per_actor": threads, "tokens_per_s": round(tok_s),
                            "achieved_gflops": round(6 * args.n_params * tok_s / 1e9, 2)})
            print(json.dumps(results[-1]), flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--model-dir", default=None)
    args = parser.parse_args()
    from transformers import AutoModelForCausalLM

    if args.model_dir is None:
        args.model_dir = default_model(tempfile.mkdtemp(prefix="bench-learner-"))
    args.n_params = sum(p.numel() for p in AutoModelForCausalLM.from_pretrained(args.model_dir).parameters())
    peak = matmul_peak_gflops(2)
    print(json.dumps({"matmul_peak_gflops_2_threads": round(peak, 1), "params": args.n_params}))
    for row in run(args):
        row["efficiency_vs_peak"] = round(row["achieved_gflops"] / peak, 3)
        print("|", " | ".join(str(v) for v in row.values()), "|")


if __name__ == "__main__":
    main()

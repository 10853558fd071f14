"""Rollout benchmarks: vLLM worker vs HF generate, weight-sync latency, pool with 1 vs 2 actors.

    .venv/bin/python scripts/bench_rollout.py [--json out.json] [--skip-100m]

Every ratio comes from one run of this script (same machine state for both sides). Samples are
fixed-length (EOS ignored on both sides) so both generate exactly the same number of tokens.
Untrained weights: throughput does not depend on what the model says.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch

from rlsys.rollout.pool import PoolPolicy, RolloutPool
from rlsys.rollout.types import GroupRequest
from rlsys.rollout.weight_sync import publish_version
from rlsys.rollout.worker import RolloutWorker
from rlsys.runtime.ray_utils import ActorResources, init_ray

# The embedded default model (conf/model/tiny.yaml).
DEFAULT_CFG = SimpleNamespace(vocab_size=1024, hidden_size=256, intermediate_size=768, num_layers=4, num_heads=4,
                              num_kv_heads=2, head_dim=64, max_position_embeddings=1024, rope_theta=10000.0)
# ~125M parameters (untied embeddings), Qwen3 layout.
QWEN3_100M = dict(vocab_size=32000, hidden_size=768, intermediate_size=2048, num_hidden_layers=12,
                  num_attention_heads=12, num_key_value_heads=4, head_dim=64, max_position_embeddings=1024)
ENGINE = {"dtype": "float32", "max_model_len": 1024, "kv_cache_bytes": 512 << 20, "enforce_eager": True,
          "in_process": True, "seed": 0}


class FixedLengthWorker(RolloutWorker):
    """The rollout worker with EOS ignored, so every sample has exactly max_tokens tokens."""

    def _sampling_params(self, req: GroupRequest) -> Any:
        params = super()._sampling_params(req)
        params.ignore_eos = True
        return params


def corpus(n: int = 6000, seed: int = 0) -> list[str]:
    """Made-up words from syllables: enough distinct pairs for a ~1024-entry BPE vocabulary."""
    rng = random.Random(seed)
    syllables = [a + b for a in "bdfgklmnprstvz" for b in "aeiou"]
    words = ["".join(rng.choice(syllables) for _ in range(rng.randint(1, 3))) for _ in range(3000)]
    return [" ".join(rng.choice(words) for _ in range(12)) + f" {rng.randint(0, 999)}." for _ in range(n)]


def vocab_of(model_dir: str) -> int:
    """Token ids the tokenizer knows (the 100M model's embedding is larger than its tokenizer)."""
    from transformers import AutoTokenizer

    return len(AutoTokenizer.from_pretrained(model_dir))


def build_default(out: Path) -> str:
    from rlsys.model.tiny import build_tiny_model

    if not (out / "config.json").exists():
        build_tiny_model(out, DEFAULT_CFG, corpus(), seed=0)
    return str(out)


def build_100m(out: Path) -> str:
    from transformers import Qwen3Config, Qwen3ForCausalLM

    from rlsys.model.tiny import train_tokenizer

    if not (out / "config.json").exists():
        tok = train_tokenizer(corpus(), 1024, 1024)
        cfg = Qwen3Config(**QWEN3_100M, tie_word_embeddings=False, eos_token_id=tok.eos_token_id,
                          pad_token_id=tok.pad_token_id, bos_token_id=None)
        torch.manual_seed(0)
        Qwen3ForCausalLM(cfg).save_pretrained(out, safe_serialization=True)
        tok.save_pretrained(out)
    return str(out)


def requests(prompts: list[list[int]], n: int, max_tokens: int | list[int], tag: str) -> list[GroupRequest]:
    lengths = max_tokens if isinstance(max_tokens, list) else [max_tokens] * len(prompts)
    return [GroupRequest(f"{tag}-{i}", prompt_token_ids=p, n=n, max_tokens=m, temperature=1.0, seed=i)
            for i, (p, m) in enumerate(zip(prompts, lengths))]


def make_prompts(count: int, length: int, vocab: int, seed: int = 0) -> list[list[int]]:
    rng = random.Random(seed)
    return [[rng.randrange(10, vocab) for _ in range(length)] for _ in range(count)]


def time_pool(pool: RolloutPool, prompts: list[list[int]], n: int, max_tokens: int, tag: str, repeats: int) -> dict:
    pool.generate(requests(prompts[:4], n, 8, f"{tag}-warm"), timeout=600)
    rates = []
    for r in range(repeats):
        reqs = requests(prompts, n, max_tokens, f"{tag}-{r}")
        started = time.perf_counter()
        results = pool.generate(reqs, timeout=1800)
        elapsed = time.perf_counter() - started
        tokens = sum(len(s.token_ids) for res in results for s in res.samples)
        assert tokens == len(prompts) * n * max_tokens, "fixed-length sampling produced other lengths"
        rates.append(tokens / elapsed)
    return {"tokens": len(prompts) * n * max_tokens, "tokens_per_s": statistics.median(rates), "runs": rates}


class HFGenerate:
    """transformers `generate` on the same model, prompts, n and lengths (left-padded batch)."""

    def __init__(self, model_dir: str, threads: int) -> None:
        from transformers import AutoModelForCausalLM

        torch.set_num_threads(threads)
        self.model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
        self.pad = self.model.config.pad_token_id or 0

    def run(self, prompts: list[list[int]], n: int, new: int) -> int:
        width = max(map(len, prompts))
        ids = torch.tensor([[self.pad] * (width - len(p)) + p for p in prompts])
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
        with torch.no_grad():
            out = self.model.generate(input_ids=ids, attention_mask=mask, do_sample=True, temperature=1.0,
                                      top_p=1.0, top_k=0, max_new_tokens=new, min_new_tokens=new,
                                      num_return_sequences=n, pad_token_id=self.pad)
        return (out.shape[1] - ids.shape[1]) * out.shape[0]


def wait_quiet(max_load: float | None, max_wait_s: float = 1800.0) -> float:
    """Wait (bounded) until the 1-minute load average drops below `max_load`: on a machine shared
    with other jobs, a run that starts under heavy load measures the other jobs."""
    started = time.monotonic()
    while max_load is not None and os.getloadavg()[0] > max_load and time.monotonic() - started < max_wait_s:
        time.sleep(10)
    return os.getloadavg()[0]


def new_pool(model_dir: str, actors: int, cpus: float, **kw: Any) -> RolloutPool:
    return RolloutPool(model_dir, worker_kwargs=ENGINE, num_actors=actors, actor_cls=FixedLengthWorker,
                       resources=ActorResources(num_cpus=cpus), policy=PoolPolicy(max_actors=max(actors, 1),
                       max_inflight_per_actor=256, request_timeout_s=1800), **kw)


def actor_threads(pool: RolloutPool) -> int:
    import ray

    return ray.get(pool.actors()[0]["handle"].__ray_call__.remote(lambda _self: torch.get_num_threads()))


def _cpu_s(pool: RolloutPool) -> float:
    return ray_get(pool.actors()[0]["handle"].__ray_call__.remote(lambda _self: time.process_time()))


def ray_get(ref: Any) -> Any:
    import ray

    return ray.get(ref, timeout=600)


def bench_vs_hf(model_dir: str, args: argparse.Namespace) -> dict:
    """Same prompts, n and per-group lengths through the vLLM worker (one actor) and HF generate.

    One thread each: this 2-core machine is shared, and single-threaded runs are the ones that
    stay comparable when other processes compete for the cores. The two sides alternate so that
    outside load hits both alike. Besides wall time, CPU seconds are counted (robust to load).
    """
    prompts = make_prompts(args.prompts, args.prompt_len, vocab_of(model_dir))
    rng = random.Random(3)
    cases = {
        f"fixed {args.max_tokens} tokens": [args.max_tokens] * len(prompts),
        f"fixed {args.long_tokens} tokens": [args.long_tokens] * len(prompts),
        # RL answers differ in length; HF generate runs every row until the longest is done.
        f"lengths 32..{args.long_tokens} (uniform)": [rng.randint(32, args.long_tokens) for _ in prompts],
    }
    out: dict[str, Any] = {"workload": f"{args.prompts} prompts x n={args.n}, prompt {args.prompt_len} tokens, "
                                       "fp32, 1 thread each, EOS ignored (exact lengths)"}
    with new_pool(model_dir, 1, 1.0) as pool:
        threads = actor_threads(pool)
        hf = HFGenerate(model_dir, threads)
        pool.generate(requests(prompts[:4], args.n, 8, "warm"), timeout=600)
        hf.run(prompts[:4], args.n, 8)
        for label, lengths in cases.items():
            want = args.n * sum(lengths)
            rows: dict[str, list[float]] = {"vllm": [], "hf": [], "vllm_cpu": [], "hf_cpu": []}
            for r in range(args.repeats):
                wall, cpu = time.perf_counter(), _cpu_s(pool)
                results = pool.generate(requests(prompts, args.n, lengths, f"{label}-{r}"), timeout=3600)
                rows["vllm"].append(want / (time.perf_counter() - wall))
                rows["vllm_cpu"].append(want / (_cpu_s(pool) - cpu))
                assert sum(len(s.token_ids) for res in results for s in res.samples) == want
                wall, cpu = time.perf_counter(), time.process_time()
                hf.run(prompts, args.n, max(lengths))
                # Only the tokens each group asked for count: the rest is padding work.
                rows["hf"].append(want / (time.perf_counter() - wall))
                rows["hf_cpu"].append(want / (time.process_time() - cpu))
            med = {k: statistics.median(v) for k, v in rows.items()}
            out[label] = {"tokens": want, "vllm_tokens_per_s": med["vllm"], "hf_tokens_per_s": med["hf"],
                          "speedup": med["vllm"] / med["hf"], "speedup_cpu": med["vllm_cpu"] / med["hf_cpu"],
                          "loadavg_1m_after": os.getloadavg()[0], "runs": rows}
            print(label, json.dumps({k: round(v, 2) for k, v in out[label].items() if k != "runs"}), flush=True)
    return out


def bench_pool(model_dir: str, args: argparse.Namespace) -> dict:
    """Pool throughput by actor count. Per actor: engine-busy seconds (inside LLM.generate) and
    CPU seconds, to tell "actors wait for cores" from "actors wait for work"."""
    prompts = make_prompts(args.pool_prompts, args.prompt_len, vocab_of(model_dir), seed=1)
    out: dict[str, Any] = {"workload": f"{args.pool_prompts} prompts x n={args.n} x {args.max_tokens} tokens"}
    for label, actors, cpus in (("1 actor, 1 CPU", 1, 1.0), ("1 actor, 2 CPUs", 1, 2.0), ("2 actors, 1 CPU each", 2, 1.0)):
        with new_pool(model_dir, actors, cpus) as pool:
            load0 = os.getloadavg()[0]
            handles = [a["handle"] for a in pool.actors()]
            cpu0 = ray_get([h.__ray_call__.remote(lambda _self: time.process_time()) for h in handles])
            busy0 = [s["busy_s"] for s in ray_get([h.stats.remote() for h in handles])]
            wall = time.perf_counter()
            res = time_pool(pool, prompts, args.n, args.max_tokens, f"pool{actors}{cpus}", args.repeats)
            wall = time.perf_counter() - wall
            cpu1 = ray_get([h.__ray_call__.remote(lambda _self: time.process_time()) for h in handles])
            busy1 = [s["busy_s"] for s in ray_get([h.stats.remote() for h in handles])]
            res.update(threads_per_actor=actor_threads(pool), loadavg_1m_before=load0, wall_s=wall,
                       actor_cpu_s=[b - a for a, b in zip(cpu0, cpu1)],
                       actor_busy_s=[b - a for a, b in zip(busy0, busy1)])
            out[label] = res
            print(label, json.dumps({k: v for k, v in res.items() if k != "runs"}), flush=True)
    return out


def bench_sync(model_dir: str, label: str, bucket_bytes: int, repeats: int) -> dict:
    from safetensors.torch import load_file

    files = sorted(Path(model_dir).glob("*.safetensors"))
    state = {k: v for f in files for k, v in load_file(str(f)).items()}
    params = sum(v.numel() for v in state.values())
    rows = []
    with new_pool(model_dir, 1, 1.0) as pool:
        for r in range(repeats):
            started = time.perf_counter()
            pub = publish_version(state.items(), bucket_bytes, pool.version + 1)
            published = time.perf_counter()
            loads = pool.sync_weights(pub)
            done = time.perf_counter()
            rows.append({"publish_s": published - started, "pull_and_load_s": done - published,
                         "engine_load_s": next(iter(loads.values())), "total_s": done - started})
            if r == 0:
                # Generation after the sync proves the engine took the new weights in place.
                pool.generate(requests(make_prompts(2, 8, vocab_of(model_dir)), 1, 4, f"sync{r}"), timeout=300)
        # Rollout rate at a realistic batch, for the RL-step estimate below.
        gen = time_pool(pool, make_prompts(32, 32, vocab_of(model_dir), seed=2), 4, 64, f"gen-{label}", 1)
    best = min(rows, key=lambda x: x["total_s"])
    return {"model": label, "params": params, "bytes": sum(v.numel() * v.element_size() for v in state.values()),
            "buckets": len(pub.refs), "bucket_bytes": bucket_bytes, "runs": rows, "best": best,
            "median_total_s": statistics.median(r["total_s"] for r in rows), "vllm_tokens_per_s": gen["tokens_per_s"]}


def train_rate(model_dir: str, seqs: int, length: int, threads: int) -> float:
    """Learner tokens/s for one fp32 forward+backward+AdamW step on this CPU (HF model, no DeepSpeed)."""
    from transformers import AutoModelForCausalLM

    torch.set_num_threads(threads)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5)
    ids = torch.randint(10, 500, (seqs, length))
    rates = []
    for _ in range(2):
        started = time.perf_counter()
        out = model(input_ids=ids, labels=ids)
        out.loss.backward()
        opt.step()
        opt.zero_grad()
        rates.append(seqs * length / (time.perf_counter() - started))
    return rates[-1]


def train_rate_isolated(model_dir: str, seqs: int, length: int, threads: int) -> float:
    """`train_rate` in a child process: the ~100M model needs GBs for a step, and an OOM kill
    there should be reported, not take the whole benchmark down."""
    import subprocess

    code = (f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import bench_rollout as b; "
            f"print(b.train_rate({model_dir!r}, {seqs}, {length}, {threads}))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"train-rate probe exited with {proc.returncode}: {proc.stderr[-2000:]}")
    return float(proc.stdout.strip().splitlines()[-1])


def step_share(sync: dict, model_dir: str, prompts: int, n: int, prompt_len: int, gen_len: int, threads: int) -> dict:
    """An RL step = rollout + train + sync; rollout and train from measured rates on this machine."""
    tokens_rollout = prompts * n * gen_len
    rollout_s = tokens_rollout / sync["vllm_tokens_per_s"]
    tokens_train = prompts * n * (prompt_len + gen_len)
    train_s = tokens_train / train_rate_isolated(model_dir, 4, prompt_len + gen_len, threads)
    sync_s = sync["median_total_s"]
    step = rollout_s + train_s + sync_s
    return {"step": f"{prompts} prompts x n={n}, {prompt_len}+{gen_len} tokens", "rollout_s": rollout_s,
            "train_s": train_s, "sync_s": sync_s, "step_s": step, "sync_share": sync_s / step}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work-dir", default="/tmp/rlsys-bench-rollout")
    ap.add_argument("--prompts", type=int, default=32)
    ap.add_argument("--pool-prompts", type=int, default=64)
    ap.add_argument("--prompt-len", type=int, default=32)
    ap.add_argument("--n", type=int, default=4)
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--long-tokens", type=int, default=512)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--skip-100m", action="store_true")
    ap.add_argument("--only", choices=["hf", "pool", "sync"], default=None)
    ap.add_argument("--json", default=None)
    ap.add_argument("--quiet-load", type=float, default=None,
                    help="before each section, wait (up to 30 min) until the 1-min load average is below this")
    args = ap.parse_args()
    work = Path(args.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    init_ray(num_cpus=4, env_vars={"PYTHONPATH": os.pathsep.join(p for p in sys.path if p)})
    default_dir = build_default(work / "default")
    report: dict[str, Any] = {"machine": f"{os.cpu_count()} CPUs, torch {torch.__version__}",
                              "loadavg_start": os.getloadavg()}
    if args.only in (None, "hf"):
        report["load_before_hf"] = wait_quiet(args.quiet_load)
        report["vllm_vs_hf"] = bench_vs_hf(default_dir, args)
    if args.only in (None, "pool"):
        report["load_before_pool"] = wait_quiet(args.quiet_load)
        report["pool"] = bench_pool(default_dir, args)
    if args.only in (None, "sync"):
        report["load_before_sync"] = wait_quiet(args.quiet_load)
        sync = {"default": bench_sync(default_dir, "default (tiny)", 64 << 20, 3)}
        sync["default"]["step"] = step_share(sync["default"], default_dir, 64, 8, 64, 256, 1)
        if not args.skip_100m:
            big = build_100m(work / "qwen3-100m")
            sync["100m"] = bench_sync(big, "Qwen3 ~100M", 64 << 20, 3)
            sync["100m"]["step"] = step_share(sync["100m"], big, 64, 8, 64, 256, 1)
        report["sync"] = sync
        print(json.dumps(sync, indent=1), flush=True)
    report["loadavg_end"] = os.getloadavg()
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

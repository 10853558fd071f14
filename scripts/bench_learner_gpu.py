"""The learner's GPU path on one device, without Ray: DeepSpeed (ZeRO, bf16, NCCL) GSPO steps with a KL anchor.

    python scripts/bench_learner_gpu.py --model-dir DIR --out results.json \
        [--runs tiny:3:2,tiny:3:16,qwen3-0.6b:3:2,qwen3-0.6b:3:8,qwen3-1.7b:3:8] [--steps 3] [--seqs 64] [--seq-len 512]

For a machine with CUDA torch, DeepSpeed and transformers but neither Ray nor vLLM (the lent GPU
machine has no package index, and those two wheels are too big to carry there): each run drives
`LearnerWorker`, the class the Ray learner actor wraps, in-process as rank 0 of 1, in its own
subprocess (a clean CUDA context and process group per run). Settings come from
conf/learner/deepspeed_gpu.yaml; `--runs` names shape:ZeRO stage[:micro-batch size] runs. `tiny` is `--model-dir`
as it is; `qwen3-0.6b` / `qwen3-1.7b` are those models' layer shapes with random weights and the
model dir's tokenizer (vocabulary size unchanged), i.e. the same code on a bigger model by config.

Each run: one GSPO warm-up step then `--steps` timed ones on `--seqs` random sequences of `--seq-len`
tokens (the last 3/4 trained), with kl_coef 0.05 so the reference model is loaded too. Checks, written
with the timings: the process-group backend, the engine's dtype, learner logprobs against an fp32 HF
forward of the same start weights, the first step's importance ratio (old logprobs come from the
learner itself, so it is 1 up to bf16 noise), and `save_hf` reloaded against the engine's logprobs.
Runs on CPU too (gloo, fp32 unless --precision says otherwise), which is how it is tested here.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
# Layer shapes of the public Qwen3 models (their config.json); the vocabulary stays the model dir's.
SHAPES = {
    "qwen3-0.6b": dict(hidden_size=1024, num_hidden_layers=28, num_attention_heads=16, num_key_value_heads=8,
                       head_dim=128, intermediate_size=3072),
    "qwen3-1.7b": dict(hidden_size=2048, num_hidden_layers=28, num_attention_heads=16, num_key_value_heads=8,
                       head_dim=128, intermediate_size=6144),
}
KL_COEF = 0.05


def shaped_model(model_dir: str, shape: str, out_dir: str, seq_len: int) -> str:
    """`model_dir` itself (tiny) or a random-weight Qwen3 of a public model's shape with its tokenizer."""
    if shape == "tiny":
        return model_dir
    from transformers import AutoConfig, AutoModelForCausalLM

    from rlsys.learner.worker import TOKENIZER_FILES

    values = AutoConfig.from_pretrained(model_dir).to_dict()
    values.update(SHAPES[shape])
    values["max_position_embeddings"] = max(values["max_position_embeddings"], seq_len)
    # Per-layer lists are sized for the old depth: the config rebuilds them for the new one.
    values.pop("layer_types", None)
    cfg = AutoConfig.for_model(values.pop("model_type"), **values)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
    model.save_pretrained(out_dir, safe_serialization=True)
    for name in TOKENIZER_FILES:
        if (Path(model_dir) / name).exists():
            shutil.copy(Path(model_dir) / name, Path(out_dir) / name)
    return out_dir


def learner_cfg(zero: int, precision: str | None, micro: int | None) -> dict:
    from rlsys.config.schema import learner_settings

    values = yaml.safe_load((ROOT / "conf/learner/deepspeed_gpu.yaml").read_text())
    values["zero_stage"] = zero
    if not torch.cuda.is_available():
        values.update(gpus_per_actor=0.0, precision="fp32")
    if precision:
        values["precision"] = precision
    if micro:
        values["micro_batch_size"] = micro
    return learner_settings({"lr": 1e-6, "total_steps": 100, "warmup_steps": 0}, **values)


def random_batch(vocab: int, seqs: int, seq_len: int, old: list[list[float]] | None = None) -> dict:
    from rlsys.learner.batching import make_batch

    gen = torch.Generator().manual_seed(1)
    ids = torch.randint(0, vocab, (seqs, seq_len), generator=gen).tolist()
    prompt = seq_len // 4
    mask = [[0] * prompt + [1] * (seq_len - prompt) for _ in ids]
    fields = {"advantages": [1.0 if i % 2 else -1.0 for i in range(seqs)]}
    if old is not None:
        fields["old_logprobs"] = old
    return make_batch(ids, mask, fields)


def mean_abs_diff(a: list[list[float]], b: list[list[float]], mask: list[list[int]]) -> float:
    diffs = [abs(x - y) for ra, rb, rm in zip(a, b, mask) for x, y, m in zip(ra, rb, rm) if m]
    return sum(diffs) / max(1, len(diffs))


def hf_logprobs(model_dir: str, batch: dict, device: torch.device) -> list[list[float]]:
    """fp32 HF forward of a saved model dir (the reference the learner's numbers are set against)."""
    from transformers import AutoModelForCausalLM

    from rlsys.learner.batching import token_logprobs

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).to(device).eval()
    out: list[list[float]] = []
    with torch.no_grad():
        for start in range(0, len(batch["input_ids"]), 8):
            ids = torch.tensor(batch["input_ids"][start:start + 8], device=device)
            out += token_logprobs(model(input_ids=ids).logits, ids).tolist()
    del model
    return out


def timed_gspo_steps(worker: Any, batch: dict, steps: int) -> tuple[dict, dict, list[float], float | None]:
    """One warm-up GSPO step (kl_coef KL_COEF) then `steps` timed ones: (first result, last result, step
    seconds, peak GPU memory in GiB or None on CPU)."""
    kwargs = {"eps_low": 3e-4, "eps_high": 4e-4, "kl_coef": KL_COEF}
    if worker.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    first = worker.train_step(batch, "gspo", kwargs)
    times, last = [], first
    for _ in range(steps):
        t0 = time.perf_counter()
        last = worker.train_step(batch, "gspo", kwargs)
        times.append(time.perf_counter() - t0)
    peak = torch.cuda.max_memory_allocated() / 2**30 if worker.device.type == "cuda" else None
    return first, last, times, peak


def one_run(args: argparse.Namespace) -> dict:
    """A single shape x ZeRO run in this process (rank 0 of 1)."""
    from transformers import AutoConfig

    from rlsys.learner.worker import LearnerWorker

    shape, zero, *micro = args.one.split(":")
    work = tempfile.mkdtemp(prefix="bench-gpu-")
    model_dir = shaped_model(args.model_dir, shape, os.path.join(work, "model"), args.seq_len)
    cfg = learner_cfg(int(zero), args.precision, int(micro[0]) if micro else args.micro_batch_size)
    vocab = AutoConfig.from_pretrained(model_dir).vocab_size
    started = time.perf_counter()
    worker = LearnerWorker(rank=0, world_size=1, model_path=model_dir, cfg=cfg, num_threads=args.threads)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    worker.setup("127.0.0.1", port)
    setup_s = time.perf_counter() - started
    import torch.distributed as dist

    params = sum(p.ds_numel if hasattr(p, "ds_numel") else p.numel() for p in worker.engine.module.parameters())
    probe = random_batch(vocab, args.seqs, args.seq_len)
    start_lp = worker.compute_logprobs(probe)
    hf_lp = hf_logprobs(model_dir, probe, worker.device)
    batch = random_batch(vocab, args.seqs, args.seq_len, old=start_lp)
    first, last, times, peak = timed_gspo_steps(worker, batch, args.steps)
    now_lp = worker.compute_logprobs(probe)
    saved = worker.save_hf(os.path.join(work, "saved"))
    saved_lp = hf_logprobs(saved, probe, worker.device)
    step_s = sum(times) / len(times)
    tokens = last["tokens"]
    result = {
        "run": args.one,
        "device": torch.cuda.get_device_name() if worker.device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "backend": dist.get_backend(),
        "engine_dtype": str(next(worker.engine.module.parameters()).dtype),
        "precision": cfg["precision"],
        "zero_stage": cfg["zero_stage"],
        "micro_batch_size": cfg["micro_batch_size"],
        "gradient_checkpointing": cfg["gradient_checkpointing"],
        "params": params,
        "setup_s": round(setup_s, 2),
        "tokens_per_step": tokens,
        "step_s": round(step_s, 4),
        "tokens_per_s": round(tokens / step_s, 1),
        # 6 * params * tokens: the usual model-FLOPs count (recompute and attention left out).
        "model_tflops": round(6 * params * tokens / step_s / 1e12, 2),
        "peak_mem_gib": round(peak, 2) if peak is not None else None,
        "start_vs_hf_fp32_abs_diff": round(mean_abs_diff(start_lp, hf_lp, probe["loss_mask"]), 5),
        "first_step_ratio_mean": round(first["ratio_mean"], 6),
        "first_step_kl": round(first["kl"], 6),
        "last_step_kl": round(last["kl"], 6),
        "last_step_loss": round(last["loss"], 6),
        "saved_vs_engine_abs_diff": round(mean_abs_diff(now_lp, saved_lp, probe["loss_mask"]), 5),
        "moved_from_start_abs_diff": round(mean_abs_diff(now_lp, start_lp, probe["loss_mask"]), 5),
    }
    shutil.rmtree(work, ignore_errors=True)
    return result


def run_each(script: str, runs: list[str], extra: list[str], timeout: float, out: str | None) -> None:
    """Each run in its own `script --one RUN` subprocess (a clean CUDA context and process group per run);
    prints each result line and rewrites `out` after every run, so a cut-off keeps the finished ones."""
    results = []
    for run in runs:
        cmd = [sys.executable, script, *sys.argv[1:], *extra, "--one", run]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
            lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
            result = json.loads(lines[-1][7:]) if lines else {"run": run, "rc": proc.returncode,
                                                              "error": proc.stderr[-3000:]}
        except subprocess.TimeoutExpired:
            result = {"run": run, "error": f"timed out after {timeout} s"}
        print(json.dumps(result), flush=True)
        results.append(result)
        if out:
            Path(out).write_text(json.dumps(results, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--runs", default="tiny:3:2,tiny:3:16,qwen3-0.6b:3:2,qwen3-0.6b:3:8,qwen3-1.7b:3:8")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--seqs", type=int, default=64)
    parser.add_argument("--seq-len", type=int, default=512)
    parser.add_argument("--precision", default=None, help="fp32 | bf16 (default: the config's; fp32 on CPU)")
    parser.add_argument("--micro-batch-size", type=int, default=None)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per run")
    parser.add_argument("--out", default=None)
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print("RESULT " + json.dumps(one_run(args)), flush=True)
        return
    run_each(__file__, args.runs.split(","), [], args.timeout, args.out)


if __name__ == "__main__":
    main()

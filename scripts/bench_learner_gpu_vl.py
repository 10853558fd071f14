"""The learner's GPU path on a vision-language model, without Ray: GSPO steps on image and video rows.

    python scripts/bench_learner_gpu_vl.py --out results.json \
        [--runs tiny:0:8,qwen3-vl-2b:0:8,qwen3-vl-2b:3:8] [--steps 3] [--seqs 32]

The VL counterpart of scripts/bench_learner_gpu.py (its helpers are reused), for the same lent machine
(CUDA torch, DeepSpeed, transformers; no Ray, no vLLM, no artifacts). Everything is built here: the tiny
Qwen3 LM and tokenizer (`build_tiny_model`), then a Qwen3-VL around it (`build_tiny_vl`). `--runs` names
shape:ZeRO stage[:micro-batch size] runs: `tiny` is the default TinyVLSpec on the tiny LM; `qwen3-vl-2b`
is the LM at Qwen3-1.7B's layer shapes (random weights, tiny vocabulary) with a vision tower of
Qwen3-VL-2B's shape (24 blocks of width 1024, 16 heads, MLP 4096, deepstack at 5/11/17, patch 16, merge 2).

The batch is what the learner gets in RL: `--seqs` rows, half with one PIL-drawn image (shapes and a digit,
a few sizes), half with a short video (PNG frames in a temp dir, fps 2), encoded by `encode_vl_sft_row`
(one placeholder per image / video item; the learner expands them through the processor), advantages +-1.
Each run (own subprocess): `LearnerWorker` rank 0 of 1; learner logprobs at start vs an fp32 HF forward of
the same collated pixel inputs; one GSPO warm-up step (kl_coef 0.05, so the reference model loads) then
`--steps` timed ones; whether vision-tower weights moved (gathered, so ZeRO-3 too; a bf16 weight moves
only where the update exceeds its rounding step, hence the changed fraction); `save_hf` reloaded vs the
engine's logprobs; tokens/s (expanded tokens), peak memory, device, backend, dtype. Runs on CPU too (gloo, fp32).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_learner_gpu import ROOT, learner_cfg, mean_abs_diff, run_each, shaped_model, timed_gspo_steps  # noqa: E402

# TinyArch / tiny_texts (the test suite's tiny LM) live under tests/.
sys.path.insert(0, str(ROOT / "tests"))

# Vision towers by run shape: TinyVLSpec overrides (the LM shape is bench_learner_gpu's SHAPES entry).
VISION = {
    "tiny": (None, {}),
    "qwen3-vl-2b": ("qwen3-1.7b", dict(depth=24, hidden_size=1024, num_heads=16, intermediate_size=4096,
                                       patch_size=16, temporal_patch_size=2, spatial_merge_size=2,
                                       num_position_embeddings=2304, deepstack_layers=(5, 11, 17),
                                       max_pixels=448 * 448, video_max_pixels=8 * 224 * 224)),
}
IMAGE_SIZES = [(128, 128), (224, 160), (320, 320), (448, 448)]
COLOURS = ["red", "green", "blue", "orange", "purple", "black"]
VIDEO_FRAMES, VIDEO_SIZE, VIDEO_FPS = 4, (192, 192), 2.0
# Parameter-name parts of the vision weights compared before / after training (small tensors only).
VISION_PROBES = ("visual.patch_embed.", "visual.blocks.0.", "visual.merger.", "visual.deepstack_merger_list.0.")


def build_model(shape: str, cache: str) -> str:
    """`cache/shape`: the tiny LM (+ its Qwen3-1.7B-shaped copy), then the Qwen3-VL directory around it.
    Built once per shape (several runs share it); written aside and renamed, so a killed build leaves none."""
    from rlsys_testing import TinyArch, tiny_texts

    from rlsys.model.tiny import build_tiny_model
    from rlsys.model.tiny_vl import TinyVLSpec, build_tiny_vl

    done = os.path.join(cache, shape)
    if os.path.isfile(os.path.join(done, "config.json")):
        return done
    work = tempfile.mkdtemp(prefix=f"build-{shape}-", dir=cache)
    lm_shape, spec = VISION[shape]
    lm_dir = os.path.join(work, "lm")
    build_tiny_model(lm_dir, TinyArch, tiny_texts(), seed=0)
    if lm_shape:
        lm_dir = shaped_model(lm_dir, lm_shape, os.path.join(work, "lm-shaped"), 4096)
    build_tiny_vl(lm_dir, os.path.join(work, "vl"), TinyVLSpec(**spec), seed=0)
    os.rename(os.path.join(work, "vl"), done)
    shutil.rmtree(work, ignore_errors=True)
    return done


def draw_image(i: int, size: tuple[int, int], path: Path) -> None:
    """A canvas with a few filled shapes and a digit (deterministic in `i`)."""
    from PIL import Image, ImageDraw

    rng = random.Random(i)
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    w, h = size
    for _ in range(rng.randint(1, 4)):
        x, y = rng.randrange(w - w // 4), rng.randrange(h - h // 4)
        box = (x, y, x + rng.randint(w // 8, w // 4), y + rng.randint(h // 8, h // 4))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=rng.choice(COLOURS))
    draw.text((w // 2, h // 2), str(i % 10), fill="black")
    image.save(path)


def write_video(i: int, folder: Path) -> list[str]:
    """`VIDEO_FRAMES` PNG frames of a square moving across the canvas; their paths, in order."""
    from PIL import Image, ImageDraw

    folder.mkdir(parents=True, exist_ok=True)
    w, h = VIDEO_SIZE
    colour = COLOURS[i % len(COLOURS)]
    paths = []
    for f in range(VIDEO_FRAMES):
        image = Image.new("RGB", VIDEO_SIZE, "white")
        x = f * (w - 40) // max(1, VIDEO_FRAMES - 1)
        ImageDraw.Draw(image).rectangle((x, h // 3, x + 40, h // 3 + 40), fill=colour)
        path = folder / f"frame_{f:03d}.png"
        image.save(path)
        paths.append(str(path))
    return paths


def vl_batch(processor: object, seqs: int, work: Path, response_words: int) -> dict:
    """`seqs` rows (even: one image; odd: one video) as the learner gets them, advantages +-1."""
    from rlsys.data.encode import encode_vl_sft_row
    from rlsys.learner.batching import make_batch

    rng = random.Random(0)
    ids, masks, images, videos = [], [], [], []
    for i in range(seqs):
        a, b = rng.randrange(30), rng.randrange(30)
        response = " ".join(f"What is {a} + {k}? The answer is {a + k}." for k in range(response_words // 8 + 1))
        row = {"id": f"r{i}", "response": response}
        if i % 2 == 0:
            path = work / f"image_{i}.png"
            draw_image(i, IMAGE_SIZES[(i // 2) % len(IMAGE_SIZES)], path)
            row |= {"prompt": f"How many shapes are in the picture? What is {a} + {b}?", "images": [str(path)]}
        else:
            row |= {"prompt": "Which way does the square move?", "fps": VIDEO_FPS,
                    "videos": [write_video(i, work / f"video_{i}")]}
        enc = encode_vl_sft_row(processor, row, max_len=4096)
        if enc is None:
            raise ValueError(f"row {i} does not fit 4096 tokens")
        ids.append(enc[0])
        masks.append(enc[1])
        images.append(enc[3])
        videos.append(enc[4] if len(enc) > 4 else [])
    fields = {"advantages": [1.0 if i % 4 < 2 else -1.0 for i in range(seqs)]}
    return make_batch(ids, masks, fields, images=images, videos=videos)


def hf_logprobs(model_dir: str, batch: dict, processor: object, pad_id: int, device: torch.device) -> list[list[float]]:
    """fp32 HF forward of a saved VL dir on the learner's own collation (same pixel tensors)."""
    from transformers import AutoModelForImageTextToText

    from rlsys.learner.batching import collate, token_logprobs

    model = AutoModelForImageTextToText.from_pretrained(model_dir, dtype=torch.float32).to(device).eval()
    out: list[list[float]] = [[] for _ in batch["input_ids"]]
    with torch.no_grad():
        for start in range(0, len(out), 4):
            idx = list(range(start, min(start + 4, len(out))))
            mb = collate(batch, idx, pad_id, device, processor)
            lp = token_logprobs(model(**mb.forward_inputs()).logits, mb.input_ids)
            for row, i in enumerate(idx):
                out[i] = mb.unexpand(lp, row, len(batch["input_ids"][i])).tolist()
    del model
    return out


def probe_weights(worker: object) -> dict[str, torch.Tensor]:
    """CPU copies of the probed vision weights and one LM weight (gathered: collective under ZeRO-3)."""
    picked, lm_done = {}, False
    for name, param in worker.gathered_parameters():
        if any(p in name for p in VISION_PROBES) or (not lm_done and "language_model.layers.0.mlp" in name):
            picked[name] = param.detach().to("cpu", copy=True)
            lm_done = lm_done or "language_model" in name
    return picked


def weight_moves(before: dict[str, torch.Tensor], after: dict[str, torch.Tensor], vision: bool) -> dict:
    names = [n for n in before if ("visual" in n) == vision]
    changed = sum(int((after[n] != before[n]).sum()) for n in names)
    total = sum(before[n].numel() for n in names)
    return {"tensors": len(names),
            "tensors_changed": sum(not torch.equal(after[n], before[n]) for n in names),
            "changed_elem_frac": round(changed / max(1, total), 6),
            "max_abs_change": max((float((after[n].float() - before[n].float()).abs().max()) for n in names),
                                  default=0.0)}


def one_run(args: argparse.Namespace) -> dict:
    """A single shape x ZeRO run in this process (rank 0 of 1)."""
    import torch.distributed as dist

    from rlsys.learner.worker import LearnerWorker

    shape, zero, *micro = args.one.split(":")
    work = Path(tempfile.mkdtemp(prefix="bench-gpu-vl-"))
    model_dir = build_model(shape, args.model_cache or str(work))
    cfg = learner_cfg(int(zero), args.precision, int(micro[0]) if micro else args.micro_batch_size)
    if args.lr:
        cfg["optim"]["lr"] = args.lr
    started = time.perf_counter()
    worker = LearnerWorker(rank=0, world_size=1, model_path=model_dir, cfg=cfg, num_threads=args.threads)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    counts = worker.setup("127.0.0.1", port)
    setup_s = time.perf_counter() - started
    module = worker.engine.module
    params = sum(p.ds_numel if hasattr(p, "ds_numel") else p.numel() for p in module.parameters())
    vision_params = sum(p.ds_numel if hasattr(p, "ds_numel") else p.numel()
                        for n, p in module.named_parameters() if "visual" in n)
    (work / "data").mkdir()
    probe = vl_batch(worker.processor, args.seqs, work / "data", args.response_words)
    expanded = [len(s) + e for s, e in zip(probe["input_ids"], worker.image_tokens.extra_tokens(probe))]
    start_lp = worker.compute_logprobs(probe)
    hf_lp = hf_logprobs(model_dir, probe, worker.processor, worker.pad_id, worker.device)
    batch = {**probe, "fields": {**probe["fields"], "old_logprobs": start_lp}}
    before = probe_weights(worker)
    first, last, times, peak = timed_gspo_steps(worker, batch, args.steps)
    after = probe_weights(worker)
    now_lp = worker.compute_logprobs(probe)
    saved = worker.save_hf(str(work / "saved"))
    saved_lp = hf_logprobs(saved, probe, worker.processor, worker.pad_id, worker.device)
    step_s = sum(times) / len(times)
    tokens = last["tokens"]
    mask = probe["loss_mask"]
    result = {
        "run": args.one,
        "device": torch.cuda.get_device_name() if worker.device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "backend": dist.get_backend(),
        "engine_dtype": str(next(module.parameters()).dtype),
        "precision": cfg["precision"],
        "zero_stage": cfg["zero_stage"],
        "micro_batch_size": cfg["micro_batch_size"],
        "gradient_checkpointing": cfg["gradient_checkpointing"],
        "lr": cfg["optim"]["lr"],
        "params": params,
        "vision_params": vision_params,
        "parameter_counts": counts,
        "setup_s": round(setup_s, 2),
        "seqs": args.seqs,
        "expanded_len_min_mean_max": [min(expanded), round(sum(expanded) / len(expanded), 1), max(expanded)],
        "trained_tokens": sum(sum(m) for m in mask),
        "tokens_per_step": tokens,
        "step_s": round(step_s, 4),
        "tokens_per_s": round(tokens / step_s, 1),
        # 6 * params * tokens: the usual model-FLOPs count (recompute, attention and vision-only tokens' LM
        # savings left out), as in the text bench.
        "model_tflops": round(6 * params * tokens / step_s / 1e12, 2),
        "peak_mem_gib": round(peak, 2) if peak is not None else None,
        "start_vs_hf_fp32_abs_diff": round(mean_abs_diff(start_lp, hf_lp, mask), 5),
        "first_step_ratio_mean": round(first["ratio_mean"], 6),
        "first_step_kl": round(first["kl"], 6),
        "last_step_kl": round(last["kl"], 6),
        "last_step_loss": round(last["loss"], 6),
        "vision_weights_moved": weight_moves(before, after, vision=True),
        "lm_weights_moved": weight_moves(before, after, vision=False),
        "saved_vs_engine_abs_diff": round(mean_abs_diff(now_lp, saved_lp, mask), 5),
        "moved_from_start_abs_diff": round(mean_abs_diff(now_lp, start_lp, mask), 5),
    }
    shutil.rmtree(work, ignore_errors=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", default="tiny:0:8,qwen3-vl-2b:0:8,qwen3-vl-2b:3:8")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--seqs", type=int, default=32, help="rows: half with an image, half with a video")
    parser.add_argument("--response-words", type=int, default=64, help="about how long each trained response is")
    parser.add_argument("--precision", default=None, help="fp32 | bf16 (default: the config's; fp32 on CPU)")
    parser.add_argument("--micro-batch-size", type=int, default=None)
    parser.add_argument("--lr", type=float, default=None, help="default: the bench_learner_gpu setting (1e-6)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per run")
    parser.add_argument("--out", default=None)
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--build", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--model-cache", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.build:
        build_model(args.build, args.model_cache)
        return
    if args.one:
        print("RESULT " + json.dumps(one_run(args)), flush=True)
        return
    cache = tempfile.mkdtemp(prefix="bench-gpu-vl-models-")
    runs = args.runs.split(",")
    # Each shape's model is built once, in its own subprocess under the per-run timeout.
    for shape in dict.fromkeys(run.split(":")[0] for run in runs):
        t0 = time.perf_counter()
        try:
            proc = subprocess.run([sys.executable, __file__, "--build", shape, "--model-cache", cache],
                                  capture_output=True, text=True, timeout=args.timeout)
            note = "" if proc.returncode == 0 else f" FAILED: {proc.stderr[-3000:]}"
        except subprocess.TimeoutExpired:
            note = f" timed out after {args.timeout} s"
        print(f"built {shape} in {time.perf_counter() - t0:.1f} s{note}", flush=True)
    try:
        run_all(args, runs, cache)
    finally:
        shutil.rmtree(cache, ignore_errors=True)


def run_all(args: argparse.Namespace, runs: list[str], cache: str) -> None:
    run_each(__file__, runs, ["--model-cache", cache], args.timeout, args.out)


if __name__ == "__main__":
    main()

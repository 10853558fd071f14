"""Content-addressed cache of built artifacts (tiny model, task suite, stage outputs).

An artifact lives in `<root>/<kind>/<hash of its spec>/` and counts as built only once its
`.done` marker exists; builds happen in a temporary directory and are renamed into place under
a file lock, so concurrent runs never see half-written artifacts.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable
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


# ----------------------------------------------------------------------------- writable storage

# Bytes the start-up probe writes: a directory with less room than this cannot hold any artifact.
PROBE_BYTES = 1 << 20
STORAGE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG}
# How a failed write reads when it arrives as text: torch's zip writer (`inline_container.cc ... unexpected
# pos`, `file write failed`, `basic_ios::clear`), an OSError relayed from a Ray actor, safetensors.
STORAGE_MESSAGES = ("inline_container.cc", "file write failed", "basic_ios::clear", "iostream error",
                    "No space left on device", "Disk quota exceeded", "Read-only file system", "[Errno 28]",
                    "[Errno 30]", "[Errno 122]")


class UnwritableDirError(RuntimeError):
    """A directory rlsys must write to is not writable; the message names the path, its config key and the fix."""


def _existing_ancestor(path: Path) -> Path:
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _free(path: Path) -> str:
    try:
        free = shutil.disk_usage(_existing_ancestor(path)).free
    except OSError:
        return "unknown space"
    return f"{free / 2**30:.2f} GiB free" if free >= 2**30 else f"{free / 2**20:.1f} MiB free"


def check_writable_dir(path: str | Path, key: str) -> Path:
    """Create `path` if needed and write (then delete) a small probe file in it, so a read-only, full or
    forbidden directory fails at start-up naming the path and config `key`, not minutes into a run."""
    target = Path(path).absolute()
    try:
        target.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=target, prefix=".rlsys-write-check-") as fh:
            fh.write(b"\0" * PROBE_BYTES)
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as exc:
        reason = {errno.EROFS: "it is on a read-only filesystem", errno.ENOSPC: "its disk is full",
                  errno.EDQUOT: "the disk quota is exhausted"}.get(exc.errno, exc.strerror or str(exc))
        raise UnwritableDirError(
            f"config key '{key}' = {str(path)!r}: cannot write to {target} ({reason}; {_free(target)}; "
            f"{exc.__class__.__name__}: {exc}). Set {key}=<a writable directory with room>, or make {target} "
            "writable"
        ) from None
    return target


def _chain(exc: BaseException) -> Iterable[BaseException]:
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        cur = todo.pop()
        if cur is None or id(cur) in seen:
            continue
        seen.add(id(cur))
        yield cur
        todo += [cur.__cause__, cur.__context__]


def is_storage_error(exc: BaseException) -> bool:
    """Whether `exc` (or what it wraps) is a failed write: a full, read-only or forbidden disk."""
    for cur in _chain(exc):
        if isinstance(cur, OSError) and cur.errno in STORAGE_ERRNOS:
            return True
        if any(m in str(cur) for m in STORAGE_MESSAGES):
            return True
    return False


def storage_hint(exc: BaseException, dirs: dict[str, str | Path]) -> str:
    """For a failed write: where it was writing, the room left there, and what to do ('' otherwise).
    `dirs` maps the config key that places a directory to the directory."""
    if not is_storage_error(exc):
        return ""
    where = "; ".join(f"{key} = {Path(d).absolute()} ({_free(Path(d))})" for key, d in dirs.items() if d)
    keys = " / ".join(f"`{key}`" for key in dirs)
    return (f". This looks like a failed disk write (a full or read-only disk) while writing under "
            f"{where}. Free space there, or point {keys} at a writable disk with room, and rerun: finished "
            "stages are reused from the artifact cache")

"""Ship a model directory to rollout actors through Ray's object store (no shared file system).

The driver reads every file of the directory once and puts it into the object store in chunks
(`pack_model_dir`); an actor on any node writes the chunks to a local directory and starts its
engine from there (`local_model_dir`). Later weight versions already travel through the object
store (rlsys/rollout/weight_sync.py), so a node needs nothing but Ray to serve rollouts.

Copies land in `<node temp dir>/rlsys-models/<key>`, where the key names the source directory's
files, sizes and modification times: actors on one node share one copy, a restarted actor finds
it, and a changed model gets a new key. A copy is written to a private directory and renamed into
place, so a reader never sees half a model.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

# Chunk size of one object: bounds what the driver and an actor hold in memory at once.
CHUNK_BYTES = 64 << 20
TRANSFERS = ("auto", "path", "object_store")


@dataclass
class ShippedModel:
    """A model directory held in the object store: per relative file path, its chunk refs and size."""

    source: str
    key: str
    files: dict[str, list[Any]] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)

    @property
    def num_bytes(self) -> int:
        return sum(self.sizes.values())

    def __str__(self) -> str:
        return f"{self.source} (shipped through the object store, {len(self.files)} files, {self.num_bytes} bytes)"


def _model_files(model_dir: Path) -> list[Path]:
    if not model_dir.is_dir():
        raise FileNotFoundError(f"model directory {model_dir} does not exist")
    files = sorted(p for p in model_dir.rglob("*") if p.is_file())
    if not files:
        raise FileNotFoundError(f"model directory {model_dir} holds no files")
    return files


def _key(model_dir: Path, files: list[Path]) -> str:
    digest = hashlib.sha256(str(model_dir.resolve()).encode())
    for path in files:
        stat = path.stat()
        digest.update(f"{path.relative_to(model_dir)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:20]


def pack_model_dir(model_dir: str | os.PathLike, chunk_bytes: int = CHUNK_BYTES) -> ShippedModel:
    """Put every file of `model_dir` into the object store (the caller's process owns the objects:
    keep the result alive as long as actors may still start from it)."""
    import ray

    root = Path(model_dir)
    files = _model_files(root)
    shipped = ShippedModel(str(root), _key(root, files))
    for path in files:
        rel = path.relative_to(root).as_posix()
        refs = []
        with path.open("rb") as fh:
            while chunk := fh.read(chunk_bytes):
                refs.append(ray.put(chunk))
        shipped.files[rel] = refs
        shipped.sizes[rel] = path.stat().st_size
    log.info("model %s packed into the object store: %d files, %.1f MB", root, len(files), shipped.num_bytes / 1e6)
    return shipped


def _complete(target: Path, shipped: ShippedModel) -> bool:
    return all((target / rel).is_file() and (target / rel).stat().st_size == size for rel, size in shipped.sizes.items())


def materialize(shipped: ShippedModel, cache_dir: str | os.PathLike | None = None) -> str:
    """Write the shipped files to a local directory (reused when a complete copy is already there)."""
    import ray

    root = Path(cache_dir) if cache_dir is not None else Path(tempfile.gettempdir()) / "rlsys-models"
    target = root / shipped.key
    if _complete(target, shipped):
        return str(target)
    root.mkdir(parents=True, exist_ok=True)
    staging = root / f".{shipped.key}.{os.getpid()}.{uuid.uuid4().hex[:8]}"
    try:
        for rel, refs in shipped.files.items():
            dest = staging / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            with dest.open("wb") as fh:
                for ref in refs:  # one chunk in memory at a time
                    fh.write(ray.get(ref))
        if target.exists() and not _complete(target, shipped):
            # A partial copy from an older layout or a crashed writer: replace it.
            shutil.rmtree(target, ignore_errors=True)
        try:
            os.rename(staging, target)
        except OSError:
            # Another actor on this node renamed its copy first; theirs is as good as ours.
            if not _complete(target, shipped):
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log.info("model %s written to %s", shipped.source, target)
    return str(target)


def local_model_dir(model: str | ShippedModel) -> str:
    """The directory an engine starts from: the path itself, or a local copy of a shipped model."""
    return materialize(model) if isinstance(model, ShippedModel) else str(model)


def ship_model(model_path: str, transfer: str) -> str | ShippedModel:
    """What rollout actors receive as their model (`rollout.model_transfer`): the path ("path": every
    node reads the same path, e.g. a shared file system), the files through the object store
    ("object_store"), or "auto": the object store when this process joined a cluster (`ray.address`)."""
    if transfer not in TRANSFERS:
        raise ValueError(f"config key 'rollout.model_transfer' = {transfer!r}: expected one of {TRANSFERS}")
    if transfer == "auto":
        from rlsys.runtime.ray_utils import joined_cluster

        transfer = "object_store" if joined_cluster() else "path"
    return pack_model_dir(model_path) if transfer == "object_store" else model_path

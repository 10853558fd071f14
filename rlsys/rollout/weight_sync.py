"""Publish weights into the Ray object store in bounded-size buckets, stamped with a version.

Any process can publish (the learner's rank 0, a driver holding a state dict, a benchmark).
Each bucket is a plain `list[(name, tensor)]` of contiguous CPU tensors, the format
`RolloutWorker.sync_from_object_store` pulls: a worker fetches one bucket while it loads the
previous one, so neither side ever holds more than two buckets of a large model at once.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    # Only for annotations: the pool imports this module in the driver, which needs no torch.
    import torch


@dataclass
class PublishedWeights:
    """One published weight version: the bucket refs plus what a consumer needs to check it."""

    version: int
    refs: list[Any]
    num_tensors: int
    num_bytes: int
    publish_s: float
    bucket_sizes: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.refs)


def iter_buckets(
    named_tensors: Iterable[tuple[str, torch.Tensor]], bucket_bytes: int, dtype: torch.dtype | None = None
) -> Iterator[list[tuple[str, torch.Tensor]]]:
    """Group tensors into buckets of about `bucket_bytes` (a larger tensor gets a bucket of its own).

    A tensor is never split: vLLM's loaders map one checkpoint name to one parameter.
    """
    if bucket_bytes <= 0:
        raise ValueError(f"bucket_bytes must be positive, got {bucket_bytes}")
    bucket: list[tuple[str, torch.Tensor]] = []
    size = 0
    for name, tensor in named_tensors:
        t = tensor.detach()
        if dtype is not None and t.dtype != dtype:
            t = t.to(dtype)
        # Views into a larger buffer would serialise the whole buffer; copies of GPU tensors
        # must land on the host before they can enter the object store.
        t = t.to("cpu").contiguous()
        nbytes = t.numel() * t.element_size()
        if bucket and size + nbytes > bucket_bytes:
            yield bucket
            bucket, size = [], 0
        bucket.append((name, t))
        size += nbytes
    if bucket:
        yield bucket


def publish_version(
    named_tensors: Iterable[tuple[str, torch.Tensor]],
    bucket_bytes: int,
    version: int,
    dtype: torch.dtype | None = None,
) -> PublishedWeights:
    """Put every bucket into the object store as soon as it is full (memory stays at one bucket)."""
    import ray

    started = time.perf_counter()
    refs: list[Any] = []
    sizes: list[int] = []
    count = 0
    for bucket in iter_buckets(named_tensors, bucket_bytes, dtype):
        refs.append(ray.put(bucket))
        sizes.append(sum(t.numel() * t.element_size() for _, t in bucket))
        count += len(bucket)
    return PublishedWeights(
        version=version,
        refs=refs,
        num_tensors=count,
        num_bytes=sum(sizes),
        publish_s=time.perf_counter() - started,
        bucket_sizes=sizes,
    )


def publish(named_tensors: Iterable[tuple[str, torch.Tensor]], bucket_bytes: int) -> list[Any]:
    """Object refs of the buckets, in order (the unversioned form `LearnerGroup.export_weights` returns)."""
    return publish_version(named_tensors, bucket_bytes, version=-1).refs


def fetch_state_dict(refs: Iterable[Any]) -> dict[str, torch.Tensor]:
    """Assemble a published version back into one state dict (tests and debugging)."""
    import ray

    state: dict[str, torch.Tensor] = {}
    for ref in refs:
        for name, tensor in ray.get(ref):
            state[name] = tensor
    return state

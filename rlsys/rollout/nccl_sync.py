"""NCCL weight sync (CUDA only): learner rank 0 broadcasts, every rollout actor receives.

The group is rank 0 = learner rank 0 and ranks 1..N = rollout actors. It is formed with vLLM's
`StatelessProcessGroup` (a TCP store for the rendezvous) and `PyNcclCommunicator`, which touch
no global `torch.distributed` state, so the group lives beside DeepSpeed's process group in the
learner and vLLM's own in the engine, and can be re-formed when the pool's membership changes.

One sync: the driver asks rank 0 for the manifest (name, shape, dtype of every tensor, in send
order), then starts at once `send_weights` on every learner rank (ranks > 0 only take part in
ZeRO-3 gathers) and `RolloutWorker.sync_from_nccl(manifest, version)` on every rollout actor,
which streams `receive_stream` into the engine's in-place reload: one tensor in flight at a time,
so no side holds a second copy of the model.

Learner-side functions run inside the learner actor through Ray's `__ray_call__` (they get the
actor instance as first argument), so the learner needs no NCCL-specific methods.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch

from rlsys.runtime.ray_utils import get

log = logging.getLogger(__name__)

# Attribute under which a process keeps its membership of the weight group.
GROUP_ATTR = "_rlsys_nccl_weight_group"

Manifest = list[tuple[str, tuple[int, ...], str]]


@dataclass
class WeightGroup:
    comm: Any
    rank: int
    world_size: int
    device: torch.device


def _dtype(name: str) -> torch.dtype:
    dtype = getattr(torch, name.removeprefix("torch."), None)
    if not isinstance(dtype, torch.dtype):
        raise ValueError(f"unknown dtype {name!r} in weight manifest")
    return dtype


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def join_group(host: str, port: int, rank: int, world_size: int, timeout_s: float = 300.0) -> WeightGroup:
    """Rendezvous at host:port (rank 0 hosts the store) and build the NCCL communicator."""
    if not torch.cuda.is_available():
        raise RuntimeError("rollout.pool.sync_backend=nccl needs CUDA on every rank; use object_store here")
    from vllm.distributed.device_communicators.pynccl import PyNcclCommunicator
    from vllm.distributed.utils import StatelessProcessGroup

    device = torch.device("cuda", torch.cuda.current_device())
    pg = StatelessProcessGroup.create(host=host, port=port, rank=rank, world_size=world_size,
                                      store_timeout=int(timeout_s))
    comm = PyNcclCommunicator(pg, device=device)
    if world_size > 1 and not comm.available:
        raise RuntimeError("NCCL library could not be loaded for the weight-sync group")
    return WeightGroup(comm, rank, world_size, device)


def leave_group(owner: Any) -> None:
    """Drop this process's membership (aborts the communicator, which also frees a hung peer)."""
    group: WeightGroup | None = getattr(owner, GROUP_ATTR, None)
    if group is None:
        return
    setattr(owner, GROUP_ATTR, None)
    try:
        group.comm.destroy()
    except Exception as exc:  # a communicator that is already broken needs no clean shutdown
        log.warning("NCCL weight group rank %d: destroy failed: %s", group.rank, exc)


def _broadcast(group: WeightGroup, tensor: torch.Tensor) -> None:
    # PyNccl defaults to vLLM's own stream; the loader reads the tensor on torch's current
    # stream, so both sides use that one and need no cross-stream event.
    group.comm.broadcast(tensor, src=0, stream=torch.cuda.current_stream(group.device))


# ---------------------------------------------------------------- rollout side
def init_receiver(worker: Any, host: str, port: int, rank: int, world_size: int, timeout_s: float = 300.0) -> None:
    """Join the group as rollout rank `rank` (>= 1); called by `RolloutWorker.init_weight_group`."""
    if rank < 1:
        raise ValueError(f"rollout ranks start at 1 (rank 0 is the learner), got {rank}")
    leave_group(worker)
    setattr(worker, GROUP_ATTR, join_group(host, port, rank, world_size, timeout_s))


def receive_stream(worker: Any, manifest: Manifest) -> Iterator[tuple[str, torch.Tensor]]:
    """Receive every tensor of the manifest in order, yielding (name, CUDA tensor) for the loader."""
    group: WeightGroup | None = getattr(worker, GROUP_ATTR, None)
    if group is None:
        raise RuntimeError(f"{getattr(worker, 'name', 'rollout')}: not in an NCCL weight group "
                           "(the pool forms it before the first NCCL sync)")
    for name, shape, dtype in manifest:
        tensor = torch.empty(tuple(shape), dtype=_dtype(dtype), device=group.device)
        _broadcast(group, tensor)
        yield name, tensor
    torch.cuda.current_stream(group.device).synchronize()


# ---------------------------------------------------------------- learner side (via __ray_call__)
def rendezvous_address(_learner: Any) -> tuple[str, int]:
    """This node's address and a free port, for rank 0 to host the group's store."""
    import socket

    import ray

    with socket.socket() as sock:
        sock.bind(("", 0))
        port = sock.getsockname()[1]
    return ray.util.get_node_ip_address(), port


def weight_manifest(learner: Any, wire_dtype: str | None = None) -> Manifest:
    """(name, full shape, dtype sent) of every parameter, in the order `send_weights` sends them."""
    out: Manifest = []
    for name, param in learner.engine.module.named_parameters():
        shape = tuple(param.ds_shape) if hasattr(param, "ds_shape") else tuple(param.shape)
        out.append((name, shape, wire_dtype or _dtype_name(param.dtype)))
    return out


def init_sender(learner: Any, host: str, port: int, world_size: int, timeout_s: float = 300.0) -> None:
    """Join the group as rank 0 (learner rank 0 only)."""
    if learner.rank != 0:
        return
    leave_group(learner)
    setattr(learner, GROUP_ATTR, join_group(host, port, 0, world_size, timeout_s))


def send_weights(learner: Any, manifest: Manifest) -> float:
    """Broadcast every manifest tensor from learner rank 0; returns seconds spent.

    Called on every learner rank at once: under ZeRO-3 each full parameter exists only inside a
    gather that all ranks enter together.
    """
    started = time.perf_counter()
    group: WeightGroup | None = getattr(learner, GROUP_ATTR, None)
    if learner.rank == 0 and group is None:
        raise RuntimeError("learner rank 0 is not in an NCCL weight group")
    # The manifest lists the parameters in the order the learner yields them (weight_manifest).
    for (name, param), (listed, _, dtype) in zip(learner.gathered_parameters(), manifest, strict=True):
        if name != listed:
            raise RuntimeError(f"weight manifest out of step with the learner: {listed!r} listed, {name!r} next")
        if group is None:
            continue
        tensor = param.detach().to(group.device, _dtype(dtype)).contiguous()
        _broadcast(group, tensor)
        if hasattr(param, "ds_id"):
            # The gathered buffer is released when the generator moves on; the send must be done.
            torch.cuda.current_stream(group.device).synchronize()
    if group is not None:
        torch.cuda.current_stream(group.device).synchronize()
    return time.perf_counter() - started


# ---------------------------------------------------------------- driver side
def _actor_id(handle: Any) -> str:
    return handle._actor_id.hex()


class NcclWeightSync:
    """Driver-side conductor: forms the group and runs one broadcast round at a time."""

    def __init__(self, learner_actors: list[Any], timeout_s: float = 600.0, wire_dtype: str | None = None) -> None:
        if not learner_actors:
            raise ValueError("NCCL weight sync needs the learner actors (rank 0 first)")
        self.learners = list(learner_actors)
        self.timeout_s = timeout_s
        self.wire_dtype = wire_dtype
        self._members: list[str] = []
        self._rollouts: list[Any] = []
        self._sending: list[Any] = []

    def build(self, rollout_actors: list[Any]) -> None:
        """(Re-)form the group with learner rank 0 and exactly these rollout actors."""
        self.abort()
        rank0 = self.learners[0]
        host, port = get(rank0.__ray_call__.remote(rendezvous_address), timeout=self.timeout_s,
                         what="nccl weight group: rendezvous address")
        world = 1 + len(rollout_actors)
        refs = [rank0.__ray_call__.remote(init_sender, host, port, world, self.timeout_s)]
        refs += [a.init_weight_group.remote(host, port, i + 1, world, self.timeout_s) for i, a in enumerate(rollout_actors)]
        get(refs, timeout=self.timeout_s, what=f"nccl weight group: init of {world} ranks at {host}:{port}")
        self._members = [_actor_id(a) for a in rollout_actors]
        self._rollouts = list(rollout_actors)
        log.info("NCCL weight group formed: learner rank 0 + %d rollout actor(s) at %s:%d", len(rollout_actors), host, port)

    def start(self, rollout_actors: list[Any], version: int) -> list[Any]:
        """Start one broadcast round; returns each rollout actor's `sync_from_nccl` ref."""
        if [_actor_id(a) for a in rollout_actors] != self._members:
            self.build(rollout_actors)
        manifest = get(self.learners[0].__ray_call__.remote(weight_manifest, self.wire_dtype),
                       timeout=self.timeout_s, what="nccl weight sync: manifest")
        self._sending = [a.__ray_call__.remote(send_weights, manifest) for a in self.learners]
        return [a.sync_from_nccl.remote(manifest, version) for a in rollout_actors]

    def finish(self) -> float:
        """Wait for the learner side of the current round; returns rank 0's send seconds."""
        sent = get(self._sending, timeout=self.timeout_s, what="nccl weight sync: learner send")
        self._sending = []
        return float(sent[0])

    def abort(self) -> None:
        """Tear the group down everywhere (unblocks ranks stuck in a broadcast with a dead peer)."""
        refs = [a.__ray_call__.remote(leave_group) for a in [self.learners[0], *self._rollouts]] if self._members else []
        for ref in refs:
            try:
                get(ref, timeout=30, what="nccl weight group: leave")
            except Exception as exc:  # a dead member has nothing left to tear down
                log.debug("leave weight group: %s", exc)
        self._members, self._rollouts, self._sending = [], [], []

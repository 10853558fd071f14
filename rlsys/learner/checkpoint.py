"""Loading DeepSpeed checkpoints without running pickled code.

DeepSpeed reads every checkpoint file through its engine's `checkpoint_engine.load`, which by default is
`torch.load(weights_only=False)`: unpickling a `.pt` from elsewhere can run arbitrary code. The learner
swaps in `WeightsOnlyCheckpointEngine`, which loads with `weights_only=True` (tensors, containers,
numbers, strings) plus the few DeepSpeed types its own ZeRO optimizer state holds, allowed for the call
only. Anything else in a file is refused with `UnsafeCheckpointError` naming the file.

The allow-list was read off the checkpoints rlsys writes (`torch.serialization.
get_unsafe_globals_in_checkpoint` on ZeRO 0/2/3 x fp32/bf16 with deepspeed 0.19): the model-states file
needs nothing; the ZeRO optimizer-state file holds the loss scaler, the ZeRO stage enum and, for ZeRO 1/2,
the fp32 partitions' fragment addresses. These classes are plain records (a dataclass, an enum, a scaler
whose constructor stores a number); allowing them lets the unpickler build them, nothing more.
"""

from __future__ import annotations

import pickle
import re
from typing import Any

import torch
from deepspeed.runtime.checkpoint_engine.torch_checkpoint_engine import TorchCheckpointEngine


class UnsafeCheckpointError(RuntimeError):
    """A checkpoint file holds objects other than the tensors and records rlsys writes; nothing was run."""


def checkpoint_safe_globals() -> list[Any]:
    """The non-builtin types DeepSpeed's own checkpoint files hold (see the module docstring)."""
    from deepspeed.runtime.fp16.loss_scaler import LossScaler
    from deepspeed.runtime.zero.config import ZeroStageEnum
    from deepspeed.utils.tensor_fragment import fragment_address

    return [LossScaler, ZeroStageEnum, fragment_address]


def load_weights_only(path: str, map_location: Any = None) -> Any:
    """`torch.load(path, weights_only=True)` with DeepSpeed's checkpoint types allowed for this call only."""
    try:
        with torch.serialization.safe_globals(checkpoint_safe_globals()):
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"GLOBAL (\S+)", str(exc))
        what = f"`{found.group(1)}`" if found else f"an object torch's weights-only loader refuses ({exc})"
        raise UnsafeCheckpointError(
            f"refusing to load checkpoint file {path}: it references {what}, which is neither a tensor nor one "
            "of DeepSpeed's checkpoint records, and unpickling it could run code. Nothing from it was loaded. "
            "rlsys resumes only checkpoints it wrote: point `resume` at an rlsys run directory, or start "
            "without `resume`"
        ) from None


class WeightsOnlyCheckpointEngine(TorchCheckpointEngine):
    """DeepSpeed's torch checkpoint engine (same files on save) whose loads unpickle no code."""

    def load(self, path: str, map_location: Any = None) -> Any:
        return load_weights_only(path, map_location=map_location)


def install_weights_only_loader(engine: Any) -> None:
    """Make `engine` (a DeepSpeedEngine) read its checkpoints through `WeightsOnlyCheckpointEngine`."""
    current = engine.checkpoint_engine
    if type(current) is not TorchCheckpointEngine:
        # Another writer (fast/decoupled/datastates) has its own load path this module has not vetted.
        raise RuntimeError(
            f"DeepSpeed checkpoint engine {type(current).__name__}: rlsys loads checkpoints only through torch's "
            "weights-only loader (TorchCheckpointEngine); remove the checkpoint writer settings"
        )
    safe = WeightsOnlyCheckpointEngine.__new__(WeightsOnlyCheckpointEngine)
    safe.__dict__.update(current.__dict__)
    engine.checkpoint_engine = safe

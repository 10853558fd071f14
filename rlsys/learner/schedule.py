"""A learner job's learning-rate schedule: what it is (`Schedule`) and the multiplier per step (`lr_lambda`).

Pure Python (no torch), so the config schema and validation can name it without loading the learner.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# LR schedules after warm-up (`lr_lambda`): flat, or cosine down to min_lr_ratio.
LR_SCHEDULES = ("constant", "cosine")


@dataclass
class Schedule:
    """One learner job's learning rate over its steps. Each job owns it (a stage's `lr`, `warmup_ratio`,
    `schedule`, ... in `stages.<name>`; the smoke check's `smoke.lr`); `learner.optim` holds only the
    optimizer's constants."""

    # Peak learning rate.
    lr: float = 1e-5
    # Optimizer steps the schedule spans.
    total_steps: int = 1000
    # Linear warm-up steps.
    warmup_steps: int = 0
    # After warm-up: "constant" or "cosine" (down to min_lr_ratio).
    schedule: str = "constant"
    # Cosine floor as a share of lr.
    min_lr_ratio: float = 0.1
    # AdamW weight decay.
    weight_decay: float = 0.0
    # Share of the last steps run flat at lr * anneal_lr_ratio (an annealing tail; 0 = none).
    anneal_fraction: float = 0.0
    # LR multiplier of the annealing tail.
    anneal_lr_ratio: float = 0.1


def lr_lambda(
    step: int,
    warmup_steps: int,
    total_steps: int,
    schedule: str,
    min_lr_ratio: float,
    anneal_fraction: float = 0.0,
    anneal_lr_ratio: float = 0.1,
) -> float:
    """Multiplier on the base LR: linear warm-up, then constant or cosine down to min_lr_ratio.

    With `anneal_fraction` > 0 the last steps run flat at `anneal_lr_ratio` (an annealing tail at
    low LR, as in Keye's SFT); the main schedule then spans the steps before the tail.
    """
    anneal_start = total_steps - int(round(anneal_fraction * total_steps))
    if anneal_fraction > 0 and step >= anneal_start:
        return anneal_lr_ratio
    total_steps = anneal_start
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant":
        return 1.0
    span = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / span)
    return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))

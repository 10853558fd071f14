"""Weighted data mixtures: training batches whose rows come from several parts in configured ratios.

Keye-VL's multi-task pretraining mixes captions, re-formatted caption data, visual QA and text by fixed
ratios (e.g. 24:50:26) rather than by the parts' sizes. `mixture_batches` draws each batch slot's part
by weight (seeded), then the part's next row; a part is reshuffled and reused when exhausted, so a small
part with a large weight is seen for several epochs while a large part may not be seen in full.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from rlsys.config.validate import ConfigError


def check_mix_weights(weights: Sequence[float], parts: Sequence[str], key: str) -> list[float]:
    """The weights as floats: one per part, each > 0; otherwise a ConfigError naming `key`."""
    weights = [float(w) for w in weights]
    if len(weights) != len(parts):
        raise ConfigError(f"config key '{key}' = {weights}: needs one weight per '+'-joined data part "
                          f"{list(parts)} ({len(parts)}), got {len(weights)}")
    bad = [w for w in weights if not w > 0]
    if bad:
        raise ConfigError(f"config key '{key}' = {weights}: every weight must be > 0 (got {bad[0]})")
    if len(set(parts)) != len(parts):
        raise ConfigError(f"config key '{key}': the data parts {list(parts)} repeat a part; join each once")
    return weights


def mixture_batches(
    part_sizes: Sequence[int], weights: Sequence[float], batch: int, steps: int, seed: int
) -> tuple[list[list[int]], list[float]]:
    """`steps` batches of `batch` indices into the parts laid end to end (part p's rows at
    offset sum(part_sizes[:p])), each slot's part drawn with probability weight / sum(weights).

    Returns the batches and, per part, the epochs drawn (rows drawn / part size). Deterministic by `seed`.
    """
    if len(part_sizes) != len(weights):
        raise ValueError(f"{len(part_sizes)} parts but {len(weights)} weights")
    empty = [p for p, n in enumerate(part_sizes) if n <= 0]
    if empty:
        raise ValueError(f"mixture part {empty[0]} has no rows")
    if batch <= 0 or steps < 0:
        raise ValueError(f"batch must be > 0 and steps >= 0, got batch={batch}, steps={steps}")
    rng = random.Random(f"mix|{seed}")
    offsets = [sum(part_sizes[:p]) for p in range(len(part_sizes))]
    queues: list[list[int]] = [[] for _ in part_sizes]
    drawn = [0] * len(part_sizes)
    choices = rng.choices(range(len(part_sizes)), weights=list(weights), k=batch * steps)
    out: list[list[int]] = []
    for step in range(steps):
        picked = []
        for p in choices[step * batch : (step + 1) * batch]:
            if not queues[p]:
                queues[p] = list(range(part_sizes[p]))
                rng.shuffle(queues[p])
            picked.append(offsets[p] + queues[p].pop())
            drawn[p] += 1
        out.append(picked)
    return out, [d / n for d, n in zip(drawn, part_sizes)]

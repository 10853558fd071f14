"""SlowFast frame planning (Keye-VL 1.5 §2.2): which frames are slow, and at which resolution, under a budget.

Patch similarity. Frames are uint8/float arrays (H, W) or (H, W, C) on a 0-255 scale, all of one shape. They
are cut into a grid of `cell` x `cell` pixel cells (the processor's patch grid: patch size x merge size; edge
cells may be smaller). A cell is *similar* when the mean absolute difference of its pixel values (over pixels
and channels) between the two frames is at most `tolerance`; the similarity of two frames is the share of
similar cells, in [0, 1].

Slow / fast. Frame 0 is slow. Every later frame is compared with the LAST SLOW frame (not its predecessor, so
slow drift adds up until a new slow frame starts): similarity > `threshold` makes it fast, else slow.

Tokens. With `unit = patch_size * merge_size` pixels per LLM token side, a frame of (h, w) (both multiples of
`unit`) has `grid = (h / unit) * (w / unit)` tokens. A processor that groups `temporal_patch_size` (t)
consecutive frames into one patch (Qwen2.5/3-VL: t = 2) pads a stream to a multiple of t and spends one grid
per group, so a stream of n frames costs `ceil(n / t) * grid`. The plan sends slow and fast frames as two
streams (two video items, each with its own frame indices), so
`total_tokens = ceil(n_slow / t) * grid(slow) + ceil(n_fast / t) * grid(fast)`; t = 1 is Keye's per-frame
count. `tokens_per_frame` holds each frame's grid (the tokens of its resolution before temporal grouping).

Resolution. Candidates keep the frames' aspect ratio: for a long side of L units the short side is
`max(1, round(L * short / long))` units. A fast frame gets the largest candidate whose grid is at most
`floor(fast_share * grid(slow))`, never below the minimum resolution. The total is non-decreasing in L, so a
binary search over L in [min, max] finds the largest slow resolution whose total fits `token_budget`; the max
is also capped at the source's own long side (upscaling spends tokens on no new detail).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from rlsys.config.fields import setting


@dataclass
class SlowFastConfig:
    """SlowFast planning settings (sizes in pixels, budgets in LLM tokens); bounds as in the run config's
    `setting(...)` fields, so this can become a config section as it is."""

    # A frame is fast when its patch similarity with the last slow frame is above this share.
    threshold: float = setting(0.95, ge=0.0, le=1.0)
    # A cell is similar when its mean absolute pixel difference (0-255 scale) is at most this; 2 suits clean
    # (rendered, lossless) frames, noisy camera or codec frames need more.
    tolerance: float = setting(2.0, ge=0.0)
    # A fast frame's token budget as a share of a slow frame's.
    fast_share: float = setting(0.3, gt=0.0, le=1.0)
    # Video tokens over all frames of one video (both streams, after temporal grouping).
    token_budget: int = setting(1024, gt=0)
    # Least long side of a frame (slow or fast), in pixels; rounded up to the patch grid.
    min_side: int = setting(32, gt=0)
    # Largest long side of a slow frame, in pixels; rounded down to the patch grid.
    max_side: int = setting(768, gt=0)

    def __post_init__(self) -> None:
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"SlowFastConfig.threshold must be in [0, 1], got {self.threshold!r}")
        if self.tolerance < 0:
            raise ValueError(f"SlowFastConfig.tolerance must be >= 0, got {self.tolerance!r}")
        if not 0.0 < self.fast_share <= 1.0:
            raise ValueError(f"SlowFastConfig.fast_share must be in (0, 1], got {self.fast_share!r}")
        for name in ("token_budget", "min_side", "max_side"):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"SlowFastConfig.{name} must be a positive int, got {value!r}")
        if self.max_side < self.min_side:
            raise ValueError(f"SlowFastConfig.max_side ({self.max_side}) must be >= min_side ({self.min_side})")


@dataclass(frozen=True)
class SlowFastPlan:
    """Which frames are slow, the two resolutions (h, w) and the tokens they cost; stored with rows/rollouts."""

    slow: tuple[bool, ...]
    slow_size: tuple[int, int]
    fast_size: tuple[int, int]
    tokens_per_frame: tuple[int, ...]
    total_tokens: int
    token_budget: int
    # Each frame's similarity with the last slow frame before it (frame 0: 1.0, compared with itself).
    similarity: tuple[float, ...]
    patch_size: int
    merge_size: int
    temporal_patch_size: int

    @property
    def slow_indices(self) -> list[int]:
        return [i for i, s in enumerate(self.slow) if s]

    @property
    def fast_indices(self) -> list[int]:
        return [i for i, s in enumerate(self.slow) if not s]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable dict (lists, ints, floats)."""
        out = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SlowFastPlan:
        names = {f.name for f in fields(cls)}
        missing = names - set(data)
        if missing:
            raise ValueError(f"SlowFastPlan.from_dict: missing keys {sorted(missing)}")
        return cls(
            slow=tuple(bool(s) for s in data["slow"]),
            slow_size=(int(data["slow_size"][0]), int(data["slow_size"][1])),
            fast_size=(int(data["fast_size"][0]), int(data["fast_size"][1])),
            tokens_per_frame=tuple(int(t) for t in data["tokens_per_frame"]),
            total_tokens=int(data["total_tokens"]),
            token_budget=int(data["token_budget"]),
            similarity=tuple(float(s) for s in data["similarity"]),
            patch_size=int(data["patch_size"]),
            merge_size=int(data["merge_size"]),
            temporal_patch_size=int(data["temporal_patch_size"]),
        )


# ----------------------------------------------------------------------------- similarity and slow/fast


def _as_frames(frames: Any) -> list[np.ndarray]:
    if frames is None or len(frames) == 0:
        raise ValueError("frames: a video needs at least one frame, got none")
    out = [np.asarray(f, dtype=np.float32) for f in frames]
    shape = out[0].shape
    if len(shape) not in (2, 3) or shape[0] == 0 or shape[1] == 0:
        raise ValueError(f"frames[0]: expected an (H, W) or (H, W, C) array, got shape {shape}")
    for i, f in enumerate(out):
        if f.shape != shape:
            raise ValueError(f"frames[{i}]: shape {f.shape} differs from frames[0]'s {shape}")
    return out


def patch_similarity(a: np.ndarray, b: np.ndarray, cell: int, tolerance: float) -> float:
    """Share of `cell` x `cell` cells whose mean absolute difference between `a` and `b` is <= `tolerance`."""
    if cell <= 0:
        raise ValueError(f"cell must be a positive int, got {cell!r}")
    a = np.asarray(a, dtype=np.float32)
    b = np.asarray(b, dtype=np.float32)
    if a.shape != b.shape:
        raise ValueError(f"frames: shapes {a.shape} and {b.shape} differ")
    diff = np.abs(a - b)
    if diff.ndim == 3:
        diff = diff.mean(axis=2)
    h, w = diff.shape
    # Per-cell sums by reducing at the cell edges (edge cells may be smaller, so divide by their own area).
    rows = np.add.reduceat(diff, np.arange(0, h, cell), axis=0)
    sums = np.add.reduceat(rows, np.arange(0, w, cell), axis=1)
    heights = np.diff(np.append(np.arange(0, h, cell), h))
    widths = np.diff(np.append(np.arange(0, w, cell), w))
    means = sums / np.outer(heights, widths)
    return float((means <= tolerance).mean())


def classify_frames(
    frames: Any, cell: int, threshold: float = 0.95, tolerance: float = 2.0
) -> tuple[list[bool], list[float]]:
    """(slow flag per frame, similarity with the last slow frame per frame); frame 0 is always slow."""
    arrays = _as_frames(frames)
    slow, sims = [True], [1.0]
    last = arrays[0]
    for frame in arrays[1:]:
        sim = patch_similarity(last, frame, cell, tolerance)
        sims.append(sim)
        is_slow = sim <= threshold
        slow.append(is_slow)
        if is_slow:
            last = frame
    return slow, sims


# ----------------------------------------------------------------------------- resolution under the budget


def _size(long_units: int, unit: int, height: int, width: int) -> tuple[int, int]:
    """(h, w) in pixels for a long side of `long_units` grid units, keeping the aspect ratio."""
    short_units = max(1, round(long_units * min(height, width) / max(height, width)))
    if height >= width:
        return long_units * unit, short_units * unit
    return short_units * unit, long_units * unit


def _grid(size: tuple[int, int], unit: int) -> int:
    return (size[0] // unit) * (size[1] // unit)


def stream_tokens(n_frames: int, grid: int, temporal_patch_size: int) -> int:
    """Tokens of one stream of `n_frames` frames of `grid` tokens each (padded to whole temporal groups)."""
    return math.ceil(n_frames / temporal_patch_size) * grid


def _fast_units(slow_units: int, lo: int, unit: int, height: int, width: int, share: float) -> int:
    """Largest long side (units, >= lo) whose grid is at most floor(share * grid(slow)); at least lo."""
    cap = math.floor(share * _grid(_size(slow_units, unit, height, width), unit))
    best = lo
    for units in range(lo, slow_units + 1):
        if _grid(_size(units, unit, height, width), unit) <= cap:
            best = units
    return best


def plan_slowfast(
    frames: Any,
    patch_size: int,
    merge_size: int,
    temporal_patch_size: int = 1,
    cfg: SlowFastConfig | None = None,
    token_budget: int | None = None,
) -> SlowFastPlan:
    """Classify frames slow/fast and pick the largest slow resolution whose total tokens fit `token_budget`.

    `patch_size`, `merge_size` and `temporal_patch_size` are the model processor's (e.g. Qwen3-VL: 16, 2, 2);
    `cfg` gives threshold, tolerance, fast share, min/max side and the budget (`token_budget` overrides it).
    """
    cfg = cfg or SlowFastConfig()
    token_budget = cfg.token_budget if token_budget is None else token_budget
    for name, value in (("patch_size", patch_size), ("merge_size", merge_size),
                        ("temporal_patch_size", temporal_patch_size), ("token_budget", token_budget)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value <= 0:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    unit = patch_size * merge_size
    slow, sims = classify_frames(frames, unit, cfg.threshold, cfg.tolerance)
    height, width = np.asarray(frames[0]).shape[:2]
    n_slow = sum(slow)
    n_fast = len(slow) - n_slow
    min_units = max(1, math.ceil(cfg.min_side / unit))
    hi = max(min_units, min(cfg.max_side // unit, round(max(height, width) / unit)))

    def cost(units: int) -> tuple[int, int, int]:
        fast_units = _fast_units(units, min_units, unit, height, width, cfg.fast_share)
        g_slow = _grid(_size(units, unit, height, width), unit)
        g_fast = _grid(_size(fast_units, unit, height, width), unit)
        total = stream_tokens(n_slow, g_slow, temporal_patch_size) + stream_tokens(
            n_fast, g_fast, temporal_patch_size)
        return total, fast_units, g_slow

    lo = min_units
    if cost(lo)[0] > token_budget:
        raise ValueError(
            f"token_budget={token_budget} is too small: {len(slow)} frames ({n_slow} slow) at the minimum "
            f"resolution {_size(lo, unit, height, width)} need {cost(lo)[0]} tokens")
    # Invariant: cost(lo) fits; find the largest units in [lo, hi] that fits.
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if cost(mid)[0] <= token_budget:
            lo = mid
        else:
            hi = mid - 1
    total, fast_units, _ = cost(lo)
    slow_size = _size(lo, unit, height, width)
    fast_size = _size(fast_units, unit, height, width)
    per_frame = tuple(_grid(slow_size if s else fast_size, unit) for s in slow)
    return SlowFastPlan(
        slow=tuple(slow),
        slow_size=slow_size,
        fast_size=fast_size,
        tokens_per_frame=per_frame,
        total_tokens=total,
        token_budget=int(token_budget),
        similarity=tuple(sims),
        patch_size=int(patch_size),
        merge_size=int(merge_size),
        temporal_patch_size=int(temporal_patch_size),
    )

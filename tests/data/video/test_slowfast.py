"""SlowFast planning on hand-made frames; budgets derived by hand in the comments."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rlsys.data.video.slowfast import (
    SlowFastConfig,
    SlowFastPlan,
    _fast_units,
    _grid,
    _size,
    classify_frames,
    patch_similarity,
    plan_slowfast,
    stream_tokens,
)


def flat(value: int, h: int = 64, w: int = 128) -> np.ndarray:
    return np.full((h, w, 3), value, dtype=np.uint8)


def test_identical_frames_are_fast_and_first_is_slow() -> None:
    slow, sims = classify_frames([flat(10)] * 5, cell=32)
    assert slow == [True, False, False, False, False]
    assert sims == [1.0] * 5


def test_scene_change_is_slow() -> None:
    slow, _ = classify_frames([flat(10), flat(10), flat(200), flat(200), flat(10)], cell=32)
    assert slow == [True, False, True, False, True]


def test_threshold_counts_changed_cells() -> None:
    # 128 x 128 with 16 px cells = 64 cells. Two changed cells: 62/64 = 0.969 > 0.95 -> fast;
    # four changed cells: 60/64 = 0.9375 -> slow.
    base = flat(0, 128, 128)
    two, four = base.copy(), base.copy()
    two[:16, :32] = 255
    four[:16, :64] = 255
    assert patch_similarity(base, two, 16, 8.0) == pytest.approx(62 / 64)
    assert classify_frames([base, two], cell=16)[0] == [True, False]
    assert classify_frames([base, four], cell=16)[0] == [True, True]


def test_compared_with_last_slow_frame_so_drift_adds_up() -> None:
    # Brightness +3 per frame, tolerance 8: frame k differs from the last slow frame by 3 * (k - s); it turns
    # slow at a difference of 9, so slow frames are 0, 3, 6, 9 (each neighbour differs by only 3).
    frames = [flat(3 * k) for k in range(10)]
    slow, sims = classify_frames(frames, cell=32, tolerance=8.0)
    assert [i for i, s in enumerate(slow) if s] == [0, 3, 6, 9]
    assert sims[3] == 0.0 and sims[2] == 1.0


def test_ragged_edge_cells() -> None:
    # 40 x 40 with 32 px cells: cells 32x32, 32x8, 8x32, 8x8; change only the 8x8 corner.
    a = np.zeros((40, 40), dtype=np.uint8)
    b = a.copy()
    b[32:, 32:] = 100
    assert patch_similarity(a, b, 32, 8.0) == pytest.approx(0.75)


# Hand-derived budget case: 64 x 128 frames, unit 16 * 2 = 32 px, long side capped at 128 / 32 = 4 units.
# Long side L -> (h, w), grid: L=1 (32, 32) 1; L=2 (32, 64) 2; L=3 (64, 96) 6; L=4 (64, 128) 8.
# Fast at 30%: L=4 cap floor(2.4)=2 -> (32, 64); L=3 cap 1 -> (32, 32); L<=2 -> the minimum (32, 32).
# Frames A A B B: slow 0 and 2. Totals with t=1: L=1 2+2=4; L=2 4+2=6; L=3 12+2=14; L=4 16+4=20.
HAND = [flat(10), flat(10), flat(200), flat(200)]


@pytest.mark.parametrize(
    ("budget", "slow_size", "fast_size", "total"),
    [(20, (64, 128), (32, 64), 20), (19, (64, 96), (32, 32), 14), (13, (32, 64), (32, 32), 6),
     (5, (32, 32), (32, 32), 4), (1000, (64, 128), (32, 64), 20)],
)
def test_budget_search_by_hand(budget: int, slow_size: tuple, fast_size: tuple, total: int) -> None:
    plan = plan_slowfast(HAND, 16, 2, 1, token_budget=budget)
    assert plan.slow == (True, False, True, False)
    assert (plan.slow_size, plan.fast_size, plan.total_tokens) == (slow_size, fast_size, total)
    assert sum(plan.tokens_per_frame) == total


def test_temporal_patch_groups_frames() -> None:
    # t = 2: one group per stream of two frames. L=4: 8 + 2 = 10; L=3: 6 + 1 = 7.
    assert plan_slowfast(HAND, 16, 2, 2, token_budget=10).total_tokens == 10
    plan = plan_slowfast(HAND, 16, 2, 2, token_budget=9)
    assert (plan.slow_size, plan.total_tokens) == ((64, 96), 7)
    # Three slow frames pad to two groups: ceil(3 / 2) * grid.
    assert stream_tokens(3, 6, 2) == 12


def test_fast_share_rule() -> None:
    # 128 x 128, slow L=4 grid 16. Share 0.3 -> cap 4 -> (64, 64); share 0.6 -> cap 9 -> (96, 96).
    frames = [flat(0, 128, 128), flat(0, 128, 128)]
    plan = plan_slowfast(frames, 16, 2, 1, token_budget=1000)
    assert (plan.slow_size, plan.fast_size, plan.tokens_per_frame) == ((128, 128), (64, 64), (16, 4))
    wide = plan_slowfast(frames, 16, 2, 1, SlowFastConfig(fast_share=0.6), token_budget=1000)
    assert wide.fast_size == (96, 96)


def test_never_exceeds_budget_and_is_largest() -> None:
    rng = np.random.default_rng(0)
    for _ in range(150):
        h, w = (int(v) for v in rng.integers(20, 300, size=2))
        n = int(rng.integers(1, 12))
        frames = [rng.integers(0, 256, size=(h, w), dtype=np.uint8) if rng.random() < 0.3
                  else np.zeros((h, w), np.uint8) for _ in range(n)]
        patch, merge, t = int(rng.integers(7, 17)), int(rng.integers(1, 3)), int(rng.integers(1, 3))
        share = float(rng.uniform(0.1, 1.0))
        cfg = SlowFastConfig(fast_share=share, min_side=int(rng.integers(1, 80)), max_side=400)
        budget = int(rng.integers(1, 400))
        try:
            plan = plan_slowfast(frames, patch, merge, t, cfg, token_budget=budget)
        except ValueError as exc:
            assert "token_budget" in str(exc)
            continue
        assert plan.total_tokens <= budget
        # No larger long side within the caps fits (a linear scan of the same cost).
        unit = patch * merge
        lo = max(1, -(-cfg.min_side // unit))
        hi = max(lo, min(cfg.max_side // unit, round(max(h, w) / unit)))
        n_slow = sum(plan.slow)
        fits = []
        for units in range(lo, hi + 1):
            fast = _size(_fast_units(units, lo, unit, h, w, share), unit, h, w)
            total = stream_tokens(n_slow, _grid(_size(units, unit, h, w), unit), t) + stream_tokens(
                n - n_slow, _grid(fast, unit), t)
            if total <= budget:
                fits.append(_size(units, unit, h, w))
        assert plan.slow_size == fits[-1]


def test_deterministic_and_round_trips() -> None:
    frames = [flat(3 * k) for k in range(7)]
    a = plan_slowfast(frames, 16, 2, 2, token_budget=50)
    assert a == plan_slowfast(frames, 16, 2, 2, token_budget=50)
    data = json.loads(json.dumps(a.to_dict()))
    assert SlowFastPlan.from_dict(data) == a
    assert a.slow_indices + a.fast_indices == sorted(range(7), key=lambda i: not a.slow[i])
    with pytest.raises(ValueError, match="missing keys"):
        SlowFastPlan.from_dict({"slow": [True]})


@pytest.mark.parametrize(
    ("frames", "kwargs", "named"),
    [([], {}, "frames"),
     ([flat(0), flat(0), flat(0, 64, 64)], {}, r"frames\[2\]"),
     ([np.zeros(5)], {}, r"frames\[0\]"),
     (HAND, {"token_budget": 3}, "token_budget"),
     (HAND, {"token_budget": 0}, "token_budget"),
     (HAND, {"patch_size": 0}, "patch_size"),
     (HAND, {"temporal_patch_size": 0}, "temporal_patch_size")],
)
def test_bad_inputs(frames: list, kwargs: dict, named: str) -> None:
    args = {"patch_size": 16, "merge_size": 2, "temporal_patch_size": 1, "token_budget": 100} | kwargs
    with pytest.raises(ValueError, match=named):
        plan_slowfast(frames, **args)


@pytest.mark.parametrize(("field", "value"), [("threshold", 1.5), ("fast_share", 0.0), ("token_budget", 0),
                                              ("min_side", -1), ("tolerance", -1.0)])
def test_config_checks(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=field):
        SlowFastConfig(**{field: value})


def test_total_matches_the_qwen3_vl_video_processor() -> None:
    # The installed processor counts grid_t * grid_h * grid_w / merge^2 tokens per video item; sending the
    # slow and the fast frames as two items at the plan's sizes costs exactly the plan's total.
    module = pytest.importorskip("transformers.models.qwen3_vl.video_processing_qwen3_vl")
    proc = module.Qwen3VLVideoProcessor()
    frames = [flat(10, 64, 160)] * 2 + [flat(200, 64, 160)] * 3 + [flat(90, 64, 160)]
    plan = plan_slowfast(frames, proc.patch_size, proc.merge_size, proc.temporal_patch_size, token_budget=30)
    assert plan.slow_indices == [0, 2, 5] and plan.fast_indices == [1, 3, 4]
    total = 0
    for idx, (h, w) in ((plan.slow_indices, plan.slow_size), (plan.fast_indices, plan.fast_size)):
        stream = np.zeros((len(idx), h, w, 3), np.uint8)
        out = proc(videos=[stream], do_sample_frames=False, do_resize=False, cap_pixels_per_frame=False,
                   return_tensors="np")
        total += int(np.prod(out["video_grid_thw"][0])) // proc.merge_size**2
    assert total == plan.total_tokens

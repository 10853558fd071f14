"""The unconditional hint table (Keye Table 9) from per-(problem, level) correct counts, with hand-derived values."""

from __future__ import annotations

import pytest

from rlsys.data.loading import HINT_PREFIX
from rlsys.eval.__main__ import build_parser
from rlsys.eval.hint_table import format_tables, hint_table, keye_shape, pick_rows, probe_rows

# Three problems, G = 4, levels 0..2. a: 0,2,4 correct; b: 0,0,3; c: 1,4,4.
COUNTS = {("a", 0): 0, ("a", 1): 2, ("a", 2): 4,
          ("b", 0): 0, ("b", 1): 0, ("b", 2): 3,
          ("c", 0): 1, ("c", 1): 4, ("c", 2): 4}


def test_table_by_hand() -> None:
    rows = hint_table(COUNTS, 4)
    got = [(r["tier"], r["level"], r["problems"], r["share_all_wrong"], r["mean_correct"]) for r in rows]
    # Level 0: a, b all wrong -> 2/3; mean (0+0+1)/3. Level 1: b -> 1/3; (2+0+4)/3 = 2. Level 2: none; 11/3.
    assert got == [("all", 0, 3, 2 / 3, 1 / 3), ("all", 1, 3, 1 / 3, 2.0), ("all", 2, 3, 0.0, 11 / 3)]
    assert keye_shape(rows) == (True, True)


def test_per_tier_rows() -> None:
    rows = hint_table(COUNTS, 4, tiers={"a": 3, "b": 3, "c": 1})
    by = {(r["tier"], r["level"]): (r["problems"], r["share_all_wrong"], r["mean_correct"]) for r in rows}
    assert [r["tier"] for r in rows] == ["all"] * 3 + [1] * 3 + [3] * 3
    assert by[(3, 0)] == (2, 1.0, 0.0) and by[(3, 1)] == (2, 0.5, 1.0) and by[(3, 2)] == (2, 0.0, 3.5)
    assert by[(1, 0)] == (1, 0.0, 1.0) and by[(1, 2)] == (1, 0.0, 4.0)
    # Tier 3's all-wrong share falls 1 -> 0.5 -> 0; a table whose share rises somewhere is not Keye's shape.
    assert keye_shape(rows, 3) == (True, True)
    rising = hint_table({("a", 0): 1, ("a", 1): 0, ("b", 0): 0, ("b", 1): 0}, 4)
    assert keye_shape(rising) == (False, False)


def test_markdown() -> None:
    text = format_tables({"sft": hint_table(COUNTS, 4)}, 4)
    assert "| sft | tier | problems | no hint | L1 | L2 |" in text
    assert "| 0/4 correct | all | 3 | 66.7% | 33.3% | 0.0% |" in text
    assert "| mean correct of 4 | all | 3 | 0.33 | 2.00 | 3.67 |" in text


def test_bad_counts_are_named() -> None:
    with pytest.raises(ValueError, match=r"problem 'a' level 1: 5 correct is outside 0..4"):
        hint_table({("a", 0): 0, ("a", 1): 5}, 4)
    with pytest.raises(ValueError, match=r"problem 'b' has no count at level\(s\) \[1\]"):
        hint_table({("a", 0): 0, ("a", 1): 1, ("b", 0): 0}, 4)
    with pytest.raises(ValueError, match=r"no tier for problem\(s\) \['b'\]"):
        hint_table({("a", 0): 0, ("b", 0): 1}, 4, tiers={"a": 1})


def test_probe_rows_put_each_level_hint_after_the_query() -> None:
    row = {"id": "p", "prompt": "Add 7 and 2.", "hints": [f"h{k}" for k in range(1, 6)]}
    probes = probe_rows([row])
    assert [p["prompt"] for p in probes] == ["Add 7 and 2."] + [f"Add 7 and 2.{HINT_PREFIX}h{k}" for k in range(1, 6)]
    with pytest.raises(ValueError, match="row 'q': 4 hints, the probe needs 5"):
        probe_rows([{"id": "q", "prompt": "x", "hints": ["a"] * 4}])


def test_pick_rows_and_cli() -> None:
    rows = [{"id": f"{t}-{i}", "tier": t} for t in (1, 2, 3) for i in range(3)]
    assert [r["id"] for r in pick_rows(rows, 2, 3)] == ["3-0", "3-1"]
    assert [r["id"] for r in pick_rows(rows, 1, None)] == ["1-0", "2-0", "3-0"]
    args = build_parser().parse_args(["hint-table", "m=/x", "--rows", "5", "--samples", "2", "--tier-split"])
    assert (args.models, args.rows, args.samples, args.tier_split) == (["m=/x"], 5, 2, True)

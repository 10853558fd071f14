"""On-policy preference pairs from scored samples (pref_sample)."""

from __future__ import annotations

import pytest

from rlsys.jobs.pref_sample import preference_pairs

ROWS = [{"id": "m1", "prompt": "1 + 1?", "data_source": "rlsys/math"},
        {"id": "m2", "prompt": "2 + 2?", "data_source": "rlsys/math"},
        {"id": "m3", "prompt": "3 + 3?", "data_source": "rlsys/math"}]


def test_pairs_need_a_correct_and_a_wrong_answer() -> None:
    texts = [["2", "3", "2", "5"], ["4", "4"], ["7", "8"]]
    correct = [[True, False, True, False], [True, True], [False, False]]
    pairs = preference_pairs(ROWS, texts, correct, pairs_per_prompt=1, seed=0)
    # m2 (all correct) and m3 (all wrong) give no pair; m1 gives one correct-vs-wrong pair.
    assert len(pairs) == 1
    (p,) = pairs
    assert p["id"] == "m1-pair0" and p["task"] == "preference" and p["data_source"] == "rlsys/math"
    assert p["prompt"] == "1 + 1?" and p["chosen"] == "2" and p["rejected"] in {"3", "5"}


def test_pairs_per_prompt_uses_distinct_answers_and_is_seeded() -> None:
    texts = [["2", "3", "2", "5", "2 ", "9"]]
    correct = [[True, False, True, False, True, False]]
    two = preference_pairs(ROWS[:1], texts, correct, pairs_per_prompt=5, seed=1)
    # Distinct correct answers: "2" and "2 " (2); distinct wrong: "3", "5", "9" (3) -> 2 pairs.
    assert [p["id"] for p in two] == ["m1-pair0", "m1-pair1"]
    assert {p["chosen"] for p in two} == {"2", "2 "}
    assert len({p["rejected"] for p in two}) == 2
    assert preference_pairs(ROWS[:1], texts, correct, pairs_per_prompt=5, seed=1) == two
    with pytest.raises(ValueError, match="pairs_per_prompt"):
        preference_pairs(ROWS[:1], texts, correct, pairs_per_prompt=0, seed=1)
    with pytest.raises(ValueError):
        preference_pairs(ROWS[:1], texts, [[True]], pairs_per_prompt=1, seed=1)  # lengths differ

"""Minimal-level search against scripted policies, the fading level cache, Table-9 statistics."""

from __future__ import annotations

import pytest

from hints.progressive import (
    HintLevelCache,
    HintSource,
    HintStats,
    LevelSearch,
    format_table,
    level_sequence,
    search_minimal_level,
)


def scripted(k: int, group: int = 4):
    """A policy that answers correctly (2 of `group`) only from hint level k on."""
    calls: list[int] = []

    def sample_and_count(level: int) -> int:
        calls.append(level)
        return 2 if level >= k else 0

    return sample_and_count, calls


@pytest.mark.parametrize("k", [1, 2, 3, 4, 5])
def test_search_stops_at_first_level_that_works(k):
    fn, calls = scripted(k)
    minimal, tried = search_minimal_level(start=1, max_level=5, sample_and_count=fn)
    assert minimal == k
    assert calls == list(range(1, k + 1))
    assert tried == [(lvl, 0) for lvl in range(1, k)] + [(k, 2)]


def test_search_unsolved_and_max_level():
    fn, calls = scripted(6)
    assert search_minimal_level(1, 5, fn) == (None, [(1, 0), (2, 0), (3, 0), (4, 0), (5, 0)])
    fn, calls = scripted(4)
    assert search_minimal_level(1, 3, fn)[0] is None and calls == [1, 2, 3]
    with pytest.raises(ValueError):
        level_sequence(0, 6)


def test_batched_search_resolves_each_problem_at_its_level():
    need = {"a": 1, "b": 3, "c": 9}
    search = LevelSearch({"a": 1, "b": 2, "c": 4}, max_level=5)
    rounds = 0
    while not search.done:
        rounds += 1
        for pid, level in search.pending().items():
            search.report(pid, level, 1 if level >= need[pid] else 0)
    assert search.minimal == {"a": 1, "b": 3, "c": None}
    assert search.tried["b"] == [(2, 0), (3, 1)]
    assert rounds == 2  # c tries 4 and 5; a and b are done by round 2
    with pytest.raises(KeyError):
        search.report("a", 2, 1)


def test_cache_fades_one_level_per_visit():
    cache = HintLevelCache()
    assert cache.start_level("p", fade=1) == 0
    cache.record("p", 3, max_level=5)
    assert cache.start_level("p", fade=1) == 2
    # next visit: starting at 2 works -> cached 2 -> the visit after starts at 1
    cache.record("p", 2, max_level=5)
    assert cache.start_level("p", fade=1) == 1
    cache.record("p", 0, max_level=5)
    assert cache.start_level("p", fade=1) == 0 and "p" not in cache.levels
    cache.record("q", None, max_level=5)
    assert cache.start_level("q", fade=2) == 3
    restored = HintLevelCache()
    restored.load_state_dict(cache.state_dict())
    assert restored.levels == {"q": 5}


def test_hint_source_uses_row_hints_then_generator():
    row = {"id": "r1", "hints": ["c1", "c2", "c3", "c4", "c5"]}
    src = HintSource()
    assert src.hint(row, 0) is None and src.hint(row, 3) == "c3"
    calls = []
    gen = HintSource(lambda r, lvl: calls.append(lvl) or f"gen{lvl}")
    bare = {"id": "r2", "prompt": "q"}
    assert gen.hint(bare, 2) == "gen2" and gen.hint(bare, 2) == "gen2" and calls == [2]
    assert not HintSource().available(bare) and gen.available(bare)


def test_table9_shares_and_means():
    stats = HintStats()
    stats.add_tries([(0, 0), (1, 0), (2, 3)])
    stats.add_tries([(0, 2)])
    stats.add_tries([(0, 0), (1, 4)])
    table = stats.table(group_size=4)
    assert table[0] == {"level": "no hint", "problems": 3, "share_0_of_4": 2 / 3, "mean_correct_of_4": 2 / 3}
    assert table[1] == {"level": "L1", "problems": 2, "share_0_of_4": 0.5, "mean_correct_of_4": 2.0}
    assert table[2]["mean_correct_of_4"] == 3.0
    text = format_table(table)
    assert text.splitlines()[0].startswith("| level | problems")
    again = HintStats()
    again.load_state_dict(stats.state_dict())
    assert again.table(4) == table

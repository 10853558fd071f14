"""Weighted data mixtures (`stages.<name>.mix_weights`): batches draw their rows from the parts in the
configured ratios, deterministically by seed, reusing an exhausted part epoch by epoch."""

from __future__ import annotations

from collections import Counter

import pytest

from rlsys.config.validate import ConfigError
from rlsys.data.mixture import check_mix_weights, mixture_batches


def test_weights_three_to_one_give_three_quarters_of_the_rows() -> None:
    sizes = [10, 50]  # part 0: indices 0-9, part 1: indices 10-59
    batches, epochs = mixture_batches(sizes, [3.0, 1.0], batch=4, steps=100, seed=0)
    assert len(batches) == 100 and all(len(b) == 4 for b in batches)
    drawn = [i for b in batches for i in b]
    from_first = sum(i < 10 for i in drawn)
    # 400 draws at p = 3/4: mean 300, std 8.7; 4 std either side.
    assert 265 <= from_first <= 335
    assert epochs == [from_first / 10, (400 - from_first) / 50]
    # A part is used epoch by epoch: every row of the small part is drawn equally often (to within one).
    counts = Counter(i for i in drawn if i < 10)
    assert set(counts) == set(range(10)) and max(counts.values()) - min(counts.values()) <= 1
    assert all(0 <= i < 60 for i in drawn)


def test_the_mixture_is_deterministic_by_seed() -> None:
    first = mixture_batches([7, 5, 3], [24, 50, 26], batch=8, steps=20, seed=3)
    assert mixture_batches([7, 5, 3], [24, 50, 26], batch=8, steps=20, seed=3) == first
    assert mixture_batches([7, 5, 3], [24, 50, 26], batch=8, steps=20, seed=4)[0] != first[0]


def test_one_part_is_plain_epochs() -> None:
    batches, epochs = mixture_batches([3], [5.0], batch=2, steps=3, seed=1)
    assert epochs == [2.0]
    assert Counter(i for b in batches for i in b) == {0: 2, 1: 2, 2: 2}
    # Each epoch is a permutation: the first three draws cover every row once.
    assert sorted([i for b in batches for i in b][:3]) == [0, 1, 2]


def test_bad_weights_name_the_key() -> None:
    key = "stages.sft.mix_weights"
    assert check_mix_weights([24, 50, 26], ["a", "b", "c"], key) == [24.0, 50.0, 26.0]
    with pytest.raises(ConfigError, match=r"'stages\.sft\.mix_weights' = \[1\.0\]: needs one weight per .*got 1"):
        check_mix_weights([1], ["a", "b"], key)
    with pytest.raises(ConfigError, match=r"'stages\.sft\.mix_weights' .* must be > 0 \(got 0\.0\)"):
        check_mix_weights([1, 0], ["a", "b"], key)
    with pytest.raises(ConfigError, match=r"must be > 0 \(got -2\.0\)"):
        check_mix_weights([-2, 1], ["a", "b"], key)
    with pytest.raises(ConfigError, match="repeat a part"):
        check_mix_weights([1, 1], ["a", "a"], key)
    with pytest.raises(ValueError, match="part 1 has no rows"):
        mixture_batches([2, 0], [1, 1], batch=2, steps=1, seed=0)
    with pytest.raises(ValueError, match="2 parts but 1 weights"):
        mixture_batches([2, 2], [1], batch=2, steps=1, seed=0)

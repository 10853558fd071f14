"""The online difficulty filter keeps the configured pass-rate range."""

from __future__ import annotations

from rlsys.algorithms.filtering import classify_group, pass_rate_in_range


def test_keye_range_is_exclusive():
    assert not pass_rate_in_range(0.0, 0.0, 1.0, inclusive=False)
    assert pass_rate_in_range(1 / 8, 0.0, 1.0, inclusive=False)
    assert pass_rate_in_range(7 / 8, 0.0, 1.0, inclusive=False)
    assert not pass_rate_in_range(1.0, 0.0, 1.0, inclusive=False)


def test_internvl_range_is_inclusive():
    assert pass_rate_in_range(0.2, 0.2, 0.8, inclusive=True)
    assert pass_rate_in_range(0.8, 0.2, 0.8, inclusive=True)
    assert not pass_rate_in_range(0.125, 0.2, 0.8, inclusive=True)
    assert not pass_rate_in_range(0.875, 0.2, 0.8, inclusive=True)


def test_classify_names_the_side():
    assert classify_group(1.0, 0.0, 1.0, False) == "too_easy"
    assert classify_group(0.0, 0.0, 1.0, False) == "too_hard"
    assert classify_group(0.9, 0.2, 0.8, True) == "too_easy"
    assert classify_group(0.5, 0.2, 0.8, True) == "keep"

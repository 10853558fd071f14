"""Online difficulty filter on group pass rates (pure)."""

from __future__ import annotations


def pass_rate_in_range(pass_rate: float, low: float, high: float, inclusive: bool) -> bool:
    """Keye keeps groups with 0 < p < 1 (exclusive); InternVL3.5 keeps 0.2 <= p <= 0.8 (inclusive)."""
    if inclusive:
        return low <= pass_rate <= high
    return low < pass_rate < high


def classify_group(pass_rate: float, low: float, high: float, inclusive: bool) -> str:
    """'keep', 'too_easy' (above the range) or 'too_hard' (below it)."""
    if pass_rate_in_range(pass_rate, low, high, inclusive):
        return "keep"
    return "too_easy" if pass_rate >= high else "too_hard"

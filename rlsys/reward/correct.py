"""Which samples count as correct: the pass/fail flag that filtering, hints and pass rates read.

By default a sample passes when its combined reward reaches `reward.correct_threshold`. A composite
reward blurs that for rows whose verifier gives partial credit: on an IF row, 0.6 of the constraints
plus a reward-model term can pass. `reward.correct_by` names, per data source, the one term that
decides instead, with its own threshold, e.g. every IF constraint met:

    correct_by: [{data_source: rlsys/ifeval, term: ifeval, threshold: 1.0}]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rlsys.reward.plugins import RewardConfigError, RewardSpec

_KEYS = {"data_source", "term", "threshold"}


@dataclass(frozen=True)
class CorrectRule:
    """On rows of one data source: correct when the `term` reward's score >= `threshold`."""

    term: str
    threshold: float


def parse_correct_by(entries: Sequence[Any] | None, specs: Sequence[RewardSpec],
                     where: str = "reward.correct_by") -> dict[str, CorrectRule]:
    """data source -> rule; every entry is checked against the reward entries it names."""
    rules: dict[str, CorrectRule] = {}
    by_name = {s.name: s for s in specs}
    for i, entry in enumerate(entries or []):
        at = f"{where}[{i}]"
        if not isinstance(entry, Mapping):
            raise RewardConfigError(f"{at}: expected {{data_source, term, threshold}}, got {entry!r}")
        unknown = set(entry) - _KEYS
        missing = {"data_source", "term"} - set(entry)
        if unknown or missing:
            raise RewardConfigError(f"{at}: unknown keys {sorted(unknown)}, missing keys {sorted(missing)}")
        source, term = str(entry["data_source"]), str(entry["term"])
        spec = by_name.get(term)
        if spec is None:
            raise RewardConfigError(f"{at}: term {term!r} is not a reward name; the rewards are {sorted(by_name)}")
        if not spec.applies_to(source):
            raise RewardConfigError(f"{at}: reward {term!r} does not score data_source {source!r}")
        if source in rules:
            raise RewardConfigError(f"{at}: data_source {source!r} has two rules")
        try:
            threshold = float(entry.get("threshold", 0.5))
        except (TypeError, ValueError):
            raise RewardConfigError(f"{at}.threshold: expected a number, got {entry['threshold']!r}") from None
        rules[source] = CorrectRule(term, threshold)
    return rules


def is_correct(score: float, extra: Mapping[str, Any], data_source: object,
               rules: Mapping[str, CorrectRule], threshold: float) -> bool:
    """The sample's pass/fail flag: its data source's rule if it has one, else the combined score."""
    rule = rules.get(data_source) if isinstance(data_source, str) else None
    if rule is None:
        return score >= threshold
    # A term that errored holds on_error_score in the extras (and is counted there).
    return float(extra[rule.term]) >= rule.threshold

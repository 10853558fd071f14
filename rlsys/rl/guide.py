"""Off-policy guidance: a verified reference answer takes the place of the worst answer in a group
where no sampled answer passes.

Alignment RL on the tiny model gets no signal from instruction constraints it almost never meets
(docs/benchmarks/alignment.md), and hints in the prompt do not help there: with the whole reference
as a hint the model follows the instructions less often than without (docs/benchmarks/alignment.md).
LUFFY (Yan et al. 2025, "Learning to Reason under Off-Policy Guidance") mixes off-policy answers
into the group instead; here the row's stored, verified answer (`rl.guide_field`) replaces the
lowest-scoring sample of an all-fail group, scored by the same reward workers, and only when it
passes itself. The learner recomputes every answer's old log-probs, so the reference enters GSPO
with ratio 1 like an on-policy answer.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from rlsys.rollout.types import Sample

REFERENCE = "reference"


def wants_guide(row: dict, field: str | None, sources: Iterable[str]) -> bool:
    """True when the row has a non-empty reference in `field` and its data source is allowed."""
    allowed = list(sources)
    if not field or (allowed and row.get("data_source") not in allowed):
        return False
    value = row.get(field)
    return isinstance(value, str) and bool(value.strip())


def reference_sample(token_ids: list[int], text: str) -> Sample:
    """The reference as a sample; its log-probs are placeholders the learner recomputes."""
    return Sample(token_ids=list(token_ids), text=text, logprobs=[0.0] * len(token_ids), finish_reason=REFERENCE)


def with_reference(group: Any, sample: Sample, score: float, extra: dict) -> Any:
    """A copy of the group with `sample` in place of its lowest-scoring answer (the first of ties)."""
    worst = min(range(len(group.scores)), key=lambda i: group.scores[i])
    samples, scores = list(group.samples), list(group.scores)
    extras, correct = list(group.extras), list(group.correct)
    samples[worst], scores[worst], extras[worst] = sample, score, extra
    correct[worst] = bool(extra.get("correct", False))
    return replace(group, samples=samples, scores=scores, extras=extras, correct=correct,
                   rollout_logprobs_valid=False)

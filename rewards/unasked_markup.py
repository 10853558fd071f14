"""A penalty for markup the request did not ask for: the spillover of alignment RL's IF habits.

Alignment RL raises held-out IF partly through habits: after it, about half of the answers to requests
that ask for no placeholder carry one anyway, and a quarter end with a postscript (docs/benchmarks/
alignment.md, eval_wide's "not asked for" table). The `ifeval` reward scores only the constraints a row
names, so nothing discourages markup nobody asked for. This term probes each answer with the real IF
checkers for the markup types the row does not name. Lives outside rewards/ifeval/, whose code is part of
the task suite's cache key.
"""

from __future__ import annotations

from rewards._common import answer_part
from rewards.ifeval import _parse_constraints, check_constraints

# Per probed type, the checker parameters that detect any use of it (at least one placeholder, etc.).
PROBES: dict[str, list[dict]] = {
    "placeholders": [{"n": 1}],
    "postscript": [{"marker": "P.S."}, {"marker": "P.P.S."}],
    "highlighted_sections": [{"n": 1}],
    "title": [{}],
    "wrapped_in_quotes": [{}],
    "json_format": [{"containers_only": True}],  # a quoted or bare-number answer is JSON too, but no markup
}
# Asked types whose correct output may contain another probe's markup: JSON lists look like
# placeholders and JSON strings may hold *emphasis*.
EXCUSED_BY: dict[str, frozenset[str]] = {
    "json_format": frozenset({"placeholders", "highlighted_sections"}),
}


def _probes(kind: str) -> list[dict]:
    return [{"type": kind, "params": params} for params in PROBES[kind]]


def probed_types(constraints: list[dict], prompt: str = "") -> list[str]:
    """The markup types to probe an answer to this request for: those `constraints` neither name nor excuse.

    Nor a type whose probe already fires on the request's own text: an answer that quotes or repeats the
    request (repeat_prompt) carries its markup for a reason.
    """
    asked = {c["type"] for c in constraints}
    excused = set().union(*(EXCUSED_BY.get(kind, frozenset()) for kind in asked))
    return [kind for kind in PROBES if kind not in asked | excused and not any(check_constraints(prompt, _probes(kind)))]


def unasked_markup(answer: str, constraints: list[dict], prompt: str = "") -> dict[str, bool]:
    """Per probed markup type (`probed_types`): is it in `answer`?"""
    return {kind: any(check_constraints(answer, _probes(kind), prompt)) for kind in probed_types(constraints, prompt)}


def unasked_markup_penalty(
    prompt: str,
    completion: str,
    constraints: list[dict] | str,
    full_at: int = 2,
    **_: object,
) -> dict:
    """-(unasked markup types found) / full_at, floored at -1; `unasked/<type>` 0/1 per probed type.

    Only the text after the reasoning block is probed, like `ifeval`; an empty or unfinished answer carries
    no markup, so it scores 0. Types a row does not probe get no `unasked/<type>` key, so the logged means
    are rates among the rows that did not ask.
    """
    if not isinstance(full_at, int) or isinstance(full_at, bool) or full_at < 1:
        raise ValueError(f"full_at must be an int >= 1, got {full_at!r}")
    answer = (answer_part(completion) or "").strip()
    present = unasked_markup(answer, _parse_constraints(constraints), prompt)
    out: dict = {"score": -min(1.0, sum(present.values()) / full_at)}
    for kind, hit in present.items():
        out[f"unasked/{kind}"] = float(hit)
    return out

"""Verifiable instruction-following constraints (IFEval's 25 types plus two) and the `ifeval` reward.

Public API: `Constraint`, `CONSTRAINTS`, `IFEVAL_ALIASES`, `sample_constraints`, `check_constraints`,
`ifeval_reward`. Stdlib only, so the task generator can import it cheaply.
"""

from __future__ import annotations

import json
import random

from rewards._common import answer_part
from rewards.ifeval._base import Constraint
from rewards.ifeval.content import CONTENT_CONSTRAINTS
from rewards.ifeval.language import RESPONSE_LANGUAGE
from rewards.ifeval.layout import LAYOUT_CONSTRAINTS, OPTION_SETS

__all__ = [
    "CONSTRAINTS",
    "IFEVAL_ALIASES",
    "Constraint",
    "are_compatible",
    "check_constraints",
    "ifeval_reward",
    "sample_constraints",
]

CONSTRAINTS: dict[str, Constraint] = {
    c.name: c for c in (*CONTENT_CONSTRAINTS, *LAYOUT_CONSTRAINTS, RESPONSE_LANGUAGE)
}

# IFEval instruction id -> (project type, {IFEval kwarg: project param}, fixed project params), so rows in
# IFEval's format (`{"type": "detectable_format:json_format", "kwargs": {...}}`) check like the project's.
# `starts_with` and `no_digits` are the project's own; IFEval has no counterpart.
IFEVAL_ALIASES: dict[str, tuple[str, dict[str, str], dict]] = {
    "keywords:existence": ("keyword_include", {"keywords": "keywords"}, {}),
    "keywords:frequency": ("keyword_frequency", {"keyword": "keyword", "frequency": "n", "relation": "relation"}, {}),
    "keywords:forbidden_words": ("keyword_exclude", {"forbidden_words": "forbidden"}, {}),
    "keywords:letter_frequency": (
        "letter_frequency", {"letter": "letter", "let_frequency": "n", "let_relation": "relation"}, {}
    ),
    "language:response_language": ("response_language", {"language": "language"}, {}),
    "length_constraints:number_sentences": ("sentence_count", {"num_sentences": "n", "relation": "relation"}, {}),
    "length_constraints:number_paragraphs": ("paragraph_count", {"num_paragraphs": "n"}, {}),
    "length_constraints:number_words": ("word_count", {"num_words": "n", "relation": "relation"}, {}),
    "length_constraints:nth_paragraph_first_word": (
        "nth_paragraph_first_word",
        {"num_paragraphs": "num_paragraphs", "nth_paragraph": "nth_paragraph", "first_word": "first_word"},
        {},
    ),
    "detectable_content:number_placeholders": ("placeholders", {"num_placeholders": "n"}, {}),
    "detectable_content:postscript": ("postscript", {"postscript_marker": "marker"}, {}),
    "detectable_format:number_bullet_lists": ("bullet_points", {"num_bullets": "n"}, {}),
    "detectable_format:constrained_response": ("answer_options", {}, {"options": list(OPTION_SETS[0])}),
    "detectable_format:number_highlighted_sections": ("highlighted_sections", {"num_highlights": "n"}, {}),
    "detectable_format:multiple_sections": ("sections", {"section_spliter": "marker", "num_sections": "n"}, {}),
    "detectable_format:json_format": ("json_format", {}, {}),
    "detectable_format:title": ("title", {}, {}),
    "combination:two_responses": ("two_responses", {}, {}),
    "combination:repeat_prompt": ("repeat_prompt", {"prompt_to_repeat": "request"}, {}),
    "startend:end_checker": ("ends_with", {"end_phrase": "phrase"}, {}),
    "startend:quotation": ("wrapped_in_quotes", {}, {}),
    "change_case:capital_word_frequency": (
        "capital_word_frequency", {"capital_frequency": "n", "capital_relation": "relation"}, {}
    ),
    "change_case:english_capital": ("all_uppercase", {}, {}),
    "change_case:english_lowercase": ("all_lowercase", {}, {}),
    "punctuation:no_comma": ("no_commas", {}, {}),
}

# Types that fix the whole response (one exact option, a JSON object, a verbatim echo first) combine with
# only a few others; listing what they allow is shorter and safer than listing what they forbid.
_ONLY_WITH: dict[str, frozenset[str]] = {
    "answer_options": frozenset({"keyword_exclude", "no_commas", "no_digits"}),
    "json_format": frozenset({
        "word_count", "sentence_count", "keyword_include", "keyword_exclude", "keyword_frequency",
        "letter_frequency", "all_lowercase", "all_uppercase", "capital_word_frequency", "no_digits",
    }),
    # The echoed request carries the other instructions' own text (commas, digits, capitals, the
    # forbidden words), so only constraints that such an echo cannot break are allowed.
    "repeat_prompt": frozenset({
        "keyword_include", "keyword_frequency", "letter_frequency", "highlighted_sections",
        "placeholders", "postscript", "title", "ends_with",
    }),
}
_PAIR_CONFLICTS: frozenset[frozenset[str]] = frozenset(
    frozenset(pair)
    for pair in (
        ("all_lowercase", "all_uppercase"),
        ("all_lowercase", "starts_with"),
        ("all_lowercase", "ends_with"),
        ("all_lowercase", "capital_word_frequency"),
        ("all_lowercase", "sections"),
        ("all_uppercase", "starts_with"),
        ("all_uppercase", "ends_with"),
        ("all_uppercase", "capital_word_frequency"),
        ("capital_word_frequency", "sections"),
        ("no_digits", "sections"),
        ("paragraph_count", "sections"),
        ("paragraph_count", "two_responses"),
        ("sections", "two_responses"),
        ("bullet_points", "two_responses"),
        ("wrapped_in_quotes", "starts_with"),
        ("wrapped_in_quotes", "ends_with"),
        ("ends_with", "postscript"),
        # Not sampled (the generator writes English, joins paragraphs its own way), but kept consistent.
        ("response_language", "all_lowercase"),
        ("response_language", "all_uppercase"),
        ("response_language", "keyword_include"),
        ("response_language", "keyword_frequency"),
        ("response_language", "starts_with"),
        ("response_language", "ends_with"),
        ("nth_paragraph_first_word", "paragraph_count"),
        ("nth_paragraph_first_word", "sections"),
        ("nth_paragraph_first_word", "two_responses"),
        ("nth_paragraph_first_word", "starts_with"),
    )
)


def are_compatible(a: str, b: str) -> bool:
    """Whether constraint types `a` and `b` can be satisfied by one response."""
    if a == b:
        return False
    for x, y in ((a, b), (b, a)):
        if x in _ONLY_WITH and y not in _ONLY_WITH[x]:
            return False
    return frozenset((a, b)) not in _PAIR_CONFLICTS


def sample_constraints(rng: random.Random, k: int) -> list[dict]:
    """Draw `k` distinct, mutually compatible constraint types with parameters.

    Returns `[{"type": name, "params": {...}}, ...]`; the result depends only on the state of `rng`.
    Types marked `sampled=False` are never drawn.
    """
    names = sorted(n for n, c in CONSTRAINTS.items() if c.sampled)
    if not 1 <= k <= len(names):
        raise ValueError(f"k must be in [1, {len(names)}], got {k}")
    for _ in range(100):
        rng.shuffle(names)
        chosen: list[str] = []
        for name in names:
            if all(are_compatible(name, other) for other in chosen):
                chosen.append(name)
                if len(chosen) == k:
                    return [{"type": n, "params": CONSTRAINTS[n].sample_params(rng)} for n in chosen]
    raise ValueError(f"could not find {k} mutually compatible constraint types")


def _from_ifeval(entry: dict) -> dict:
    name, renames, fixed = IFEVAL_ALIASES[entry["type"]]
    kwargs = entry.get("params", entry.get("kwargs")) or {}
    params = dict(fixed)
    # IFEval's dataset fills the kwargs an instruction does not use with None.
    for key, value in kwargs.items():
        if value is None:
            continue
        if key not in renames:
            raise KeyError(f"IF constraint {entry['type']!r}: unknown argument {key!r} (expected {sorted(renames)})")
        params[renames[key]] = value
    return {"type": name, "params": params}


def _parse_constraints(constraints: list[dict] | str) -> list[dict]:
    """Entries as `{"type": project name, "params"}`; IFEval instruction ids and kwargs are translated."""
    # Rows stored in parquet/JSONL often carry the list serialised as a JSON string.
    if isinstance(constraints, str):
        constraints = json.loads(constraints)
    if not isinstance(constraints, list):
        raise TypeError(f"constraints must be a list of dicts, got {type(constraints).__name__}")
    if all(isinstance(e, dict) and e.get("type") in CONSTRAINTS for e in constraints):
        return constraints  # the common case: project names, nothing to translate
    return [_from_ifeval(e) if isinstance(e, dict) and e.get("type") in IFEVAL_ALIASES else e for e in constraints]


def check_constraints(response: str, constraints: list[dict] | str, prompt: str = "") -> list[bool]:
    """Pass/fail of each `{"type", "params"}` entry against `response`, in order (project or IFEval names)."""
    results: list[bool] = []
    for entry in _parse_constraints(constraints):
        name = entry["type"]
        if name not in CONSTRAINTS:
            raise KeyError(f"unknown IF constraint type {name!r}")
        results.append(bool(CONSTRAINTS[name].check(response, entry.get("params") or {}, prompt)))
    return results


def ifeval_reward(prompt: str, completion: str, constraints: list[dict] | str, **_: object) -> dict:
    """Share of constraints the final answer satisfies, plus `constraint/<type>` 0/1 per constraint.

    Only the text after the reasoning block is judged; an empty or unfinished answer satisfies nothing.
    """
    parsed = _parse_constraints(constraints)
    if not parsed:
        raise ValueError("ifeval_reward needs at least one constraint")
    answer = answer_part(completion)
    if answer is None or not answer.strip():
        passed = [False] * len(parsed)
    else:
        passed = check_constraints(answer.strip(), parsed, prompt)
    out: dict = {"score": sum(passed) / len(passed)}
    for entry, ok in zip(parsed, passed):
        out[f"constraint/{entry['type']}"] = float(ok)
    return out


def _check_table() -> None:
    # Guard against editing one of the two constraint files without updating the compatibility tables.
    known = set(CONSTRAINTS)
    listed = set(_ONLY_WITH) | {n for allowed in _ONLY_WITH.values() for n in allowed}
    listed |= {n for pair in _PAIR_CONFLICTS for n in pair}
    listed |= {alias[0] for alias in IFEVAL_ALIASES.values()}
    if len(CONSTRAINTS) != 27 or len(IFEVAL_ALIASES) != 25 or not listed <= known:
        raise RuntimeError(f"IF constraint tables out of sync: unknown names {sorted(listed - known)}")


_check_table()

"""Constraints on length, vocabulary and letter case of the response."""

from __future__ import annotations

import random
import re

from rewards.ifeval._base import (
    Constraint,
    blank_line_paragraphs,
    count_relation,
    divider_paragraphs,
    sentences,
    words,
)
from rewards.ifeval.language import looks_english

# Pools are disjoint so an include and an exclude constraint drawn together can never name the same word,
# and the exclude pool avoids every word of the fixed phrases used by other constraints.
INCLUDE_POOL = (
    "river", "lantern", "garden", "puzzle", "signal", "harbor", "orbit", "melody", "bridge", "window",
)
EXCLUDE_POOL = ("very", "really", "basically", "actually", "thing", "stuff", "literally", "totally")
LETTER_POOL = "aeinorstl"


def _keyword_re(word: str) -> re.Pattern[str]:
    return re.compile(rf"(?<![^\W_]){re.escape(word)}(?![^\W_])", re.IGNORECASE)


_POSSESSIVE_RE = re.compile(r"['’][sS]$")


def _capital_words(text: str) -> list[str]:
    # IFEval counts every all-capital token: single letters ("I", "A") and acronyms ("U.S.", "NASA's") too.
    return [w for w in (_POSSESSIVE_RE.sub("", t) for t in text.split()) if w.isupper()]


def _check_paragraph_count(response: str, params: dict) -> bool:
    found = divider_paragraphs(response)
    return found is not None and len(found) == params["n"]


# IFEval's first word: leading quotes dropped, then the letters up to the first of these marks.
_WORD_END_RE = re.compile(r"[.,?!'\"]")


def _check_nth_paragraph(response: str, params: dict) -> bool:
    # The nth non-empty paragraph (IFEval indexes its raw split, so an extra blank line shifts it there).
    found = blank_line_paragraphs(response)
    nth = params["nth_paragraph"]
    if len(found) != params["num_paragraphs"] or not 1 <= nth <= len(found):
        return False
    first = _WORD_END_RE.split(found[nth - 1].split()[0].lstrip("'\""), 1)[0]
    return first.lower() == params["first_word"].strip().lower()


def _nth_params(rng: random.Random) -> dict:
    n = rng.randint(2, 4)
    return {"num_paragraphs": n, "nth_paragraph": rng.randint(1, n), "first_word": rng.choice(INCLUDE_POOL)}


def _relation_params(rng: random.Random, at_least: tuple[int, int], at_most: tuple[int, int]) -> dict:
    relation = rng.choice(["at least", "at most"])
    lo, hi = at_least if relation == "at least" else at_most
    return {"relation": relation, "n": rng.randint(lo, hi)}


def _word_count_params(rng: random.Random) -> dict:
    relation = rng.choice(["at least", "at most"])
    n = 5 * (rng.randint(2, 6) if relation == "at least" else rng.randint(5, 8))
    return {"relation": relation, "n": n}


def _join(items: list[str]) -> str:
    quoted = [f'"{w}"' for w in items]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " and " + quoted[-1]


WORD_COUNT = Constraint(
    name="word_count",
    sample_params=_word_count_params,
    describe=lambda p: f"Use {p['relation']} {p['n']} words in your response.",
    check=lambda r, p, _: count_relation(len(words(r)), p["relation"], p["n"]),
)

SENTENCE_COUNT = Constraint(
    name="sentence_count",
    sample_params=lambda rng: _relation_params(rng, (2, 4), (3, 6)),
    describe=lambda p: f"Write {p['relation']} {p['n']} sentences.",
    check=lambda r, p, _: count_relation(len(sentences(r)), p["relation"], p["n"]),
)

PARAGRAPH_COUNT = Constraint(
    name="paragraph_count",
    sample_params=lambda rng: {"n": rng.randint(2, 4)},
    describe=lambda p: (
        f"Write exactly {p['n']} paragraphs, separated from each other by a line "
        "containing only ***."
    ),
    check=lambda r, p, _: _check_paragraph_count(r, p),
)

NTH_PARAGRAPH_FIRST_WORD = Constraint(
    name="nth_paragraph_first_word",
    sample_params=_nth_params,
    describe=lambda p: (
        f"There should be exactly {p['num_paragraphs']} paragraphs, separated from each other by a blank "
        f"line. Paragraph {p['nth_paragraph']} must start with the word \"{p['first_word']}\"."
    ),
    check=lambda r, p, _: _check_nth_paragraph(r, p),
    # The task generator joins paragraphs its own way and cannot place a first word; checked only.
    sampled=False,
)

KEYWORD_INCLUDE = Constraint(
    name="keyword_include",
    sample_params=lambda rng: {"keywords": rng.sample(INCLUDE_POOL, rng.randint(1, 2))},
    describe=lambda p: f"Make sure your response mentions {_join(p['keywords'])}.",
    check=lambda r, p, _: all(_keyword_re(w).search(r) for w in p["keywords"]),
)

KEYWORD_EXCLUDE = Constraint(
    name="keyword_exclude",
    sample_params=lambda rng: {"forbidden": rng.sample(EXCLUDE_POOL, rng.randint(1, 2))},
    describe=lambda p: f"Never use the words {_join(p['forbidden'])}.",
    check=lambda r, p, _: not any(_keyword_re(w).search(r) for w in p["forbidden"]),
)

KEYWORD_FREQUENCY = Constraint(
    name="keyword_frequency",
    sample_params=lambda rng: {"keyword": rng.choice(INCLUDE_POOL), "n": rng.randint(2, 3)},
    describe=lambda p: f'Use the word "{p["keyword"]}" at least {p["n"]} times.',
    check=lambda r, p, _: count_relation(
        len(_keyword_re(p["keyword"]).findall(r)), p.get("relation", "at least"), p["n"]
    ),
)

LETTER_FREQUENCY = Constraint(
    name="letter_frequency",
    sample_params=lambda rng: {"letter": rng.choice(LETTER_POOL), "n": rng.randint(3, 6)},
    describe=lambda p: (
        f'The letter "{p["letter"]}" must occur at least {p["n"]} times in your response '
        "(either case counts)."
    ),
    check=lambda r, p, _: count_relation(r.lower().count(p["letter"].lower()), p.get("relation", "at least"), p["n"]),
)

NO_COMMAS = Constraint(
    name="no_commas",
    sample_params=lambda rng: {},
    describe=lambda p: "Do not use a single comma anywhere in your response.",
    check=lambda r, p, _: "," not in r,
)

NO_DIGITS = Constraint(
    name="no_digits",
    sample_params=lambda rng: {},
    describe=lambda p: "Do not use any digits in your response; write every number out in words.",
    check=lambda r, p, _: not any(c.isdigit() for c in r),
)

ALL_LOWERCASE = Constraint(
    name="all_lowercase",
    sample_params=lambda rng: {},
    describe=lambda p: "Write your whole response in lowercase letters only; do not use any capital letter.",
    # IFEval's instruction says "in English", and its checker requires English too.
    check=lambda r, p, _: r == r.lower() and r != r.upper() and looks_english(r),
)

ALL_UPPERCASE = Constraint(
    name="all_uppercase",
    sample_params=lambda rng: {},
    describe=lambda p: "Write your whole response in capital letters only; do not use any lowercase letter.",
    check=lambda r, p, _: r == r.upper() and r != r.lower() and looks_english(r),
)

CAPITAL_WORD_FREQUENCY = Constraint(
    name="capital_word_frequency",
    sample_params=lambda rng: _relation_params(rng, (1, 3), (2, 4)),
    describe=lambda p: (
        f"Write {p['relation']} {p['n']} words fully in capitals (every all-capital word counts, "
        f"for example THIS, I or NASA)."
    ),
    check=lambda r, p, _: count_relation(len(_capital_words(r)), p["relation"], p["n"]),
)

CONTENT_CONSTRAINTS: tuple[Constraint, ...] = (
    WORD_COUNT,
    SENTENCE_COUNT,
    PARAGRAPH_COUNT,
    NTH_PARAGRAPH_FIRST_WORD,
    KEYWORD_INCLUDE,
    KEYWORD_EXCLUDE,
    KEYWORD_FREQUENCY,
    LETTER_FREQUENCY,
    NO_COMMAS,
    NO_DIGITS,
    ALL_LOWERCASE,
    ALL_UPPERCASE,
    CAPITAL_WORD_FREQUENCY,
)

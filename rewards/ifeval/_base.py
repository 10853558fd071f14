"""Shared pieces of the IF constraints: the `Constraint` record and text-splitting helpers."""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Constraint:
    """One verifiable instruction type.

    `sample_params` draws JSON-serialisable parameters, `describe` renders the instruction shown to the
    model, and `check(response, params, prompt)` decides pass/fail.
    """

    name: str
    sample_params: Callable[[random.Random], dict]
    describe: Callable[[dict], str]
    check: Callable[[str, dict, str], bool]
    # False for types the IF task generator cannot build a passing response for (they stay checkable).
    sampled: bool = True


# Letters/digits joined by inner apostrophes or hyphens count as one word ("don't", "well-known").
_WORD_RE = re.compile(r"[^\W_]+(?:['’-][^\W_]+)*")
# Abbreviations a period does not end a sentence after (as punkt's English model, which IFEval counts with).
_ABBREVIATIONS = (
    "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "vs", "etc", "e.g", "i.e", "u.s", "u.k", "u.n",
    "a.m", "p.m", "fig", "approx", "inc", "ltd", "corp", "jan", "feb", "mar", "apr", "jun", "jul", "aug",
    "sep", "sept", "oct", "nov", "dec", "mt", "gen", "col", "lt", "sgt", "capt", "rev",
)
# A sentence ends at . ! or ? (closing quotes or brackets may follow) before whitespace, unless the
# period closes an abbreviation ("Dr. Smith", "e.g. this"); "3.5" does not split. Fixed-width lookbehinds
# keep this one C-level split.
_SENTENCE_END_RE = re.compile(
    r"(?<=[.!?])" + "".join(rf"(?<!\b{re.escape(a)}\.)" for a in _ABBREVIATIONS) + r"[\"'’”)\]]*\s+",
    re.IGNORECASE,
)
# IFEval's paragraph divider: `***` with at most one whitespace character either side.
_DIVIDER_RE = re.compile(r"\s?\*\*\*\s?")
_BLANK_LINE_RE = re.compile(r"\n[ \t]*\n")
# A blank line or a `***` divider line; a divider on the first or last line is left as a wordless block.
_BLOCK_BREAK_RE = re.compile(r"\n[ \t]*(?:\*\*\*[ \t]*)?\n")


def words(text: str) -> list[str]:
    return _WORD_RE.findall(text)


def divider_paragraphs(text: str) -> list[str] | None:
    """Paragraphs separated by `***` (IFEval's `number_paragraphs`); blank lines do not split one.

    An empty piece before the first or after the last divider is ignored; an empty one between two
    dividers makes the layout invalid (None), as in IFEval.
    """
    pieces = _DIVIDER_RE.split(text)
    last = len(pieces) - 1
    out: list[str] = []
    for i, piece in enumerate(pieces):
        if piece.strip():
            out.append(piece.strip())
        elif 0 < i < last:
            return None
    return out


def blank_line_paragraphs(text: str) -> list[str]:
    """Non-empty blocks separated by blank lines (IFEval's `nth_paragraph_first_word`)."""
    return [p for p in (b.strip() for b in _BLANK_LINE_RE.split(text)) if p]


def sentences(text: str) -> list[str]:
    """Sentences split at terminal punctuation (not after an abbreviation) and at blank lines or `***`
    divider lines (headings and list blocks end there); pieces without words are dropped."""
    out: list[str] = []
    for block in _BLOCK_BREAK_RE.split(text) if "\n" in text else (text,):
        out.extend(s for s in _SENTENCE_END_RE.split(block) if _WORD_RE.search(s))
    return out


def count_relation(count: int, relation: str, n: int) -> bool:
    if relation == "at least":
        return count >= n
    if relation == "at most":
        return count <= n
    if relation == "less than":  # IFEval's spelling of the upper bound
        return count < n
    raise ValueError(f"unknown relation {relation!r} (expected 'at least', 'at most' or 'less than')")


def normalise_ws(text: str) -> str:
    return " ".join(text.split())

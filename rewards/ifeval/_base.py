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


# Letters/digits joined by inner apostrophes or hyphens count as one word ("don't", "well-known").
_WORD_RE = re.compile(r"[^\W_]+(?:['’-][^\W_]+)*")
# A sentence ends at . ! or ? followed by whitespace; "3.5" or "e.g.x" does not split.
_SENTENCE_END_RE = re.compile(r"(?<=[.!?])\s+")
_DIVIDER_LINE_RE = re.compile(r"^[ \t]*\*\*\*[ \t]*$", re.MULTILINE)
_BLANK_LINE_RE = re.compile(r"\n[ \t]*\n")


def words(text: str) -> list[str]:
    return _WORD_RE.findall(text)


def paragraphs(text: str) -> list[str]:
    """Non-empty blocks separated by blank lines or a line holding only `***`."""
    text = _DIVIDER_LINE_RE.sub("", text)
    return [p for p in (b.strip() for b in _BLANK_LINE_RE.split(text)) if p]


def sentences(text: str) -> list[str]:
    """Sentences split at terminal punctuation and at paragraph breaks; pieces without words are dropped."""
    out: list[str] = []
    for para in paragraphs(text):
        out.extend(s for s in _SENTENCE_END_RE.split(para) if _WORD_RE.search(s))
    return out


def count_relation(count: int, relation: str, n: int) -> bool:
    if relation == "at least":
        return count >= n
    if relation == "at most":
        return count <= n
    raise ValueError(f"unknown relation {relation!r} (expected 'at least' or 'at most')")


def normalise_ws(text: str) -> str:
    return " ".join(text.split())

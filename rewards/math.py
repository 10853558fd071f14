"""Math answer reward: extract the final answer and check it against the gold answer with math-verify."""

from __future__ import annotations

import logging
import re

from math_verify import parse, verify

from rewards._common import answer_part

_BOXED_START_RE = re.compile(r"\\(?:boxed|fbox)\s*\{")
_ANSWER_LINE_RE = re.compile(
    r"(?:final\s+answer|\banswer)\s*(?:is\s*:?|:|=)\s*(?P<ans>[^\n]+)", re.IGNORECASE
)
# A thousands separator is only taken as part of the number when every group after it has 3 digits.
_NUMBER_RE = re.compile(r"-?\d+(?:,\d{3})*(?:\.\d+)?(?:\s*/\s*\d+)?")
# The answer on an "answer is ..." line ends at the sentence end or where an explanation starts.
_SENTENCE_CUT_RE = re.compile(r"\.\s|\s+(?:because|since|as|so|which)\b", re.IGNORECASE)
_MATH_DELIMS = ("$", "\\(", "\\[")


class _DropTimeoutNotice(logging.Filter):
    # math-verify warns that its timeouts are off; that is deliberate here (see _parse), so the notice
    # would only repeat in every fresh reward worker.
    def filter(self, record: logging.LogRecord) -> bool:
        return "Timeout is disabled" not in record.getMessage()


for _name in ("math_verify.parser", "math_verify.grader"):
    logging.getLogger(_name).addFilter(_DropTimeoutNotice())


def _last_boxed(text: str) -> str | None:
    """Content of the last `\\boxed{...}`, honouring nested braces; None if absent or unbalanced."""
    starts = list(_BOXED_START_RE.finditer(text))
    for match in reversed(starts):
        depth, i = 1, match.end()
        while i < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        if depth == 0:
            return text[match.end() : i - 1].strip()
    return None


def _answer_line(text: str) -> str | None:
    matches = list(_ANSWER_LINE_RE.finditer(text))
    if not matches:
        return None
    ans = _SENTENCE_CUT_RE.split(matches[-1].group("ans"), maxsplit=1)[0]
    ans = ans.strip().strip("*").strip().rstrip(".;,").strip()
    return ans or None


def _last_number(text: str) -> str | None:
    numbers = _NUMBER_RE.findall(text)
    return numbers[-1].replace(",", "").replace(" ", "") if numbers else None


def extract_answer(completion: str) -> str | None:
    """The model's final answer: last `\\boxed{}`, else an "answer: ..." line, else the last number.

    Only text after the reasoning block counts, so a guess inside `<think>` that is later corrected is
    ignored; an unfinished reasoning block yields None.
    """
    text = answer_part(completion)
    if text is None:
        return None
    for extractor in (_last_boxed, _answer_line, _last_number):
        found = extractor(text)
        if found:
            return found
    return None


def _as_latex(expr: str) -> str:
    # math-verify finds expressions reliably only inside math delimiters; bare gold answers like `3/4` or
    # `{1, 2}` are wrapped so they parse as one expression.
    expr = expr.strip()
    return expr if any(d in expr for d in _MATH_DELIMS) else f"${expr}$"


def _parse(expr: str) -> list:
    # Internal timeouts use signals, which only work in the main thread; the caller bounds the time.
    return parse(_as_latex(expr), parsing_timeout=None)


def math_reward(
    prompt: str, completion: str, answer: object, partial_credit: float = 0.0, **_: object
) -> dict:
    """1.0 when the extracted final answer is mathematically equal to `answer`, else 0.0.

    `partial_credit` is the score for an answer that parses but is wrong (0.0 = off). `acc` is always
    the plain 0/1 correctness, whatever the partial-credit setting.
    """
    extracted = extract_answer(completion)
    if extracted is None:
        return {"score": 0.0, "extracted": "", "acc": 0.0}
    gold = _parse(str(answer))
    if not gold:
        raise ValueError(f"gold answer {answer!r} could not be parsed")
    pred = _parse(extracted)
    correct = bool(pred) and verify(gold, pred, timeout_seconds=None)
    score = 1.0 if correct else (partial_credit if pred else 0.0)
    return {"score": score, "extracted": extracted, "acc": float(correct)}

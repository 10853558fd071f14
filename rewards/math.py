"""Math answer reward: the completion's final answer checked against the gold answer.

The final answer is the last explicit final-answer statement (`\\boxed{}` or an answer line, see
rewards.math_extract). Plain numbers are compared exactly; anything else by math-verify.
"""

from __future__ import annotations

import logging
from fractions import Fraction

from math_verify import parse, verify

from rewards.math_extract import PATHS, TRUNCATED, Extraction, as_rational, extract, is_decimal, normalise

_MATH_DELIMS = ("$", "\\(", "\\[")


class _DropTimeoutNotice(logging.Filter):
    # math-verify warns that its timeouts are off; that is deliberate here (see _parse), so the notice
    # would only repeat in every fresh reward worker.
    def filter(self, record: logging.LogRecord) -> bool:
        return "Timeout is disabled" not in record.getMessage()


for _name in ("math_verify.parser", "math_verify.grader"):
    logging.getLogger(_name).addFilter(_DropTimeoutNotice())


def extract_answer(completion: str, fallback: bool = False) -> str | None:
    """The model's final answer (see rewards.math_extract.extract); None when it states none."""
    return extract(completion, fallback=fallback).answer


def _as_latex(expr: str) -> str:
    # math-verify finds expressions reliably only inside math delimiters; bare gold answers like `3/4` or
    # `{1, 2}` are wrapped so they parse as one expression.
    expr = expr.strip()
    return expr if any(d in expr for d in _MATH_DELIMS) else f"${expr}$"


def _parse(expr: str) -> list:
    # Internal timeouts use signals, which only work in the main thread; the caller bounds the time.
    return parse(_as_latex(expr), parsing_timeout=None)


def _exact_number(parsed: list, value: Fraction) -> bool | None:
    """Whether a parsed gold number equals `value` exactly; None when the gold is no single number."""
    expr = parsed[0]
    if getattr(expr, "is_Equality", False) and getattr(expr.lhs, "is_Symbol", False):
        expr = expr.rhs
    if not getattr(expr, "is_number", False) or isinstance(expr, str):
        return None
    if expr.is_rational is False:
        return False  # a decimal can only round an irrational gold (sqrt(2), pi), never equal it
    expr = expr.doit()
    if not expr.is_Rational:
        return None
    return Fraction(int(expr.p), int(expr.q)) == value


def is_equivalent(gold: str, pred: str) -> bool | None:
    """Whether `pred` states the gold answer; None when `pred` does not parse as math.

    Plain numbers on both sides compare exactly (`0.5` = `1/2`, but `0.333333` != `1/3`); so does a
    decimal against a gold number in any form. Everything else goes to math-verify.
    """
    gold_n, pred_n = normalise(gold), normalise(pred)
    gold_value, pred_value = as_rational(gold_n), as_rational(pred_n)
    if gold_value is not None and pred_value is not None:
        return gold_value == pred_value
    gold_parsed = _parse(gold_n)
    if not gold_parsed:
        raise ValueError(f"gold answer {gold!r} could not be parsed")
    if pred_value is not None and is_decimal(pred_n):
        exact = _exact_number(gold_parsed, pred_value)
        if exact is not None:
            return exact
    pred_parsed = _parse(pred_n)
    if not pred_parsed:
        return None
    return bool(verify(gold_parsed, pred_parsed, timeout_seconds=None))


def math_reward(
    prompt: str,
    completion: str,
    answer: object,
    partial_credit: float = 0.0,
    fallback_last_number: bool = False,
    **fields: object,
) -> dict:
    """1.0 when the completion's final answer is mathematically equal to `answer`, else 0.0.

    `partial_credit` is the score for an answer that parses but is wrong (0.0 = off). `acc` is always
    the plain 0/1 correctness. A completion cut off by the length limit (`finish_reason` "length")
    scores 0. `fallback_last_number` takes the last number not in the question when no final answer is
    stated: only for data whose solutions never state one (it credits unfinished reasoning). Extras
    `path/<p>` (0/1 each) say how the answer was found: boxed, answer_line, fallback, none, truncated.
    """
    if fields.get("finish_reason") == "length":
        found = Extraction(None, TRUNCATED)
    else:
        found = extract(completion, prompt, fallback_last_number)
    paths = {f"path/{p}": float(p == found.path) for p in PATHS}
    if found.answer is None:
        return {"score": 0.0, "extracted": "", "acc": 0.0, **paths}
    verdict = is_equivalent(str(answer), found.answer)
    score = 1.0 if verdict else (partial_credit if verdict is not None else 0.0)
    return {"score": score, "extracted": found.answer, "acc": float(bool(verdict)), **paths}

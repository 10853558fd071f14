"""Step verifier for worked arithmetic: find the false statements in a solution, with their positions.

A worked solution states integer facts such as `7 + 5 = 12, write 2, carry 1.`, `12 - 5 = 7`,
`9 * 10 = 90, so 90 / 9 = 10.` Each `<integer expression> = <integer>` is checked exactly (left to
right for + and -, * and / before them, / must divide exactly), and so are the `write D` / `carry C`
digits that follow a column sum. The checker only reads what is there: a statement with a variable
(`9x = 2 + 88`) or a non-numeric right side (`4 * 13 = 13 * 4`) is skipped, never guessed.

`false_results` gives the character spans of the wrong results, which is what the RL controller
uses to put a failed answer's negative advantage on the tokens that made the mistake
(`rl.credit=error_tokens`); `arithmetic_steps` is the reward (share of true statements, or all-or-nothing for rejection sampling).
"""

from __future__ import annotations

import re
from fractions import Fraction

from rewards._common import answer_part

# An expression of integers joined by + - * /, then "=", then an integer result.
_STATEMENT_RE = re.compile(r"(\d+(?:[ \t]*[-+*/][ \t]*\d+)+)[ \t]*=[ \t]*(\d+)(?!\d|\.\d|[ \t]*[-+*/x])")
_WRITE_RE = re.compile(r",[ \t]*write[ \t]+(\d+)")
_CARRY_RE = re.compile(r"^,[ \t]*carry[ \t]+(\d+)")
_TOKEN_RE = re.compile(r"\d+|[-+*/]")


def _evaluate(expr: str) -> Fraction | None:
    """Value of an integer expression with the usual precedence; None if a division is by zero."""
    tokens = _TOKEN_RE.findall(expr)
    terms: list[Fraction] = []
    signs: list[int] = []
    value, sign, op = Fraction(int(tokens[0])), 1, ""
    for tok in tokens[1:]:
        if tok in "+-*/":
            if tok in "+-":
                terms.append(value)
                signs.append(sign)
                sign = 1 if tok == "+" else -1
                op = ""
            else:
                op = tok
            continue
        n = Fraction(int(tok))
        if op == "*":
            value *= n
        elif op == "/":
            if n == 0:
                return None
            value /= n
        else:
            value = n
    terms.append(value)
    signs.append(sign)
    return sum((s * t for s, t in zip(signs, terms)), Fraction(0))


def _preceded_by_operand(text: str, start: int) -> bool:
    """True when the matched expression continues one to its left (`x / 3 + 19 = 24`, `9x - 88 = 2`)."""
    if start and (text[start - 1].isalnum() or text[start - 1] == "."):
        return True
    before = text[:start].rstrip(" \t")
    return bool(before) and before[-1] in "+-*/"


def check_statements(text: str) -> list[tuple[bool, tuple[int, int]]]:
    """Every checkable statement in `text` as (is_true, span of the stated result), in order."""
    found: list[tuple[bool, tuple[int, int]]] = []
    for m in _STATEMENT_RE.finditer(text):
        if _preceded_by_operand(text, m.start(1)):
            continue
        value = _evaluate(m.group(1))
        if value is None:
            continue
        stated = int(m.group(2))
        found.append((value == stated, m.span(2)))
        write = _WRITE_RE.match(text, m.end())
        if write is None:
            continue
        found.append((int(write.group(1)) == stated % 10, write.span(1)))
        carry = _CARRY_RE.match(text[write.end():])
        if carry is not None:
            span = (write.end() + carry.start(1), write.end() + carry.end(1))
            found.append((int(carry.group(1)) == stated // 10, span))
    return found


def false_results(text: str) -> list[tuple[int, int]]:
    """Character spans of the results of false statements in `text`."""
    return [span for ok, span in check_statements(text) if not ok]


def arithmetic_steps(prompt: str, completion: str, all_or_nothing: bool = False,
                     **sample_fields: object) -> dict:
    """Are the completion's written arithmetic statements true? Extras: `statements`, `false_statements`.

    By default the score is the share of true statements in the whole completion (1.0 when there are
    none): a process reward. With `all_or_nothing` it is 1.0 only when every statement after the reasoning
    block holds (0.0 when one is false, or when the reasoning block never closed): the gate rejection
    sampling puts next to the outcome verifier, so that a right final answer reached through a slipped
    step does not replace a stored worked solution.
    """
    text = answer_part(completion) if all_or_nothing else completion
    if text is None:
        return {"score": 0.0, "statements": 0.0, "false_statements": 0.0}
    found = [ok for ok, _ in check_statements(text)]
    wrong = found.count(False)
    if all_or_nothing:
        score = float(wrong == 0)
    else:
        score = (len(found) - wrong) / len(found) if found else 1.0
    return {"score": score, "statements": float(len(found)), "false_statements": float(wrong)}

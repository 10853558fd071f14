"""Equations as written, for the judge's rule-written rationales (`judge_data`).

The judge's SFT targets copy a response's equations ("3 + 2 + 1 = 16 no") and, for `recompute`, work the
left side out again; this module finds each `a op b [op c ...] = d` (integers, + - * /, usual precedence;
the right side may be another chain, "2 * 68 = 68 * 2") in the form the rationale copies. Scoring answers
is the reward `rewards.steps.arithmetic_steps`, not this.
"""

from __future__ import annotations

import ast
import operator
import re

# Integer chains joined by + - * / on both sides of "="; not next to a letter or a decimal part (so
# "x2 = 4", "1.5 + 2 = 3.5" and the "6 + 14 = 19" inside "x / 6 + 14 = 19" are not read as integer
# equations; a sentence's final dot is fine). The left side has an operator ("So 7 = 7" is not
# a step); the right side is a number or another chain ("2 * 68 = 68 * 2").
_CHAIN = r"\d+(?:\s*[-+*/]\s*\d+)*"
_EQUATION_RE = re.compile(rf"(?<![\w.])(?<![-+*/=]\s)(?<![-+*/=])(\d+(?:\s*[-+*/]\s*\d+)+)\s*=\s*(-?{_CHAIN})(?!\w|\.\d|\s*[-+*/]\s*\d)")
_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}


def _value(node: ast.AST) -> float:
    if isinstance(node, ast.Constant) and isinstance(node.value, int):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_value(node.operand)
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        right = _value(node.right)
        if isinstance(node.op, ast.Div) and right == 0:
            raise ZeroDivisionError
        return _OPS[type(node.op)](_value(node.left), right)
    raise ValueError(f"not an arithmetic expression: {ast.dump(node)}")


def equation_value(expr: str) -> int | float:
    """The value of an integer chain such as "3 + 2 * 4" (an int when it is whole)."""
    value = _value(ast.parse(expr, mode="eval").body)
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _holds(left: str, right: str) -> bool:
    try:
        return abs(equation_value(left) - equation_value(right)) < 1e-9
    except (ValueError, ZeroDivisionError, SyntaxError):
        return False


def equation_checks(text: str) -> list[tuple[str, bool]]:
    """Each written integer equation in `text`, in order, as ("left = right" with single spaces, holds)."""
    return [(" ".join(f"{left} = {right}".split()), _holds(left, right)) for left, right in _EQUATION_RE.findall(text)]


def check_equations(text: str) -> tuple[int, int]:
    """(equations found, equations that are false) in `text`."""
    results = [ok for _, ok in equation_checks(text)]
    return len(results), results.count(False)


def first_wrong_equation(text: str) -> str | None:
    """The first false equation in `text` as "left = right" (single spaces), or None."""
    return next((eq for eq, ok in equation_checks(text) if not ok), None)

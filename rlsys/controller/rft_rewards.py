"""A rule reward for rejection sampling on worked arithmetic: every written equation must hold.

The math verifier checks only the final answer, so a sampled solution with a slipped step and a lucky
(or copied) final answer passes it. Such an answer must not replace a stored worked solution: in the
first full keye_pipeline run, 19 of the 37 math answers among the first 50 logged replacements (picked
by the verifier plus the reward-model tie-break) had a wrong step. On the suite it passes every stored
SFT solution and every `chosen` math response, and fails every `rejected` one (their slipped fact). `arithmetic_steps` scores 1.0 when every `a op b [op c ...] = d` in the answer
(integers, + - * /, usual precedence) is true, and 0.0 otherwise; an answer with no equation scores 1.0
(nothing to contradict). Use it next to the verifier, not instead of it:

    - {_target_: rlsys.controller.rft_rewards.arithmetic_steps, name: steps, data_sources: [rlsys/math]}
"""

from __future__ import annotations

import ast
import operator
import re

from rewards._common import answer_part

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


def arithmetic_steps(prompt: str, completion: str, **_: object) -> dict:
    """1.0 when no written equation in the answer is false; extras `equations`, `wrong_equations`."""
    answer = answer_part(completion)
    if answer is None:
        return {"score": 0.0, "equations": 0.0, "wrong_equations": 0.0}
    found, wrong = check_equations(answer)
    return {"score": float(wrong == 0), "equations": float(found), "wrong_equations": float(wrong)}

"""Allowed values beside each config field: `x: float = setting(1.0, ge=0.0)`.

OmegaConf 2.3 structured configs reject `typing.Literal` ("Unexpected type annotation"), so a field's
choices and range ride in its dataclass metadata instead. rlsys/config/validate.py checks them at
start-up, naming the full key (`stages.rl.rl.loss`), and rlsys/config/doc.py prints them in
docs/CONFIG.md. Choices that the code owns (a registry, a module's tuple) are named as
"module:attribute" and imported only when checked, so the schema stays cheap to import and the code
stays their one owner; an attribute may be a sequence or a function returning one.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import MISSING, field
from typing import Any

# Metadata keys of a setting.
CHOICES = "choices"
BOUNDS = "bounds"

_SYMBOLS = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<"}


def setting(
    default: Any = MISSING,
    *,
    factory: Callable[[], Any] | None = None,
    choices: Sequence[Any] | str | None = None,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
) -> Any:
    """A dataclass field with its allowed values: `choices` (a tuple, or "module:attribute" naming one)
    and/or bounds (ge >=, gt >, le <=, lt <). A None value (an optional field left unset) is not checked."""
    meta: dict[str, Any] = {}
    if choices is not None:
        meta[CHOICES] = choices if isinstance(choices, str) else tuple(choices)
    bounds = tuple((op, bound) for op, bound in (("ge", ge), ("gt", gt), ("le", le), ("lt", lt)) if bound is not None)
    if bounds:
        meta[BOUNDS] = bounds
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


def resolve_choices(choices: Sequence[Any] | str) -> list[Any]:
    """The allowed values: the tuple itself, or what "module:attribute" holds (called when a function)."""
    if not isinstance(choices, str):
        return list(choices)
    module, _, attr = choices.partition(":")
    found = getattr(importlib.import_module(module), attr)
    return list(found() if callable(found) else found)


def bounds_text(bounds: Sequence[tuple[str, float]]) -> str:
    """`(("gt", 0), ("le", 1))` -> "in (0, 1]"; a single bound -> ">= 0"."""
    ops = dict(bounds)
    low = [(op, ops[op]) for op in ("ge", "gt") if op in ops]
    high = [(op, ops[op]) for op in ("le", "lt") if op in ops]
    if low and high:
        (lo_op, lo), (hi_op, hi) = low[0], high[0]
        return f"in {'[' if lo_op == 'ge' else '('}{lo:g}, {hi:g}{']' if hi_op == 'le' else ')'}"
    return " and ".join(f"{_SYMBOLS[op]} {bound:g}" for op, bound in bounds)


def within(value: Any, bounds: Sequence[tuple[str, float]]) -> bool:
    """Whether `value` satisfies every bound."""
    checks = {"ge": lambda b: value >= b, "gt": lambda b: value > b, "le": lambda b: value <= b,
              "lt": lambda b: value < b}
    return all(checks[op](bound) for op, bound in bounds)

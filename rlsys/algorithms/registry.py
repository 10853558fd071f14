"""Name -> function registries for training losses (and, via `Registry`, advantage estimators).

Configs name a loss by string (`loss: gspo`); the learner resolves it once with `get_loss(name)` and
calls the returned pure tensor function. Every registered loss returns `(loss, metrics)`: a scalar
tensor to backpropagate and a dict of detached python floats to log.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

# Modules whose import registers the built-in losses. Loaded lazily so that importing the registry
# alone (e.g. from config validation) still sees every built-in name.
_BUILTIN_LOSS_MODULES = (
    "rlsys.algorithms.losses_sft",
    "rlsys.algorithms.losses_pref",
    "rlsys.algorithms.losses_rl",
)


class Registry:
    """A string -> callable table with a decorator for registration and helpful lookup errors."""

    def __init__(self, kind: str, builtin_modules: tuple[str, ...] = ()) -> None:
        self.kind = kind
        self._table: dict[str, Callable[..., Any]] = {}
        self._builtin_modules = builtin_modules
        self._builtins_loaded = False

    def register(self, name: str) -> Callable[[F], F]:
        """Decorator: register the function under `name`; a second registration of a name is an error."""

        def decorator(fn: F) -> F:
            if name in self._table and self._table[name] is not fn:
                raise ValueError(f"{self.kind} {name!r} is already registered to {self._table[name]!r}")
            self._table[name] = fn
            return fn

        return decorator

    def get(self, name: str) -> Callable[..., Any]:
        self._load_builtins()
        try:
            return self._table[name]
        except KeyError:
            known = ", ".join(sorted(self._table)) or "(none)"
            raise KeyError(f"unknown {self.kind} {name!r}; known: {known}") from None

    def names(self) -> list[str]:
        self._load_builtins()
        return sorted(self._table)

    def _load_builtins(self) -> None:
        if self._builtins_loaded:
            return
        for module in self._builtin_modules:
            importlib.import_module(module)
        # Only after every import succeeded, so a failed import is retried (and re-raised) next time.
        self._builtins_loaded = True


LOSSES = Registry("loss", _BUILTIN_LOSS_MODULES)


def register_loss(name: str) -> Callable[[F], F]:
    """Register a loss function under `name` (decorator)."""
    return LOSSES.register(name)


def get_loss(name: str) -> Callable[..., Any]:
    """Return the loss registered as `name`; KeyError listing the known names otherwise."""
    return LOSSES.get(name)


def list_losses() -> list[str]:
    """Sorted names of all registered losses (built-ins included)."""
    return LOSSES.names()

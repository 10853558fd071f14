"""Name -> function registries for training losses (and, via `Registry`, advantage estimators).

Configs name a loss by string (`loss: gspo`); the learner resolves it once with `get_loss(name)` and
calls the returned pure tensor function. Every registered loss returns `(loss, metrics)`: a scalar
tensor to backpropagate and a dict of detached python floats to log.

A loss is registered once, together with its objective kind (`LOSS_KINDS`): what the learner feeds it
and how it normalises it (rlsys/learner/objectives.py has one class per kind):

    @register_loss("my_pg", kind="policy_gradient")
    def my_pg_loss(logprobs, old_logprobs, advantages, mask, **kwargs): ...
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
    "rlsys.algorithms.losses_contrastive",
)


# Objective kinds a loss can be registered with; the learner's objectives.py binds one class to each.
#   token_nll:       next-token NLL on a token mask (ntp, sft)
#   policy_gradient: rollout samples with old logprobs and advantages (gspo, gspo_token, grpo)
#   preference:      (chosen, rejected) sequence pairs against a frozen reference (dpo, bco_pair, mpo)
#   pairwise_score:  (chosen, rejected) scalar reward-model scores (bradley_terry)
#   contrastive:     pooled image and text embeddings of matching pairs (siglip); no learner objective
#                    yet: it comes with the vision-language model (issue #24)
LOSS_KINDS = ("token_nll", "policy_gradient", "preference", "pairwise_score", "contrastive")


class Registry:
    """A string -> callable table with a decorator for registration and helpful lookup errors.

    Each entry may carry keyword metadata given at registration (a loss's objective `kind`)."""

    def __init__(self, kind: str, builtin_modules: tuple[str, ...] = ()) -> None:
        self.kind = kind
        self._table: dict[str, Callable[..., Any]] = {}
        self._meta: dict[str, dict[str, Any]] = {}
        self._builtin_modules = builtin_modules
        self._builtins_loaded = False

    def register(self, name: str, **meta: Any) -> Callable[[F], F]:
        """Decorator: register the function under `name` with `meta`; registering a name again with another
        function or other metadata is an error."""

        def decorator(fn: F) -> F:
            if name in self._table and (self._table[name] is not fn or self._meta[name] != meta):
                raise ValueError(f"{self.kind} {name!r} is already registered to {self._table[name]!r} "
                                 f"{self._meta[name] or ''}".rstrip())
            self._table[name] = fn
            self._meta[name] = dict(meta)
            return fn

        return decorator

    def meta(self, name: str) -> dict[str, Any]:
        """The metadata `name` was registered with; KeyError listing the known names otherwise."""
        self.get(name)
        return dict(self._meta[name])

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


def register_loss(name: str, *, kind: str) -> Callable[[F], F]:
    """Register a loss function under `name` with its objective `kind` (one of LOSS_KINDS; decorator)."""
    if kind not in LOSS_KINDS:
        raise ValueError(f"loss {name!r}: unknown objective kind {kind!r}; known: {', '.join(LOSS_KINDS)}")
    return LOSSES.register(name, kind=kind)


def get_loss(name: str) -> Callable[..., Any]:
    """Return the loss registered as `name`; KeyError listing the known names otherwise."""
    return LOSSES.get(name)


def loss_kind(name: str) -> str:
    """The objective kind `name` was registered with; KeyError listing the known names otherwise."""
    return str(LOSSES.meta(name)["kind"])


def list_losses(kind: str | None = None) -> list[str]:
    """Sorted names of all registered losses (built-ins included), or of those of one objective kind."""
    return [n for n in LOSSES.names() if kind is None or LOSSES.meta(n)["kind"] == kind]


def list_policy_gradient_losses() -> list[str]:
    """Sorted names of the losses an RL stage can train with (`rl.loss`)."""
    return list_losses("policy_gradient")

"""Loading reward functions from config entries and the contract their outputs must meet.

An entry is `{"_target_": "pkg.mod.fn" | "<built-in name>", "name": ..., "weight": 1.0,
"data_sources": [...], "kwargs": {...}, "batched": bool}`; see docs/REWARDS.md.
Everything is validated at start-up so a typo fails before the first rollout, naming the entry.
"""

from __future__ import annotations

import asyncio
import inspect
import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from rewards.registry import BUILTINS, import_target, resolve_target

# How a reward is called: once per sample, once per batch with row fields as columns
# (`fn(prompts, completions, answer=[...], ...)`), or through an instance's
# `score_batch(prompts, completions, fields_list)` method.
SAMPLE, COLUMNS, ROWS = "sample", "columns", "rows"
ENTRY_KEYS = frozenset({"_target_", "name", "weight", "data_sources", "kwargs", "batched"})
_MAX_EXTRA_STR = 1000


class RewardConfigError(ValueError):
    """A reward entry that cannot be loaded; the message names the entry index and target."""


class BadRewardOutput(ValueError):
    """A reward returned something other than a finite number or a dict with a finite "score"; `kind` is
    the error kind the manager counts it under (`reward/errors/<kind>`)."""

    kind = "nonfinite"


class NonNumericScore(BadRewardOutput):
    """The score is not a number: a bool, str, None, list, ... or a dict without "score"."""

    kind = "non_numeric"


@dataclass(frozen=True)
class RewardSpec:
    """A validated reward entry. Holds only picklable data; the callable is rebuilt where it runs."""

    index: int
    name: str
    target: str
    weight: float = 1.0
    data_sources: frozenset[str] | None = None
    kwargs: dict = field(default_factory=dict)
    style: str = "sample"
    is_async: bool = False
    is_class: bool = False

    @property
    def batched(self) -> bool:
        return self.style != SAMPLE

    def applies_to(self, data_source: object) -> bool:
        return self.data_sources is None or data_source in self.data_sources


def _plain(value: object) -> object:
    # Hydra/OmegaConf containers become plain dicts/lists so specs pickle cheaply into the worker.
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        return [_plain(v) for v in value]
    return value


def _check_call_signature(fn: Callable, batched: bool, kwargs: dict, skip_self: bool = False) -> None:
    sig = inspect.signature(fn)
    params = list(sig.parameters.values())[1 if skip_self else 0 :]
    kinds = {p.kind for p in params}
    shape = "(prompts: list, completions: list, **kwargs)" if batched else "(prompt, completion, **kwargs)"
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if len(positional) < 2 and inspect.Parameter.VAR_POSITIONAL not in kinds:
        raise TypeError(f"signature {sig} must accept {shape}")
    if inspect.Parameter.VAR_KEYWORD not in kinds:
        raise TypeError(f"signature {sig} must accept **kwargs (the row's other fields); expected {shape}")
    try:
        sig.replace(parameters=params).bind_partial("prompt", "completion", **kwargs)
    except TypeError as exc:
        raise TypeError(f"kwargs {sorted(kwargs)} do not fit signature {sig}: {exc}") from None


def _class_style(cls: type, kwargs: dict, explicit: bool | None) -> tuple[str, Callable]:
    try:
        inspect.signature(cls).bind(**kwargs)
    except TypeError as exc:
        raise RewardConfigError(f"cannot be constructed with kwargs {sorted(kwargs)}: {exc}") from None
    score_batch = getattr(cls, "score_batch", None)
    if callable(score_batch) and explicit is not False:
        positional = [
            p for p in list(inspect.signature(score_batch).parameters.values())[1:]
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
        if len(positional) < 3:
            raise RewardConfigError("score_batch must take (prompts, completions, fields_list)")
        return ROWS, score_batch
    if not any("__call__" in vars(klass) for klass in cls.__mro__[:-1]):
        raise RewardConfigError("instances are not callable (define __call__ or score_batch)")
    style = COLUMNS if (explicit if explicit is not None else getattr(cls, "batched", False)) else SAMPLE
    _check_call_signature(cls.__call__, style == COLUMNS, {}, skip_self=True)
    return style, cls.__call__


def _import(target: str) -> object:
    try:
        return import_target(target)
    except ModuleNotFoundError as exc:
        module = target.rpartition(".")[0]
        if exc.name and (module == exc.name or module.startswith(exc.name + ".")):
            raise RewardConfigError(f"module {exc.name!r} not found") from None
        raise RewardConfigError(f"importing {module!r} failed: module {exc.name!r} not found") from None
    except (ImportError, AttributeError) as exc:
        raise RewardConfigError(str(exc)) from None
    except Exception as exc:
        # Any error while importing user code (syntax error, failing top-level code) is a config error.
        raise RewardConfigError(f"importing {target!r} failed: {type(exc).__name__}: {exc}") from exc


def _check_kwarg_names(obj: Callable, kwargs: dict, key: str, is_class: bool = False) -> None:
    # A function must take **fields (the row's other fields), so a misspelt kwarg would bind there and be
    # ignored: every config kwarg must name a declared parameter (of the function, or a class's __init__).
    params = inspect.signature(obj).parameters.values()
    named = [p.name for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    label = getattr(obj, "__qualname__", type(obj).__name__)
    for name in kwargs:
        if name not in named:
            what = (f"{label} cannot be constructed with {name!r}" if is_class
                    else f"{name!r} is not a parameter of {label}")
            raise RewardConfigError(
                f"config key '{key}.kwargs.{name}': {what} (its parameters: {', '.join(named) or 'none'}); "
                "a config kwarg must name a declared parameter, or it would reach the reward as an ignored "
                "row field"
            )


def _holds(value: object, pred: Callable[[object], bool]) -> bool:
    if pred(value):
        return True
    if isinstance(value, Mapping):
        return any(_holds(v, pred) for v in value.values())
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        return any(_holds(v, pred) for v in value)
    return False


def _load_entry(index: int, entry: object, where: str,
                is_deferred: Callable[[object], bool] | None = None) -> RewardSpec:
    if not isinstance(entry, Mapping):
        raise RewardConfigError(f"{where}[{index}]: expected a mapping, got {type(entry).__name__}")
    raw_target = entry.get("_target_")
    if not isinstance(raw_target, str) or not raw_target:
        raise RewardConfigError(f"{where}[{index}]: missing '_target_' (dotted path or one of {sorted(BUILTINS)})")
    label = f"{where}[{index}] ({raw_target!r})"
    try:
        return _build_spec(index, entry, raw_target, f"{where}[{index}]", is_deferred)
    except (RewardConfigError, TypeError, ValueError, KeyError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        raise RewardConfigError(f"{label}: {message}") from exc


def _build_spec(index: int, entry: Mapping, raw_target: str, key: str,
                is_deferred: Callable[[object], bool] | None = None) -> RewardSpec:
    unknown = set(entry) - ENTRY_KEYS
    if unknown:
        raise RewardConfigError(f"unknown keys {sorted(unknown)}; allowed: {sorted(ENTRY_KEYS)}")
    target = resolve_target(raw_target)
    kwargs = _plain(entry.get("kwargs") or {})
    if not isinstance(kwargs, dict):
        raise RewardConfigError(f"'kwargs' must be a mapping, got {type(kwargs).__name__}")
    weight = entry.get("weight", 1.0)
    if isinstance(weight, bool) or not isinstance(weight, numbers.Real) or not math.isfinite(weight):
        raise RewardConfigError(f"'weight' must be a finite number, got {weight!r}")
    sources = entry.get("data_sources")
    if sources is not None:
        if isinstance(sources, str) or not isinstance(sources, Sequence):
            raise RewardConfigError(f"'data_sources' must be a list of names, got {sources!r}")
        sources = frozenset(str(s) for s in sources) or None

    obj = _import(target)
    explicit = entry.get("batched")
    if explicit is not None and not isinstance(explicit, bool):
        raise RewardConfigError(f"'batched' must be true or false, got {explicit!r}")
    is_class = inspect.isclass(obj)
    if is_class:
        _check_kwarg_names(obj, kwargs, key, is_class=True)
        style, call = _class_style(obj, kwargs, explicit)
        # A value resolved later (a `stage:<name>` model directory) cannot be checked yet: the static
        # checks then run when the entry is loaded again with it resolved, as the stage starts.
        if not (is_deferred and _holds(kwargs, is_deferred)):
            _validate_static(obj, kwargs)
    elif callable(obj):
        style = COLUMNS if (explicit if explicit is not None else getattr(obj, "batched", False)) else SAMPLE
        call = obj
        _check_call_signature(call, style == COLUMNS, kwargs)
        _check_kwarg_names(call, kwargs, key)
    else:
        raise RewardConfigError(f"{target!r} is a {type(obj).__name__}, not a function or class")
    name = entry.get("name") or (raw_target if raw_target in BUILTINS else target.rpartition(".")[2])
    return RewardSpec(
        index=index,
        name=str(name),
        target=target,
        weight=float(weight),
        data_sources=sources,
        kwargs=kwargs,
        style=style,
        is_async=inspect.iscoroutinefunction(call),
        is_class=is_class,
    )


def _validate_static(cls: type, kwargs: dict) -> None:
    # A class may check its kwargs cheaply where the config is loaded (a missing API-key variable, a
    # model directory that does not exist) instead of failing in the worker at the first batch.
    validate = getattr(cls, "validate_static", None)
    if callable(validate):
        validate(kwargs)


def check_static(spec: RewardSpec, where: str = "reward.fns") -> None:
    """Re-run a class target's `validate_static(kwargs)` here (e.g. inside a reward worker on another
    node, whose environment may differ from the driver's); raises RewardConfigError naming the entry."""
    if not spec.is_class:
        return
    try:
        _validate_static(import_target(spec.target), spec.kwargs)
    except (TypeError, ValueError, KeyError, ImportError, AttributeError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        raise RewardConfigError(f"{where}[{spec.index}] ({spec.target!r}): {message}") from exc


def check_time_budgets(specs: Sequence[RewardSpec], timeout_s: float, where: str = "reward.fns",
                       timeout_key: str = "reward.timeout_s") -> None:
    """A class that waits on something outside (an endpoint) may declare the classmethod
    `time_budget_s(kwargs) -> float | None`: the most seconds it can take on one sample with those kwargs.
    It must fit in `timeout_s` (reward.timeout_s), the manager's budget per sample (`timeout_s * n` for a
    batch of n): past it the worker is interrupted or killed and every sample retried alone, counted as
    `timeout`, instead of the reward's own fallback. Raises RewardConfigError naming both config keys."""
    for spec in specs:
        if not spec.is_class:
            continue
        cls = import_target(spec.target)
        budget_of = getattr(cls, "time_budget_s", None)
        entry = f"{where}[{spec.index}]"
        try:
            budget = budget_of(spec.kwargs) if callable(budget_of) else None
        except (TypeError, ValueError, KeyError) as exc:
            raise RewardConfigError(f"{entry} ({spec.target!r}): time budget: {exc}") from exc
        if budget is None or budget <= timeout_s:
            continue
        named = "timeout_s" in inspect.signature(cls).parameters
        key = f"{entry}.kwargs.timeout_s" if named else f"{entry}.kwargs"
        raise RewardConfigError(
            f"{entry} ({spec.target!r}): config key '{key}' gives a worst case of {budget:.4g} s per sample "
            f"(its timeouts, retries and backoff), more than '{timeout_key}' = {timeout_s:g} s: against a slow "
            "endpoint the reward worker would be cut off and retry every sample alone instead of scoring the "
            f"fallback. Lower '{key}' (or max_retries), or raise '{timeout_key}'"
        )


def load_reward_fns(entries: Sequence[object] | None, where: str = "reward.fns", *,
                    is_deferred: Callable[[object], bool] | None = None) -> list[RewardSpec]:
    """Validate config entries into specs: importable target, usable signature, kwargs that name declared
    parameters, unique names, and a class's `validate_static` checks.

    Raises RewardConfigError naming the entry, e.g. "reward.fns[1] ('my_mod.fn'): module 'my_mod' not found".
    `is_deferred(value)` marks kwargs values resolved later (the stage runner's `stage:<name>`); an entry
    holding one skips its class's `validate_static` here (it runs once the value is resolved).
    """
    specs = [_load_entry(i, entry, where, is_deferred) for i, entry in enumerate(entries or [])]
    seen: dict[str, int] = {}
    for spec in specs:
        if spec.name in seen:
            raise RewardConfigError(
                f"{where}[{spec.index}] ({spec.target!r}): name {spec.name!r} is already used by "
                f"{where}[{seen[spec.name]}]; set a distinct 'name'"
            )
        seen[spec.name] = spec.index
    return specs


class LoadedReward:
    """A spec turned back into something callable (done inside the worker process)."""

    def __init__(self, spec: RewardSpec) -> None:
        self.spec = spec
        obj = import_target(spec.target)
        if spec.is_class:
            instance = obj(**spec.kwargs)
            # Heavy state (a model) is built here, inside the manager's load budget, not in the first
            # scoring call, whose budget is per sample.
            setup = getattr(instance, "setup", None)
            if callable(setup):
                setup()
            self._fn = instance.score_batch if spec.style == ROWS else instance
            self._kwargs: dict = {}
        else:
            self._fn = obj
            self._kwargs = spec.kwargs

    def _run(self, result: object) -> object:
        return asyncio.run(result) if inspect.isawaitable(result) else result

    def call_one(self, prompt: str, completion: str, fields: dict) -> object:
        """Call a per-sample reward; config kwargs win over row fields of the same name."""
        return self._fn(prompt, completion, **{**fields, **self._kwargs})

    def call_batch(self, prompts: list[str], completions: list[str], fields_list: list[dict]) -> list:
        if self.spec.style == ROWS:
            out = self._run(self._fn(prompts, completions, fields_list))
        else:
            keys = {k for fields in fields_list for k in fields}
            columns = {k: [fields.get(k) for fields in fields_list] for k in keys}
            out = self._run(self._fn(prompts, completions, **{**columns, **self._kwargs}))
        if not isinstance(out, Sequence) or isinstance(out, (str, bytes)) or len(out) != len(prompts):
            got = len(out) if isinstance(out, Sequence) else type(out).__name__
            raise BadRewardOutput(f"batched reward must return a list of {len(prompts)} results, got {got}")
        return list(out)


def _clean_extra(value: object) -> object:
    if isinstance(value, numbers.Real):
        return float(value)
    text = value if isinstance(value, str) else repr(value)
    return text[:_MAX_EXTRA_STR]


def normalise_output(out: object) -> tuple[float, dict]:
    """(score, extras) from a reward's return value: a number, or a dict with a numeric "score".

    Raises NonNumericScore for anything else (a bool is not a score: `True` would pass as 1.0) and
    BadRewardOutput for NaN/inf.
    """
    extras: dict = {}
    if isinstance(out, Mapping):
        if "score" not in out:
            raise NonNumericScore(f"dict result without a 'score' key (keys: {sorted(out)[:10]})")
        extras = {str(k): _clean_extra(v) for k, v in out.items() if k != "score" and v is not None}
        out = out["score"]
    if isinstance(out, bool) or not isinstance(out, numbers.Real):
        raise NonNumericScore(f"score must be a number, got {type(out).__name__} {str(out)[:40]!r}")
    score = float(out)
    if not math.isfinite(score):
        raise BadRewardOutput(f"score is not finite: {score}")
    return score, extras


def combine(specs: Sequence[RewardSpec], scores: Mapping[str, float], data_source: object) -> float:
    """Weighted sum over the specs that apply to `data_source`; `scores` is keyed by spec name."""
    return sum(spec.weight * scores[spec.name] for spec in specs if spec.applies_to(data_source))

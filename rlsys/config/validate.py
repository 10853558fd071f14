"""Value checks that types alone cannot express; each error names the full config key.

Per-field choices and ranges are declared beside each field in the schema (`setting(...)`, see
rlsys/config/fields.py); `validate_config` walks the whole config, every `stages.<name>` included, and
checks them. Checks that relate two fields, or fields whose dataclass lives outside rlsys/config, are
below. rlsys/run.py calls `validate_config` before anything starts.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Iterator
from typing import Any

from rlsys.config.fields import BOUNDS, CHOICES, bounds_text, resolve_choices, within


class ConfigError(ValueError):
    """A config value is invalid; the message names the key."""


# Fields of dataclasses defined outside rlsys/config (the task suite's SuiteSpec), by full key.
_EXTERNAL: dict[str, dict[str, Any]] = {
    "data.suite.format": {CHOICES: "rlsys.data.tasks.suite:FILE_FORMATS"},
}


def _get(node: Any, key: str) -> Any:
    return node[key] if isinstance(node, dict) else getattr(node, key)


def _items(node: Any) -> Iterator[tuple[str, Any]]:
    return iter(node.items())


def _dataclass_of(hint: Any) -> type | None:
    """The dataclass a field holds (`X`, `X | None`), else None."""
    if typing.get_origin(hint) in (dict, list):
        return None
    candidates = [hint, *typing.get_args(hint)]
    return next((c for c in candidates if dataclasses.is_dataclass(c)), None)


def _dict_value_dataclass(hint: Any) -> type | None:
    """For `dict[str, X]` with X a dataclass (the `stages` map), X; else None."""
    if typing.get_origin(hint) is dict:
        args = typing.get_args(hint)
        if len(args) == 2 and dataclasses.is_dataclass(args[1]):
            return args[1]
    return None


def iter_settings(cls: type, node: Any, prefix: str = "") -> Iterator[tuple[str, Any, dict[str, Any]]]:
    """(full key, value, rules) for every leaf field of `node` (an instance of dataclass `cls`, a DictConfig
    of it, or a dict), descending into nested sections and into each entry of a dict of sections."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        key, value = f"{prefix}{f.name}", _get(node, f.name)
        nested = _dataclass_of(hints[f.name])
        entry = _dict_value_dataclass(hints[f.name])
        if nested is not None and value is not None:
            yield from iter_settings(nested, value, key + ".")
        elif entry is not None and value is not None:
            for name, child in _items(value):
                yield from iter_settings(entry, child, f"{key}.{name}.")
        else:
            yield key, value, dict(f.metadata) or _EXTERNAL.get(key, {})


def check_setting(key: str, value: Any, rules: dict[str, Any]) -> None:
    """Raise ConfigError when `value` breaks the field's declared choices or bounds."""
    if value is None:
        return
    if CHOICES in rules:
        choices = resolve_choices(rules[CHOICES])
        if value not in choices:
            raise ConfigError(f"config key '{key}' = {value!r}: must be one of {sorted(choices, key=str)}")
    if BOUNDS in rules and not within(value, rules[BOUNDS]):
        raise ConfigError(f"config key '{key}' = {value!r}: must be {bounds_text(rules[BOUNDS])}")


def _check_order(cfg: Any, low_key: str, high_key: str) -> None:
    low, high = _path(cfg, low_key), _path(cfg, high_key)
    if low > high:
        raise ConfigError(f"config key '{low_key}' = {low!r} must be <= '{high_key}' = {high!r}")


def _path(cfg: Any, dotted: str) -> Any:
    node = cfg
    for part in dotted.split("."):
        node = _get(node, part)
    return node


def validate_config(cfg: Any) -> None:
    """Raise ConfigError for the first invalid value, naming its full key (e.g. `stages.rl.rl.loss`)."""
    from rlsys.config.schema import Config
    from rlsys.rollout.pool_policy import PoolPolicy

    for key, value, rules in iter_settings(Config, cfg):
        check_setting(key, value, rules)
    try:
        PoolPolicy.from_config(cfg.rollout.pool)
    except ValueError as exc:
        raise ConfigError(f"config key 'rollout.pool': {exc}") from None
    for name, _ in _items(cfg.stages):
        _check_order(cfg, f"stages.{name}.rl.filter_low", f"stages.{name}.rl.filter_high")
        _check_order(cfg, f"stages.{name}.sample.keep_low", f"stages.{name}.sample.keep_high")

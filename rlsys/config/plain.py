"""OmegaConf nodes as plain Python containers (what Ray actors, json and reward functions take)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from omegaconf import OmegaConf


def to_plain(node: Any) -> Any:
    """A config node as resolved dicts/lists; a mapping or sequence as a shallow copy; else unchanged."""
    if OmegaConf.is_config(node):
        return OmegaConf.to_container(node, resolve=True)
    if isinstance(node, Mapping):
        return dict(node)
    if isinstance(node, (list, tuple)):
        return list(node)
    return node

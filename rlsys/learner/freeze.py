"""Parameter freezing by config: which parameters a stage trains (`stages.<name>.trainable`).

Patterns are shell-style globs (`fnmatch`, case-sensitive; `*` also crosses dots) over the full names of
`model.named_parameters()`, e.g. `model.layers.1.*` or `model.visual.*`. A parameter trains when any pattern
matches its name; no patterns means every parameter trains. The learner applies this before DeepSpeed is built
(it hands the engine only the parameters that still require grad), so a frozen tensor is in no optimizer group:
no update, no weight decay, no optimizer state, and its bytes stay as loaded.
"""

from __future__ import annotations

from collections.abc import Sequence
from fnmatch import fnmatchcase

import torch

# Parameter-name prefixes listed when a pattern matches nothing (more are counted, not listed).
_PREFIXES_SHOWN = 12


def name_prefixes(names: Sequence[str], depth: int = 3) -> list[str]:
    """The distinct module paths of `names`, cut to `depth` dotted parts, in first-seen order:
    `model.layers.0.mlp.up_proj.weight` -> `model.layers.0`, `lm_head.weight` -> `lm_head`."""
    seen: dict[str, None] = {}
    for name in names:
        module = name.rsplit(".", 1)[0] if "." in name else name
        seen.setdefault(".".join(module.split(".")[:depth]), None)
    return list(seen)


def trainable_names(names: Sequence[str], patterns: Sequence[str], where: str = "trainable") -> set[str]:
    """The names that match at least one pattern (every name when `patterns` is empty). A pattern that
    matches no name is a ValueError naming `where` (the config key) and listing name prefixes."""
    if not patterns:
        return set(names)
    chosen: set[str] = set()
    for pattern in patterns:
        hits = {n for n in names if fnmatchcase(n, pattern)}
        if not hits:
            prefixes = name_prefixes(names)
            shown = ", ".join(prefixes[:_PREFIXES_SHOWN])
            more = f" and {len(prefixes) - _PREFIXES_SHOWN} more" if len(prefixes) > _PREFIXES_SHOWN else ""
            raise ValueError(
                f"{where}: pattern {pattern!r} matches no parameter of the model (patterns are globs over full "
                f"parameter names, e.g. 'model.layers.1.*'); its parameter names start with: {shown}{more}"
            )
        chosen |= hits
    return chosen


def freeze_parameters(model: torch.nn.Module, patterns: Sequence[str], where: str = "trainable") -> dict[str, int]:
    """Set `requires_grad=False` on every parameter whose name matches none of `patterns` (no patterns:
    nothing is frozen). Returns the counts of trained and frozen tensors and elements."""
    named = list(model.named_parameters())
    keep = trainable_names([n for n, _ in named], list(patterns), where)
    counts = {"trainable_tensors": 0, "trainable_params": 0, "frozen_tensors": 0, "frozen_params": 0}
    for name, param in named:
        trains = name in keep
        if not trains:
            param.requires_grad_(False)
        kind = "trainable" if trains and param.requires_grad else "frozen"
        counts[f"{kind}_tensors"] += 1
        counts[f"{kind}_params"] += param.numel()
    return counts

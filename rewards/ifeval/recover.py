"""Recover a prompt's IF constraints from its text, for data that kept the prompt but not the constraint list
(e.g. preference pairs, whose judge reasoning checks each constraint on both responses).

Every constraint renders its instruction with `describe(params)` and every parameter space is small, so a
table of all renderings (drawn from each type's own `sample_params`) inverts `describe`: the constraints of a
prompt are the renderings found in it. A rendering inside a longer one that also matches is not counted.
"""

from __future__ import annotations

import json
import random
from functools import lru_cache

from rewards.ifeval import CONSTRAINTS

# Draws per constraint type; the largest parameter spaces (two keywords from a pool of eight, a relation and
# a count) have a few hundred values, each found many times over within this many draws.
_DRAWS = 20_000


@lru_cache(maxsize=1)
def rendering_table() -> dict[str, dict]:
    """Instruction text -> `{"type", "params"}` for every constraint rendering the samplers can produce."""
    table: dict[str, dict] = {}
    for name in sorted(CONSTRAINTS):
        rng = random.Random(f"recover|{name}")
        constraint = CONSTRAINTS[name]
        for _ in range(_DRAWS):
            params = constraint.sample_params(rng)
            table.setdefault(constraint.describe(params), {"type": name, "params": params})
    return table


def constraints_in(prompt: str) -> list[dict]:
    """The constraints whose instructions appear in `prompt`, in the order they appear (each as
    `{"type", "params"}`, as `check_constraints` takes them)."""
    spans = []
    for text, entry in rendering_table().items():
        start = prompt.find(text)
        if start >= 0:
            spans.append((start, start + len(text), entry))
    # Keep maximal matches: 'at least 2 times' inside a longer rendering of another type is not its own.
    kept = [s for s in spans if not any(o is not s and o[0] <= s[0] and s[1] <= o[1] and o[1] - o[0] > s[1] - s[0]
                                        for o in spans)]
    kept.sort(key=lambda s: s[0])
    out = []
    for _, _, entry in kept:
        entry = json.loads(json.dumps(entry))
        if entry["type"] == "repeat_prompt":
            # The request to echo is what the prompt says before its first instruction.
            entry["params"] = {"request": prompt[: kept[0][0]].strip()}
        out.append(entry)
    return out

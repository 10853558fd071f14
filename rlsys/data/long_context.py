"""Long mixed rows for the long-context annealing stage (Keye-VL 1.5's last pretraining stage, scaled down).

A long row packs `k` rows of one kind (text, image or video) into one prompt and asks for one of them:

    Below are 3 tasks. Answer only task 2; the others are there to be read past.

    Task 1 (picture 1): <prompt of row 1>

    Task 2 (pictures 2-3): <prompt of row 2>

    Task 3 (picture 4): <prompt of row 3>

    Answer task 2.

Its pictures and videos are the packed rows' in task order (they open the user turn, numbered as the text
numbers them), its gold `answer` and SFT `response` are the target row's, so the model must find the target
among distractors that look alike: what a longer context asks of it. The target is drawn uniformly, so every
position in the context is trained and measured. `long_items`, `long_target` and `long_kind` record how the
row was built; everything here is deterministic by seed.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from rlsys.config.validate import ConfigError

KINDS = ("text", "image", "video")
# Fields of the target row a long row keeps (the rest describe the target alone: hints, keys, scenes).
TARGET_FIELDS = ("data_source", "task", "tier", "answer", "response", "constraints", "format")


def row_kind(row: dict) -> str:
    """`video` for a row with videos, `image` for one with images, else `text`."""
    if row.get("videos"):
        return "video"
    return "image" if row.get("images") else "text"


def _media_label(kind: str, first: int, count: int) -> str:
    word = "picture" if kind == "image" else "video"
    if count == 1:
        return f" ({word} {first})"
    return f" ({word}s {first}-{first + count - 1})"


def compose_long_row(rows: list[dict], target: int, row_id: str) -> dict:
    """One long row from `rows` (one kind; videos at one fps), asking for `rows[target]` (0-based)."""
    if not rows:
        raise ValueError("compose_long_row: no rows to pack")
    if not 0 <= target < len(rows):
        raise ValueError(f"compose_long_row: target {target} outside the {len(rows)} rows")
    kinds = {row_kind(r) for r in rows}
    if len(kinds) != 1:
        raise ValueError(f"compose_long_row: rows {[r.get('id') for r in rows]} mix kinds {sorted(kinds)}")
    kind = kinds.pop()
    media_key = {"image": "images", "video": "videos"}.get(kind)
    fps = {r.get("fps") for r in rows} if kind == "video" else set()
    if len(fps) > 1:
        raise ValueError(f"compose_long_row: videos at different fps {sorted(fps)} cannot share one row")
    k, j = len(rows), target + 1
    parts = [f"Below are {k} tasks. Answer only task {j}; the others are there to be read past."]
    media: list[Any] = []
    for i, r in enumerate(rows, start=1):
        label = ""
        if media_key:
            own = list(r[media_key])
            label = _media_label(kind, len(media) + 1, len(own))
            media += own
        parts.append(f"Task {i}{label}: {r['prompt']}")
    parts.append(f"Answer task {j}.")
    chosen = rows[target]
    out = {"id": row_id, "prompt": "\n\n".join(parts)}
    out |= {f: chosen[f] for f in TARGET_FIELDS if f in chosen}
    out |= {"long_items": k, "long_target": j, "long_kind": kind, "long_source": chosen.get("id")}
    if media_key:
        out[media_key] = media
    if kind == "video":
        out["fps"] = fps.pop()
    return out


def long_rows(rows: list[dict], items: tuple[int, int], seed: int, name: str) -> list[dict]:
    """Every row of `rows` packed once into long rows of `items` = (min, max) rows each (the count drawn per long
    row, seeded), within one kind and, for videos, one fps; a remainder smaller than `min` is packed with rows
    drawn again so no row is left out. Ids are `long-<name>-<n>`."""
    lo, hi = int(items[0]), int(items[1])
    if not 1 <= lo <= hi:
        raise ValueError(f"long rows of {name!r}: items must be 1 <= min <= max, got {list(items)}")
    rng = random.Random(f"long|{name}|{seed}")
    pools: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        pools[(row_kind(r), r.get("fps") if r.get("videos") else None)].append(r)
    out: list[dict] = []
    for key in sorted(pools, key=str):
        pool = pools[key]
        order = list(range(len(pool)))
        rng.shuffle(order)
        start = 0
        while start < len(order):
            k = rng.randint(lo, hi)
            picked = [pool[i] for i in order[start : start + k]]
            start += k
            while len(picked) < k:
                # Too few rows left (or in the pool) for this row's count: fill with other rows of the pool.
                picked.append(pool[rng.randrange(len(pool))])
            out.append(compose_long_row(picked, rng.randrange(k), f"long-{name}-{len(out)}"))
    rng.shuffle(out)
    return out


def long_eval_rows(rows: list[dict], k: int, count: int, seed: int, name: str) -> list[dict]:
    """`count` held-out long rows of exactly `k` rows each, drawn from `rows` (one kind): the targets are `count`
    distinct rows where there are enough (spread over the split), the distractors other rows of the split. k = 1
    gives the target rows as they are (the short question, no packing text), marked like the packed ones."""
    if k < 1 or count < 1:
        raise ValueError(f"long eval rows of {name!r}: k and count must be >= 1, got k={k}, count={count}")
    if len(rows) < k:
        raise ValueError(f"long eval rows of {name!r}: k={k} needs at least {k} rows, the split has {len(rows)}")
    rng = random.Random(f"long-eval|{name}|{k}|{seed}")
    targets = rng.sample(range(len(rows)), min(count, len(rows)))
    targets += [rng.randrange(len(rows)) for _ in range(count - len(targets))]
    if k == 1:
        return [rows[t] | {"long_items": 1, "long_target": 1, "long_kind": row_kind(rows[t]),
                           "long_source": rows[t].get("id")} for t in targets]
    out = []
    for n, t in enumerate(targets):
        others = rng.sample([i for i in range(len(rows)) if i != t], k - 1)
        position = rng.randrange(k)
        picked = others[:position] + [t] + others[position:]
        out.append(compose_long_row([rows[i] for i in picked], position, f"long-eval-{name}-k{k}-{n}"))
    return out


@dataclass(frozen=True)
class Phase:
    """One step of the context curriculum."""

    seq_len: int  # tokens per training sequence
    items: tuple[int, int]  # rows packed per long row, (min, max)
    share: float  # share of the stage's max_steps


def check_phases(phases: Any, key: str) -> list[Phase]:
    """The curriculum from config (`[{seq_len, items: [min, max], share}, ...]`), checked: every field present and
    in range, shares summing to 1. Errors name the key and the phase."""
    phases = list(phases or [])
    if not phases:
        raise ConfigError(f"config key '{key}': a long_context stage needs at least one phase "
                          "({seq_len: ..., items: [min, max], share: ...})")
    out = []
    for i, p in enumerate(phases):
        where = f"config key '{key}[{i}]"
        p = dict(p)
        unknown = sorted(set(p) - {"seq_len", "items", "share"})
        if unknown or not {"seq_len", "items", "share"} <= set(p):
            raise ConfigError(f"{where}': needs exactly seq_len, items and share; got {sorted(p)}")
        items = list(p["items"])
        if len(items) != 2 or not all(isinstance(v, int) for v in items) or not 1 <= items[0] <= items[1]:
            raise ConfigError(f"{where}.items' = {items}: must be [min, max] with 1 <= min <= max")
        if not isinstance(p["seq_len"], int) or p["seq_len"] <= 0:
            raise ConfigError(f"{where}.seq_len' = {p['seq_len']!r}: must be a positive int")
        if not float(p["share"]) > 0:
            raise ConfigError(f"{where}.share' = {p['share']!r}: must be > 0")
        out.append(Phase(int(p["seq_len"]), (items[0], items[1]), float(p["share"])))
    total = sum(p.share for p in out)
    if abs(total - 1.0) > 1e-6:
        raise ConfigError(f"config key '{key}': phase shares sum to {total:g}, not 1")
    return out


def phase_steps(phases: list[Phase], steps: int) -> list[int]:
    """Optimizer steps per phase: each its share of `steps` (largest remainders round up), each at least 1."""
    if steps < len(phases):
        raise ValueError(f"{steps} steps cannot cover {len(phases)} phases")
    raw = [p.share * steps for p in phases]
    out = [max(1, int(r)) for r in raw]
    order = sorted(range(len(phases)), key=lambda i: raw[i] - int(raw[i]), reverse=True)
    i = 0
    while sum(out) < steps:
        out[order[i % len(order)]] += 1
        i += 1
    while sum(out) > steps:
        j = max(range(len(out)), key=lambda n: out[n])
        out[j] -= 1
    return out

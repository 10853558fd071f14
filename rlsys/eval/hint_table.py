"""Keye's Table 9, unconditional: G samples per held-out hard problem at every hint level 0-5.

    .venv/bin/python -m rlsys.eval hint-table sft=artifacts/stages/sft_more/<hash>/model [rl=...] \
        [--rows 60] [--samples 4] [--tier 3 | --tier-split] [--out docs/...md]

The RL run's own hint table (hints.progressive.HintStats) only counts the levels each problem reached,
so it is conditional on having failed every lower level. This probes *every* problem of a fixed set
(the suite's math_eval rows: tier 3 by default, `--tier-split` all tiers with per-tier rows) at every
level, with the hint after the query exactly as RL prompts carry it, through a vLLM actor at the
rollout temperature with seeded sampling (probe i of the problem x level list gets seed `--seed` + i,
in every model). Per level it reports the share of problems with 0 of G correct and the mean number correct of G.
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
LEVELS = tuple(range(6))
ALL = "all"


def hint_table(correct: dict[tuple[str, int], int], group_size: int,
               tiers: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Table rows from per-(problem id, level) correct counts out of `group_size`.

    One row per (tier, level): the `all` tier first, then each tier of `tiers` (problem id -> tier)
    when given. Every problem must have a count at every level it is listed at, and the same levels
    as the others, so each level's shares are over the same problems."""
    if group_size < 1:
        raise ValueError(f"group_size must be >= 1, got {group_size}")
    levels_of: dict[str, set[int]] = defaultdict(set)
    for (pid, level), n in correct.items():
        if not 0 <= n <= group_size:
            raise ValueError(f"problem {pid!r} level {level}: {n} correct is outside 0..{group_size}")
        levels_of[pid].add(level)
    levels = sorted(set().union(*levels_of.values())) if levels_of else []
    for pid, have in levels_of.items():
        if have != set(levels):
            raise ValueError(f"problem {pid!r} has no count at level(s) {sorted(set(levels) - have)}")
    groups: dict[Any, list[str]] = {ALL: sorted(levels_of)}
    if tiers is not None:
        missing = sorted(set(levels_of) - set(tiers))
        if missing:
            raise ValueError(f"no tier for problem(s) {missing[:5]}")
        for tier in sorted({tiers[pid] for pid in levels_of}, key=str):
            groups[tier] = [pid for pid in sorted(levels_of) if tiers[pid] == tier]
    rows = []
    for tier, pids in groups.items():
        for level in levels:
            counts = [correct[(pid, level)] for pid in pids]
            rows.append({"tier": tier, "level": level, "problems": len(counts),
                         "share_all_wrong": sum(c == 0 for c in counts) / len(counts),
                         "mean_correct": sum(counts) / len(counts)})
    return rows


def keye_shape(rows: list[dict[str, Any]], tier: Any = ALL, near_zero: float = 0.05) -> tuple[bool, bool]:
    """(all-wrong share never rises from one level to the next, all-wrong share at the top level <= near_zero)."""
    shares = [r["share_all_wrong"] for r in rows if r["tier"] == tier]
    if not shares:
        raise ValueError(f"no rows for tier {tier!r}")
    return all(b <= a for a, b in zip(shares, shares[1:])), shares[-1] <= near_zero


def format_tables(tables: dict[str, list[dict[str, Any]]], group_size: int) -> str:
    """Markdown: per model and tier, one line for the all-wrong share and one for the mean correct, by level."""
    out = []
    for name, rows in tables.items():
        levels = sorted({r["level"] for r in rows})
        head = " | ".join("no hint" if lv == 0 else f"L{lv}" for lv in levels)
        out += [f"| {name} | tier | problems | {head} |", "|---" * (3 + len(levels)) + "|"]
        for tier in dict.fromkeys(r["tier"] for r in rows):
            mine = {r["level"]: r for r in rows if r["tier"] == tier}
            n = mine[levels[0]]["problems"]
            zero = " | ".join(f"{100 * mine[lv]['share_all_wrong']:.1f}%" for lv in levels)
            mean = " | ".join(f"{mine[lv]['mean_correct']:.2f}" for lv in levels)
            out.append(f"| 0/{group_size} correct | {tier} | {n} | {zero} |")
            out.append(f"| mean correct of {group_size} | {tier} | {n} | {mean} |")
        out.append("")
    return "\n".join(out)


def probe_rows(rows: list[dict], levels: tuple[int, ...] = LEVELS) -> list[dict]:
    """Each row once per level, its prompt carrying that level's hint after the query (as RL's prompts do)."""
    from rlsys.data.loading import with_hint

    out = []
    for row in rows:
        hints = row.get("hints") or []
        if len(hints) < max(levels):
            raise ValueError(f"row {row.get('id')!r}: {len(hints)} hints, the probe needs {max(levels)}")
        for level in levels:
            prompt = row["prompt"] if level == 0 else with_hint(row["prompt"], hints[level - 1])
            out.append({"id": row["id"], "prompt": prompt})
    return out


def pick_rows(rows: list[dict], per_tier: int, tier: int | None) -> list[dict]:
    """The first `per_tier` rows of `tier` (None: of every tier), in file order, so every run probes the same set."""
    by_tier: dict[Any, list[dict]] = defaultdict(list)
    for r in rows:
        if tier is None or r.get("tier") == tier:
            by_tier[r.get("tier")].append(r)
    if not by_tier:
        raise SystemExit(f"no math_eval rows of tier {tier}")
    return [r for t in sorted(by_tier, key=str) for r in by_tier[t][:per_tier]]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("models", nargs="+", help="name=model_dir")
    parser.add_argument("--rows", type=int, default=60, help="problems per tier")
    parser.add_argument("--samples", type=int, default=4, help="answers per problem and level (G)")
    parser.add_argument("--tier", type=int, default=3, help="the hard tier probed without --tier-split")
    parser.add_argument("--tier-split", action="store_true", help="probe every tier, with per-tier rows")
    parser.add_argument("--exp", default="keye_pipeline")
    parser.add_argument("--artifacts-dir", default=None, help="where the suite is found or built (default: the exp's)")
    parser.add_argument("--seed", type=int, default=0, help="per-probe sampling seeds start here")
    parser.add_argument("--out", type=Path, default=None, help="also write the markdown here")


def run(args: argparse.Namespace) -> int:
    if args.rows < 1 or args.samples < 1:
        raise SystemExit("--rows and --samples must be >= 1")
    from rlsys.config.store import compose_config
    from rlsys.data.embedded import ensure_task_suite
    from rlsys.data.loading import load_rows
    from rlsys.eval.scoring import math_hits, model_completions
    from rlsys.runtime.ray_utils import init_ray

    cfg = compose_config([f"+exp={args.exp}"])
    cfg.artifacts_dir = args.artifacts_dir or str(REPO / cfg.artifacts_dir)
    loaded, _ = load_rows(ensure_task_suite(cfg.artifacts_dir, cfg.data.suite)["math_eval"], "rl")
    rows = pick_rows(loaded, args.rows, None if args.tier_split else args.tier)
    probes = probe_rows(rows)
    temperature = cfg.rollout.temperature
    print(f"probing {len(rows)} problems x {len(LEVELS)} levels x {args.samples} samples at temperature "
          f"{temperature}", flush=True)
    init_ray(num_cpus=4)
    tiers = {r["id"]: r.get("tier") for r in rows} if args.tier_split else None
    tables = {}
    for spec in args.models:
        name, path = spec.split("=", 1)
        texts = model_completions(cfg, path, probes, n=args.samples, temperature=temperature, seed=args.seed)
        correct = {}
        for i, (probe, answers) in enumerate(zip(probes, texts)):
            if len(answers) != args.samples:
                raise SystemExit(f"{name}: problem {probe['id']} level {i % len(LEVELS)} got {len(answers)} "
                                 f"of {args.samples} answers (a failed generate)")
            row = rows[i // len(LEVELS)]
            correct[(row["id"], i % len(LEVELS))] = int(sum(math_hits([row] * len(answers), answers)))
        tables[name] = hint_table(correct, args.samples, tiers)
        monotone, near_zero = keye_shape(tables[name])
        print(f"{name}: all-wrong share non-increasing with level: {monotone}; near 0 at level 5: {near_zero}",
              flush=True)
    text = format_tables(tables, args.samples)
    print("\n" + text)
    if args.out:
        args.out.write_text(text)
    return 0

"""Compare the builds two artifact roots both hold: are the weights, data and metrics the same?

Two builds of a stage under one cache key (e.g. a fresh clone's from-scratch `+exp=keye_pipeline` against
this checkout's cache) should agree. Per build it reports whether every weight file and every data file
is byte-identical, and how many numeric metrics (summary.json, metrics.jsonl, timings left out) differ.

    .venv/bin/python -m rlsys.eval compare ../fresh/artifacts artifacts

`scripts/compare_artifacts.py` runs the same command.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt")
DATA_SUFFIXES = (".jsonl", ".parquet", "tokenizer.json")
METRIC_FILES = ("metrics.jsonl", "summary.json")


def is_timing(key: str) -> bool:
    """Wall-clock measurements, which differ between any two runs."""
    parts = key.split("/")
    return "time" in parts or parts[-1].endswith("_s") or "per_s" in parts[-1]


def numbers(value: object, prefix: str = "") -> dict[str, float]:
    """Flatten nested dicts and lists into `a/b/0`-keyed numbers, leaving timings out."""
    out: dict[str, float] = {}
    if isinstance(value, dict):
        for k, v in value.items():
            out |= numbers(v, f"{prefix}{k}/")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out |= numbers(v, f"{prefix}{i}/")
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        key = prefix.rstrip("/")
        if not is_timing(key):
            out[key] = float(value)
    return out


def metric_numbers(stage_dir: Path) -> dict[str, float]:
    out: dict[str, float] = {}
    for name in METRIC_FILES:
        path = stage_dir / name
        if not path.exists():
            continue
        if name.endswith(".jsonl"):
            lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
            out |= numbers(lines, f"{name}/")
        else:
            out |= numbers(json.loads(path.read_text()), f"{name}/")
    return out


def digests(stage_dir: Path, suffixes: tuple[str, ...]) -> dict[str, str]:
    """sha256 per file with one of `suffixes`, keyed by its path inside the stage (checkpoints left out)."""
    return {str(p.relative_to(stage_dir)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(stage_dir.rglob("*")) if p.is_file() and p.name.endswith(suffixes)
            and p.name not in METRIC_FILES and "checkpoints" not in p.relative_to(stage_dir).parts}


def same_files(a: dict[str, str], b: dict[str, str]) -> str:
    if not a and not b:
        return "-"
    if a.keys() != b.keys():
        return f"file lists differ ({sorted(a.keys() ^ b.keys())})"
    differing = [k for k in a if a[k] != b[k]]
    return "identical" if not differing else f"{len(differing)}/{len(a)} differ"


def compare_build(a: Path, b: Path) -> dict:
    ma, mb = metric_numbers(a), metric_numbers(b)
    shared = ma.keys() & mb.keys()
    differing = sorted(k for k in shared if ma[k] != mb[k])
    return {
        "weights": same_files(digests(a, WEIGHT_SUFFIXES), digests(b, WEIGHT_SUFFIXES)),
        "data": same_files(digests(a, DATA_SUFFIXES), digests(b, DATA_SUFFIXES)),
        "metrics": len(shared), "metrics_differ": len(differing), "only_one_side": len(ma.keys() ^ mb.keys()),
        "max_abs_diff": max((abs(ma[k] - mb[k]) for k in differing), default=0.0),
        "first_differing": differing[:3],
    }


def shared_builds(root_a: Path, root_b: Path) -> list[Path]:
    """Paths (relative to the roots) of each finished build both hold: the task suite (`data/<key>`), the
    initial model (`models/<name>/<key>`) and every stage (`stages/<name>/<key>`)."""
    found = []
    for pattern in ("data/*", "models/*/*", "stages/*/*"):
        for path in sorted(root_a.glob(pattern)):
            rel = path.relative_to(root_a)
            if path.is_dir() and not path.name.startswith(".") and (root_b / rel).is_dir():
                found.append(rel)
    return found


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("a", type=Path, help="an artifacts root (holding stages/)")
    parser.add_argument("b", type=Path, help="another artifacts root")


def run(args: argparse.Namespace) -> int:
    builds = shared_builds(args.a, args.b)
    if not builds:
        raise SystemExit(f"no build under one cache key in both {args.a} and {args.b}")
    print("| build | weights | data | metrics compared | differ | max abs diff | first differing |")
    print("|---|---|---|---|---|---|---|")
    for rel in builds:
        r = compare_build(args.a / rel, args.b / rel)
        print(f"| {rel} | {r['weights']} | {r['data']} | {r['metrics']} | {r['metrics_differ']} | "
              f"{r['max_abs_diff']:.3g} | {', '.join(r['first_differing']) or '-'} |")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))

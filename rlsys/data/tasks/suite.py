"""The embedded default data: build every file of the task suite from one `SuiteSpec`.

`build_task_suite(out_dir, spec)` writes (name -> file):
  math_train, math_eval      RL math rows, tiers 1-3 (schema in math_tasks.py / docs/DATA.md)
  ifeval_train, ifeval_eval  IF rows with constraints and a verified SFT `response`
  align_train, align_eval    alignment rows: 2-6 hard and soft (judge-scored) instructions (ifeval_soft.py)
  format_train, format_eval  format rows (json / markdown / code / think) with `response`
  sft_train                  single-turn SFT rows: math worked solutions (some with a hint), IF, alignment, format
  pref_train, pref_eval      preference pairs (math slips, IF violations)
  pretrain                   plain-text documents from train-split problems only
and `manifest.json` with the spec, generator version, counts, relative file names and a content hash.
The build is deterministic in the spec and idempotent: a matching manifest means the files are reused.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterator
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from rlsys.data.loading import load_rows, write_rows
from rlsys.data.tasks.compose import chain_rows
from rlsys.data.tasks.corpus import pretrain_rows
from rlsys.data.tasks.format_tasks import format_rows
from rlsys.data.tasks.ifeval_soft import align_rows
from rlsys.data.tasks.ifeval_tasks import ifeval_rows
from rlsys.data.tasks.lexicon import lexicon_text
from rlsys.data.tasks.math_tasks import math_rows
from rlsys.data.tasks.preference import preference_rows

# Bump whenever generated content changes, so cached suites built by older code are rebuilt.
GENERATOR_VERSION = "1"
MANIFEST = "manifest.json"
FILE_FORMATS = {"jsonl": ".jsonl", "parquet": ".parquet"}
EVAL_FILES = ("math_eval", "math_chain_eval", "ifeval_eval", "align_eval", "format_eval", "pref_eval")
# Words of the chat format and the hint protocol the model reads outside the rows' own text.
CHAT_WORDS = (
    "system user assistant <think> </think> Hint: Question: Answer: Problem: Solution: Request: Response:"
)


@dataclass
class SuiteSpec:
    """Sizes and seed of the generated task suite.

    seed: one seed for every generator (the held-out split does not depend on it: see math_tasks).
    n_train_per_tier / n_eval_per_tier: math rows per tier (1-3) in math_train / math_eval; sft_train
        holds as many worked solutions per tier again, drawn from the train split independently.
    n_if_train / n_if_eval: instruction-following rows (1-4 constraints each).
    n_align_train / n_align_eval: alignment rows (2-6 instructions, hard and soft mixed).
    n_pref_train / n_pref_eval: preference pairs (about a quarter IF, the rest math).
    n_pretrain_docs: plain-text documents in `pretrain`.
    format: file format, "jsonl" or "parquet".
    n_format_train / n_format_eval: format-adherence rows (json / markdown / code / think).
    n_chain_train / n_chain_eval: composed math problems (tier 4, rlsys/data/tasks/compose.py) in
        math_chain_train / math_chain_eval; no default stage trains on them.
    """

    seed: int = 1234
    n_train_per_tier: int = 4000
    n_eval_per_tier: int = 200
    n_if_train: int = 1000
    n_if_eval: int = 100
    n_align_train: int = 600
    n_align_eval: int = 100
    n_pref_train: int = 2000
    n_pref_eval: int = 200
    n_pretrain_docs: int = 20000
    format: str = "jsonl"
    n_format_train: int = 200
    n_format_eval: int = 40
    n_chain_train: int = 1000
    n_chain_eval: int = 100

    def __post_init__(self) -> None:
        if self.format not in FILE_FORMATS:
            raise ValueError(f"SuiteSpec.format must be one of {sorted(FILE_FORMATS)}, got {self.format!r}")
        for f in fields(self):
            if f.name.startswith("n_") and (
                not isinstance(getattr(self, f.name), int) or getattr(self, f.name) < 0
            ):
                raise ValueError(
                    f"SuiteSpec.{f.name} must be a non-negative int, got {getattr(self, f.name)!r}"
                )

    @classmethod
    def from_config(cls, cfg: Any) -> SuiteSpec:
        """From any object or mapping with (a subset of) these fields, e.g. the Hydra suite config."""
        get = cfg.get if isinstance(cfg, dict) else lambda k, d: getattr(cfg, k, d)
        return cls(**{f.name: get(f.name, f.default) for f in fields(cls)})


def generate_suite(spec: SuiteSpec) -> tuple[dict[str, list[dict]], dict[str, Any]]:
    """All rows of the suite in memory (name -> rows) plus generation stats."""
    seed = spec.seed
    if_train, if_dropped_train = ifeval_rows(spec.n_if_train, seed, "train")
    if_eval, if_dropped_eval = ifeval_rows(spec.n_if_eval, seed, "eval")
    align_train, align_dropped_train = align_rows(spec.n_align_train, seed, "train")
    align_eval, align_dropped_eval = align_rows(spec.n_align_eval, seed, "eval")
    fmt_train = format_rows(spec.n_format_train, seed, "train")
    fmt_eval = format_rows(spec.n_format_eval, seed, "eval")
    pretrain, corpus_keys = pretrain_rows(spec.n_pretrain_docs, seed, if_train, fmt_train)
    rows = {
        "math_train": math_rows(spec.n_train_per_tier, "train", seed),
        "math_eval": math_rows(spec.n_eval_per_tier, "eval", seed),
        "math_chain_train": chain_rows(spec.n_chain_train, "train", seed),
        "math_chain_eval": chain_rows(spec.n_chain_eval, "eval", seed),
        "ifeval_train": if_train,
        "ifeval_eval": if_eval,
        "align_train": align_train,
        "align_eval": align_eval,
        "format_train": fmt_train,
        "format_eval": fmt_eval,
        "sft_train": sft_rows(spec, [*if_train, *align_train], fmt_train),
        "pref_train": preference_rows(spec.n_pref_train, seed, "train"),
        "pref_eval": preference_rows(spec.n_pref_eval, seed, "eval"),
        "pretrain": pretrain,
    }
    stats = {
        "if_dropped": {"train": if_dropped_train, "eval": if_dropped_eval},
        "align_dropped": {"train": align_dropped_train, "eval": align_dropped_eval},
        "pretrain_math_keys": len(corpus_keys),
        "unique_math_keys": {
            name: len({r["key"] for r in rows[name]}) for name in ("math_train", "math_eval")
        },
    }
    return rows, stats


def sft_rows(spec: SuiteSpec, if_train: list[dict], fmt_train: list[dict]) -> list[dict]:
    """Single-turn SFT rows, shuffled: math worked solutions (own stream of train problems), IF, format."""
    rng = random.Random(f"sft|{spec.seed}")
    rows: list[dict] = []
    # A separate stream of train-split problems, so RL does not start on problems the model has
    # memorised word for word during SFT (tier 3's problem space is large enough to keep overlap small).
    for r in math_rows(spec.n_train_per_tier, "train", spec.seed, stream="sft"):
        # The hints travel with the row; the SFT stage puts one after a share of the queries
        # (`data.sft_hint_share`), so the share is a setting and not baked into the suite.
        rows.append(
            {
                "id": "sft-" + r["id"],
                "data_source": r["data_source"],
                "task": "math",
                "prompt": r["prompt"],
                "response": r["solution"],
                "hints": r["hints"],
            }
        )
    for r in [*if_train, *fmt_train]:
        rows.append(
            {
                "id": "sft-" + r["id"],
                "data_source": r["data_source"],
                "task": r["task"],
                "prompt": r["prompt"],
                "response": r["response"],
            }
        )
    rng.shuffle(rows)
    return rows


def content_hash(rows: dict[str, list[dict]]) -> str:
    h = hashlib.sha256()
    for name in sorted(rows):
        h.update(name.encode() + b"\x00")
        for r in rows[name]:
            h.update(json.dumps(r, sort_keys=True, ensure_ascii=False).encode() + b"\n")
    return h.hexdigest()


def _reusable(out: Path, spec: SuiteSpec) -> dict[str, str] | None:
    path = out / MANIFEST
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text())
    except ValueError:
        return None
    if manifest.get("spec") != asdict(spec) or manifest.get("generator_version") != GENERATOR_VERSION:
        return None
    files = {name: out / rel for name, rel in manifest.get("files", {}).items()}
    sizes = manifest.get("sizes", {})
    if not files or any(not p.is_file() or p.stat().st_size != sizes.get(n) for n, p in files.items()):
        return None
    return {name: str(p) for name, p in files.items()}


def build_task_suite(out_dir: str, cfg: SuiteSpec) -> dict[str, str]:
    """Write the suite under `out_dir` (reusing it if the manifest matches); returns name -> path."""
    spec = cfg if isinstance(cfg, SuiteSpec) else SuiteSpec.from_config(cfg)
    out = Path(out_dir)
    reused = _reusable(out, spec)
    if reused is not None:
        return reused
    out.mkdir(parents=True, exist_ok=True)
    rows, stats = generate_suite(spec)
    suffix = FILE_FORMATS[spec.format]
    files: dict[str, str] = {}
    for name, items in rows.items():
        files[name] = write_rows(str(out / f"{name}{suffix}"), items)
    manifest = {
        "generator_version": GENERATOR_VERSION,
        "spec": asdict(spec),
        "files": {name: Path(p).name for name, p in files.items()},
        "counts": {name: len(items) for name, items in rows.items()},
        "sizes": {name: Path(p).stat().st_size for name, p in files.items()},
        "content_hash": content_hash(rows),
        "stats": stats,
    }
    # The manifest goes last: its presence marks a complete build.
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return files


def corpus_texts(spec: SuiteSpec | None = None, out_dir: str | None = None) -> Iterator[str]:
    """Every text the model will read or write in training: prompts, solutions, hints, IF / format
    responses, preference responses, pretraining documents, chat words and the word pools.

    Held-out files are left out (their wording is covered by the same templates and `lexicon_text`).
    With `out_dir` holding a built suite its files are read; otherwise the suite is generated in memory.
    """
    yield CHAT_WORDS
    yield lexicon_text()
    if out_dir is not None and (Path(out_dir) / MANIFEST).is_file():
        manifest = json.loads((Path(out_dir) / MANIFEST).read_text())
        names = [n for n in sorted(manifest["files"]) if n not in EVAL_FILES]
        for name in names:
            kind = (
                "pretrain"
                if name == "pretrain"
                else "preference"
                if name.startswith("pref")
                else "sft"
                if name == "sft_train"
                else "rl"
            )
            rows, _ = load_rows([str(Path(out_dir) / manifest["files"][name])], kind)
            yield from _row_texts(rows)
        return
    rows, _ = generate_suite(spec or SuiteSpec())
    for name in sorted(rows):
        if name not in EVAL_FILES:
            yield from _row_texts(rows[name])


def _row_texts(rows: list[dict]) -> Iterator[str]:
    for r in rows:
        for key in ("prompt", "solution", "response", "chosen", "rejected", "text"):
            if isinstance(r.get(key), str):
                yield r[key]
        yield from r.get("hints") or []
        for m in r.get("messages") or []:
            yield m["content"]

"""Shared constants and helpers of the data tests (imported by conftest and the test modules)."""

from __future__ import annotations

import json
from pathlib import Path

from rlsys.data.tasks.suite import SuiteSpec

SMALL = SuiteSpec(
    seed=7,
    n_train_per_tier=200,
    n_eval_per_tier=100,
    n_if_train=200,
    n_if_eval=50,
    n_align_train=60,
    n_align_eval=20,
    n_pref_train=240,
    n_pref_eval=60,
    n_pretrain_docs=600,
    n_format_train=40,
    n_format_eval=12,
)


def read_jsonl(path: str | Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]

"""The embedded default data: the task suite, generated once per spec and cached."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import fields
from pathlib import Path
from typing import Any

from rlsys.runtime.artifacts import cached_build

# Text fields the tokenizer must cover; anything the model will read or write.
_TEXT_FIELDS = ("prompt", "answer", "solution", "response", "chosen", "rejected", "text")


def suite_spec(suite_cfg: Any) -> dict[str, Any]:
    """The suite's identity as a plain dict (every SuiteSpec field)."""
    from rlsys.data.tasks.suite import SuiteSpec

    return {f.name: getattr(suite_cfg, f.name) for f in fields(SuiteSpec)}


def ensure_task_suite(artifacts_dir: str, suite_cfg: Any) -> dict[str, str]:
    """Build (or reuse) the task suite for this spec; returns split name -> file path."""
    from rlsys.data.tasks.suite import SuiteSpec, build_task_suite

    spec = suite_spec(suite_cfg)
    out = cached_build(artifacts_dir, "data", spec, lambda tmp: build_task_suite(str(tmp), SuiteSpec(**spec)))
    # Already built: this only reads the manifest and returns the final paths.
    return build_task_suite(str(out), SuiteSpec(**spec))


def iter_suite_texts(files: dict[str, str]) -> Iterator[str]:
    """Every text of the suite (jsonl files), for training the tokenizer."""
    for name in sorted(files):
        path = Path(files[name])
        if path.suffix != ".jsonl":
            continue
        with path.open() as fh:
            for line in fh:
                row = json.loads(line)
                for key in _TEXT_FIELDS:
                    if isinstance(row.get(key), str):
                        yield row[key]
                yield from row.get("hints") or []
                for msg in row.get("messages") or []:
                    yield msg.get("content", "")

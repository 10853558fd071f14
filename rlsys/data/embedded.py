"""The embedded default data: the task suite, generated once per spec and cached."""

from __future__ import annotations

import hashlib
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


# IF modules the suite never runs: recover.py reads constraints back from prompt text for the judge.
_NOT_GENERATOR = frozenset({"recover.py"})


def generator_sources() -> list[Path]:
    """The code that writes the suite: the task generators and the IF checkers (all of rewards/ifeval but
    `_NOT_GENERATOR`) that verify its responses."""
    import rewards.ifeval
    import rlsys.data.tasks

    checkers = Path(rewards.ifeval.__file__).parent
    return sorted(Path(rlsys.data.tasks.__file__).parent.glob("*.py")) + sorted(
        path for path in checkers.glob("*.py") if path.name not in _NOT_GENERATOR)


def generator_fingerprint() -> str:
    """Hash of `generator_sources()`. Part of every cache key built on the suite: a changed generator or
    checker must not reuse data, tokenizer or stages built by the old one."""
    digest = hashlib.sha256()
    for path in generator_sources():
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def suite_identity(suite_cfg: Any) -> dict[str, Any]:
    """What identifies the suite's content in cache keys: its spec and its generator code."""
    return suite_spec(suite_cfg) | {"generator": generator_fingerprint()}


def ensure_task_suite(artifacts_dir: str, suite_cfg: Any) -> dict[str, str]:
    """Build (or reuse) the task suite for this spec; returns split name -> file path."""
    from rlsys.data.tasks.suite import SuiteSpec, build_task_suite

    spec = suite_spec(suite_cfg)
    out = cached_build(artifacts_dir, "data", suite_identity(suite_cfg),
                       lambda tmp: build_task_suite(str(tmp), SuiteSpec(**spec)))
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


def ensure_visual_suite(artifacts_dir: str, spec: Any) -> dict[str, str]:
    """Build (or reuse) the visual suite (`rlsys.data.tasks.visual.suite.VisualSuiteSpec`, or any mapping
    of its fields) under `<artifacts_dir>/data_visual/<key>/`; returns split name -> file path. Its key
    hashes the visual generators' own code, never the text suite's (`generator_fingerprint`)."""
    from rlsys.data.tasks.visual.suite import ensure_visual_suite as ensure

    return ensure(artifacts_dir, spec)


def ensure_video_suite(artifacts_dir: str, spec: Any) -> dict[str, str]:
    """Build (or reuse) the video suite (`rlsys.data.tasks.video.suite.VideoSuiteSpec`, or any mapping of its
    fields) under `<artifacts_dir>/data_video/<key>/`; returns split name -> file path. Its key hashes the
    video and visual generators' own code, never the text suite's."""
    from rlsys.data.tasks.video.suite import ensure_video_suite as ensure

    return ensure(artifacts_dir, spec)

"""Run directory: resolved config, version/commit metadata, and where everything else goes."""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import rlsys


def git_commit(repo_dir: str | Path | None = None) -> str | None:
    """The checked-out commit (with '+dirty' when the tree has changes), or None outside git."""
    cwd = str(repo_dir or Path(__file__).resolve().parents[2])
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd, capture_output=True, text=True, timeout=5, check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("+dirty" if dirty else "")


def write_run_metadata(run_dir: str | Path, resolved_config_yaml: str, extra: dict[str, Any] | None = None) -> None:
    """Save what is needed to reproduce the run: resolved config, version, commit, command."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(resolved_config_yaml)
    meta = {
        "rlsys_version": rlsys.__version__,
        "git_commit": git_commit(),
        "argv": sys.argv,
        "python": sys.version.split()[0],
        "host": platform.node(),
        "pid": os.getpid(),
        "started": _dt.datetime.now().isoformat(timespec="seconds"),
    }
    meta.update(extra or {})
    (run_dir / "meta.json").write_text(json.dumps(meta, indent=2))

"""Hydra's view of rlsys: the structured schema registered, the conf/ directory, and composing a run
config outside `python -m rlsys.run` (the planner and the evaluation commands)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore

from rlsys.config.schema import Config

CONF_DIR = str(Path(__file__).resolve().parents[2] / "conf")


def register_configs() -> None:
    ConfigStore.instance().store(name="rlsys_schema", node=Config)


def normalize_overrides(args: list[str]) -> list[str]:
    """`+exp=NAME` -> `+exp@_global_=NAME`.

    Experiment files override keys anywhere in the config, so they belong to the global package.
    Hydra only reads that from a `# @package` header on a file's first line, and the first line of
    every exp file is its launch command instead; the package is given here, once, for all of them.
    """
    return [("+exp@_global_=" + a[len("+exp="):]) if a.startswith("+exp=") else a for a in args]


def compose_config(overrides: list[str]) -> Any:
    """The run config `python -m rlsys.run OVERRIDES` would start from (not validated, no run dir)."""
    from hydra import compose, initialize_config_dir

    register_configs()
    with initialize_config_dir(config_dir=CONF_DIR, version_base=None):
        return compose(config_name="config", overrides=normalize_overrides(overrides))

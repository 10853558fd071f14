"""Registers the structured schema with Hydra so every composed config is type-checked."""

from __future__ import annotations

from hydra.core.config_store import ConfigStore

from rlsys.config.schema import Config


def register_configs() -> None:
    ConfigStore.instance().store(name="rlsys_schema", node=Config)

"""Stage references and per-stage run configs.

Reward kwargs and `overrides` values may be the string `stage:<name>`; it becomes that stage's model
directory when the stage runs, and the named stage is a dependency (built first, part of the cache
key). `match_wall` gives a stage the summed build time of other stages as its RL wall budget.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from omegaconf import OmegaConf

from rlsys.config.plain import to_plain
from rlsys.stages.context import StageFailed, StageResult

log = logging.getLogger(__name__)

_REF_RE = re.compile(r"^stage:([A-Za-z0-9_.-]+)$")


def stage_refs(value: Any) -> list[str]:
    """Stage names referenced as "stage:<name>" anywhere inside `value` (nested dicts / lists)."""
    value = to_plain(value)
    found: list[str] = []
    if isinstance(value, str):
        match = _REF_RE.match(value)
        if match:
            found.append(match.group(1))
    elif isinstance(value, dict):
        for v in value.values():
            found += stage_refs(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            found += stage_refs(v)
    return found


def referenced_stages(stage: Any) -> list[str]:
    """Stages whose models the stage's reward entries or overrides name."""
    return list(dict.fromkeys(stage_refs(stage.reward_fns) + stage_refs(stage.overrides)))


def resolve_refs(value: Any, models: dict[str, str]) -> Any:
    """`value` with every "stage:<name>" string replaced by that stage's model directory."""
    value = to_plain(value)
    if isinstance(value, str):
        match = _REF_RE.match(value)
        return models[match.group(1)] if match else value
    if isinstance(value, dict):
        return {k: resolve_refs(v, models) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [resolve_refs(v, models) for v in value]
    return value


def build_wall_s(result: StageResult) -> float:
    """The wall time a stage's artifact cost to build (also for a stage reused from the cache)."""
    return float(result.summary.get("wall_s", result.wall_s))


def prepare_stage(cfg: Any, name: str, stage: Any, deps: dict[str, StageResult]) -> tuple[Any, Any]:
    """The run config and stage config a stage runs with: references resolved, the equal-wall
    budget set (`match_wall`), `overrides` merged into the run config."""
    models = {d: r.model_dir for d, r in deps.items()}
    updates: dict[str, Any] = {}
    if stage.reward_fns:
        updates["reward_fns"] = resolve_refs(stage.reward_fns, models)
    if stage.match_wall:
        budget = sum(build_wall_s(deps[d]) for d in stage.match_wall)
        log.info("stage %s: rl.max_wall_s = %.0f s (build time of %s)", name, budget, list(stage.match_wall))
        updates["rl"] = {"max_wall_s": budget}
    if updates:
        stage = OmegaConf.merge(stage, updates)
    if stage.overrides:
        try:
            cfg = OmegaConf.merge(cfg, resolve_refs(stage.overrides, models))
        except Exception as exc:
            raise StageFailed(f"stage '{name}': config key 'stages.{name}.overrides' is invalid: {exc}") from exc
    return cfg, stage

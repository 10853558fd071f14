"""What a run would build: every stage of the chain with its cache key, in build order, building nothing.

    python -m rlsys.stages.plan +exp=keye_pipeline [key=value ...]

prints, per stage, its kind, the artifact directory its key names and whether that artifact is already
built. Two runs whose plans show the same keys share every cached stage; a change to a stage's config,
its inputs, the data, the learner settings or the base model shows up as a new key here first.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlsys.config.store import compose_config
from rlsys.runtime.artifacts import artifact_dir, is_built
from rlsys.stages.context import StageResult
from rlsys.stages.refs import prepare_stage
from rlsys.stages.runner import stage_spec, walk_stage_chain


@dataclass
class PlannedStage:
    name: str
    kind: str
    path: Path  # the artifact directory its cache key names
    built: bool
    inputs: list[str]  # the stages it depends on


def plan_stage_chain(cfg: Any, names: list[str]) -> list[PlannedStage]:
    """Every stage `names` needs, dependencies first, as `run_stage_chain` would order and key them.

    A stage's wall budget from `match_wall` (known only once its inputs are built) does not enter keys,
    so a plan of unbuilt stages gives the keys the run will use.
    """
    order: list[PlannedStage] = []

    def visit(cfg: Any, name: str, stage: Any, deps: dict[str, StageResult]) -> StageResult:
        run_cfg, _ = prepare_stage(cfg, name, stage, deps)
        path = artifact_dir(cfg.artifacts_dir, f"stages/{name}", stage_spec(cfg, stage, deps, run_cfg))
        order.append(PlannedStage(name, stage.kind, path, is_built(path), list(deps)))
        return StageResult(name, stage.kind, str(path), str(path / "model"), True, 0.0, {})

    walk_stage_chain(cfg, names, visit)
    return order


def format_plan(plan: list[PlannedStage]) -> str:
    width = max((len(p.name) for p in plan), default=5)
    lines = [f"{'stage':<{width}}  {'kind':<11}  {'key':<16}  built  inputs"]
    for p in plan:
        lines.append(f"{p.name:<{width}}  {p.kind:<11}  {p.path.name:<16}  {'yes' if p.built else 'no ':<5}  "
                     f"{', '.join(p.inputs) or '-'}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    cfg = compose_config(args)
    if not cfg.pipeline:
        print("config key 'pipeline' is empty: nothing to plan", file=sys.stderr)
        return 1
    print(format_plan(plan_stage_chain(cfg, list(cfg.pipeline))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

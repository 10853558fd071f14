"""Stage runner: named stages with cached artifacts, chained by their inputs.

A stage's artifact lives at artifacts/stages/<name>/<hash>/ where the hash covers the stage's
config, its inputs' hashes, the base model and data identity, and the learner settings. A stage
whose artifact exists is reused; otherwise it is built in a temporary directory and renamed into
place only when it succeeded, so a failed pipeline resumes at the failed stage on rerun.

The hash does not cover code (a refactor would rebuild every stage). Each artifact records the hash of
the module that implements its kind (`code.json`); reusing one built by another version of that module
logs a warning naming the stage and how to rebuild it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import importlib.util
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rlsys.config.plain import to_plain
from rlsys.runtime.artifacts import artifact_dir, cached_build, is_built, storage_hint
from rlsys.stages.builders import start_ray
from rlsys.stages.context import USER_FILES, StageContext, StageFailed, StageResult
from rlsys.stages.io import suite_data_identity
from rlsys.stages.refs import prepare_stage, referenced_stages
from rlsys.stages.tables import write_pipeline_outputs

log = logging.getLogger(__name__)

# (run config, stage name, stage config, its dependencies' results) -> the stage's result.
StageVisitor = Callable[[Any, str, Any, dict[str, StageResult]], StageResult]

# Stage kind -> "module:function(ctx) -> dict"; imported lazily.
STAGE_KINDS = {
    "pretrain": "rlsys.jobs.train:run_pretrain",
    "sft": "rlsys.jobs.train:run_sft",
    "mpo": "rlsys.jobs.train:run_mpo",
    "rm": "rlsys.jobs.train:run_rm",
    "merge": "rlsys.jobs.merge:run_merge",
    "rl": "rlsys.rl.loop:run_rl",
    "rft_sample": "rlsys.jobs.rft:run_rft_sample",
    "pass_filter": "rlsys.jobs.rft:run_pass_filter",
    "pref_sample": "rlsys.jobs.pref_sample:run_pref_sample",
    "judge_data": "rlsys.jobs.judge:run_judge_data",
    "judge_sft": "rlsys.jobs.judge:run_judge_sft",
    "judge_rl": "rlsys.rl.judge:run_judge_rl",
    "contrastive": "rlsys.jobs.vision:run_contrastive",
    "vision_init": "rlsys.jobs.vl_init:run_vision_init",
    "long_context": "rlsys.jobs.long_context:run_long_context",
    "sft_pass_filter": "rlsys.jobs.reasoning_data:run_sft_pass_filter",
    "cold_start": "rlsys.jobs.reasoning_data:run_cold_start",
}

def _file_identity(paths: list[str]) -> list[tuple[str, int, int]]:
    out = []
    for p in paths:
        st = os.stat(p)
        out.append((os.path.abspath(p), st.st_size, int(st.st_mtime)))
    return out


def base_model_identity(cfg: Any) -> Any:
    if cfg.model.path:
        return {"path": _file_identity([str(Path(cfg.model.path) / "config.json")])}
    from rlsys.model.resolve import tiny_model_spec

    return {"tiny": tiny_model_spec(cfg)}


def data_identity(cfg: Any, stage: Any) -> Any:
    # How the rows are rendered, where it is set: the SFT stage's hint share and a system turn.
    rendering = {"sft_hint_share": cfg.data.sft_hint_share} if stage.kind == "sft" else {}
    if cfg.data.get("system_prompt") is not None:
        rendering["system_prompt"] = cfg.data.system_prompt
    if stage.data_from:
        # The producing stage's hash (in the spec's inputs) identifies the file's content.
        return {"from": stage.data_from} | rendering
    files_key = USER_FILES.get(stage.kind)
    user_files = list(cfg.data[files_key]) if files_key else []
    if user_files:
        return {"files": _file_identity(user_files)} | rendering
    # The text suite and the split; plus the visual suite's identity for a vl_* split (rlsys/stages/io.py).
    return suite_data_identity(cfg, stage.data) | rendering


def stage_config(cfg: Any, name: str) -> Any:
    if name not in cfg.stages:
        raise StageFailed(f"stage '{name}' is not defined; known stages: {sorted(cfg.stages)}")
    stage = cfg.stages[name]
    if stage.kind not in STAGE_KINDS:
        raise StageFailed(f"config key 'stages.{name}.kind' = {stage.kind!r}: known kinds {sorted(STAGE_KINDS)}")
    return stage


def dependencies(stage: Any) -> list[str]:
    deps = ([stage.input] if stage.input else []) + list(stage.experts)
    deps += ([stage.data_from] if stage.data_from else []) + list(stage.match_wall) + referenced_stages(stage)
    return list(dict.fromkeys(deps))


def non_default(node: Any) -> Any:
    """The config values that differ from their schema defaults (nested).

    Cache keys built from these stay the same when the schema gains a field with a default, so
    adding an option to rlsys does not invalidate every cached stage.
    """
    from omegaconf import OmegaConf

    values = to_plain(node)
    schema = OmegaConf.get_type(node) if OmegaConf.is_config(node) else None
    if schema is None or not dataclasses.is_dataclass(schema):
        return values
    defaults = to_plain(OmegaConf.structured(schema))
    out = {}
    for key, value in values.items():
        child = node[key]
        if OmegaConf.is_config(child) and dataclasses.is_dataclass(OmegaConf.get_type(child)):
            nested = non_default(child)
            if nested:
                out[key] = nested
        elif key not in defaults or value != defaults[key]:
            out[key] = value
    return out


def _learner_identity(cfg: Any) -> dict[str, Any]:
    learner = non_default(cfg.learner)
    # Placement, threading and micro-batching change speed, not results (losses are normalised
    # by global denominators, so only the float summation order moves).
    for key in ("cpus_per_actor", "gpus_per_actor", "num_threads", "dist_backend", "micro_batch_size",
                "max_tokens_per_micro"):
        learner.pop(key, None)
    return learner


def walk_stage_chain(cfg: Any, names: list[str], visit: StageVisitor,
                     results: dict[str, StageResult] | None = None) -> dict[str, StageResult]:
    """Call `visit(cfg, name, stage, deps)` on each named stage and, first, on whatever it depends on,
    once each, dependencies before dependents. Returns every stage's result."""
    results = {} if results is None else results
    visiting: set[str] = set()

    def ensure(name: str) -> StageResult:
        if name in results:
            return results[name]
        if name in visiting:
            raise StageFailed(f"stage '{name}' depends on itself")
        visiting.add(name)
        stage = stage_config(cfg, name)
        deps = {d: ensure(d) for d in dependencies(stage)}
        results[name] = visit(cfg, name, stage, deps)
        return results[name]

    for name in names:
        ensure(name)
    return results


def run_stage_chain(cfg: Any, names: list[str], results: dict[str, StageResult] | None = None) -> dict[str, StageResult]:
    """Ensure each named stage (and, first, whatever it depends on). Returns all results."""
    return walk_stage_chain(cfg, names, _ensure_one, results)


CODE_FILE = "code.json"


def kind_code(kind: str) -> dict[str, str]:
    """The module implementing stage kind `kind` and a hash of its source (found without importing it)."""
    module = STAGE_KINDS[kind].split(":")[0]
    spec = importlib.util.find_spec(module)
    source = Path(spec.origin).read_bytes() if spec and spec.origin else b""
    return {"module": module, "sha256": hashlib.sha256(source).hexdigest()[:16]}


def warn_if_stale(name: str, kind: str, out: Path) -> bool:
    """Warn (and return True) when the artifact at `out` was built by another version of its kind's module."""
    recorded = out / CODE_FILE
    if not recorded.is_file():
        return False
    built, now = json.loads(recorded.read_text()), kind_code(kind)
    if built == now:
        return False
    log.warning("stage %s: reusing %s, built by another version of %s (%s, now %s); set "
                "stages.%s.cache=false or move that directory to rebuild it", name, out, now["module"],
                built.get("sha256"), now["sha256"], name)
    return True


def stage_spec(cfg: Any, stage: Any, deps: dict[str, StageResult], base_cfg: Any = None) -> dict[str, Any]:
    """Everything a stage's result depends on; its hash names the cached artifact. `base_cfg` is the
    stage's run config (with its `overrides`), which names the base model of a stage without input."""
    return {
        "stage": non_default(stage),
        "inputs": {d: Path(r.path).name for d, r in deps.items()},
        "base": base_model_identity(base_cfg if base_cfg is not None else cfg) if not stage.input else None,
        "data": data_identity(cfg, stage),
        "learner": _learner_identity(cfg),
        # The stage's own run config: `overrides: {eval: ...}` (e.g. eval.visual on the vision stages) is its eval.
        "eval": _eval_identity(base_cfg if base_cfg is not None else cfg, stage),
    }


# Eval settings read only by the RL controller's periodic evaluation (rl.evaluate).
_RL_ONLY_EVAL_KEYS = ("sample_k", "sample_temperature")
# Where evaluations run, not what they measure: no stage's results depend on it.
_PLACEMENT_EVAL_KEYS = ("background",)


def _eval_identity(cfg: Any, stage: Any) -> dict[str, Any]:
    """Eval settings that shape the stage's recorded results: an exp that turns on RL-only eval
    options (gspo_hints: avg@k) must still reuse the pretrain and SFT stages `+exp=sft` built."""
    settings = non_default(cfg.eval)
    for key in _PLACEMENT_EVAL_KEYS:
        settings.pop(key, None)
    if stage.kind != "rl":
        for key in _RL_ONLY_EVAL_KEYS:
            settings.pop(key, None)
    if settings.get("visual"):
        # The held-out visual rows come from `data.visual`: another visual suite is another evaluation.
        from rlsys.data.tasks.visual.suite import VisualSuiteSpec, visual_identity

        settings["visual_suite"] = visual_identity(VisualSuiteSpec.from_config(cfg.data.visual))
    if settings.get("video"):
        from rlsys.eval.video import video_identity_settings

        settings |= video_identity_settings(cfg)
    return settings


def _ensure_one(cfg: Any, name: str, stage: Any, deps: dict[str, StageResult]) -> StageResult:
    from rlsys.model.resolve import resolve_base_model

    # Stage references resolved, equal-wall budgets set, per-stage config overrides applied. A stage
    # without input starts from the base model its own run config names: `overrides: {model: ...}` lets
    # one stage pretrain a model of another size (e.g. a bigger judge) beside the policy's.
    run_cfg, stage_run = prepare_stage(cfg, name, stage, deps)
    spec = stage_spec(cfg, stage, deps, run_cfg)
    input_model = deps[stage.input].model_dir if stage.input else resolve_base_model(run_cfg)
    kind = f"stages/{name}"
    out = artifact_dir(cfg.artifacts_dir, kind, spec)
    if stage.cache and is_built(out):
        summary = json.loads((out / "summary.json").read_text())
        log.info("stage %s: reusing %s", name, out)
        warn_if_stale(name, stage.kind, out)
        result = StageResult(name, stage.kind, str(out), str(out / "model"), True, 0.0, summary)
        _link_into_run(cfg, result)
        return result

    module_name, fn_name = STAGE_KINDS[stage.kind].split(":")
    fn = getattr(importlib.import_module(module_name), fn_name)
    started = time.perf_counter()
    summary: dict[str, Any] = {}
    built: dict[str, Path] = {}

    def build(tmp: Path) -> None:
        ctx = StageContext(run_cfg, name, stage_run, input_model, tmp, {d: r.model_dir for d, r in deps.items()},
                           {d: r.path for d, r in deps.items()})
        log.info("stage %s (%s): building from %s", name, stage.kind, input_model)
        summary.update(fn(ctx) or {})
        summary.update(ctx.data_metrics)
        summary["wall_s"] = time.perf_counter() - started
        # A resumed stage writes into the directory it resumes, not `tmp`.
        built["dir"] = Path(ctx.out_dir)
        (built["dir"] / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
        (built["dir"] / CODE_FILE).write_text(json.dumps(kind_code(stage.kind)))

    try:
        if stage.cache:
            cached_build(cfg.artifacts_dir, kind, spec, build)
        else:
            run_out = Path(cfg.run_dir) / "stages" / name
            run_out.mkdir(parents=True, exist_ok=True)
            build(run_out)
            out = built["dir"]
    except StageFailed:
        raise
    except Exception as exc:
        # A failed write (torch's `inline_container.cc` message names no file) gets where and what to do.
        hint = storage_hint(exc, {"artifacts_dir": cfg.artifacts_dir, "hydra.run.dir": cfg.run_dir})
        raise StageFailed(f"stage '{name}' ({stage.kind}) failed: {exc.__class__.__name__}: {exc}{hint}") from exc
    result = StageResult(name, stage.kind, str(out), str(out / "model"), False, time.perf_counter() - started, summary)
    _link_into_run(cfg, result)
    return result


def _link_into_run(cfg: Any, result: StageResult) -> None:
    """Make each stage's artifact visible from the run directory and record it."""
    if not cfg.run_dir:
        return
    stages_dir = Path(cfg.run_dir) / "stages"
    stages_dir.mkdir(parents=True, exist_ok=True)
    link = stages_dir / result.name
    if Path(result.path).resolve() != link.resolve():
        if link.is_symlink():
            link.unlink()
        if not link.exists():
            link.symlink_to(result.path, target_is_directory=True)
    record = stages_dir / "stages.jsonl"
    with record.open("a") as fh:
        fh.write(json.dumps(asdict(result), default=str) + "\n")


def run(cfg: Any) -> dict[str, StageResult]:
    """The `pipeline` job: run `cfg.pipeline` in order."""
    if not cfg.pipeline:
        raise StageFailed("config key 'pipeline' is empty: name the stages to run")
    start_ray(cfg)
    results: dict[str, StageResult] = {}
    started = time.perf_counter()
    try:
        run_stage_chain(cfg, list(cfg.pipeline), results)
    except BaseException:
        # Also after a failure: the table then shows the stages that finished. Writing it may fail for the
        # same reason (a full disk); the stage's error is the one reported, this one only logged.
        try:
            write_pipeline_outputs(cfg, results, time.perf_counter() - started)
        except Exception as exc:
            log.error("could not write the pipeline table into %s after the stage failure reported below: "
                      "%s: %s", cfg.run_dir, exc.__class__.__name__, exc)
        raise
    write_pipeline_outputs(cfg, results, time.perf_counter() - started)
    return results


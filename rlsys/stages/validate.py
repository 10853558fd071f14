"""One check of everything a pipeline will run, before anything is built or Ray starts.

`validate_config` (rlsys/config/validate.py) checks each field's declared choices and range. What a stage
only meets when it starts is checked here, for every stage of the chain (`pipeline` and whatever it
depends on), each error naming its config key:

- reward entries: each stage's effective entries (`stages.<name>.reward_fns`, else the run's `reward.fns`)
  go through the reward pool's own start-up checks (`check_reward_config`): the target imports, the
  signature fits, every kwarg names a declared parameter, a class's `validate_static` (API-key variables,
  model directories), `correct_by`. `stage:<name>` values are resolved only when the stage runs, so an
  entry holding one has its `validate_static` run then;
- data files: every `data.*_files` path (the run's, and a stage's `overrides`) exists, has a known
  format and is not empty;
- a stage's `overrides` merge into the run config and keep its values in range;
- settings that can never train: an RL difficulty filter (or a pass_filter keep range) that no pass rate
  of a group of that size can fall in;
- contrastive stages: a contrastive loss (and only there), ZeRO 0-2, and a vision-language model at the root
  of the stage's `input` chain (or a `vision_init` stage on it);
- `eval.visual` (run-wide or a stage's `overrides`) only on stages whose model sees images, unless
  `eval.drop_images` scores the picture questions blind.

rlsys/run.py calls `validate_chain` for the `pipeline` job right after `validate_config`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from rlsys.algorithms.filtering import pass_rate_in_range
from rlsys.algorithms.registry import loss_kind
from rlsys.config.plain import to_plain
from rlsys.config.schema import Config, DataConfig
from rlsys.config.validate import ConfigError, check_setting, iter_settings
from rlsys.data.loading import file_format
from rlsys.data.schema import DataError
from rlsys.reward.plugins import RewardConfigError
from rlsys.reward.workers import check_reward_config
from rlsys.stages.context import StageFailed, StageResult
from rlsys.stages.refs import stage_refs
from rlsys.stages.runner import walk_stage_chain

# Stage kinds that score with reward workers; judge_data does when `sample.judge_solve` is set.
REWARD_KINDS = frozenset({"rl", "judge_rl", "rft_sample", "pass_filter", "pref_sample", "sft_pass_filter", "cold_start"})
RL_KINDS = frozenset({"rl", "judge_rl"})
FILE_KEYS = tuple(name for name in DataConfig.__dataclass_fields__ if name.endswith("_files"))
# Stage kinds that train their `loss` on sequences (a contrastive loss needs the `contrastive` kind).
SEQUENCE_LOSS_KINDS = frozenset({"pretrain", "sft", "mpo", "rm", "long_context"})
# Stage kinds whose model is a vision-language one built from their input's text LM (rlsys/jobs/vl_init.py).
VISION_INIT_KINDS = frozenset({"vision_init"})


def is_stage_ref(value: object) -> bool:
    """A `stage:<name>` string: a model directory known only once that stage is built."""
    return isinstance(value, str) and bool(stage_refs(value))


def validate_chain(cfg: Any, names: list[str] | None = None) -> None:
    """Check every stage `names` (default `cfg.pipeline`) needs, dependencies included; raise ConfigError
    naming the key of the first problem. Builds nothing and starts nothing."""
    names = list(cfg.pipeline) if names is None else list(names)
    if not names:
        raise ConfigError("config key 'pipeline' is empty: name the stages to run")
    check_data_files(cfg.data, "data")
    checked: set[str] = set()

    def visit(cfg: Any, name: str, stage: Any, deps: dict[str, StageResult]) -> StageResult:
        run_cfg = stage_run_config(cfg, name, stage)
        check_stage_rewards(run_cfg, name, stage, checked)
        check_can_train(run_cfg, name, stage)
        check_contrastive(cfg, run_cfg, name, stage)
        check_visual_eval(cfg, run_cfg, name, stage)
        check_long_context(name, stage)
        return StageResult(name, stage.kind, "", "", False, 0.0, {})

    try:
        walk_stage_chain(cfg, names, visit)
    except (StageFailed, RewardConfigError) as exc:
        raise ConfigError(str(exc)) from None


def check_data_files(data: Any, prefix: str) -> None:
    """Every path in `<prefix>.*_files` exists, has a known format and is not empty (stage refs skipped)."""
    for key in FILE_KEYS:
        for i, path in enumerate(data.get(key) or []):
            full = f"{prefix}.{key}[{i}]"
            if is_stage_ref(path):
                continue
            p = Path(str(path))
            if not p.is_file():
                why = "is a directory, not a file" if p.is_dir() else "file not found"
                raise ConfigError(f"config key '{full}' = {str(path)!r}: {why} (relative to {Path.cwd()})")
            try:
                fmt = file_format(str(p))
            except DataError as exc:
                raise ConfigError(f"config key '{full}': {exc}") from None
            if _empty(p, fmt):
                raise ConfigError(f"config key '{full}' = {str(path)!r}: the file is empty (no rows)")


def _empty(path: Path, fmt: str) -> bool:
    """No byte (parquet), or only whitespace (json / jsonl), read in chunks."""
    if fmt != "json":
        return path.stat().st_size == 0
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 16):
            if chunk.strip():
                return False
    return True


def stage_run_config(cfg: Any, name: str, stage: Any) -> Any:
    """The run config with the stage's `overrides` merged (`stage:<name>` values left as they are), its
    changed values range-checked and its changed data files checked, each named under the overrides key."""
    if not stage.overrides:
        return cfg
    key = f"stages.{name}.overrides"
    try:
        run_cfg = OmegaConf.merge(cfg, to_plain(stage.overrides))
    except Exception as exc:
        raise ConfigError(f"config key '{key}' is invalid: {exc}") from None
    before = {k: v for k, v, _ in iter_settings(Config, cfg)}
    for setting_key, value, rules in iter_settings(Config, run_cfg):
        if before.get(setting_key) != value and not is_stage_ref(value):
            check_setting(f"{key}.{setting_key}", value, rules)
    if "data" in stage.overrides:
        changed = {k: run_cfg.data[k] for k in FILE_KEYS if k in stage.overrides.data}
        check_data_files(changed, f"{key}.data")
    return run_cfg


def _overridden(stage: Any, dotted: str) -> bool:
    node = stage.overrides
    for part in dotted.split("."):
        if not (OmegaConf.is_dict(node) or isinstance(node, dict)) or part not in node:
            return False
        node = node[part]
    return True


def check_stage_rewards(run_cfg: Any, name: str, stage: Any, checked: set[str]) -> None:
    """The stage's effective reward entries through the reward pool's start-up checks (each distinct
    config once: the run's `reward.fns` is checked once for all the stages that use it)."""
    reward_cfg = to_plain(run_cfg.reward)
    if stage.reward_fns:
        reward_cfg["fns"], where = to_plain(stage.reward_fns), f"stages.{name}.reward_fns"
    elif stage.kind in REWARD_KINDS or (stage.kind == "judge_data" and stage.sample.judge_solve):
        where = f"stages.{name}.overrides.reward.fns" if _overridden(stage, "reward.fns") else "reward.fns"
    else:
        return
    if not reward_cfg.get("fns"):
        return
    ident = repr((where, reward_cfg))
    if ident in checked:
        return
    checked.add(ident)
    check_reward_config(reward_cfg, where, is_deferred=is_stage_ref)


def check_can_train(run_cfg: Any, name: str, stage: Any) -> None:
    """A keep range that no pass rate of a group of that size falls in keeps nothing, every step."""
    if stage.kind in RL_KINDS:
        rl, size = stage.rl, run_cfg.rollout.group_size
        size_key = (f"stages.{name}.overrides.rollout.group_size" if _overridden(stage, "rollout.group_size")
                    else "rollout.group_size")
        low, high, inclusive = rl.filter_low, rl.filter_high, rl.filter_inclusive
        range_key = f"stages.{name}.rl.filter_low/filter_high/filter_inclusive"
    elif stage.kind == "pass_filter":
        sample, size, size_key = stage.sample, stage.sample.num_samples, f"stages.{name}.sample.num_samples"
        low, high, inclusive = sample.keep_low, sample.keep_high, sample.keep_inclusive
        range_key = f"stages.{name}.sample.keep_low/keep_high/keep_inclusive"
    else:
        return
    if any(pass_rate_in_range(k / size, low, high, inclusive) for k in range(size + 1)):
        return
    rates = ", ".join(f"{k}/{size}" for k in range(size + 1))
    ends = "[]" if inclusive else "()"
    raise ConfigError(
        f"config key '{size_key}' = {size}: no group of {size} answers can pass the filter of stage '{name}', "
        f"'{range_key}' = {ends[0]}{low}, {high}{ends[1]} (its pass rates can only be {rates}): every fresh "
        "group would be dropped and the stage would have nothing to train on or keep; use more answers per "
        "group or widen the range"
    )


def check_long_context(name: str, stage: Any) -> None:
    """A long_context stage's curriculum, step count and context, checked before anything is built."""
    if stage.kind != "long_context":
        return
    from rlsys.data.long_context import check_phases

    phases = check_phases(stage.long_context.phases, f"stages.{name}.long_context.phases")
    if stage.max_steps < len(phases):
        raise ConfigError(f"config key 'stages.{name}.max_steps' = {stage.max_steps}: a long_context stage trains "
                          f"a fixed number of steps, at least one per phase ({len(phases)})")
    positions, longest = int(stage.long_context.max_position_embeddings), max(p.seq_len for p in phases)
    if positions and positions < longest:
        raise ConfigError(f"config key 'stages.{name}.long_context.max_position_embeddings' = {positions}: shorter "
                          f"than the longest phase's seq_len {longest}")


def check_contrastive(cfg: Any, run_cfg: Any, name: str, stage: Any) -> None:
    """A contrastive stage trains a contrastive loss on ZeRO 0-2 from a vision-language model; a contrastive
    loss trains only there."""
    try:
        kind = loss_kind(stage.loss)
    except KeyError:
        return  # validate_config names an unknown loss
    if stage.kind != "contrastive":
        if stage.kind in SEQUENCE_LOSS_KINDS and kind == "contrastive":
            raise ConfigError(f"config key 'stages.{name}.loss' = {stage.loss!r}: a contrastive loss trains on "
                              f"image-caption pairs in a stage of kind 'contrastive', not {stage.kind!r}")
        return
    if kind != "contrastive":
        raise ConfigError(f"config key 'stages.{name}.loss' = {stage.loss!r}: a contrastive stage trains a loss of "
                          f"kind 'contrastive' (siglip), not {kind!r}")
    if int(run_cfg.learner.zero_stage) == 3:
        key = (f"stages.{name}.overrides.learner.zero_stage" if _overridden(stage, "learner.zero_stage")
               else "learner.zero_stage")
        raise ConfigError(f"config key '{key}' = 3: stage '{name}' (contrastive) runs on ZeRO 0-2")
    source, is_vl = model_source(cfg, name)
    if is_vl is False:
        raise ConfigError(f"stage '{name}' (contrastive) needs a vision-language model, but its model comes from "
                          f"{source}, a text-only model: start it from a VLM (model=tiny_vl, a Qwen3-VL model.path) "
                          "or put a vision_init stage on its input chain")


def model_source(cfg: Any, name: str) -> tuple[str, bool | None]:
    """Where stage `name`'s model comes from (following `input` to its root) and whether that is a
    vision-language model (None: not known before the run, e.g. a missing or referenced directory)."""
    from rlsys.learner.worker import is_vision_language
    from rlsys.model.resolve import model_kind

    seen: set[str] = set()
    stage = cfg.stages[name]
    while stage.input and name not in seen:
        seen.add(name)
        if stage.kind in VISION_INIT_KINDS:
            return f"stage '{name}' ({stage.kind})", True
        name, stage = stage.input, cfg.stages[stage.input]
    if stage.kind in VISION_INIT_KINDS:
        return f"stage '{name}' ({stage.kind})", True
    run_cfg = stage_run_config(cfg, name, stage)
    path = run_cfg.model.path
    if path:
        known = not is_stage_ref(path) and (Path(str(path)) / "config.json").is_file()
        return f"model.path = {path!r} (stage '{name}')", is_vision_language(str(path)) if known else None
    return f"model.kind = {model_kind(run_cfg)!r} (stage '{name}')", model_kind(run_cfg) == "vl"


# Stage kinds that evaluate their model on the held-out rows (`evaluate`, or the RL loop's own evaluation).
EVALUATING_KINDS = frozenset({"pretrain", "sft", "mpo", "vision_init", "rl", "long_context"})


def check_visual_eval(cfg: Any, run_cfg: Any, name: str, stage: Any) -> None:
    """`eval.visual` sends images, so a stage that evaluates a text-only model with it fails before any stage
    runs (not after training)."""
    ev = run_cfg.eval
    if not ev.visual or ev.drop_images or stage.kind not in EVALUATING_KINDS:
        return
    if stage.kind != "rl" and not stage.evaluate:
        return
    source, is_vl = model_source(cfg, name)
    if is_vl is False:
        key = f"stages.{name}.overrides.eval.visual" if _overridden(stage, "eval.visual") else "eval.visual"
        raise ConfigError(f"config key '{key}' = true: stage '{name}' evaluates a text-only model ({source}) on "
                          "picture questions; set it on the stages after a vision_init stage only (as "
                          "conf/stages/vl.yaml does), or eval.drop_images=true to score them blind")

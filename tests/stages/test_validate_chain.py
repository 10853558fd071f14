"""The pipeline's start-up check (rlsys/stages/validate.py): every stage of the chain is checked before
anything is built or Ray starts, and each error names its config key (issue #30, item 1 and the start-up
half of item 2)."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from rlsys.config.schema import Config
from rlsys.config.store import register_configs
from rlsys.config.validate import ConfigError, validate_config
from rlsys.data.loading import load_rows
from rlsys.data.schema import DataError
from rlsys.run import CONF_DIR, normalize_overrides
from rlsys.stages.context import StageContext
from rlsys.stages.io import stage_rows
from rlsys.stages.validate import validate_chain

REPO = Path(__file__).resolve().parents[2]
PIPELINE_EXPS = sorted(p.stem for p in (REPO / "conf" / "exp").glob("*.yaml")
                       if OmegaConf.load(p).get("job") == "pipeline")


def _compose(tmp_path: Path, exp: str, *overrides: str):
    register_configs()
    with initialize_config_dir(config_dir=CONF_DIR, version_base=None):
        return compose(config_name="config", overrides=normalize_overrides(
            [f"+exp={exp}", f"artifacts_dir={tmp_path / 'artifacts'}", *overrides]))


def _error(tmp_path: Path, exp: str, *overrides: str) -> str:
    """What rlsys/run.py reports: validate_config, then the chain."""
    cfg = _compose(tmp_path, exp, *overrides)
    with pytest.raises(ConfigError) as err:
        validate_config(cfg)
        validate_chain(cfg)
    assert not (tmp_path / "artifacts").exists(), "the check must build nothing"
    return str(err.value)


def test_every_pipeline_exp_passes_as_shipped(tmp_path: Path) -> None:
    assert {"gspo_hints", "keye_pipeline"} <= set(PIPELINE_EXPS)
    for exp in PIPELINE_EXPS:
        validate_chain(_compose(tmp_path, exp))
    # Also every stage keye defines, on or off its default chain (reward entries with `stage:` model
    # directories pass: they are checked once resolved).
    cfg = _compose(tmp_path, "keye_pipeline")
    validate_chain(cfg, list(cfg.stages))
    assert not (tmp_path / "artifacts").exists()


def test_unknown_reward_kwarg_in_the_last_stage_of_keye_pipeline(tmp_path: Path) -> None:
    cfg = _compose(tmp_path, "keye_pipeline")
    assert cfg.pipeline[-1] == "align" and cfg.stages.align.reward_fns[2]._target_ == "format"
    # format_reward(prompt, completion, mode="think", **fields): `nope` would have been taken as a row field.
    message = _error(tmp_path, "keye_pipeline", "+stages.align.reward_fns.2.kwargs.nope=1")
    assert "config key 'stages.align.reward_fns[2].kwargs.nope'" in message
    assert "not a parameter of format_reward" in message


@pytest.mark.parametrize(("exp", "override", "key"), [
    # The run's reward.fns, used by gspo_hints' rl stage (it has no reward_fns of its own).
    ("gspo_hints", "+reward.fns.0.kwargs.partial_creditt=0.5", "reward.fns[0].kwargs.partial_creditt"),
    # A class entry whose model directory is a `stage:` reference: the kwarg names are still checked.
    ("keye_pipeline", "+stages.align.reward_fns.4.kwargs.sigmodi=true", "stages.align.reward_fns[4].kwargs.sigmodi"),
])
def test_misspelt_reward_kwargs_are_named(tmp_path: Path, exp: str, override: str, key: str) -> None:
    assert f"config key '{key}'" in _error(tmp_path, exp, override)


def test_reward_targets_and_the_judge_key_variable_are_checked_for_a_dependency(tmp_path: Path, monkeypatch) -> None:
    # rft_rl is a dependency of align, not named in `pipeline=[align]`.
    message = _error(tmp_path, "keye_pipeline", "pipeline=[align]",
                     "stages.rft_rl.reward_fns=[{_target_: no_such_module.reward_fn}]")
    assert message.startswith("stages.rft_rl.reward_fns[0] ('no_such_module.reward_fn'): module 'no_such_module'")
    monkeypatch.delenv("RLSYS_TEST_NO_SUCH_KEY", raising=False)
    judge = "{_target_: judge, kwargs: {base_url: 'http://127.0.0.1:9/v1', model: m, api_key_env: RLSYS_TEST_NO_SUCH_KEY}}"
    message = _error(tmp_path, "gspo_hints", f"stages.rl.reward_fns=[{judge}]")
    assert message == ("stages.rl.reward_fns[0] ('judge'): environment variable 'RLSYS_TEST_NO_SUCH_KEY' (judge API key) "
                       "is not set")


def test_data_files_are_named_by_their_key(tmp_path: Path) -> None:
    missing = tmp_path / "missing.jsonl"
    message = _error(tmp_path, "gspo_hints", f"data.train_files=[{missing}]")
    assert message.startswith(f"config key 'data.train_files[0]' = '{missing}': file not found")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n")
    message = _error(tmp_path, "gspo_hints", f"data.eval_files=[{empty}]")
    assert message.startswith(f"config key 'data.eval_files[0]' = '{empty}': the file is empty")
    message = _error(tmp_path, "gspo_hints", f"+stages.rl.overrides.data.train_files=[{missing}]")
    assert message.startswith("config key 'stages.rl.overrides.data.train_files[0]'")


def test_an_empty_train_file_fails_at_load_naming_it(tmp_path: Path) -> None:
    empty = tmp_path / "train.jsonl"
    empty.write_text("")
    cfg = OmegaConf.structured(Config)
    cfg.data.train_files = [str(empty)]
    stage = OmegaConf.merge(OmegaConf.structured(Config).stages, {"rl": {"kind": "rl"}}).rl
    ctx = StageContext(cfg, "rl", stage, "unused", tmp_path / "out")
    with pytest.raises(DataError, match=re.escape(f"{empty}: no rl rows in the file (it is empty)")):
        stage_rows(ctx, "rl")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a"}\n{"id": "b"}\n')
    with pytest.raises(DataError, match=re.escape(f"{bad}: no rl rows in the file (all 2 rows were bad")):
        load_rows([str(bad)], "rl", "skip", require_rows=True)


@pytest.mark.parametrize(("exp", "override", "message"), [
    ("gspo_hints", "rollout.group_size=1",
     "config key 'rollout.group_size' = 1: no group of 1 answers can pass the filter of stage 'rl', "
     "'stages.rl.rl.filter_low/filter_high/filter_inclusive' = (0.0, 1.0)"),
    ("gspo_hints", "stages.rl.rl.batch_groups=-1", "config key 'stages.rl.rl.batch_groups' = -1: must be > 0"),
    ("keye_pipeline", "+stages.judge_check_rl.overrides.rollout.group_size=1",
     "config key 'stages.judge_check_rl.overrides.rollout.group_size' = 1: no group of 1 answers"),
    ("keye_pipeline", "+stages.align.overrides.rollout.group_size=-2",
     "config key 'stages.align.overrides.rollout.group_size' = -2: must be > 0"),
    ("keye_pipeline", "stages.pass_filter.sample.num_samples=1",
     "config key 'stages.pass_filter.sample.num_samples' = 1: no group of 1 answers"),
    # Two answers, pass rates 0, 1/2, 1: none inside [0.6, 0.9].
    ("gspo_hints", "rollout.group_size=2 stages.rl.rl.filter_low=0.6 stages.rl.rl.filter_high=0.9",
     "config key 'rollout.group_size' = 2: no group of 2 answers"),
])
def test_settings_that_can_never_train_fail_at_start_up(tmp_path: Path, exp: str, override: str, message: str) -> None:
    assert _error(tmp_path, exp, *override.split()).startswith(message)


def test_a_group_of_one_passes_an_inclusive_filter(tmp_path: Path) -> None:
    validate_chain(_compose(tmp_path, "gspo_hints", "rollout.group_size=1", "stages.rl.rl.filter_inclusive=true"))
    # align's [0, 1] filter keeps every group.
    validate_chain(_compose(tmp_path, "keye_pipeline", "pipeline=[align]", "+stages.align.overrides.rollout.group_size=1",
                            *(f"+stages.{s}.overrides.rollout.group_size=2" for s in ("rl", "rft_rl"))))


def test_the_launcher_fails_in_seconds_before_the_run_starts(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "rlsys.run", "+exp=keye_pipeline", "+stages.align.reward_fns.2.kwargs.nope=1",
         f"artifacts_dir={tmp_path / 'artifacts'}", f"hydra.run.dir={run_dir}"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    elapsed = time.monotonic() - started
    assert proc.returncode != 0
    assert "config error: stages.align.reward_fns[2] ('format'): config key 'stages.align.reward_fns[2].kwargs.nope'" in proc.stderr
    # Before the run's metadata, Ray and the first stage.
    assert not (run_dir / "meta.json").exists() and not (tmp_path / "artifacts").exists()
    print(f"launch -> validation error: {elapsed:.1f} s")


def test_visual_eval_on_a_text_only_stage_fails_before_anything_runs(tmp_path: Path) -> None:
    message = _error(tmp_path, "gspo_hints", "eval.visual=true")
    assert "config key 'eval.visual' = true: stage 'pretrain' evaluates a text-only model" in message
    # Scoring the picture questions blind needs no vision.
    validate_chain(_compose(tmp_path, "gspo_hints", "eval.visual=true", "eval.drop_images=true"))


def test_visual_eval_by_stage_overrides_names_that_stage(tmp_path: Path) -> None:
    message = _error(tmp_path, "gspo_hints", "+stages.sft_more.overrides={eval: {visual: true}}")
    assert "config key 'stages.sft_more.overrides.eval.visual' = true: stage 'sft_more'" in message
    # The vision stages evaluate on pictures from vl_init on, after the text chain that cannot.
    cfg = _compose(tmp_path, "vl_pipeline")
    assert cfg.stages.vl_init.overrides.eval.visual and not cfg.eval.visual
    validate_chain(cfg)


@pytest.mark.parametrize(("override", "message"), [
    ("stages.vl_long.max_steps=2", "config key 'stages.vl_long.max_steps' = 2: a long_context stage trains a fixed "
                                   "number of steps, at least one per phase (3)"),
    ("stages.vl_long.long_context.max_position_embeddings=2048",
     "config key 'stages.vl_long.long_context.max_position_embeddings' = 2048: shorter than the longest phase's "
     "seq_len 4096"),
    ("stages.vl_long.long_context.phases=[{seq_len: 512, items: [1, 2], share: 0.5}]",
     "config key 'stages.vl_long.long_context.phases': phase shares sum to 0.5, not 1"),
])
def test_long_context_curriculum_is_checked_at_start_up(tmp_path: Path, override: str, message: str) -> None:
    assert message in _error(tmp_path, "long_context", override)

"""Config errors name the key: typos, wrong types, bad values, unknown experiments."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException, MissingConfigException
from omegaconf import OmegaConf

from rlsys.config.store import register_configs
from rlsys.config.validate import ConfigError, validate_config
from rlsys.run import CONF_DIR, normalize_overrides

REPO = Path(__file__).resolve().parents[2]


def _compose(overrides: list[str]):
    register_configs()
    with initialize_config_dir(config_dir=CONF_DIR, version_base=None):
        return compose(config_name="config", overrides=normalize_overrides(overrides))


def test_every_exp_composes_and_validates():
    exps = sorted(p.stem for p in (REPO / "conf" / "exp").glob("*.yaml"))
    assert "smoke" in exps
    for exp in exps:
        cfg = _compose([f"+exp={exp}"])
        validate_config(cfg)
        assert cfg.exp_name == exp


def test_every_exp_file_starts_with_its_launch_command():
    paths = sorted((REPO / "conf" / "exp").glob("*.yaml"))
    assert paths, f"no experiment files in {REPO / 'conf' / 'exp'}: the check below would pass vacuously"
    for path in paths:
        first = path.read_text().splitlines()[0]
        assert first.startswith("# python -m rlsys.run ") and f"+exp={path.stem}" in first, path


def test_typo_key_names_the_key():
    with pytest.raises(ConfigCompositionException) as err:
        _compose(["+exp=smoke", "learner.zero_stag=1"])
    assert "zero_stag" in str(err.value.__cause__ or err.value)


def test_wrong_type_names_the_key():
    with pytest.raises(ConfigCompositionException) as err:
        _compose(["+exp=smoke", "learner.micro_batch_size=abc"])
    text = str(err.value.__cause__ or err.value)
    assert "micro_batch_size" in text and "abc" in text


def test_bad_value_names_the_key():
    cfg = _compose(["+exp=smoke", "learner.precision=fp8"])
    with pytest.raises(ConfigError, match="learner.precision"):
        validate_config(cfg)
    cfg = _compose(["+exp=smoke", "rollout.top_p=0"])
    with pytest.raises(ConfigError, match="rollout.top_p"):
        validate_config(cfg)


def test_unknown_exp_lists_known_ones():
    with pytest.raises(MissingConfigException) as err:
        _compose(["+exp=no_such_exp"])
    assert "smoke" in str(err.value)


def test_group_file_is_type_checked(tmp_path):
    cfg = _compose(["+exp=smoke"])
    assert OmegaConf.get_type(cfg.learner).__name__ == "LearnerConfig"
    assert cfg.model.tiny.head_dim == 64


def test_cli_exits_nonzero_with_key_named():
    proc = subprocess.run(
        [sys.executable, "-m", "rlsys.run", "+exp=smoke", "rollout.num_actor=2"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode != 0
    assert "num_actor" in proc.stderr + proc.stdout


def test_learner_settings_defaults_overrides_and_unknown_keys() -> None:
    from rlsys.config.schema import LearnerConfig, learner_settings

    cfg = learner_settings({"lr": 3e-4}, zero_stage=2)
    assert cfg["zero_stage"] == 2 and cfg["optim"]["lr"] == 3e-4
    assert cfg["optim"]["schedule"] == "constant" and cfg["micro_batch_size"] == LearnerConfig.micro_batch_size
    with pytest.raises(KeyError, match=r"unknown learner keys \['zero'\]"):
        learner_settings(zero=1)
    with pytest.raises(KeyError, match=r"unknown learner.optim keys \['learning_rate'\]"):
        learner_settings({"learning_rate": 1.0})


def test_a_new_stage_from_the_command_line():
    # `+stages.NAME={...}` cannot work: OmegaConf will not assign a plain dict to a StageConfig slot.
    cfg = _compose(["+exp=keye_pipeline", "pipeline=[align_x]", "+stage@stages.align_x=blank",
                    "stages.align_x.kind=rl", "stages.align_x.input=rft_rl", "stages.align_x.lr=1e-5"])
    validate_config(cfg)
    stage = cfg.stages.align_x
    assert (stage.kind, stage.input, stage.lr, stage.loss) == ("rl", "rft_rl", 1e-5, "sft")
    with pytest.raises(ConfigCompositionException) as err:
        _compose(["+exp=keye_pipeline", "+stage@stages.align_x=blank", "stages.align_x.lrr=1e-5"])
    assert "lrr" in str(err.value.__cause__ or err.value)

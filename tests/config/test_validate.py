"""Start-up value checks: every field's declared choices and range, every stage's included, key named."""

from __future__ import annotations

import dataclasses
import typing

import pytest
from hydra import compose, initialize_config_dir

from rlsys.algorithms import registry
from rlsys.algorithms.registry import register_loss
from rlsys.config import schema
from rlsys.config.fields import BOUNDS, CHOICES, resolve_choices, setting
from rlsys.config.store import register_configs
from rlsys.config.validate import ConfigError, check_setting, iter_settings, validate_config
from rlsys.run import CONF_DIR, normalize_overrides

SECTIONS = [schema.Config, schema.ModelConfig, schema.TinyModelConfig, schema.DataConfig, schema.RolloutConfig,
            schema.LearnerConfig, schema.OptimConfig, schema.RewardConfig, schema.HintsConfig, schema.RayConfig,
            schema.LoggingConfig, schema.SmokeConfig, schema.EvalConfig, schema.StageConfig, schema.RLConfig,
            schema.OfflineSampleConfig]


def _compose(overrides: list[str]):
    register_configs()
    with initialize_config_dir(config_dir=CONF_DIR, version_base=None):
        return compose(config_name="config", overrides=normalize_overrides(overrides))


def _error(overrides: list[str]) -> str:
    with pytest.raises(ConfigError) as err:
        validate_config(_compose(overrides))
    return str(err.value)


@pytest.mark.parametrize(("override", "message"), [
    ("stages.rl.rl.loss=gpso", "config key 'stages.rl.rl.loss' = 'gpso': must be one of ['grpo', 'gspo', 'gspo_token']"),
    # A registered loss of another objective kind cannot train an RL stage either.
    ("stages.rl.rl.loss=dpo", "config key 'stages.rl.rl.loss' = 'dpo': must be one of ['grpo', 'gspo', 'gspo_token']"),
    ("stages.rl.rl.advantage=grpo",
     "config key 'stages.rl.rl.advantage' = 'grpo': must be one of ['group_mean_batch_std', 'grpo_group']"),
    ("stages.rl.rl.credit=tokens", "config key 'stages.rl.rl.credit' = 'tokens': must be one of ['error_tokens', 'sequence']"),
    ("stages.sft.loss=stf", "config key 'stages.sft.loss' = 'stf': must be one of ['bco_pair', 'bradley_terry', 'dpo', "
                            "'grpo', 'gspo', 'gspo_token', 'mpo', 'ntp', 'sft', 'siglip']"),
    ("stages.rl.kind=rll", "config key 'stages.rl.kind' = 'rll': must be one of ["),
    ("stages.sft.schedule=linear", "config key 'stages.sft.schedule' = 'linear': must be one of ['constant', 'cosine']"),
    ("rollout.temperature=-1", "config key 'rollout.temperature' = -1.0: must be >= 0"),
    ("stages.rl.rl.filter_high=1.5", "config key 'stages.rl.rl.filter_high' = 1.5: must be in [0, 1]"),
    ("stages.rl.rl.filter_low=0.5", "config key 'stages.rl.rl.filter_low' = 0.5 must be <= 'stages.rl.rl.filter_high' = 0.4"),
    ("data.suite.format=csv", "config key 'data.suite.format' = 'csv': must be one of ['jsonl', 'parquet']"),
])
def test_bad_value_fails_at_start_up_naming_the_full_key(override: str, message: str) -> None:
    extra = ["stages.rl.rl.filter_high=0.4"] if "filter_low" in override else []
    assert message in _error(["+exp=gspo_hints", override, *extra])


def test_a_stage_defined_on_the_command_line_is_checked_too() -> None:
    text = _error(["+exp=keye_pipeline", "+stage@stages.my_align=blank", "stages.my_align.kind=rl",
                   "stages.my_align.rl.advantage=grpo_groups"])
    assert "config key 'stages.my_align.rl.advantage' = 'grpo_groups'" in text and "grpo_group" in text


def test_a_registered_plugin_loss_is_a_valid_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    registry.LOSSES.names()
    monkeypatch.setattr(registry.LOSSES, "_table", dict(registry.LOSSES._table))
    monkeypatch.setattr(registry.LOSSES, "_meta", dict(registry.LOSSES._meta))
    register_loss("my_pg", kind="policy_gradient")(lambda *a, **k: None)
    validate_config(_compose(["+exp=gspo_hints", "stages.rl.rl.loss=my_pg"]))


def test_every_section_field_has_a_comment_and_its_default_is_allowed() -> None:
    from rlsys.config.doc import field_comments

    for cls in SECTIONS:
        comments = field_comments(cls)
        missing = [f.name for f in dataclasses.fields(cls) if f.name not in comments]
        assert not missing, f"{cls.__name__}: fields without a comment above them: {missing}"
        for f in dataclasses.fields(cls):
            if f.default is not dataclasses.MISSING:
                check_setting(f"{cls.__name__}.{f.name}", f.default, dict(f.metadata))


def test_every_choices_reference_resolves() -> None:
    refs = [f.metadata[CHOICES] for cls in SECTIONS for f in dataclasses.fields(cls)
            if isinstance(f.metadata.get(CHOICES), str)]
    assert refs, "no field names its choices by reference: the test would check nothing"
    for ref in refs:
        assert resolve_choices(ref), ref


def test_walk_reaches_every_stage_section() -> None:
    cfg = _compose(["+exp=keye_pipeline"])
    keys = {key for key, _, _ in iter_settings(schema.Config, cfg)}
    for name in cfg.stages:
        assert {f"stages.{name}.rl.loss", f"stages.{name}.sample.judge_reasoning", f"stages.{name}.lr"} <= keys


def test_setting_keeps_the_default_and_records_the_rules() -> None:
    @dataclasses.dataclass
    class Section:
        x: float = setting(1.0, gt=0.0, le=2.0)
        names: list[str] = setting(factory=list)
        mode: str = setting("a", choices=("a", "b"))

    assert Section() == Section(1.0, [], "a")
    rules = {f.name: dict(f.metadata) for f in dataclasses.fields(Section)}
    assert rules["x"][BOUNDS] == (("gt", 0.0), ("le", 2.0)) and rules["mode"][CHOICES] == ("a", "b")
    with pytest.raises(ConfigError, match=r"config key 's.x' = 0: must be in \(0, 2\]"):
        check_setting("s.x", 0, rules["x"])
    check_setting("s.x", None, rules["x"])  # an unset optional value is not checked
    assert typing.get_type_hints(Section)["x"] is float

"""The stage runner as a pipeline: order, artifacts passed along, cache reuse, data files between stages,
`stage:<name>` references, per-stage overrides, equal-wall budgets, and resuming after a failed stage.

The stage kinds here are stand-ins (no Ray, no training) so the runner's own behaviour is what is tested;
the real kinds run end to end in test_keye_pipeline_run.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from rlsys.config.schema import Config
from rlsys.stages import runner as stages
from rlsys.stages.context import StageFailed
from rlsys.stages.io import DATA_FILE, write_jsonl

CALLS: list[dict] = []


def _write_model(ctx) -> dict:
    model = Path(ctx.out_dir) / "model"
    model.mkdir(parents=True)
    (model / "config.json").write_text(json.dumps({"from": ctx.input_model, "stage": ctx.name}))
    return {"eval": {"eval/math_acc": 0.25, "eval/math_acc_tier1": 0.5}}


def fake_model(ctx) -> dict:
    """A "training" stage: its model records the model it started from."""
    CALLS.append({"stage": ctx.name, "input": ctx.input_model, "max_tokens": ctx.cfg.rollout.max_tokens})
    return _write_model(ctx)


def fake_data(ctx) -> dict:
    """A data stage: SFT rows tagged with the stage's seed."""
    rows = [{"id": f"r{i}", "prompt": f"q{i}", "response": f"seed {ctx.stage.seed} answer {i}"} for i in range(3)]
    write_jsonl(Path(ctx.out_dir) / DATA_FILE, rows)
    CALLS.append({"stage": ctx.name, "input": ctx.input_model})
    return {"rows": len(rows)}


def fake_consume(ctx) -> dict:
    """Reads its rows through `data_from`, loads its reward entries (a bad target fails here)."""
    from rlsys.reward.plugins import load_reward_fns
    from rlsys.stages.io import stage_rows

    rows = stage_rows(ctx, "sft")
    specs = load_reward_fns(OmegaConf.to_container(ctx.stage.reward_fns), f"stages.{ctx.name}.reward_fns")
    CALLS.append({"stage": ctx.name, "input": ctx.input_model, "rows": [r["response"] for r in rows],
                  "reward_kwargs": [s.kwargs for s in specs], "max_tokens": ctx.cfg.rollout.max_tokens,
                  "max_wall_s": ctx.stage.rl.max_wall_s})
    return _write_model(ctx)


KINDS = {"fake_model": f"{__name__}:fake_model", "fake_data": f"{__name__}:fake_data",
         "fake_consume": f"{__name__}:fake_consume"}


@pytest.fixture
def make_cfg(tmp_path, monkeypatch):
    monkeypatch.setattr(stages, "STAGE_KINDS", {**stages.STAGE_KINDS, **KINDS})
    monkeypatch.setattr("rlsys.stages.runner.start_ray", lambda cfg: {})
    base = tmp_path / "base"
    base.mkdir()
    (base / "config.json").write_text("{}")
    CALLS.clear()

    def make(run: str, consume_fns: list, data_seed: int = 0):
        cfg = OmegaConf.structured(Config)
        cfg.model.path = str(base)
        cfg.artifacts_dir = str(tmp_path / "artifacts")
        cfg.run_dir = str(tmp_path / run)
        cfg.logging.plots = False
        cfg.pipeline = ["a", "d", "c"]
        return OmegaConf.merge(cfg, {"stages": {
            "a": {"kind": "fake_model"},
            "rm": {"kind": "fake_model", "input": "a"},
            "d": {"kind": "fake_data", "input": "a", "seed": data_seed},
            "c": {"kind": "fake_consume", "input": "a", "data_from": "d", "reward_fns": consume_fns,
                  "overrides": {"rollout": {"max_tokens": 7}}, "match_wall": ["a", "d"]},
        }})

    return make


GOOD = [{"_target_": "rewards.length.length_penalty", "kwargs": {"max_len": 64, "buffer": 8}},
        {"_target_": "reward_model", "kwargs": {"model_path": "stage:rm"}}]
BAD = [{"_target_": "no_such_module.reward_fn"}]


def test_stages_run_in_order_pass_artifacts_and_data_and_resume_after_failure(make_cfg, tmp_path):
    with pytest.raises(StageFailed, match=r"stage 'c' \(fake_consume\) failed: RewardConfigError.*no_such_module"):
        stages.run(make_cfg("run1", BAD))
    # The bad entry names no other stage, so c depends on a and d only.
    assert [c["stage"] for c in CALLS] == ["a", "d"]
    partial = (tmp_path / "run1" / "pipeline_table.md").read_text()
    assert "| a | fake_model | trained" in partial and "| c |" not in partial

    CALLS.clear()
    results = stages.run(make_cfg("run2", GOOD))
    assert [c["stage"] for c in CALLS] == ["rm", "c"], "a and d must be reused after the failure"
    assert list(results) == ["a", "d", "rm", "c"]
    assert results["a"].reused and results["d"].reused and not results["c"].reused
    consume = CALLS[-1]
    assert consume["input"] == results["a"].model_dir
    assert consume["rows"] == [f"seed 0 answer {i}" for i in range(3)]
    assert consume["reward_kwargs"][1]["model_path"] == results["rm"].model_dir
    assert consume["max_tokens"] == 7
    wall = sum(float(results[n].summary["wall_s"]) for n in ("a", "d"))
    assert consume["max_wall_s"] == pytest.approx(wall)
    assert json.loads((Path(results["c"].model_dir) / "config.json").read_text())["from"] == results["a"].model_dir

    table = json.loads((tmp_path / "run2" / "pipeline_table.json").read_text())
    assert [r["stage"] for r in table["stages"]] == ["a", "d", "rm", "c"]
    assert [r["status"] for r in table["stages"]] == ["reused", "reused", "trained", "trained"]
    assert table["stages"][0]["eval/math_acc_tier1"] == 0.5
    assert (tmp_path / "run2" / "stages" / "c").resolve() == Path(results["c"].path).resolve()

    CALLS.clear()
    again = stages.run(make_cfg("run3", GOOD))
    assert CALLS == [] and all(r.reused for r in again.values())

    # New data content -> the consumer's cache key changes too; the model stages stay cached.
    CALLS.clear()
    stages.run(make_cfg("run4", GOOD, data_seed=1))
    assert [c["stage"] for c in CALLS] == ["d", "c"]
    assert CALLS[-1]["rows"] == [f"seed 1 answer {i}" for i in range(3)]


def test_reusing_a_stage_built_by_other_code_warns_naming_the_stage(make_cfg, caplog):
    results = stages.run(make_cfg("run1", GOOD))
    code = Path(results["d"].path) / stages.CODE_FILE
    assert json.loads(code.read_text()) == stages.kind_code("fake_data")
    with caplog.at_level("WARNING", logger="rlsys.stages.runner"):
        stages.run(make_cfg("run2", GOOD))
    assert not [r for r in caplog.records if r.levelname == "WARNING"]
    # The module behind fake_data changed since d was built: d is still reused, with a warning.
    code.write_text(json.dumps({"module": __name__, "sha256": "0" * 16}))
    with caplog.at_level("WARNING", logger="rlsys.stages.runner"):
        again = stages.run(make_cfg("run3", GOOD))
    assert again["d"].reused
    (warning,) = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert "stage d: reusing" in warning and "stages.d.cache=false" in warning and __name__ in warning


def test_dependencies_cover_data_refs_and_wall_matches(make_cfg):
    cfg = make_cfg("run", GOOD)
    assert stages.dependencies(cfg.stages.c) == ["a", "d", "rm"]


def test_bad_overrides_and_missing_data_file_name_the_stage(make_cfg):
    cfg = make_cfg("run", GOOD)
    cfg.stages.c.overrides = {"rollout": {"no_such_key": 1}}
    with pytest.raises(StageFailed, match=r"stages\.c\.overrides"):
        stages.run(cfg)
    cfg = make_cfg("run-b", GOOD)
    cfg.stages.c.data_from = "rm"
    with pytest.raises(StageFailed, match=r"stages\.c\.data_from' = 'rm': that stage wrote no data.jsonl"):
        stages.run(cfg)


def test_a_stage_without_input_starts_from_the_base_model_its_overrides_name(make_cfg, tmp_path):
    # e.g. a judge pretrained at another size beside the policy (`overrides: {model: {tiny: ...}}`).
    other = tmp_path / "other-base"
    other.mkdir()
    (other / "config.json").write_text('{"layers": 8}')
    cfg = OmegaConf.merge(make_cfg("run", GOOD), {"pipeline": ["a", "b"], "stages": {
        "b": {"kind": "fake_model", "overrides": {"model": {"path": str(other)}}}}})
    results = stages.run(cfg)
    assert [c["input"] for c in CALLS] == [cfg.model.path, str(other)]
    assert results["a"].path != results["b"].path
    # The overridden base, not the run's, is what b's cache key records.
    spec = stages.stage_spec(cfg, cfg.stages.b, {}, OmegaConf.merge(cfg, cfg.stages.b.overrides))
    assert spec["base"] == stages.base_model_identity(OmegaConf.merge(cfg, {"model": {"path": str(other)}}))
    assert spec["base"] != stages.stage_spec(cfg, cfg.stages.a, {})["base"]


def test_rl_only_eval_settings_do_not_change_upstream_cache_keys(make_cfg):
    # gspo_hints turns on avg@k (eval.sample_k), which only the RL controller reads: the pretrain / SFT
    # stages it depends on must keep the keys `+exp=sft` built them under.
    cfg = OmegaConf.merge(make_cfg("run", GOOD), {"stages": {"r": {"kind": "rl", "input": "a"}}})
    plain = {name: stages.stage_spec(cfg, cfg.stages[name], {}) for name in ("a", "r")}
    cfg.eval.sample_k = 4
    sampled = {name: stages.stage_spec(cfg, cfg.stages[name], {}) for name in ("a", "r")}
    assert sampled["a"] == plain["a"]
    assert sampled["r"] != plain["r"]
    cfg.eval.max_math = 17
    assert stages.stage_spec(cfg, cfg.stages.a, {}) != plain["a"]


def test_evaluating_in_the_background_changes_no_cache_key(make_cfg):
    cfg = OmegaConf.merge(make_cfg("run", GOOD), {"stages": {"r": {"kind": "rl", "input": "a"}}})
    plain = {name: stages.stage_spec(cfg, cfg.stages[name], {}) for name in ("a", "r")}
    cfg.eval.background = True
    assert {name: stages.stage_spec(cfg, cfg.stages[name], {}) for name in ("a", "r")} == plain


def test_suite_splits_join_and_a_row_count_takes_a_seeded_subset(tmp_path, monkeypatch):
    from rlsys.config.schema import StageConfig
    from rlsys.config.validate import ConfigError
    from rlsys.stages.context import StageContext
    from rlsys.stages.io import split_parts, stage_rows

    files = {}
    for split, n in (("ifeval_train", 3), ("math_train", 50)):
        files[split] = str(tmp_path / f"{split}.jsonl")
        write_jsonl(Path(files[split]), [{"id": f"{split}-{i}", "prompt": f"q{i}", "answer": str(i)} for i in range(n)])
    monkeypatch.setattr("rlsys.data.embedded.ensure_task_suite", lambda *_: files)
    assert split_parts("ifeval_train+math_train:7", "k") == [("ifeval_train", 0), ("math_train", 7)]
    for bad in ("math_train:0", "math_train:x", "math_train:-3"):
        with pytest.raises(ConfigError, match=r"config key 'k' = .*positive row count"):
            split_parts(bad, "k")

    def rows(spec: str, seed: int = 0) -> list[str]:
        stage = OmegaConf.merge(OmegaConf.structured(StageConfig), {"kind": "rl", "data": spec, "seed": seed})
        ctx = StageContext(OmegaConf.structured(Config), "align", stage, "", tmp_path)
        return [r["id"] for r in stage_rows(ctx, "rl")]

    mixed = rows("ifeval_train+math_train:7")
    assert mixed[:3] == ["ifeval_train-0", "ifeval_train-1", "ifeval_train-2"] and len(mixed) == 10
    assert len(set(mixed)) == 10 and mixed == rows("ifeval_train+math_train:7")
    assert mixed != rows("ifeval_train+math_train:7", seed=1)
    assert rows("math_train:500") == [f"math_train-{i}" for i in range(50)]
    with pytest.raises(KeyError, match="stages.align.data' = 'nope'"):
        rows("math_train+nope")

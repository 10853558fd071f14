"""An RL stage whose steps keep no group stops with a clear message, and the runner publishes no artifact
(issue #30, item 2). The loop (`run_rl`) and the runner are the real ones; the actors are stand-ins, so no
Ray: a collector that never keeps a group is what the issue's runs met every step."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from omegaconf import OmegaConf

from rlsys.config.schema import Config
from rlsys.rl import loop
from rlsys.rl.state import ProblemSampler, RLState
from rlsys.runtime.artifacts import DONE
from rlsys.stages import runner
from rlsys.stages.context import StageFailed

CALLS: list[str] = []


class _Collector:
    """Every fresh group too easy: nothing kept, as with rollout.group_size=1 and the (0, 1) filter."""

    def collect(self, step, state, sampler):
        CALLS.append("collect")
        return [], {"filter/sampled": 4.0, "filter/too_easy": 4.0, "filter/kept": 0.0}


class _Stub:
    """Any call is recorded and answers an empty mapping (the pool's failure counts)."""

    def __getattr__(self, name):
        def call(*args, **kwargs):
            CALLS.append(name)
            return {}
        return call


def _fake_build_rl(ctx):
    return loop.RLSetup(learners=_Stub(), pool=_Stub(), rewards=_Stub(), collector=_Collector(),
                        sampler=ProblemSampler(8, 0), metrics=None, eval_rows={}, out_dir=Path(ctx.out_dir))


@pytest.mark.parametrize(("steps", "skipped", "share", "at_end", "stops"), [
    (20, 2, 0.5, False, False),   # measured over min(steps, 4) while running: 2 of 4 is not more than half
    (20, 3, 0.5, False, True),
    (2, 2, 0.5, False, True),     # fewer planned steps than the grace
    (20, 2, 0.5, True, True),     # a run cut short (wall budget) after 2 skipped steps
    (20, 5, 1.0, True, False),    # 1 = never stop
    (20, 0, 0.0, True, False),
])
def test_check_skipped(steps: int, skipped: int, share: float, at_end: bool, stops: bool) -> None:
    state = RLState(step=min(skipped, steps) if at_end else skipped, totals={"train/skipped": float(skipped)})
    rl = SimpleNamespace(steps=steps, max_skipped_share=share)
    if stops:
        with pytest.raises(loop.TrainingStalled, match=r"config key 'stages.rl.rl.max_skipped_share'"):
            loop.check_skipped(state, rl, "rl", at_end=at_end)
    else:
        loop.check_skipped(state, rl, "rl", at_end=at_end)


def test_a_run_that_keeps_no_group_stops_and_publishes_nothing(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(runner, "STAGE_KINDS", {**runner.STAGE_KINDS, "rl": "rlsys.rl.loop:run_rl"})
    monkeypatch.setattr(runner, "start_ray", lambda cfg: {})
    monkeypatch.setattr(loop, "build_rl", _fake_build_rl)
    base = tmp_path / "base"
    base.mkdir()
    (base / "config.json").write_text("{}")
    cfg = OmegaConf.structured(Config)
    cfg.model.path = str(base)
    cfg.artifacts_dir = str(tmp_path / "artifacts")
    cfg.run_dir = str(tmp_path / "run")
    cfg.logging.plots = False
    cfg.pipeline = ["rl"]
    cfg = OmegaConf.merge(cfg, {"stages": {"rl": {"kind": "rl", "rl": {"steps": 20, "eval_before": False,
                                                                         "save_every": 0, "eval_every": 0}}}})
    CALLS.clear()
    with pytest.raises(StageFailed) as err:
        runner.run(cfg)
    message = str(err.value)
    assert "stage 'rl' (rl) failed: TrainingStalled: stage 'rl': 3 of 3 RL steps kept no group to train on" in message
    assert "'stages.rl.rl.max_skipped_share' = 0.5" in message and "too_easy 12" in message
    # Stopped at the third step (3 skipped > half of 4), before saving a model; the actors were shut down.
    assert CALLS.count("collect") == 3 and "save_hf" not in CALLS and "shutdown" in CALLS
    # No artifact is published as built, and the run does not link or record the stage.
    assert not list((tmp_path / "artifacts").glob(f"stages/rl/*/{DONE}"))
    assert not [p for p in (tmp_path / "artifacts").glob("stages/rl/[!.]*") if p.is_dir()]
    assert not (tmp_path / "run" / "stages" / "rl").exists()
    table = json.loads((tmp_path / "run" / "pipeline_table.json").read_text())
    assert table["stages"] == []
    # The skipped steps are in the stage's metrics, which stay in its unfinished build directory.
    metrics = next((tmp_path / "artifacts").glob("stages/rl/.*.tmp-*/metrics.jsonl"))
    records = [json.loads(line) for line in metrics.read_text().splitlines()]
    assert [r["train/skipped"] for r in records] == [1.0, 1.0, 1.0]


@pytest.mark.slow
def test_a_real_run_that_keeps_no_group_stops_without_a_model(tmp_path: Path, seeded_artifacts: Path) -> None:
    """A short real `+exp=gspo_hints` run (Ray, vLLM, DeepSpeed): the length penalty scores every short answer
    0, so with hints off every group fails and the (0, 1) filter drops it."""
    from test_gspo_hints_run import _run

    run = tmp_path / "run"
    proc = _run(["hints=off", "stages.rl.reward_fns=[{_target_: length, weight: 1.0}]", "stages.rl.rl.steps=2",
                 "stages.rl.rl.eval_before=false", "stages.rl.rl.eval_every=0"], tmp_path, run)
    out, _ = proc.communicate(timeout=900)
    assert proc.returncode != 0, out[-4000:]
    assert "TrainingStalled: stage 'rl': 2 of 2 RL steps kept no group to train on" in out, out[-4000:]
    # gspo_hints' rl stage is built in the run directory (cache: false): no model, no summary, no record.
    stage = run / "stages" / "rl"
    assert not (stage / "model").exists() and not (stage / "summary.json").exists()
    records = [json.loads(line) for line in (stage / "metrics.jsonl").read_text().splitlines()]
    assert [r["train/skipped"] for r in records] == [1.0, 1.0]
    assert "rl" not in {json.loads(x)["name"] for x in (run / "stages" / "stages.jsonl").read_text().splitlines()}

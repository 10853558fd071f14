"""`rlsys.stages.plan`: the chain's cache keys without building, and which changes move which keys."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from rlsys.run import CONF_DIR, normalize_overrides
from rlsys.stages.plan import format_plan, main, plan_stage_chain


def _plan(tmp_path: Path, *overrides: str) -> dict[str, object]:
    with initialize_config_dir(config_dir=CONF_DIR, version_base=None):
        cfg = compose(config_name="config", overrides=normalize_overrides(
            ["+exp=gspo_hints", f"artifacts_dir={tmp_path}", *overrides]))
    return {p.name: p for p in plan_stage_chain(cfg, list(cfg.pipeline))}


def test_plan_orders_the_chain_and_reports_what_is_built(tmp_path: Path) -> None:
    plan = _plan(tmp_path)
    assert list(plan) == ["pretrain", "sft", "sft_more", "rl"]
    assert [plan[n].inputs for n in plan] == [[], ["pretrain"], ["sft"], ["sft_more"]]
    assert not any(p.built for p in plan.values())
    assert plan["sft"].path.parent == tmp_path.resolve() / "stages" / "sft"
    (plan["sft"].path).mkdir(parents=True)
    (plan["sft"].path / ".done").touch()
    again = _plan(tmp_path)
    assert [n for n, p in again.items() if p.built] == ["sft"]
    assert "sft       sft          " in format_plan(list(again.values()))


def test_a_stage_setting_moves_its_key_and_every_key_downstream_only(tmp_path: Path) -> None:
    base = {n: p.path.name for n, p in _plan(tmp_path).items()}
    sft_lr = {n: p.path.name for n, p in _plan(tmp_path, "stages.sft.lr=1e-4").items()}
    assert [n for n in base if base[n] != sft_lr[n]] == ["sft", "sft_more", "rl"]
    rl_lr = {n: p.path.name for n, p in _plan(tmp_path, "stages.rl.lr=1e-4").items()}
    assert [n for n in base if base[n] != rl_lr[n]] == ["rl"]
    # Threads change speed, not results: no key moves.
    threads = {n: p.path.name for n, p in _plan(tmp_path, "learner.num_threads=2").items()}
    assert threads == base


def test_row_rendering_settings_move_the_keys_of_the_stages_that_read_them(tmp_path: Path) -> None:
    base = {n: p.path.name for n, p in _plan(tmp_path).items()}
    hinted = {n: p.path.name for n, p in _plan(tmp_path, "data.sft_hint_share=0.2").items()}
    # Pretraining reads no SFT rows: its artifact is shared; the SFT stages and what follows rebuild.
    assert [n for n in base if base[n] != hinted[n]] == ["sft", "sft_more", "rl"]
    system = {n: p.path.name for n, p in _plan(tmp_path, "data.system_prompt=Be brief.").items()}
    assert [n for n in base if base[n] != system[n]] == ["pretrain", "sft", "sft_more", "rl"]


def test_main_prints_the_plan(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["+exp=gspo_hints", f"artifacts_dir={tmp_path}"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == ["stage", "kind", "key", "built", "inputs"]
    assert [line.split()[0] for line in out.splitlines()[1:]] == ["pretrain", "sft", "sft_more", "rl"]

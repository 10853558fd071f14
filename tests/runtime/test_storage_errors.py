"""Storage failures report their cause (issue #30, item 8).

- an empty read-only artifacts dir (a real read-only tmpfs) stops the launch at start-up, before Ray,
  naming the path and the config key `artifacts_dir`; a full one (a small tmpfs) likewise;
- a stage failing on a full disk (torch's own `inline_container.cc` error) is the error reported, with
  where it was writing and what to do, although writing the pipeline table then fails too.

The tmpfs mounts need root (as root, chmod does not stop writes); without it those tests skip, and the
fault-injected variants below still cover the same code.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from rlsys.config.schema import Config
from rlsys.runtime.artifacts import UnwritableDirError, check_writable_dir, is_storage_error
from rlsys.stages import runner as stages
from rlsys.stages.context import StageFailed

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def tmpfs(tmp_path):
    """`mount(name, *options)` -> a fresh tmpfs at tmp_path/name; unmounted when the test ends."""
    mounted: list[Path] = []

    def mount(name: str, *options: str) -> Path:
        target = tmp_path / name
        target.mkdir()
        if os.geteuid() != 0:
            pytest.skip("mounting a tmpfs needs root; the fault-injected variant covers this case")
        proc = subprocess.run(["mount", "-t", "tmpfs", "-o", ",".join(options), "tmpfs", str(target)],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            pytest.skip(f"mounting a tmpfs is not permitted here ({proc.stderr.strip()}); the fault-injected "
                        "variant covers this case")
        mounted.append(target)
        return target

    yield mount
    for target in reversed(mounted):
        if subprocess.run(["umount", str(target)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(target)], capture_output=True)


def _fill(directory: Path) -> None:
    """Write until the filesystem is full."""
    with pytest.raises(OSError) as err, (directory / "filler").open("wb", buffering=0) as fh:
        while True:
            fh.write(b"\0" * 4096)
    assert err.value.errno == errno.ENOSPC


# ----------------------------------------------------------------------------- start-up check


def test_read_only_artifacts_dir_stops_the_launch_before_ray(tmpfs, tmp_path):
    ro = tmpfs("ro-artifacts", "size=1m", "ro")
    with pytest.raises(UnwritableDirError) as err:
        check_writable_dir(ro, "artifacts_dir")
    assert f"config key 'artifacts_dir' = '{ro}'" in str(err.value) and "read-only filesystem" in str(err.value)

    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "rlsys.run", "+exp=smoke", f"artifacts_dir={ro}", f"hydra.run.dir={tmp_path / 'run'}"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "config error: config key 'artifacts_dir'" in out and str(ro) in out and "read-only" in out, out[-3000:]
    assert "Traceback" not in out and "Ray" not in out, out[-3000:]
    assert time.monotonic() - started < 120


def test_full_artifacts_dir_is_named_at_start_up(tmpfs):
    full = tmpfs("full-artifacts", "size=64k")
    _fill(full)
    with pytest.raises(UnwritableDirError) as err:
        check_writable_dir(full / "cache", "artifacts_dir")
    assert str(full / "cache") in str(err.value) and "disk is full" in str(err.value)
    assert not list(full.glob("cache/.rlsys-write-check-*")), "the probe file must not be left behind"


def test_unwritable_dir_fault_injected(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system", str(tmp_path / "a"))

    monkeypatch.setattr("rlsys.runtime.artifacts.tempfile.NamedTemporaryFile", refuse)
    with pytest.raises(UnwritableDirError, match=r"'artifacts_dir' = .*cannot write to .*read-only filesystem.*"
                       r"Set artifacts_dir=<a writable directory with room>"):
        check_writable_dir(tmp_path / "a", "artifacts_dir")
    monkeypatch.undo()
    assert check_writable_dir(tmp_path / "a", "artifacts_dir") == tmp_path / "a"
    assert list((tmp_path / "a").iterdir()) == []


# ----------------------------------------------------------------------------- first error wins


def save_big_tensor(ctx) -> dict:
    """A stage that writes a model file with torch, as a training stage's save does."""
    import torch

    torch.save({"w": torch.zeros(1 << 18)}, Path(ctx.out_dir) / "model.pt")
    return {}


def failing_stage(ctx) -> dict:
    raise ValueError("the stage's own error")


def _cfg(tmp_path: Path, artifacts: Path, run_dir: Path):
    cfg = OmegaConf.structured(Config)
    base = tmp_path / "base"
    base.mkdir(exist_ok=True)
    (base / "config.json").write_text("{}")
    cfg.model.path = str(base)
    cfg.artifacts_dir = str(artifacts)
    cfg.run_dir = str(run_dir)
    cfg.logging.plots = False
    cfg.pipeline = ["big"]
    return OmegaConf.merge(cfg, {"stages": {"big": {"kind": "save_big"}}})


@pytest.fixture
def save_big_kind(monkeypatch):
    monkeypatch.setattr(stages, "STAGE_KINDS", {**stages.STAGE_KINDS, "save_big": f"{__name__}:save_big_tensor"})
    monkeypatch.setattr("rlsys.stages.runner.start_ray", lambda cfg: {})


def test_full_disk_reports_the_stage_error_not_the_table_error(tmpfs, tmp_path, save_big_kind, caplog):
    disk = tmpfs("small-disk", "size=64k")
    cfg = _cfg(tmp_path, disk / "artifacts", disk / "run")
    with caplog.at_level(logging.ERROR, logger="rlsys.stages.runner"), pytest.raises(StageFailed) as err:
        stages.run(cfg)
    message = str(err.value)
    # torch's message names no file; the stage error adds where it was writing and what to do.
    assert "stage 'big' (save_big) failed: RuntimeError" in message and "inline_container.cc" in message, message
    assert f"artifacts_dir = {disk / 'artifacts'}" in message and f"hydra.run.dir = {disk / 'run'}" in message
    assert "Free space there" in message
    assert any("could not write the pipeline table" in r.getMessage() and "No space left" in r.getMessage()
               for r in caplog.records), [r.getMessage() for r in caplog.records]


def test_table_write_failure_does_not_mask_the_stage_error(tmp_path, save_big_kind, monkeypatch, caplog):
    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "run" / "pipeline_table.md"))

    monkeypatch.setattr(stages, "STAGE_KINDS", {**stages.STAGE_KINDS, "save_big": f"{__name__}:failing_stage"})
    monkeypatch.setattr(stages, "write_pipeline_outputs", no_space)
    cfg = _cfg(tmp_path, tmp_path / "artifacts", tmp_path / "run")
    with caplog.at_level(logging.ERROR, logger="rlsys.stages.runner"), pytest.raises(StageFailed) as err:
        stages.run(cfg)
    assert "ValueError: the stage's own error" in str(err.value)
    assert "disk write" not in str(err.value), "a non-storage error gets no disk hint"
    assert any("pipeline_table.md" in r.getMessage() for r in caplog.records)

    # Without a stage failure the table's own error is the error.
    monkeypatch.setattr(stages, "STAGE_KINDS", {**stages.STAGE_KINDS, "save_big": f"{__name__}:save_big_tensor"})
    with pytest.raises(OSError, match="No space left"):
        stages.run(cfg)


def test_storage_errors_are_recognised_through_wrappers():
    try:
        try:
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534")
        except RuntimeError as inner:
            raise RuntimeError("learner.save_hf: raised RuntimeError") from inner
    except RuntimeError as outer:
        assert is_storage_error(outer)
    assert is_storage_error(OSError(errno.ENOSPC, "No space left on device"))
    assert not is_storage_error(OSError(errno.ENOENT, "No such file or directory"))
    assert not is_storage_error(ValueError(json.dumps({"a": 1})))

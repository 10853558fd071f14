"""Resume loads only what rlsys wrote (issue #30, item 5).

- a crafted `.pt` whose unpickling would run code is refused, naming the file, and nothing runs (both through
  the loader DeepSpeed is given and through a real DeepSpeed learner resuming a doctored checkpoint);
- a `latest` pointer naming anything but a finished `step<N>` directly inside the checkpoint dir is refused;
- a kill during a checkpoint write (a real SIGKILL of a writer process, and an exception mid-write) leaves the
  last finished checkpoint as the one resumed, and pruning keeps it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from rlsys.rl.state import (
    LATEST,
    CheckpointError,
    RLState,
    find_resume_dir,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
)

REPO = Path(__file__).resolve().parents[2]


class MarkerPayload:
    """Unpickling this writes `marker`: a stand-in for code a checkpoint from elsewhere could run."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('code ran')",))


def _crafted_pt(path: Path, marker: Path) -> Path:
    import torch

    torch.save({"module": {"w": torch.zeros(2)}, "optimizer_state_dict": MarkerPayload(marker)}, path)
    return path


def test_crafted_pt_is_refused_and_runs_nothing(tmp_path):
    import torch

    from rlsys.learner.checkpoint import UnsafeCheckpointError, WeightsOnlyCheckpointEngine

    marker = tmp_path / "marker"
    crafted = _crafted_pt(tmp_path / "mp_rank_00_model_states.pt", marker)
    # The file is live: the loader DeepSpeed ships with (weights_only=False) runs it.
    torch.load(crafted, weights_only=False)
    assert marker.read_text() == "code ran"
    marker.unlink()

    engine = WeightsOnlyCheckpointEngine.__new__(WeightsOnlyCheckpointEngine)
    with pytest.raises(UnsafeCheckpointError) as err:
        engine.load(str(crafted), map_location="cpu")
    assert str(crafted) in str(err.value) and "could run code" in str(err.value)
    assert "references `exec`" in str(err.value)
    assert not marker.exists(), "unpickling the crafted checkpoint ran its code"
    assert MarkerPayload not in torch.serialization.get_safe_globals()


def test_deepspeed_records_load_and_the_allow_list_is_scoped(tmp_path):
    import torch
    from deepspeed.runtime.fp16.loss_scaler import LossScaler
    from deepspeed.runtime.zero.config import ZeroStageEnum
    from deepspeed.utils.tensor_fragment import fragment_address

    from rlsys.learner.checkpoint import load_weights_only

    path = tmp_path / "optim_states.pt"
    torch.save({"loss_scaler": LossScaler(1.0), "zero_stage": ZeroStageEnum.gradients,
                "frag": fragment_address(numel=4, start=0), "state": {"exp_avg": torch.ones(4)}}, path)
    loaded = load_weights_only(str(path), map_location="cpu")
    assert loaded["zero_stage"] is ZeroStageEnum.gradients and loaded["frag"].numel == 4
    # torch registers some of its own types lazily, so compare ours, not the whole list.
    leaked = {LossScaler, ZeroStageEnum, fragment_address} & set(torch.serialization.get_safe_globals())
    assert not leaked, "the allow-list must not outlive the load"
    with pytest.raises(Exception, match="Unsupported global"):
        torch.load(path, weights_only=True)  # outside the loader DeepSpeed's types stay refused


# ----------------------------------------------------------------------------- latest pointer


class FakeLearners:
    """Writes a small file per checkpoint like the learner group would; `fail_after_write` simulates a kill."""

    def __init__(self, fail_after_write: bool = False) -> None:
        self.fail_after_write = fail_after_write
        self.loaded: list[str] = []

    def save_checkpoint(self, ckpt_dir: str, tag: str) -> str:
        out = Path(ckpt_dir) / tag
        out.mkdir(parents=True, exist_ok=True)
        (out / "mp_rank_00_model_states.pt").write_bytes(b"weights of " + tag.encode())
        if self.fail_after_write:
            raise OSError(28, "No space left on device (injected mid-write)")
        return str(out)

    def load_checkpoint(self, ckpt_dir: str, tag: str) -> int:
        self.loaded.append(tag)
        assert (Path(ckpt_dir) / tag / "mp_rank_00_model_states.pt").read_bytes().startswith(b"weights of step")
        return int(tag.removeprefix("step"))


def _saved(root: Path, steps: list[int], keep: int = 0) -> FakeLearners:
    learners = FakeLearners()
    for step in steps:
        save_checkpoint(root, RLState(step=step), learners, keep)
    return learners


@pytest.mark.parametrize("pointer", ["../../etc", "/etc", "step1/../../outside", "", "controller.json", "step1 step2"])
def test_latest_outside_the_checkpoint_dir_is_refused(tmp_path, pointer):
    root = tmp_path / "run" / "stages" / "rl" / "checkpoints"
    _saved(root, [1])
    (root / LATEST).write_text(pointer)
    learners = FakeLearners()
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(root, learners)
    assert str(root / LATEST) in str(err.value) and "refusing" in str(err.value)
    assert learners.loaded == [], "nothing may be loaded through a bad pointer"


def test_latest_through_a_symlink_is_refused(tmp_path):
    root = tmp_path / "ckpt"
    _saved(root, [1])
    elsewhere = tmp_path / "elsewhere" / "step7"
    shutil.copytree(root / "step1", elsewhere)
    (root / "step7").symlink_to(elsewhere, target_is_directory=True)
    (root / LATEST).write_text("step7")
    with pytest.raises(CheckpointError, match="not a checkpoint directory"):
        latest_checkpoint(root)
    (root / LATEST).unlink()
    (root / LATEST).symlink_to(tmp_path / "elsewhere" / "pointer")
    (tmp_path / "elsewhere" / "pointer").write_text("step1")
    with pytest.raises(CheckpointError, match="not a regular file"):
        latest_checkpoint(root)


def test_resume_key_names_the_bad_pointer_before_anything_is_built(tmp_path):
    run = tmp_path / "old-run"
    root = run / "stages" / "rl" / "checkpoints"
    _saved(root, [2])
    cfg = SimpleNamespace(resume=str(run), run_dir=str(tmp_path / "new-run"))
    assert find_resume_dir(cfg, "rl") == run / "stages" / "rl"
    (root / LATEST).write_text("../../../../etc")
    with pytest.raises(CheckpointError) as err:
        find_resume_dir(cfg, "rl")
    assert "config key 'resume'" in str(err.value) and str(root / LATEST) in str(err.value)
    (root / LATEST).write_text("step9")
    with pytest.raises(CheckpointError, match=r"step9.*missing or incomplete.*\['step2'\]"):
        find_resume_dir(cfg, "rl")


# ----------------------------------------------------------------------------- kill during a write

WRITER = """
import sys, time
from pathlib import Path
from rlsys.rl.state import RLState, save_checkpoint

class Learners:
    def __init__(self, hang): self.hang = hang
    def save_checkpoint(self, ckpt_dir, tag):
        out = Path(ckpt_dir) / tag
        out.mkdir(parents=True, exist_ok=True)
        (out / "mp_rank_00_model_states.pt").write_bytes(b"weights of " + tag.encode())
        if self.hang:
            print("writing", flush=True)
            time.sleep(600)
        return str(out)

root = Path(sys.argv[1])
for step in (1, 2):
    save_checkpoint(root, RLState(step=step), Learners(False), keep=1)
save_checkpoint(root, RLState(step=3), Learners(True), keep=1)
"""


def test_kill_during_a_checkpoint_write_resumes_the_last_complete_one(tmp_path):
    root = tmp_path / "checkpoints"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(root)], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        line = proc.stdout.readline()
        assert line.strip() == "writing", f"writer did not reach step 3 (rc {proc.poll()})"
        assert time.monotonic() < deadline
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    # Killed mid-write: step 3 is a partial directory, `latest` still names the finished step 2.
    assert sorted(p.name for p in root.iterdir() if p.is_dir()) == ["step2", "step3.partial"]
    assert (root / LATEST).read_text() == "step2"

    learners = FakeLearners()
    state = load_checkpoint(root, learners)
    assert (state.step, learners.loaded) == (2, ["step2"])

    # The resumed run fails mid-write again (an exception this time): step 2 stays, still resumable.
    with pytest.raises(OSError, match="injected mid-write"):
        save_checkpoint(root, RLState(step=3), FakeLearners(fail_after_write=True), keep=1)
    assert (root / LATEST).read_text() == "step2" and (root / "step2" / "controller.json").is_file()
    assert not (root / "step3").exists()
    assert load_checkpoint(root, FakeLearners()).step == 2

    # The next finished write replaces it; pruning then removes step 2 and the partial leftovers.
    save_checkpoint(root, RLState(step=3), FakeLearners(), keep=1)
    assert sorted(p.name for p in root.iterdir() if p.is_dir()) == ["step3"]
    assert load_checkpoint(root, FakeLearners()).step == 3


def test_pruning_keeps_the_latest_over_newer_partial_checkpoints(tmp_path):
    """A run resumed from step 2 while a later write had been cut off: the partial dirs (this rlsys's
    `.partial` and an older rlsys's `step<N>` without controller state) have higher step numbers than the
    checkpoint just written, and must not push it out of `keep`."""
    root = tmp_path / "checkpoints"
    _saved(root, [1, 2], keep=2)
    (root / "step5.partial").mkdir()
    (root / "step6").mkdir()
    (root / "step6" / "mp_rank_00_model_states.pt").write_bytes(b"half")
    save_checkpoint(root, RLState(step=3), FakeLearners(), keep=1)
    assert sorted(p.name for p in root.iterdir() if p.is_dir()) == ["step3"]
    assert json.loads((root / "step3" / "controller.json").read_text())["step"] == 3
    assert load_checkpoint(root, FakeLearners()).step == 3


def test_rewriting_a_step_after_a_kill_between_rename_and_pointer(tmp_path):
    """Killed after `step3` was renamed into place but before `latest` moved: resume from step 2 writes
    step 3 again over the stale one."""
    root = tmp_path / "checkpoints"
    _saved(root, [2, 3], keep=0)
    (root / LATEST).write_text("step2")
    save_checkpoint(root, RLState(step=3, wall_s=7.0), FakeLearners(), keep=0)
    assert sorted(p.name for p in root.iterdir() if p.is_dir()) == ["step2", "step3"]
    assert load_checkpoint(root, FakeLearners()).wall_s == 7.0


# ----------------------------------------------------------------------------- a real DeepSpeed learner


@pytest.mark.slow
def test_learner_refuses_a_doctored_checkpoint_and_loads_its_own(ray_session, tiny_model_dir, tmp_path):
    """ZeRO-2 (its optimizer-state file holds DeepSpeed's own records): the real checkpoint loads through the
    weights-only loader; the same checkpoint with a crafted optimizer-state file is refused, nothing runs."""
    from rlsys_testing import learner_config

    from rlsys.learner.batching import make_batch
    from rlsys.learner.group import LearnerGroup
    from rlsys.runtime.ray_utils import ActorFailure

    cfg = learner_config(zero_stage=2)
    batch = make_batch([[5 + i, 6 + i, 7 + i, 8 + i] for i in range(4)], [[0, 1, 1, 1]] * 4)
    root, doctored = tmp_path / "ckpt", tmp_path / "doctored"
    group = LearnerGroup(tiny_model_dir, cfg)
    try:
        group.train_step(batch, "sft", {"reduction": "square"})
        save_checkpoint(root, RLState(step=1), group, keep=1)
    finally:
        group.shutdown()
    assert sorted(p.name for p in root.iterdir() if p.is_dir()) == ["step1"]
    shutil.copytree(root, doctored)
    optim = [p for p in (doctored / "step1").iterdir() if p.name.endswith("optim_states.pt")]
    assert len(optim) == 1, sorted(p.name for p in (doctored / "step1").iterdir())
    marker = tmp_path / "marker"
    _crafted_pt(optim[0], marker)

    group = LearnerGroup(tiny_model_dir, cfg)
    try:
        with pytest.raises(ActorFailure) as err:
            load_checkpoint(doctored, group)
        assert "UnsafeCheckpointError" in str(err.value) and str(optim[0]) in str(err.value)
        assert not marker.exists(), "the learner ran code from the crafted checkpoint"
        assert load_checkpoint(root, group).step == 1
        assert group.load_checkpoint(str(root), "step1") == 1
    finally:
        group.shutdown()

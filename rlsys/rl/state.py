"""Controller state of an RL stage, its checkpoints, and finding a run to resume.

Everything that decides what happens next lives here (step, data cursor, policy version, hint
cache and statistics, filter totals), so a resumed run continues exactly where the checkpoint
left it. Sampling seeds are derived from (seed, step, problem, level), so no RNG state is needed.
"""

from __future__ import annotations

import json
import os
import pickle
import random
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hints.progressive import HintLevelCache, HintStats

LATEST = "latest"


@dataclass
class ProblemSampler:
    """Epoch-shuffled pass over the problems; the cursor (epoch, index) is the whole state."""

    n: int
    seed: int
    epoch: int = 0
    index: int = 0

    def _order(self) -> list[int]:
        order = list(range(self.n))
        random.Random(self.seed * 1_000_003 + self.epoch).shuffle(order)
        return order

    def take(self, k: int) -> list[int]:
        """The next `k` (at most n) distinct problems. A take that crosses into a new epoch skips the
        problems it already holds: the rollout requests of one round must not repeat a problem."""
        out: list[int] = []
        k = min(k, self.n)
        while len(out) < k:
            order = self._order()
            while len(out) < k and self.index < self.n:
                if order[self.index] not in out:
                    out.append(order[self.index])
                self.index += 1
            if self.index >= self.n:
                self.epoch += 1
                self.index = 0
        return out

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "index": self.index}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.epoch, self.index = int(state["epoch"]), int(state["index"])


@dataclass
class RLState:
    step: int = 0
    version: int = 0
    wall_s: float = 0.0
    metric_lines: int = 0
    sampler: dict[str, int] = field(default_factory=dict)
    hint_cache: HintLevelCache = field(default_factory=HintLevelCache)
    hint_stats: HintStats = field(default_factory=HintStats)
    totals: dict[str, float] = field(default_factory=dict)

    def add_totals(self, counts: dict[str, float]) -> None:
        for key, value in counts.items():
            self.totals[key] = self.totals.get(key, 0.0) + value

    def to_json(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "version": self.version,
            "wall_s": self.wall_s,
            "metric_lines": self.metric_lines,
            "sampler": self.sampler,
            "hint_cache": self.hint_cache.state_dict(),
            "hint_stats": self.hint_stats.state_dict(),
            "totals": self.totals,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RLState:
        state = cls(
            step=data["step"], version=data["version"], wall_s=data["wall_s"], metric_lines=data["metric_lines"],
            sampler=data["sampler"], totals=data["totals"],
        )
        state.hint_cache.load_state_dict(data["hint_cache"])
        state.hint_stats.load_state_dict(data["hint_stats"])
        return state


# A checkpoint is a directory `step<N>` directly inside the checkpoint root. It is written as
# `step<N>.partial` and renamed only once complete (learner files, then controller.json), so a kill during
# the write leaves a `.partial` directory that is never loaded and never kept in place of a complete one.
TAG_RE = re.compile(r"step(\d+)")
PARTIAL = ".partial"
CONTROLLER = "controller.json"
PENDING = "pending.pkl"


class CheckpointError(RuntimeError):
    """A checkpoint directory or its `latest` pointer is not one rlsys wrote; the message names the file."""


def _step_of(path: Path) -> int | None:
    match = TAG_RE.fullmatch(path.name)
    return int(match.group(1)) if match else None


def is_complete(path: Path) -> bool:
    """A finished checkpoint: a real directory `step<N>` holding its controller state (written last)."""
    return _step_of(path) is not None and path.is_dir() and not path.is_symlink() and (path / CONTROLLER).is_file()


def complete_checkpoints(ckpt_root: Path) -> list[Path]:
    """The finished checkpoints under `ckpt_root`, oldest step first."""
    found = [p for p in ckpt_root.iterdir() if is_complete(p)] if ckpt_root.is_dir() else []
    return sorted(found, key=lambda p: _step_of(p) or 0)


def latest_checkpoint(ckpt_root: Path) -> Path:
    """The checkpoint directory the `latest` pointer names, validated: a tag `step<N>` naming a finished,
    non-symlinked checkpoint directly inside `ckpt_root` (no `..`, no absolute path, no link out)."""
    pointer = ckpt_root / LATEST
    if pointer.is_symlink() or not pointer.is_file():
        raise CheckpointError(f"{pointer}: not a regular file; a checkpoint directory written by rlsys has one "
                              "naming its newest checkpoint")
    with pointer.open("rb") as fh:
        raw = fh.read(64)
    tag = raw.decode("utf-8", errors="replace").strip()
    path = ckpt_root / tag
    if TAG_RE.fullmatch(tag) is None or path.is_symlink() or path.resolve().parent != ckpt_root.resolve():
        raise CheckpointError(f"{pointer}: names {tag!r}, which is not a checkpoint directory 'step<N>' directly "
                              f"inside {ckpt_root}; refusing to resume from it (rlsys resumes only checkpoints "
                              "it wrote)")
    if not is_complete(path):
        raise CheckpointError(f"{pointer}: names {tag!r}, but {path} is missing or incomplete (no {CONTROLLER}); "
                              f"the finished checkpoints there are {[p.name for p in complete_checkpoints(ckpt_root)]}")
    return path


def save_checkpoint(ckpt_root: Path, state: RLState, learners: Any, keep: int, pending: list[Any] | None = None) -> Path:
    """Learner (weights, optimizer, scheduler, RNG) + controller state (+ the `pending` batches collected ahead
    of training, pickled, when rollouts run ahead: rlsys/rl/overlap.py) into `step<N>.partial`, renamed to
    `step<N>` once complete, then marked latest; then the oldest finished checkpoints beyond `keep`
    (0: keep all) and any partial ones are pruned. The checkpoint `latest` names is never pruned."""
    tag = f"step{state.step}"
    ckpt_root.mkdir(parents=True, exist_ok=True)
    partial, final = ckpt_root / f"{tag}{PARTIAL}", ckpt_root / tag
    shutil.rmtree(partial, ignore_errors=True)  # a write killed before this one
    learners.save_checkpoint(str(ckpt_root), partial.name)
    if pending:
        (partial / PENDING).write_bytes(pickle.dumps(pending))
    (partial / CONTROLLER).write_text(json.dumps(state.to_json(), indent=1))
    if final.exists() or final.is_symlink():
        # Left by an earlier attempt at this step (killed after the rename, before `latest` moved on).
        stale = ckpt_root / f"{tag}.stale{PARTIAL}"
        shutil.rmtree(stale, ignore_errors=True)
        os.replace(final, stale)
    os.replace(partial, final)
    # Written last: a checkpoint only counts once the pointer names it.
    (ckpt_root / f"{LATEST}.tmp").write_text(tag)
    os.replace(ckpt_root / f"{LATEST}.tmp", ckpt_root / LATEST)
    prune_checkpoints(ckpt_root, keep, current=final)
    return final


def prune_checkpoints(ckpt_root: Path, keep: int, current: Path) -> None:
    """Delete partial checkpoints and the finished ones older than the newest `keep` (0: keep all), always
    keeping `current` (the one `latest` names)."""
    complete = complete_checkpoints(ckpt_root)
    kept = set(complete[-keep:] if keep > 0 else complete) | {current}
    for path in ckpt_root.iterdir():
        if path in kept or path.is_symlink() or not path.is_dir():
            continue
        if path.name.endswith(PARTIAL) or path in complete or _step_of(path) is not None:
            # Finished but beyond `keep`, a `.partial` write, or a `step<N>` an older rlsys left unfinished.
            shutil.rmtree(path, ignore_errors=True)


def load_checkpoint(ckpt_root: Path, learners: Any) -> RLState:
    path = latest_checkpoint(ckpt_root)
    learners.load_checkpoint(str(ckpt_root), path.name)
    return RLState.from_json(json.loads((path / CONTROLLER).read_text()))


def load_pending(ckpt_root: Path) -> list[Any]:
    """The batches the latest checkpoint saved collected but not yet trained (none when there were none)."""
    path = latest_checkpoint(ckpt_root) / PENDING
    return pickle.loads(path.read_bytes()) if path.is_file() else []


def find_resume_dir(cfg: Any, stage_name: str) -> Path | None:
    """The stage directory to resume: `resume=<run dir>`, or with `resume=true` the newest run of
    this exp that has a checkpoint for the stage. Its `latest` pointer is validated here, before
    anything is built for it (CheckpointError naming the file)."""
    if cfg.resume in (False, None, "false", ""):
        return None
    if cfg.resume is True or str(cfg.resume).lower() == "true":
        runs_root = Path(cfg.run_dir).parent
        candidates = sorted(runs_root.glob(f"*/stages/{stage_name}/checkpoints/{LATEST}"), reverse=True)
        candidates = [c for c in candidates if not str(c).startswith(str(Path(cfg.run_dir)) + "/")]
        if not candidates:
            raise FileNotFoundError(f"resume=true: no checkpoint of stage '{stage_name}' under {runs_root}")
        path = candidates[0].parents[1]
    else:
        path = Path(str(cfg.resume)) / "stages" / stage_name
        if not (path / "checkpoints" / LATEST).exists():
            raise FileNotFoundError(f"config key 'resume' = {cfg.resume!r}: no checkpoint at {path}/checkpoints")
    try:
        latest_checkpoint(path / "checkpoints")
    except CheckpointError as exc:
        raise CheckpointError(f"config key 'resume' = {cfg.resume!r}: {exc}") from None
    return path


def truncate_lines(path: Path, keep: int) -> None:
    """Drop metric lines written after the checkpoint (they will be produced again)."""
    if not path.exists():
        return
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:keep]))

"""Controller state of an RL stage, its checkpoints, and finding a run to resume.

Everything that decides what happens next lives here (step, data cursor, policy version, hint
cache and statistics, filter totals), so a resumed run continues exactly where the checkpoint
left it. Sampling seeds are derived from (seed, step, problem, level), so no RNG state is needed.
"""

from __future__ import annotations

import json
import os
import random
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


def save_checkpoint(ckpt_root: Path, state: RLState, learners: Any, keep: int) -> Path:
    """Learner (weights, optimizer, scheduler, RNG) + controller state, then mark it latest."""
    tag = f"step{state.step}"
    learners.save_checkpoint(str(ckpt_root), tag)
    (ckpt_root / tag / "controller.json").write_text(json.dumps(state.to_json(), indent=1))
    # Written last: a checkpoint only counts once the pointer names it.
    (ckpt_root / f"{LATEST}.tmp").write_text(tag)
    os.replace(ckpt_root / f"{LATEST}.tmp", ckpt_root / LATEST)
    tags = sorted((p for p in ckpt_root.glob("step*") if p.is_dir()), key=lambda p: int(p.name[4:]))
    for old in tags[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return ckpt_root / tag


def load_checkpoint(ckpt_root: Path, learners: Any) -> RLState:
    tag = (ckpt_root / LATEST).read_text().strip()
    learners.load_checkpoint(str(ckpt_root), tag)
    return RLState.from_json(json.loads((ckpt_root / tag / "controller.json").read_text()))


def find_resume_dir(cfg: Any, stage_name: str) -> Path | None:
    """The stage directory to resume: `resume=<run dir>`, or with `resume=true` the newest run of
    this exp that has a checkpoint for the stage."""
    if cfg.resume in (False, None, "false", ""):
        return None
    if cfg.resume is True or str(cfg.resume).lower() == "true":
        runs_root = Path(cfg.run_dir).parent
        candidates = sorted(runs_root.glob(f"*/stages/{stage_name}/checkpoints/{LATEST}"), reverse=True)
        candidates = [c for c in candidates if not str(c).startswith(str(Path(cfg.run_dir)) + "/")]
        if not candidates:
            raise FileNotFoundError(f"resume=true: no checkpoint of stage '{stage_name}' under {runs_root}")
        return candidates[0].parents[1]
    path = Path(str(cfg.resume)) / "stages" / stage_name
    if not (path / "checkpoints" / LATEST).exists():
        raise FileNotFoundError(f"config key 'resume' = {cfg.resume!r}: no checkpoint at {path}/checkpoints")
    return path


def truncate_lines(path: Path, keep: int) -> None:
    """Drop metric lines written after the checkpoint (they will be produced again)."""
    if not path.exists():
        return
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:keep]))

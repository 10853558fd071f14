"""What a stage function gets and returns, shared by the runner and every stage kind."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlsys.data.prompt_length import RowOrigins

# Which user data files replace the suite split for each stage kind.
USER_FILES = {
    "pretrain": "pretrain_files", "sft": "sft_files", "mpo": "pref_files", "rm": "pref_files", "rl": "train_files",
    "rft_sample": "sft_files", "pass_filter": "train_files", "pref_sample": "train_files", "judge_data": "pref_files",
    "sft_pass_filter": "sft_files", "cold_start": "train_files",
}


class StageFailed(RuntimeError):
    """A pipeline stage raised; the message names the stage."""


@dataclass
class StageContext:
    """What a stage function gets: the run config, its own config, input model and output dir."""

    cfg: Any
    name: str
    stage: Any
    input_model: str
    out_dir: Path
    inputs: dict[str, str] = field(default_factory=dict)
    # Artifact directory of every stage this one depends on (data files live there).
    artifacts: dict[str, str] = field(default_factory=dict)
    # File and line of each row `stage_rows` loaded, for messages that name a row.
    row_origins: RowOrigins = field(default_factory=RowOrigins)
    # Counts from checking the stage's rows at load (`data/too_long_dropped`, ...), added to its summary.json.
    data_metrics: dict[str, float] = field(default_factory=dict)


@dataclass
class StageResult:
    name: str
    kind: str
    path: str
    model_dir: str
    reused: bool
    wall_s: float
    summary: dict[str, Any]

"""Metrics sink: jsonl in the run directory always, wandb when enabled, PNG curves at the end."""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any

from rlsys.tracking.plots import plot_metrics


def _clean(value: Any) -> Any:
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


class MetricsLogger:
    """Appends one json object per `log` call to `<run_dir>/metrics.jsonl`.

    The file is opened in append mode so a resumed run continues the same history.
    """

    def __init__(
        self,
        run_dir: str | Path,
        *,
        wandb_enabled: bool = False,
        wandb_project: str = "rlsys",
        wandb_mode: str = "offline",
        run_name: str | None = None,
        config: dict[str, Any] | None = None,
        filename: str = "metrics.jsonl",
    ) -> None:
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.path = self.run_dir / filename
        self._fh = self.path.open("a", buffering=1)
        self._wandb = None
        if wandb_enabled:
            import wandb

            os.environ.setdefault("WANDB_MODE", wandb_mode)
            self._wandb = wandb.init(
                project=wandb_project, name=run_name, dir=str(self.run_dir), config=config or {},
                reinit="finish_previous",
            )

    def log(self, metrics: dict[str, Any], step: int | None = None) -> None:
        record = {k: _clean(v) for k, v in metrics.items()}
        if step is not None:
            record["step"] = step
        record.setdefault("time", round(time.time(), 3))
        self._fh.write(json.dumps(record) + "\n")
        if self._wandb is not None:
            self._wandb.log({k: v for k, v in record.items() if isinstance(v, (int, float))}, step=step)

    def close(self, plots: bool = True) -> list[Path]:
        self._fh.close()
        if self._wandb is not None:
            self._wandb.finish()
            self._wandb = None
        if not plots:
            return []
        return plot_metrics(read_metrics(self.path), self.run_dir / "plots")


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    with Path(path).open() as fh:
        return [json.loads(line) for line in fh if line.strip()]

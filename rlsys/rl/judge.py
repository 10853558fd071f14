"""The judge's RL stage: GSPO on judge prompts, then the judge's own held-out accuracy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rlsys.eval.judge import evaluate_judge
from rlsys.rl.loop import run_rl
from rlsys.stages.context import StageContext


def run_judge_rl(ctx: StageContext) -> dict[str, Any]:
    """GSPO on the judge prompts (format + outcome rewards), then pairwise accuracy."""
    summary = run_rl(ctx)
    # The controller's math / IF evaluation of a judge is kept aside; the judge's own is what counts.
    summary["policy_eval"] = summary.pop("eval", {})
    summary["eval"] = evaluate_judge(ctx, str(Path(ctx.out_dir) / "model"))
    return summary

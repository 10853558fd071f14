"""IFEval's strict prompt-level score as a reward: 1 only when the answer meets every constraint.

Under the share of constraints met (`ifeval`), an answer that drops one constraint to meet another scores
the same, and alignment RL on the tiny model trades them: every align run loses two_responses,
all_lowercase and bullet_points while it gains others (docs/benchmarks/alignment.md). All-or-nothing gives
no credit for a trade. Lives outside rewards/ifeval/, whose code is part of the task suite's cache key.
"""

from __future__ import annotations

from rewards.ifeval import ifeval_reward


def ifeval_all_reward(prompt: str, completion: str, constraints: list[dict] | str, **fields: object) -> dict:
    """1.0 when every constraint is met, else 0.0; `share` and the `constraint/<type>` flags as `ifeval`."""
    out = ifeval_reward(prompt, completion, constraints, **fields)
    share = out.pop("score")
    return {"score": float(share == 1.0), "share": share, **out}

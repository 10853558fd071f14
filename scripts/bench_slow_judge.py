"""Wall time of one reward call against a slow judge endpoint (issue #30, item 4; docs/benchmarks/rewards.md).

A stdlib OpenAI-compatible stub on loopback answers /v1/chat/completions only after `--delay-s` seconds
(longer than the judge's per-request timeout). The judge reward scores one batch of `--samples` samples
through a RewardManager with `timeout_s=--reward-timeout-s` (reward.timeout_s), after a warm-up batch
against the same stub answering at once (so worker start-up and imports are not timed):

- `before`: the judge's former defaults (60 s per request, 4 attempts, 1 s backoff base), which the
  reward pool's start-up check now refuses (shown), run through the manager directly;
- `after`: the current defaults.

    .venv/bin/python scripts/bench_slow_judge.py --samples 8 --settings before after
"""

from __future__ import annotations

import argparse
import json
import time

from rlsys.reward.chat_stub import ChatStub
from rlsys.reward.manager import RewardManager
from rlsys.reward.plugins import RewardConfigError, load_reward_fns
from rlsys.reward.workers import check_reward_config

SETTINGS = {
    "before": {"timeout_s": 60.0, "max_retries": 3, "backoff_base_s": 1.0},
    "after": {},
}
FALLBACK = 0.25


def run(name: str, stub: ChatStub, samples: int, delay_s: float, reward_timeout_s: float) -> dict:
    entry = {"_target_": "judge", "kwargs": {"base_url": stub.url, "model": "judge", "fallback_score": FALLBACK,
                                             **SETTINGS[name]}}
    try:
        check_reward_config({"fns": [entry], "timeout_s": reward_timeout_s})
        startup = "accepted"
    except RewardConfigError as exc:
        startup = f"refused: {exc}"
    batch = [{"prompt": f"What is {i} + 1?", "completion": str(i + 1), "id": i} for i in range(samples)]
    with RewardManager(load_reward_fns([entry]), timeout_s=reward_timeout_s) as manager:
        stub.delay_s = 0.0
        manager.score_batch(batch[:1])  # warm-up: worker started, judge built
        stub.delay_s, stub.requests = delay_s, 0
        start = time.perf_counter()
        scores, extras, metrics = manager.score_batch(batch)
        wall_s = time.perf_counter() - start
    errors = {k.rpartition("/")[2]: v for k, v in metrics.items() if k.startswith("reward/errors/") and v}
    return {
        "settings": name, "kwargs": SETTINGS[name], "startup_check": startup, "samples": samples,
        "reward_timeout_s": reward_timeout_s, "server_delay_s": delay_s, "wall_s": round(wall_s, 2),
        "s_per_sample": round(wall_s / samples, 2), "fallback_scores": sum(s == FALLBACK for s in scores),
        "fallback_count": metrics.get("reward/judge/fallback", 0.0), "errors": errors,
        "scorer_restarts": metrics["reward/scorer_restarts"], "requests": stub.requests,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--delay-s", type=float, default=90.0, help="seconds the stub waits before answering")
    parser.add_argument("--reward-timeout-s", type=float, default=10.0, help="reward.timeout_s")
    parser.add_argument("--settings", nargs="+", choices=sorted(SETTINGS), default=["before", "after"])
    args = parser.parse_args()
    with ChatStub() as stub:
        for name in args.settings:
            print(json.dumps(run(name, stub, args.samples, args.delay_s, args.reward_timeout_s)), flush=True)


if __name__ == "__main__":
    main()

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
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from rlsys.reward.manager import RewardManager
from rlsys.reward.plugins import RewardConfigError, load_reward_fns
from rlsys.reward.workers import check_reward_config

SETTINGS = {
    "before": {"timeout_s": 60.0, "max_retries": 3, "backoff_base_s": 1.0},
    "after": {},
}
FALLBACK = 0.25


class SlowJudge(BaseHTTPRequestHandler):
    delay_s = 0.0
    requests = 0
    lock = threading.Lock()
    stop = threading.Event()

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        cls = type(self)
        with cls.lock:
            cls.requests += 1
        if cls.stop.wait(cls.delay_s):
            return
        payload = {"id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
                   "choices": [{"index": 0, "finish_reason": "stop",
                                "message": {"role": "assistant", "content": "Score: 8"}}]}
        data = json.dumps(payload).encode()
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except OSError:
            pass  # the judge gave up on this request

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def serve() -> Iterator[str]:
    SlowJudge.stop.clear()
    server = ThreadingHTTPServer(("127.0.0.1", 0), SlowJudge)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        SlowJudge.stop.set()
        server.shutdown()
        server.server_close()


def run(name: str, url: str, samples: int, delay_s: float, reward_timeout_s: float) -> dict:
    entry = {"_target_": "judge", "kwargs": {"base_url": url, "model": "judge", "fallback_score": FALLBACK,
                                             **SETTINGS[name]}}
    try:
        check_reward_config({"fns": [entry], "timeout_s": reward_timeout_s})
        startup = "accepted"
    except RewardConfigError as exc:
        startup = f"refused: {exc}"
    batch = [{"prompt": f"What is {i} + 1?", "completion": str(i + 1), "id": i} for i in range(samples)]
    with RewardManager(load_reward_fns([entry]), timeout_s=reward_timeout_s) as manager:
        SlowJudge.delay_s = 0.0
        manager.score_batch(batch[:1])  # warm-up: worker started, judge built
        SlowJudge.delay_s, SlowJudge.requests = delay_s, 0
        start = time.perf_counter()
        scores, extras, metrics = manager.score_batch(batch)
        wall_s = time.perf_counter() - start
    errors = {k.rpartition("/")[2]: v for k, v in metrics.items() if k.startswith("reward/errors/") and v}
    return {
        "settings": name, "kwargs": SETTINGS[name], "startup_check": startup, "samples": samples,
        "reward_timeout_s": reward_timeout_s, "server_delay_s": delay_s, "wall_s": round(wall_s, 2),
        "s_per_sample": round(wall_s / samples, 2), "fallback_scores": sum(s == FALLBACK for s in scores),
        "fallback_count": metrics.get("reward/judge/fallback", 0.0), "errors": errors,
        "scorer_restarts": metrics["reward/scorer_restarts"], "requests": SlowJudge.requests,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--delay-s", type=float, default=90.0, help="seconds the stub waits before answering")
    parser.add_argument("--reward-timeout-s", type=float, default=10.0, help="reward.timeout_s")
    parser.add_argument("--settings", nargs="+", choices=sorted(SETTINGS), default=["before", "after"])
    args = parser.parse_args()
    with serve() as url:
        for name in args.settings:
            print(json.dumps(run(name, url, args.samples, args.delay_s, args.reward_timeout_s)), flush=True)


if __name__ == "__main__":
    main()

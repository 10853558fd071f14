"""A judge endpoint that answers too late (issue #30, item 4), served for real on loopback.

The stub is an OpenAI-compatible /v1/chat/completions server (stdlib `http.server`) that waits longer than
the judge's per-request timeout before answering. Every sample must get the judge's fallback score, counted
in `reward/judge/fallback`, within the reward timeout: never the manager's `timeout` kill path, which
would restart the scoring process and re-send every sample alone.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator

import pytest

from rewards.judge import JudgeReward
from rewards.pairwise_judge import PairwiseJudgeReward
from rlsys.reward.chat_stub import ChatStub
from rlsys.reward.manager import RewardManager
from rlsys.reward.plugins import RewardConfigError
from rlsys.reward.workers import RewardWorkerPool, check_reward_config

REWARD_TIMEOUT_S = 3.0  # reward.timeout_s
SLOW_S = 5.0  # the stub's delay: past the judge's per-request timeout, and past the reward timeout too
FALLBACK = 0.25
# Budget per sample: 2 attempts x 0.5 s + 0.05 s backoff (+20% jitter) = 1.06 s <= REWARD_TIMEOUT_S.
JUDGE_KWARGS = {"model": "judge", "timeout_s": 0.5, "max_retries": 1, "backoff_base_s": 0.05,
                "fallback_score": FALLBACK, "max_concurrency": 3}


@pytest.fixture
def stub() -> Iterator[ChatStub]:
    with ChatStub() as server:
        yield server


def _samples(n: int) -> list[dict]:
    return [{"prompt": f"What is {i} + 1?", "completion": str(i + 1), "data_source": "chat", "id": i}
            for i in range(n)]


def _timed(stub: ChatStub, manager: RewardManager, samples: list[dict]) -> tuple[float, list[float], list[dict], dict]:
    stub.requests = 0
    start = time.monotonic()
    scores, extras, metrics = manager.score_batch(samples)
    return time.monotonic() - start, scores, extras, metrics


def test_slow_judge_scores_the_fallback_within_the_reward_timeout(stub: ChatStub) -> None:
    entry = {"_target_": "judge", "data_sources": ["chat"], "kwargs": {"base_url": stub.url, **JUDGE_KWARGS}}
    # The reward pool's start-up check accepts it: the judge's budget fits in reward.timeout_s.
    specs, _ = check_reward_config({"fns": [entry], "timeout_s": REWARD_TIMEOUT_S})
    assert JudgeReward.time_budget_s(entry["kwargs"]) <= REWARD_TIMEOUT_S
    with RewardManager(specs, timeout_s=REWARD_TIMEOUT_S, on_error_score=-1.0) as manager:
        # Control, with the stub answering at once (also starts the worker, outside the timed calls).
        _, scores, _, metrics = _timed(stub, manager, _samples(2))
        assert scores == [0.8, 0.8] and metrics["reward/judge/fallback"] == 0.0

        stub.delay_s = SLOW_S
        n = 6  # two waves of max_concurrency=3 samples
        elapsed, scores, extras, metrics = _timed(stub, manager, _samples(n))
        assert scores == [FALLBACK] * n
        assert [e["judge/fallback"] for e in extras] == [1.0] * n
        assert [e["judge/judge_error"] for e in extras] == [1.0] * n
        assert not any("judge/error" in e for e in extras)  # no sample took the manager's error path
        assert metrics["reward/judge/fallback"] == n  # a count, not a rate
        assert metrics["reward/errors/total"] == 0.0 and "reward/errors/timeout" not in metrics
        assert metrics["reward/scorer_restarts"] == 0.0
        assert stub.requests == n * 2  # max_retries + 1 attempts each, and no sample re-sent
        # The manager's budget for this batch is n * reward.timeout_s; the judge needs one budget per wave.
        assert elapsed < math.ceil(n / JUDGE_KWARGS["max_concurrency"]) * REWARD_TIMEOUT_S

        # A lone sample (a worker's share can be one sample) stays within reward.timeout_s itself.
        elapsed, scores, _, metrics = _timed(stub, manager, _samples(1))
        assert scores == [FALLBACK] and metrics["reward/judge/fallback"] == 1.0
        assert metrics["reward/scorer_restarts"] == 0.0 and stub.requests == 2
        assert elapsed < REWARD_TIMEOUT_S


def _judge_entry(**kwargs: object) -> dict:
    return {"_target_": "judge", "kwargs": {"base_url": "http://127.0.0.1:9/v1", "model": "m", **kwargs}}


def test_a_judge_budget_over_the_reward_timeout_fails_at_start_up_naming_both_keys() -> None:
    # The former defaults: 4 attempts of 60 s, 1 s backoff base.
    former = _judge_entry(timeout_s=60.0, max_retries=3, backoff_base_s=1.0)
    with pytest.raises(RewardConfigError) as err:
        RewardWorkerPool({"fns": [former], "timeout_s": 10.0})  # before any actor or Ray starts
    message = str(err.value)
    assert "'reward.fns[0].kwargs.timeout_s'" in message and "'reward.timeout_s' = 10 s" in message
    assert "248.4 s per sample" in message

    # The defaults fit the default reward.timeout_s (10 s), not a tighter one.
    check_reward_config({"fns": [_judge_entry()], "timeout_s": 10.0})
    with pytest.raises(RewardConfigError, match=r"'stages\.align\.reward_fns\[1\]\.kwargs\.timeout_s'.*"
                                                r"'reward\.timeout_s' = 5 s"):
        check_reward_config({"fns": [{"_target_": "math"}, _judge_entry()], "timeout_s": 5.0},
                            "stages.align.reward_fns")
    # Raising reward.timeout_s with the judge's timeout is the documented way out.
    check_reward_config({"fns": [former], "timeout_s": 250.0})


def test_pairwise_judge_against_an_endpoint_is_checked_and_a_served_checkpoint_is_not() -> None:
    endpoint = {"_target_": "pairwise_judge", "kwargs": {"base_url": "http://127.0.0.1:9/v1", "model": "m"}}
    with pytest.raises(RewardConfigError, match=r"'reward\.fns\[0\]\.kwargs\.timeout_s'.*'reward\.timeout_s'"):
        check_reward_config({"fns": [endpoint], "timeout_s": 10.0})
    endpoint["kwargs"].update(timeout_s=2.0, max_retries=1)  # 2 requests x (2 x 2 s + 0.6 s) = 9.2 s
    check_reward_config({"fns": [endpoint], "timeout_s": 10.0})
    assert PairwiseJudgeReward.time_budget_s({"model_path": "stage:judge_check_sft"}) is None


def test_pairwise_judge_falls_back_on_a_slow_endpoint(stub: ChatStub) -> None:
    stub.delay_s = SLOW_S
    judge = PairwiseJudgeReward(base_url=stub.url, model="judge", timeout_s=0.3, max_retries=0,
                                fallback_score=FALLBACK)
    start = time.monotonic()
    out = judge.score_batch(["q1", "q2"], ["a", "b"], [{"response": "r"}, {"response": "r"}])
    assert time.monotonic() - start < REWARD_TIMEOUT_S
    assert out == [{"score": FALLBACK, "no_reference": 0.0, "parse_error": 0.0, "judge_error": 1.0,
                    "fallback": 1.0}] * 2

"""The reward pool on real Ray actors: splitting and merging, failures inside rewards, dead workers."""

import os
import signal
import socket
import threading
import time
from pathlib import Path

import pytest

from rlsys.reward.manager import RewardError, RewardManager
from rlsys.reward.plugins import RewardConfigError, load_reward_fns
from rlsys.reward.workers import RewardWorkerPool, merge_metrics, split_indices

PLUGIN = "pool_rewards_plugin"


def _cfg(fns: list[dict], **overrides: object) -> dict:
    return {"fns": fns, "num_workers": 2, "cpus_per_worker": 0.5, "timeout_s": 0.5, "on_error_score": -1.0,
            "fail_on_error": False, "correct_threshold": 0.5, **overrides}


def _samples(completions: list[str], **fields: object) -> list[dict]:
    return [{"prompt": f"p{i}", "completion": c, "id": i, **fields} for i, c in enumerate(completions)]


# ------------------------------------------------------------------------------------ no Ray needed


def test_split_is_balanced_strided_and_covers_every_sample() -> None:
    assert split_indices(7, 3) == [[0, 3, 6], [1, 4], [2, 5]]
    assert split_indices(2, 4) == [[0], [1]]
    assert split_indices(0, 2) == []
    parts = split_indices(101, 2)
    assert sorted(i for p in parts for i in p) == list(range(101))
    assert [len(p) for p in parts] == [51, 50]


def test_merge_weights_means_by_the_samples_each_chunk_averaged() -> None:
    specs = load_reward_fns([{"_target_": f"{PLUGIN}.length_reward", "name": "len"},
                             {"_target_": f"{PLUGIN}.exact", "name": "acc", "data_sources": ["b"]}])
    chunk_a = ({"reward/mean": 1.0, "reward/len/mean": 1.0, "reward/acc/mean": 1.0, "reward/len/even": 1.0,
                "reward/errors/total": 1.0, "reward/errors/timeout": 1.0, "reward/len/time_s": 0.5,
                "reward/unmatched": 0.0, "reward/scorer_restarts": 1.0},
               [{"len": 1.0, "len/even": 1.0, "acc": 1.0}, {"len": 1.0, "len/error": "timeout"}])
    chunk_b = ({"reward/mean": 4.0, "reward/len/mean": 4.0, "reward/len/even": 0.0, "reward/errors/total": 2.0,
                "reward/errors/KeyError": 2.0, "reward/len/time_s": 0.2, "reward/unmatched": 1.0,
                "reward/scorer_restarts": 2.0},
               [{"len": 4.0, "len/even": 0.0}])
    merged = merge_metrics(specs, [chunk_a, chunk_b])
    assert merged["reward/mean"] == pytest.approx((2 * 1.0 + 1 * 4.0) / 3)
    assert merged["reward/len/mean"] == pytest.approx(2.0)
    assert merged["reward/acc/mean"] == 1.0  # only chunk a had samples of data source b
    assert merged["reward/len/even"] == pytest.approx(0.5)  # one finite value in each chunk
    assert merged["reward/errors/total"] == 3.0
    assert merged["reward/errors/timeout"] == 1.0 and merged["reward/errors/KeyError"] == 2.0
    assert merged["reward/len/time_s"] == 0.5
    assert merged["reward/unmatched"] == 1.0
    assert merged["reward/scorer_restarts"] == 3.0


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"_target_": "no_such_pkg_xyz.fn"}, r"reward\.fns\[1\] \('no_such_pkg_xyz\.fn'\): module 'no_such_pkg_xyz'"),
        ({"_target_": f"{PLUGIN}.missing"}, r"reward\.fns\[1\] .*has no attribute 'missing'"),
        ({"_target_": "rlsys.reward.workers.split_indices"}, r"reward\.fns\[1\] .*must accept \*\*kwargs"),
        ({"_target_": "judge", "kwargs": {"base_url": "http://127.0.0.1:9/v1", "model": "m",
                                          "api_key_env": "RLSYS_UNSET_JUDGE_KEY"}},
         r"reward\.fns\[1\] \('judge'\): environment variable 'RLSYS_UNSET_JUDGE_KEY' \(judge API key\) is not set"),
        ({"_target_": "judge", "kwargs": {"base_url": "u", "model": "m", "prompt_template": "{rubric}"}},
         r"reward\.fns\[1\] \('judge'\): rubric"),
        ({"_target_": f"{PLUGIN}.exact", "name": "correct"}, r"reward\.fns\[1\] .*'correct' is reserved"),
    ],
)
def test_misconfigured_entries_fail_at_pool_start_naming_the_entry(
    entry: dict, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RLSYS_UNSET_JUDGE_KEY", raising=False)
    start = time.monotonic()
    with pytest.raises(RewardConfigError, match=message):
        RewardWorkerPool(_cfg([{"_target_": f"{PLUGIN}.exact"}, entry]))
    assert time.monotonic() - start < 5  # caught in the driver, before any actor is started


def test_correct_by_naming_an_unknown_reward_fails_at_pool_start() -> None:
    rule = [{"data_source": "a", "term": "exactt"}]
    with pytest.raises(RewardConfigError, match=r"reward\.correct_by\[0\]: term 'exactt' is not a reward name"):
        RewardWorkerPool(_cfg([{"_target_": f"{PLUGIN}.exact"}], correct_by=rule))


# ------------------------------------------------------------------------------------ real Ray actors

@pytest.mark.slow
@pytest.mark.parametrize("num_workers", [1, 2])
def test_pool_preserves_order_and_merges_like_one_manager(ray_session, num_workers: int) -> None:
    fns = [
        {"_target_": f"{PLUGIN}.length_reward", "name": "len", "weight": 0.5},
        {"_target_": f"{PLUGIN}.exact", "name": "acc", "weight": 2.0, "data_sources": ["b"]},
        {"_target_": f"{PLUGIN}.prompt_echo", "name": "echo", "weight": 0.0},
    ]
    completions = ["x", "yy", "7", "zzzz", "7", "abcde", "8", "", "7", "qq", "rrr"]
    samples = [{"prompt": f"p{i}", "completion": c, "id": i, "answer": "7", "tier": i % 3,
                "data_source": "b" if i % 3 else "a"} for i, c in enumerate(completions)]
    # On source "b" the exact-match term alone decides pass/fail ("yy" there sums to 1.0 and fails).
    rule = [{"data_source": "b", "term": "acc", "threshold": 1.0}]
    with RewardWorkerPool(_cfg(fns, num_workers=num_workers, correct_threshold=1.0, correct_by=rule)) as pool:
        scores, extras, metrics = pool.score(samples)
    with RewardManager(load_reward_fns(fns), timeout_s=5) as manager:
        want_scores, want_extras, want_metrics = manager.score_batch(samples)

    assert scores == want_scores
    assert [e["echo"] for e in extras] == list(range(len(samples)))
    assert [e["echo/prompt"] for e in extras] == [f"p{i}" for i in range(len(samples))]
    assert [e["echo/tier"] for e in extras] == [float(i % 3) for i in range(len(samples))]
    passed = [e["acc"] >= 1.0 if x["data_source"] == "b" else s >= 1.0 for x, s, e in zip(samples, scores, extras)]
    assert [e["correct"] for e in extras] == passed
    assert extras[1]["correct"] is False and scores[1] == 1.0
    assert len({e["len/pid"] for e in extras}) == num_workers
    drop = ("correct", "len/pid")
    assert [{k: v for k, v in e.items() if k not in drop} for e in extras] == \
        [{k: v for k, v in e.items() if k not in drop} for e in want_extras]
    for key, value in want_metrics.items():
        if not key.endswith(("/time_s", "/pid")):
            assert metrics[key] == pytest.approx(value), key
    assert metrics["reward/correct"] == pytest.approx(sum(passed) / len(scores))
    assert metrics["reward/workers"] == num_workers
    assert metrics["reward/worker_restarts"] == 0.0


@pytest.mark.slow
def test_reward_that_raises_hangs_or_returns_nan_inside_the_pool(ray_session) -> None:
    completions = ["ok", "raise", "hang", "nan", "ok", "inf", "stubborn", "ok", "ok"]
    fns = [{"_target_": f"{PLUGIN}.misbehaving", "name": "bad"}, {"_target_": f"{PLUGIN}.length_reward", "name": "len"}]
    with RewardWorkerPool(_cfg(fns), kill_grace_s=0.5) as pool:
        start = time.monotonic()
        scores, extras, metrics = pool.score(_samples(completions))
        elapsed = time.monotonic() - start
        # The pool keeps working after the failures, on the same actors.
        again, _, again_metrics = pool.score(_samples(["ok", "fine"]))
    assert [e["bad"] for e in extras] == [1.0, -1.0, -1.0, -1.0, 1.0, -1.0, -1.0, 1.0, 1.0]
    assert [e.get("bad/error") for e in extras] == [
        None, "RuntimeError", "timeout", "nonfinite", None, "nonfinite", "timeout", None, None,
    ]
    # The other reward still scores every sample, including the ones the bad reward failed on.
    assert [e["len"] for e in extras] == [float(len(c)) for c in completions]
    assert scores == [e["bad"] + e["len"] for e in extras]
    assert metrics["reward/errors/RuntimeError"] == 1.0
    assert metrics["reward/errors/timeout"] == 2.0
    assert metrics["reward/errors/nonfinite"] == 2.0
    assert metrics["reward/errors/total"] == 5.0
    assert metrics["reward/bad/errors"] == 5.0 and metrics["reward/len/errors"] == 0.0
    assert metrics["reward/bad/mean"] == pytest.approx(-1 / 9)
    assert metrics["reward/worker_restarts"] == 0.0
    # "stubborn" ignored its alarm: its actor killed and restarted the scoring process, the actor stayed.
    assert metrics["reward/scorer_restarts"] == 1.0 and again_metrics["reward/scorer_restarts"] == 0.0
    assert elapsed < 20
    assert again == [3.0, 5.0] and again_metrics["reward/errors/total"] == 0.0


@pytest.mark.slow
def test_sigkilled_worker_mid_batch_is_replaced_and_its_samples_rerun(ray_session, tmp_path: Path) -> None:
    fns = [{"_target_": f"{PLUGIN}.slow_with_marker", "name": "slow",
            "kwargs": {"marker_dir": str(tmp_path), "delay_s": 0.3}}]
    completions = [c * (i + 1) for i, c in enumerate("abcdefgh")]
    with RewardWorkerPool(_cfg(fns, timeout_s=5.0)) as pool:
        victim, survivor = pool.worker_pids()
        result: dict = {}
        scorer = threading.Thread(target=lambda: result.update(out=pool.score(_samples(completions))))
        scorer.start()
        deadline = time.monotonic() + 30
        while not (tmp_path / str(victim)).exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert (tmp_path / str(victim)).exists(), "the worker never started scoring"
        os.kill(victim, signal.SIGKILL)
        scorer.join(timeout=90)
        assert not scorer.is_alive()
        new_pids = pool.worker_pids()
        scores, extras, metrics = result["out"]
    assert scores == [float(len(c)) for c in completions]
    assert metrics["reward/worker_restarts"] == 1.0
    assert metrics["reward/errors/total"] == 0.0
    assert pool.restarts == 1
    assert new_pids[1] == survivor and new_pids[0] != victim


@pytest.mark.slow
def test_worker_that_stops_answering_is_replaced_after_the_deadline(ray_session) -> None:
    fns = [{"_target_": f"{PLUGIN}.length_reward", "name": "len"}]
    with RewardWorkerPool(_cfg(fns), call_timeout_s=3.0) as pool:
        victim, _ = pool.worker_pids()
        os.kill(victim, signal.SIGSTOP)  # alive but frozen: no death notice ever comes
        start = time.monotonic()
        scores, _, metrics = pool.score(_samples(["a", "bb", "ccc", "dddd"]))
        elapsed = time.monotonic() - start
        assert victim not in pool.worker_pids()
    assert scores == [1.0, 2.0, 3.0, 4.0]
    assert metrics["reward/worker_restarts"] == 1.0
    assert 3.0 <= elapsed < 30


@pytest.mark.slow
def test_fail_on_error_stops_the_batch_naming_reward_and_sample(ray_session) -> None:
    fns = [{"_target_": f"{PLUGIN}.misbehaving", "name": "bad"}]
    with RewardWorkerPool(_cfg(fns, fail_on_error=True)) as pool:
        with pytest.raises(RewardError, match=r"reward 'bad' .* failed on sample 3: RuntimeError: reward bug"):
            pool.score(_samples(["ok", "ok", "ok", "raise"]))


@pytest.mark.slow
def test_key_variable_missing_in_the_workers_fails_at_start(ray_session, monkeypatch: pytest.MonkeyPatch) -> None:
    # Set only in the driver, after Ray started: the workers do not inherit it, so the judge could never
    # authenticate there. The actors re-check their entries and the pool refuses to start.
    monkeypatch.setenv("RLSYS_DRIVER_ONLY_KEY", "sk-driver-only-3d9e")
    # Its timeouts fit the test's reward.timeout_s, so the start-up budget check passes and the key is what fails.
    entry = {"_target_": "judge", "kwargs": {"base_url": "http://127.0.0.1:9/v1", "model": "m", "timeout_s": 0.1,
                                             "max_retries": 0, "api_key_env": "RLSYS_DRIVER_ONLY_KEY"}}
    with pytest.raises(RewardConfigError, match=r"reward\.fns\[0\] \('rewards\.judge\.JudgeReward'\): "
                                                r"environment variable 'RLSYS_DRIVER_ONLY_KEY'"):
        RewardWorkerPool(_cfg([entry], num_workers=1))


def _dead_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_judge_against_a_dead_port_falls_back_within_bounded_time(ray_session) -> None:
    entry = {"_target_": "judge", "data_sources": ["chat"], "kwargs": {
        "base_url": f"http://127.0.0.1:{_dead_port()}/v1", "model": "judge", "max_retries": 2,
        "backoff_base_s": 0.05, "timeout_s": 1.0, "fallback_score": 0.25}}
    with RewardWorkerPool(_cfg([entry], timeout_s=5.0)) as pool:
        start = time.monotonic()
        scores, extras, metrics = pool.score(_samples(["a", "b", "c", "d"], data_source="chat", answer="a"))
        elapsed = time.monotonic() - start
    assert scores == [0.25] * 4
    assert [e["judge/judge_retries"] for e in extras] == [2.0] * 4
    assert metrics["reward/judge/judge_error"] == 1.0
    assert metrics["reward/judge/judge_parse_error"] == 0.0
    assert metrics["reward/errors/total"] == 0.0  # a fallback is the judge's answer, not a reward failure
    assert metrics["reward/judge/fallback"] == 4.0  # a count, summed over the workers
    assert metrics["reward/correct"] == 0.0
    assert elapsed < 15

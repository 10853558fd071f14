"""The elastic rollout pool on real Ray + vLLM: bad requests, weight versions, scaling, SIGKILL.

The tests share one pool (conftest `pool`) and run in file order; each leaves it at one actor.
"""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from pathlib import Path

import pytest
import ray
import torch

from rlsys.rollout.types import GroupRequest, GroupResult
from rlsys.rollout.weight_sync import fetch_state_dict, iter_buckets, publish_version

pytestmark = pytest.mark.slow

PROMPT = [5, 17, 33, 48, 9, 21]


def req(rid: str, **kw) -> GroupRequest:
    kw.setdefault("prompt_token_ids", PROMPT)
    kw.setdefault("n", 2)
    kw.setdefault("max_tokens", 24)
    kw.setdefault("seed", 1)
    return GroupRequest(rid, **kw)


def batch(prefix: str, count: int, **kw) -> list[GroupRequest]:
    return [req(f"{prefix}-{i}", prompt_token_ids=[5 + i % 40, 17, 33, 48 + i % 7], seed=i, **kw) for i in range(count)]


def model_state(model_dir: str) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(Path(model_dir) / "model.safetensors"))


def test_bad_requests_get_their_error_and_the_actor_keeps_serving(pool):
    deaths = pool.metrics()["rollout_pool/deaths"]
    bad = {
        "empty": req("bad-empty", prompt_token_ids=[]),
        "long": req("bad-long", prompt_token_ids=[7] * 300),
        "temp": req("bad-temp", temperature=-1.0),
        "top_p": req("bad-top-p", top_p=0.0),
        "n": req("bad-n", n=0),
        "max_tokens": req("bad-max-tokens", max_tokens=0),
        "token_id": req("bad-token-id", prompt_token_ids=[5, 10**7]),
        "both": req("bad-both", messages=[{"role": "user", "content": "hi"}]),
    }
    good = [req("good-a"), req("good-b", messages=[{"role": "user", "content": "what is 2 plus 3?"}], prompt_token_ids=None)]
    results = pool.generate([*bad.values(), *good], timeout=120)
    by_id = {r.request_id: r for r in results}
    expected = {"empty": "empty prompt", "long": "max_model_len", "temp": "temperature", "top_p": "top_p",
                "n": "n must be", "max_tokens": "max_tokens", "token_id": "out of range", "both": "not both"}
    for key, fragment in expected.items():
        res = by_id[bad[key].request_id]
        assert not res.ok and not res.samples, key
        assert fragment in res.error, (key, res.error)
    for g in good:
        res = by_id[g.request_id]
        assert res.ok, res.error
        assert len(res.samples) == 2 and all(len(s.token_ids) == len(s.logprobs) > 0 for s in res.samples)
        assert all(lp <= 0.0 for s in res.samples for lp in s.logprobs)
    # Same actor, still serving, nothing restarted.
    assert pool.generate([req("after-bad")], timeout=60)[0].ok
    assert pool.metrics()["rollout_pool/deaths"] == deaths
    with pytest.raises(ValueError, match="repeated"):
        pool.submit([req("dup"), req("dup")])


def test_buckets_are_bounded_and_round_trip(ray_session, tiny_model_dir):
    state = model_state(tiny_model_dir)
    limit = 64 << 10
    buckets = list(iter_buckets(state.items(), limit))
    for b in buckets:
        # A bucket only exceeds the limit when one tensor alone does.
        assert len(b) == 1 or sum(t.numel() * t.element_size() for _, t in b) <= limit
    assert [n for b in buckets for n, _ in b] == list(state)
    published = publish_version(state.items(), limit, version=3)
    assert published.version == 3 and published.num_tensors == len(state) and len(published) == len(buckets)
    back = fetch_state_dict(published.refs)
    assert all(torch.equal(back[k], v) for k, v in state.items())


def _tokens(res: GroupResult) -> list[list[int]]:
    return [s.token_ids for s in res.samples]


def test_generations_change_after_a_weight_change_and_come_back(pool, tiny_model_dir):
    state = model_state(tiny_model_dir)
    probe = dict(temperature=1.0, n=3, max_tokens=32, seed=123)
    # Start from the checkpoint's weights whatever earlier tests loaded.
    pool.sync_weights(publish_version(state.items(), 256 << 10, pool.version + 1))
    before = pool.generate([req("probe-0", **probe)], timeout=60)[0]
    assert before.ok and before.policy_version == pool.version

    gen = torch.Generator().manual_seed(0)
    noisy = {k: v + 0.5 * v.std() * torch.randn(v.shape, generator=gen) if v.dim() == 2 else v for k, v in state.items()}
    v1 = pool.version + 1
    loads = pool.sync_weights(publish_version(noisy.items(), 256 << 10, v1))
    assert len(loads) == pool.size() and all(s > 0 for s in loads.values())
    changed = pool.generate([req("probe-1", **probe)], timeout=60)[0]
    assert changed.policy_version == v1
    diff_tokens = _tokens(changed) != _tokens(before)
    diff_lp = any(abs(a - b) > 1e-3 for x, y in zip(changed.samples, before.samples)
                  for a, b in zip(x.logprobs, y.logprobs))
    assert diff_tokens or diff_lp

    # Loading the original weights back reproduces the first generation: the reload is exact.
    pool.sync_weights(publish_version(state.items(), 256 << 10, v1 + 1))
    again = pool.generate([req("probe-2", **probe)], timeout=60)[0]
    assert again.policy_version == v1 + 1
    assert _tokens(again) == _tokens(before)
    for x, y in zip(again.samples, before.samples):
        assert max(abs(a - b) for a, b in zip(x.logprobs, y.logprobs)) < 1e-4
    with pytest.raises(ValueError, match="older"):
        pool.sync_weights([], version=0)


def _collect(pool, ids: set[str], on_result=None, timeout: float = 180) -> list[GroupResult]:
    got = []
    for res in pool.iter_results(timeout=timeout):
        got.append(res)
        if on_result is not None:
            on_result(res, got)
    assert Counter(r.request_id for r in got) == Counter(ids), "every request answered exactly once"
    return got


def test_scale_1_to_2_to_1_while_requests_stream(pool):
    assert pool.size() == 1
    before = pool.metrics()
    first = pool.actors()[0]["name"]
    submitted: set[str] = set()
    phase = {"grown": False, "shrunk": False}
    removed: list = []

    def top_up() -> None:
        # Keep requests streaming until the new actor has joined and served a few groups.
        while not phase["shrunk"] and pool.pending() < 12 and len(submitted) < 600:
            wave = batch(f"scale{len(submitted)}", 4, max_tokens=48)
            pool.submit(wave)
            submitted.update(r.request_id for r in wave)

    def on_result(res: GroupResult, got: list[GroupResult]) -> None:
        if not phase["grown"] and len(got) >= 2:
            pool.scale_to(2)
            phase["grown"] = True
        served_by_new = [r for r in got if r.actor != first]
        if phase["grown"] and not phase["shrunk"] and len(served_by_new) >= 3:
            names = {a["name"]: a for a in pool.actors()}
            pool.scale_to(1)
            left = {a["name"] for a in pool.actors() if a["state"] != "draining"}
            removed.extend(a for name, a in names.items() if name not in left)
            phase["shrunk"] = True
        top_up()

    top_up()
    got = _collect(pool, submitted, on_result)
    assert phase == {"grown": True, "shrunk": True}
    assert all(r.ok for r in got)
    served = Counter(r.actor for r in got)
    assert len(served) == 2, served
    # The actor that joined after the syncs of the previous test loaded the latest version first.
    assert {r.policy_version for r in got} == {pool.version}
    after = pool.metrics()
    # A removed actor drains: nothing of it was re-run, nothing died.
    assert after["rollout_pool/redispatches"] == before["rollout_pool/redispatches"]
    assert after["rollout_pool/deaths"] == before["rollout_pool/deaths"]
    assert pool.size() == 1 and len(removed) == 1
    assert len(pool.actors()) == 1, "the drained actor is gone once its groups are delivered"
    with pytest.raises(ray.exceptions.RayActorError):
        ray.get(removed[0]["handle"].ping.remote(), timeout=60)


def test_sigkill_mid_generation_loses_and_duplicates_nothing(pool):
    pool.scale_to(2)
    pool.wait_ready(180)
    before = pool.metrics()
    victim = min(pool.actors(), key=lambda a: a["finished"])
    requests = batch("kill", 24, n=4, max_tokens=96)
    pool.submit(requests)
    killed: dict = {}

    def on_result(res: GroupResult, got: list[GroupResult]) -> None:
        rows = {a["name"]: a for a in pool.actors()}
        if not killed and rows.get(victim["name"], {}).get("outstanding", 0) > 0:
            os.kill(victim["pid"], signal.SIGKILL)
            killed.update(rows[victim["name"]])

    got = _collect(pool, {r.request_id for r in requests}, on_result)
    assert killed and killed["outstanding"] > 0
    assert all(r.ok for r in got), [r.error for r in got if not r.ok]
    assert all(len(r.samples) == 4 for r in got)
    after = pool.metrics()
    assert after["rollout_pool/deaths"] == before["rollout_pool/deaths"] + 1
    assert after["rollout_pool/redispatches"] - before["rollout_pool/redispatches"] >= 1
    assert after["rollout_pool/restarts"] == before["rollout_pool/restarts"] + 1
    # The replacement starts on its own, loads the current weights, then takes work.
    pool.wait_ready(180)
    rows = pool.actors()
    assert len(rows) == 2 and victim["name"] not in {a["name"] for a in rows}
    assert all(a["state"] == "ready" and a["version"] == pool.version for a in rows)
    pool.scale_to(1)
    deadline = time.monotonic() + 60
    while len(pool.actors()) > 1 and time.monotonic() < deadline:
        pool.generate([req(f"settle-{time.monotonic()}")], timeout=60)
    assert pool.size() == 1

"""The judge reward against a real vLLM OpenAI-compatible server on loopback serving a random tiny model.

The server requires an API key (VLLM_API_KEY), so a request that gets through proves the judge sent
the key it read from the configured environment variable; a random model's reply is junk, so every
verdict falls back and counts as a parse error.
"""

import os
import pickle
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from rewards.judge import JudgeReward, parse_judge_score
from rlsys.model.tiny import build_tiny_model
from rlsys.reward.manager import RewardManager
from rlsys.reward.plugins import load_reward_fns

pytestmark = pytest.mark.slow

SECRET = "sk-rlsys-judge-5c1f0e27"
KEY_ENV = "RLSYS_TEST_JUDGE_KEY"
STARTUP_TIMEOUT_S = 150
TEXTS = [f"What is {a} + {b}? Score: {a % 10}/10. The answer is {a + b}." for a in range(30) for b in range(30)]


class TinyArch:
    vocab_size = 512
    hidden_size = 64
    intermediate_size = 128
    num_layers = 2
    num_heads = 2
    num_kv_heads = 1
    head_dim = 32
    max_position_embeddings = 512
    rope_theta = 10000.0


@dataclass
class Server:
    base_url: str
    log: Path

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def count(self, needle: str) -> int:
        return self.log_text().count(needle)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_until_up(proc: subprocess.Popen, url: str, log: Path) -> None:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {SECRET}"})
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"vLLM server exited with {proc.returncode}:\n{log.read_text(errors='replace')[-3000:]}")
        try:
            with urllib.request.urlopen(request, timeout=2) as reply:
                if reply.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.5)
    pytest.fail(f"vLLM server not up within {STARTUP_TIMEOUT_S} s:\n{log.read_text(errors='replace')[-3000:]}")


@pytest.fixture(scope="module")
def judge_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("judge_server")
    model_dir = build_tiny_model(root / "model", TinyArch, TEXTS, seed=0)
    port = _free_port()
    log = root / "server.log"
    cmd = [
        sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model_dir),
        "--served-model-name", "judge", "--host", "127.0.0.1", "--port", str(port), "--dtype", "float32",
        "--max-model-len", "512", "--kv-cache-memory-bytes", str(256 << 20), "--enforce-eager",
    ]
    # The key goes to the server through its environment, so it is not on a command line either.
    env = {**os.environ, "VLLM_API_KEY": SECRET, "PYTHONUNBUFFERED": "1"}
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        _wait_until_up(proc, f"http://127.0.0.1:{port}/v1/models", log)
        yield Server(f"http://127.0.0.1:{port}/v1", log)
    finally:
        # Its own session holds the server and its engine process; stop both.
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def _judge(server: Server, **kwargs: object) -> JudgeReward:
    options = {"base_url": server.base_url, "model": "judge", "api_key_env": KEY_ENV, "fallback_score": 0.125,
               "max_tokens": 24, "max_retries": 1, "backoff_base_s": 0.05, "timeout_s": 30.0, **kwargs}
    return JudgeReward(**options)


def _assert_secret_absent(*things: object) -> None:
    for thing in things:
        text = thing.decode("latin-1") if isinstance(thing, bytes) else str(thing)
        assert SECRET not in text


def test_judge_request_parse_and_junk_fallback(
    judge_server: Server, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    import openai

    monkeypatch.setenv(KEY_ENV, SECRET)
    caplog.set_level("DEBUG")
    ok_before = judge_server.count('"POST /v1/chat/completions HTTP/1.1" 200')
    judge = _judge(judge_server, max_concurrency=2)
    out = judge("What is 2 + 2?", "<think>2 and 2</think>The answer is 4.", answer="4")

    # What the server actually answered (greedy, so the same reply): junk that no rule can read.
    content = judge._render("What is 2 + 2?", "The answer is 4.", {"answer": "4"})
    client = openai.OpenAI(base_url=judge_server.base_url, api_key=SECRET, max_retries=0)
    reply = client.chat.completions.create(model="judge", messages=[{"role": "user", "content": content}],
                                           temperature=0.0, max_tokens=24).choices[0].message.content
    assert reply and parse_judge_score(reply) is None
    assert out == {"score": 0.125, "judge_error": 0.0, "judge_parse_error": 1.0, "judge_retries": 0.0,
                   "fallback": 1.0}

    prompts = [f"What is {a} + 3?" for a in range(4)]
    batch = judge.score_batch(prompts, [f"It is {a + 3}." for a in range(4)], [{"answer": str(a + 3)} for a in range(4)])
    assert [b["judge_parse_error"] for b in batch] == [1.0] * 4
    assert [b["judge_error"] for b in batch] == [0.0] * 4
    assert [b["score"] for b in batch] == [0.125] * 4
    # Every judge request reached the model and was accepted with the key.
    assert judge_server.count('"POST /v1/chat/completions HTTP/1.1" 200') - ok_before == 1 + 1 + 4

    captured = capfd.readouterr()
    _assert_secret_absent(out, batch, repr(judge), pickle.dumps(judge), caplog.text, captured.out, captured.err,
                          judge_server.log_text())


def test_wrong_key_is_rejected_and_not_retried(judge_server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, "sk-not-the-right-key")
    rejected_before = judge_server.count('"POST /v1/chat/completions HTTP/1.1" 401')
    start = time.monotonic()
    out = _judge(judge_server, max_retries=3)("q", "a")
    assert time.monotonic() - start < 10
    assert out == {"score": 0.125, "judge_error": 1.0, "judge_parse_error": 0.0, "judge_retries": 0.0,
                   "fallback": 1.0}
    assert judge_server.count('"POST /v1/chat/completions HTTP/1.1" 401') - rejected_before == 1


def test_judge_config_entry_in_the_reward_worker_process(
    judge_server: Server, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv(KEY_ENV, SECRET)
    entry = {"_target_": "judge", "data_sources": ["chat"], "kwargs": {
        "base_url": judge_server.base_url, "model": "judge", "api_key_env": KEY_ENV, "fallback_score": 0.25,
        "max_tokens": 16, "max_concurrency": 3, "timeout_s": 30.0}}
    samples = [{"prompt": f"Say {w}.", "completion": w, "data_source": "chat", "id": i}
               for i, w in enumerate(["yes", "no", "maybe", "ok", "fine"])]
    with RewardManager(load_reward_fns([entry]), timeout_s=30.0) as manager:
        scores, extras, metrics = manager.score_batch(samples)
    assert scores == [0.25] * 5
    assert metrics["reward/judge/judge_parse_error"] == 1.0
    assert metrics["reward/judge/judge_error"] == 0.0
    assert metrics["reward/errors/total"] == 0.0
    _assert_secret_absent(extras, metrics, caplog.text)

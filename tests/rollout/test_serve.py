"""`python -m rlsys.serve MODEL_DIR` serves a checkpoint that an `openai` client can query."""

from __future__ import annotations

import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from rlsys.serve import ServerError, serve_model

pytestmark = pytest.mark.slow


def _read_lines(stream, out: queue.Queue) -> None:
    for line in iter(stream.readline, ""):
        out.put(line)


def _port_open(url: str) -> bool:
    host, port = re.match(r"http://([^:/]+):(\d+)", url).groups()
    with socket.socket() as sock:
        sock.settimeout(1.0)
        return sock.connect_ex((host, int(port))) == 0


def test_serve_command_answers_an_openai_chat_request(tiny_model_dir):
    from openai import OpenAI

    proc = subprocess.Popen(
        [sys.executable, "-m", "rlsys.serve", tiny_model_dir, "--max-model-len", "256", "--model-name", "tiny"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=_read_lines, args=(proc.stdout, lines), daemon=True).start()
    url = None
    seen = []
    try:
        deadline = time.monotonic() + 240
        while url is None and time.monotonic() < deadline and proc.poll() is None:
            try:
                line = lines.get(timeout=1.0)
            except queue.Empty:
                continue
            seen.append(line)
            if m := re.search(r"ready at (http://127\.0\.0\.1:\d+/v1)", line):
                url = m.group(1)
        assert url, "server did not report ready:\n" + "".join(seen[-20:])

        client = OpenAI(base_url=url, api_key="EMPTY", max_retries=0, timeout=60)
        assert [m.id for m in client.models.list().data] == ["tiny"]
        reply = client.chat.completions.create(
            model="tiny", messages=[{"role": "user", "content": "what is 2 plus 3?"}],
            n=2, max_tokens=12, temperature=1.0, seed=3, logprobs=True, top_logprobs=2,
        )
        assert len(reply.choices) == 2
        for choice in reply.choices:
            assert choice.finish_reason in ("stop", "length")
            tokens = choice.logprobs.content
            assert tokens and all(t.logprob <= 0.0 and len(t.top_logprobs) == 2 for t in tokens)
        assert reply.usage.completion_tokens == sum(len(c.logprobs.content) for c in reply.choices)
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=60)
    assert code == 0
    # The command stops the server it started.
    assert not _port_open(url)


def test_a_server_that_cannot_start_fails_fast_with_its_log(tmp_path, tiny_model_dir):
    with pytest.raises(FileNotFoundError, match="config.json"):
        serve_model(tmp_path / "nothing-here")
    started = time.monotonic()
    with pytest.raises(ServerError, match="exited with code") as info:
        serve_model(tiny_model_dir, extra_args=["--no-such-vllm-flag"], ready_timeout_s=120)
    assert time.monotonic() - started < 120
    assert "last log lines" in str(info.value) and "no-such-vllm-flag" in str(info.value)

"""Helpers shared by the integration tests (importable: tests/ is on sys.path)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from rlsys.config.schema import learner_settings


class TinyArch:
    """A smaller-than-default Qwen3 so integration tests spend seconds, not minutes."""

    vocab_size = 400
    hidden_size = 64
    intermediate_size = 128
    num_layers = 2
    num_heads = 2
    num_kv_heads = 1
    head_dim = 32
    max_position_embeddings = 512
    rope_theta = 10000.0


def tiny_texts() -> list[str]:
    return [f"What is {a} + {b}? The answer is {a + b}." for a in range(30) for b in range(30)] + [
        "Write a short note about the number 7. Here is my answer: 7 is odd."
    ] * 20


def learner_config(**overrides) -> dict:
    """A learner section as the Hydra config would give it (plain dict), for direct group tests."""
    optim = {"lr": 1e-3, "schedule": "cosine", "total_steps": 20, **overrides.pop("optim", {})}
    settings = {"cpus_per_actor": 0.5, "micro_batch_size": 4, "num_threads": 1, **overrides}
    return learner_settings(optim, **settings)


def draw_image(path: Path, size: tuple[int, int] = (64, 64), colour: str = "red",
               shape: str | None = "ellipse") -> str:
    """Save a white picture with one filled `shape` ("ellipse" or "rectangle") 4 px in from its edges, or, with
    shape=None, a picture all of `colour`; return its path."""
    from PIL import Image, ImageDraw

    if shape is None:
        Image.new("RGB", size, colour).save(path)
        return str(path)
    if shape not in ("ellipse", "rectangle"):
        raise ValueError(f"draw_image: shape must be 'ellipse', 'rectangle' or None, got {shape!r}")
    image = Image.new("RGB", size, "white")
    getattr(ImageDraw.Draw(image), shape)([4, 4, size[0] - 4, size[1] - 4], fill=colour)
    image.save(path)
    return str(path)


# A small suite and model keep the test quick; the code path is the default one.
SMALL = [
    "data.suite.n_train_per_tier=60", "data.suite.n_eval_per_tier=10", "data.suite.n_if_train=20",
    "data.suite.n_if_eval=5", "data.suite.n_pref_train=20", "data.suite.n_pref_eval=5",
    "data.suite.n_pretrain_docs=100", "data.suite.n_format_train=8", "data.suite.n_format_eval=4",
    "model.tiny.hidden_size=64", "model.tiny.num_layers=2", "model.tiny.head_dim=32", "model.tiny.vocab_size=400",
]


# The stages a short text run starts from, at the smallest settings that still train (3 steps each).
BASE_STAGES = [f"stages.{s}.{k}" for s in ("pretrain", "sft", "sft_more")
               for k in ("max_steps=3", "evaluate=false", "batch_size=8")]
# The short runs' held-out evaluation (part of every stage's key, so the base artifacts are built with it).
SHORT_EVAL = ["eval.max_math=6", "eval.max_ifeval=2", "eval.max_tokens=16", "eval.max_pairs=4"]


def build_base_artifacts(dest: Path) -> Path:
    """The small suite, the tiny model and pretrain -> sft -> sft_more (SMALL, BASE_STAGES, SHORT_EVAL) built
    under `dest`; returns its artifacts directory."""
    run_rlsys(["+exp=gspo_hints", "pipeline=[sft_more]", f"artifacts_dir={dest / 'artifacts'}",
               f"hydra.run.dir={dest / 'run'}", *SMALL, *BASE_STAGES, *SHORT_EVAL])
    return dest / "artifacts"


def seed_artifacts(base: Path, dest: Path) -> Path:
    """Copy the base artifacts into a run's `artifacts_dir`. Artifacts are found by their stage key, so a run
    with the same data, model and base-stage settings reuses them and any other setting builds its own, as
    in a fresh directory: the seed saves time and changes no result."""
    shutil.copytree(base, dest, dirs_exist_ok=True, ignore=shutil.ignore_patterns("*.lock"))
    return dest


class RecordingPool:
    """Stands in for the rollout pool: keeps the requests it is given and answers each with no samples."""

    def __init__(self) -> None:
        self.requests: list = []

    def generate(self, requests: list) -> list:
        from rlsys.rollout.types import GroupResult

        self.requests += requests
        return [GroupResult(r.request_id, r.prompt_token_ids, [], 0) for r in requests]



class ChatServer:
    """An OpenAI-compatible `/v1/chat/completions` endpoint on loopback answering each request's last user
    message with `reply(message)` (stdlib only; the real openai client talks to it). `seen` keeps the
    messages in arrival order. Use as a context manager; it yields the base URL (`.../v1`)."""

    def __init__(self, reply) -> None:
        import threading

        self.reply = reply
        self.seen: list[str] = []
        self.lock = threading.Lock()
        self._server = None

    def __enter__(self) -> str:
        import json
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's naming)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                message = body["messages"][-1]["content"]
                with outer.lock:
                    outer.seen.append(message)
                reply = {"id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
                         "choices": [{"index": 0, "finish_reason": "stop",
                                      "message": {"role": "assistant", "content": outer.reply(message)}}],
                         "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}
                data = json.dumps(reply).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()


class SoftJudgeServer(ChatServer):
    """A `ChatServer` standing in for a soft-instruction judge: it marks each rubric line of an alignment prompt
    ok when the response holds that line's cue word (`cues`: name -> word). A response holding "garble" gets no
    marks, one holding "half" only the first."""

    def __init__(self, cues: dict[str, str]) -> None:
        super().__init__(self._judge)
        self.cues = cues

    def _judge(self, text: str) -> str:
        import re

        response = text.split("Response:\n", 1)[1].split("\n\nJudge whether", 1)[0].lower()
        names = re.findall(r"^- ([^:\n]+):", text, re.M)
        lines = [f"{n}: {'ok' if self.cues.get(n, '?') in response else 'no'}." for n in names]
        if "garble" in response:
            return "I am not sure."
        return "\n".join(lines[:1] if "half" in response else lines)


def run_rlsys(args: list[str], timeout: float = 900) -> subprocess.CompletedProcess:
    """`python -m rlsys.run *args` from the repo root with tests/ importable (plug-in rewards of the
    tests); fails the test with the end of the output when the run fails."""
    repo = Path(__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(repo / "tests"), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, "-m", "rlsys.run", *args], cwd=repo, env=env, capture_output=True,
                          text=True, timeout=timeout)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-5000:]
    return proc

"""Five levels of hints for rows that carry none, asked of any OpenAI-compatible chat endpoint.

Use it as `hints.generator` (hints.progressive.HintSource calls it as `(row, level) -> str`):

    hints:
      generator:
        _target_: rlsys.rl.hint_generator.OpenAIHintGenerator
        base_url: http://127.0.0.1:8000/v1   # the served trained judge, vLLM, or an external API
        model: my-model
        api_key_env: OPENAI_API_KEY          # null for local servers
        cache_dir: artifacts/hints           # optional: reuse hints across runs

One request per problem returns all five levels (Keye-VL 1.5 §4.4.2: concept, strategy, tool/formula,
first step, complete solution) in a fixed format, `Hint 1:` ... `Hint 5:` each at a line start. The
hints are cached in memory and, with `cache_dir`, on disk under a hash of problem + solution, so a row
is asked about once however often the search reaches it. Transient HTTP failures and malformed replies
are retried; after `max_retries` the generator raises, naming the row and the level that was missing.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import time
from pathlib import Path
from typing import Any

import openai

from rewards.judge import _RETRYABLE

LEVELS = 5
DEFAULT_TEMPLATE = (
    "Write five hints for the problem below, from least to most help:\n"
    "Hint 1: a concept or observation to notice (no method, no formula).\n"
    "Hint 2: the strategy or method to use (no formula).\n"
    "Hint 3: the tool, theorem or formula needed (no steps).\n"
    "Hint 4: the first concrete step of the calculation.\n"
    "Hint 5: the complete solution.\n"
    "Do not state the final answer before Hint 5.\n\n"
    "Problem:\n{problem}\n\nReference solution:\n{solution}\n\n"
    "Reply with exactly five hints, each starting on a new line with 'Hint N:' (N = 1 to 5), and nothing else."
)
# Markdown bold around the label ("**Hint 1:**", "**Hint 1**:") is tolerated; models add it unasked.
_MARKER = re.compile(r"^\s*\**Hint\s+(\d)\s*\**\s*:\s*\**\s*", re.I | re.M)


class HintGenerationError(RuntimeError):
    """The endpoint gave no usable hints for a row."""


def parse_hints(text: str) -> list[str]:
    """The five hints of a reply in the `Hint N:` format; ValueError naming the first missing or empty level."""
    marks = list(_MARKER.finditer(text))
    found: dict[int, str] = {}
    for i, m in enumerate(marks):
        end = marks[i + 1].start() if i + 1 < len(marks) else len(text)
        level = int(m.group(1))
        if level in found:
            raise ValueError(f"level {level} appears twice")
        found[level] = text[m.end():end].strip()
    extra = sorted(set(found) - set(range(1, LEVELS + 1)))
    if extra:
        raise ValueError(f"level {extra[0]} is not a hint level (1-{LEVELS})")
    for level in range(1, LEVELS + 1):
        if not found.get(level):
            raise ValueError(f"level {level} is {'empty' if level in found else 'missing'}")
    if [int(m.group(1)) for m in marks] != list(range(1, LEVELS + 1)):
        raise ValueError("levels are out of order")
    return [found[level] for level in range(1, LEVELS + 1)]


def problem_text(row: dict) -> str:
    """The row's question: `prompt`, or its last user turn."""
    if row.get("prompt"):
        return str(row["prompt"])
    users = [m["content"] for m in row.get("messages") or [] if m.get("role") == "user"]
    if not users:
        raise HintGenerationError(f"row {row.get('id')!r}: no prompt or user turn to write hints for")
    return str(users[-1])


class OpenAIHintGenerator:
    """`(row, level) -> hint` from an OpenAI-compatible endpoint, all five levels per request, cached per problem."""

    def __init__(self, base_url: str, model: str, api_key_env: str | None = None, cache_dir: str | None = None,
                 solution_fields: tuple[str, ...] | list[str] = ("solution", "response", "answer"),
                 prompt_template: str = DEFAULT_TEMPLATE, temperature: float = 0.0, max_tokens: int = 1024,
                 timeout_s: float = 60.0, max_retries: int = 2, backoff_base_s: float = 0.5,
                 backoff_max_s: float = 8.0) -> None:
        if max_retries < 0 or not timeout_s > 0 or backoff_base_s < 0:
            raise ValueError("hints.generator: max_retries must be >= 0, timeout_s > 0 and backoff_base_s >= 0")
        if api_key_env and api_key_env not in os.environ:
            raise ValueError(f"hints.generator.api_key_env: environment variable {api_key_env!r} is not set")
        if "{problem}" not in prompt_template or "{solution}" not in prompt_template:
            raise ValueError("hints.generator.prompt_template must contain {problem} and {solution}")
        self.base_url, self.model, self.api_key_env = base_url, model, api_key_env
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.solution_fields = tuple(solution_fields)
        self.prompt_template = prompt_template
        self.temperature, self.max_tokens = temperature, max_tokens
        self.timeout_s, self.max_retries = timeout_s, max_retries
        self.backoff_base_s, self.backoff_max_s = backoff_base_s, backoff_max_s
        self._memo: dict[str, list[str]] = {}
        self._client: openai.OpenAI | None = None

    def __call__(self, row: dict, level: int) -> str:
        if not 1 <= level <= LEVELS:
            raise ValueError(f"row {row.get('id')!r}: hint level must be in 1..{LEVELS}, got {level}")
        return self.hints(row)[level - 1]

    def hints(self, row: dict) -> list[str]:
        """The row's five hints (level 1 first), from the cache when this problem was asked before."""
        problem, solution = problem_text(row), self._solution(row)
        key = hashlib.sha256(f"{problem}\0{solution}".encode()).hexdigest()[:24]
        if key in self._memo:
            return self._memo[key]
        path = self.cache_dir / f"{key}.json" if self.cache_dir else None
        if path is not None and path.is_file():
            hints = json.loads(path.read_text())["hints"]
        else:
            hints = self._ask(row, problem, solution)
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_suffix(f".tmp-{os.getpid()}")
                tmp.write_text(json.dumps({"problem": problem, "hints": hints}))
                tmp.replace(path)  # atomic: a crashed write never leaves a half file to be read later
        self._memo[key] = hints
        return hints

    def _solution(self, row: dict) -> str:
        for name in self.solution_fields:
            if isinstance(row.get(name), str) and row[name].strip():
                return row[name]
        raise HintGenerationError(f"row {row.get('id')!r}: none of the fields {list(self.solution_fields)} holds a "
                                  "solution to write hints from")

    def _ask(self, row: dict, problem: str, solution: str) -> list[str]:
        content = self.prompt_template.format(problem=problem, solution=solution)
        problem_msg = "no reply"
        for attempt in range(self.max_retries + 1):
            if attempt:
                # Jitter spreads retries of generators that failed together.
                time.sleep(min(self.backoff_max_s, self.backoff_base_s * 2 ** (attempt - 1)) * random.uniform(0.8, 1.2))
            try:
                text = self._request(content)
            except _RETRYABLE as exc:
                problem_msg = f"endpoint {self.base_url} unreachable ({type(exc).__name__})"
                continue
            except openai.APIError as exc:
                raise HintGenerationError(f"row {row.get('id')!r}: hint request rejected by {self.base_url}: "
                                          f"{type(exc).__name__}: {exc}") from exc
            try:
                return parse_hints(text)
            except ValueError as exc:
                problem_msg = f"malformed reply ({exc}): {text[:200]!r}"
        raise HintGenerationError(f"row {row.get('id')!r}: no hints after {self.max_retries + 1} attempts: {problem_msg}")

    def _request(self, content: str) -> str:
        if self._client is None:
            # Local servers (vLLM) accept any key; the placeholder keeps the client from demanding one.
            key = os.environ.get(self.api_key_env, "") if self.api_key_env else ""
            self._client = openai.OpenAI(base_url=self.base_url, api_key=key or "EMPTY", timeout=self.timeout_s,
                                         max_retries=0)
        reply = self._client.chat.completions.create(
            model=self.model, messages=[{"role": "user", "content": content}], temperature=self.temperature,
            max_tokens=self.max_tokens, timeout=self.timeout_s)
        return reply.choices[0].message.content or ""

    def __getstate__(self) -> dict[str, Any]:
        # The client holds sockets and locks; a copy makes its own.
        return {**self.__dict__, "_client": None}

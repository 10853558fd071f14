"""Generative judge reward over any OpenAI-compatible `/v1/chat/completions` endpoint."""

from __future__ import annotations

import inspect
import json
import logging
import math
import os
import random
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import openai

from rewards._common import answer_part

logger = logging.getLogger(__name__)

DEFAULT_TEMPLATE = (
    "You are a strict grader. Read the question and the response, then rate how well the response "
    "answers the question on a scale from {score_min:g} to {score_max:g}.\n\n"
    "Question:\n{question}\n\n"
    "{reference}{constraints}"
    "Response:\n{response}\n\n"
    "Explain briefly, then finish with a final line of the form 'Score: N'."
)
REFERENCE_BLOCK = "Reference answer (treat it as correct):\n{answer}\n\n"
CONSTRAINTS_BLOCK = "The response was also asked to follow these instructions:\n{constraints}\n\n"

_NUM = r"[-+]?\d+(?:\.\d+)?"
_JSON_OBJ_RE = re.compile(r"\{[^{}]*\}")
_BRACKETS_RE = re.compile(rf"\[\[\s*({_NUM})\s*(?:/\s*({_NUM})\s*)?\]\]")
_LABELLED_RE = re.compile(rf"\b(?:score|rating|grade)\b\s*[:=]?\s*\**\s*({_NUM})\s*(?:/\s*({_NUM}))?", re.I)
_BARE_RE = re.compile(rf"^\s*({_NUM})\s*(?:/\s*({_NUM}))?\s*\.?\s*$")
# Transient failures worth another try; client errors (bad request, auth, unknown model) are not.
_WARN_INTERVAL_S = 60.0
_RETRYABLE = (openai.APIConnectionError, openai.APITimeoutError, openai.RateLimitError, openai.InternalServerError)


def parse_judge_score(text: str, score_min: float = 0.0, score_max: float = 10.0) -> float | None:
    """The judge's verdict mapped to [0, 1], or None when no in-range score can be found.

    Recognised, in order: a JSON object with "score", `[[8]]`, a labelled "Score: 7/10" /
    "score = 0.7" (last one wins), and a bare number. An explicit denominator overrides the scale; a
    value strictly between 0 and 1 on a scale wider than 1 is read as already normalised.
    """
    text = answer_part(text) or ""
    value: tuple[float, float | None] | None = None
    for obj in _JSON_OBJ_RE.findall(text):
        try:
            loaded = json.loads(obj)
        except ValueError:
            continue
        if isinstance(loaded, dict) and isinstance(loaded.get("score"), (int, float)):
            value = (float(loaded["score"]), None)
    if value is None:
        for regex in (_BRACKETS_RE, _LABELLED_RE, _BARE_RE):
            found = regex.findall(text)
            if found:
                num, den = found[-1]
                value = (float(num), float(den) if den else None)
                break
    if value is None:
        return None
    num, den = value
    if den is not None:
        return num / den if den > 0 and 0 <= num <= den else None
    if score_max > 1 and 0 < num < 1:
        return num
    if score_min <= num <= score_max:
        return (num - score_min) / (score_max - score_min)
    return None


# Backoff sleeps are jittered by up to this factor (JudgeReward._backoff).
_JITTER = 1.2


def time_budget_s(max_retries: int, timeout_s: float, backoff_base_s: float, backoff_max_s: float) -> float:
    """The longest one sample can take: every attempt runs to `timeout_s`, every backoff at its longest."""
    backoff = sum(min(backoff_max_s, backoff_base_s * 2**k) for k in range(max_retries)) * _JITTER
    return (max_retries + 1) * timeout_s + backoff


def _check_settings(
    score_min: float, score_max: float, max_concurrency: int, max_retries: int, api_key_env: str | None,
    prompt_template: str, timeout_s: float = 1.0, backoff_base_s: float = 0.0,
) -> None:
    if score_max <= score_min:
        raise ValueError(f"score_max ({score_max}) must exceed score_min ({score_min})")
    if max_concurrency < 1 or max_retries < 0:
        raise ValueError("max_concurrency must be >= 1 and max_retries >= 0")
    if not timeout_s > 0 or backoff_base_s < 0:
        raise ValueError(f"timeout_s must be > 0 and backoff_base_s >= 0, got {timeout_s} and {backoff_base_s}")
    if api_key_env and api_key_env not in os.environ:
        raise ValueError(f"environment variable {api_key_env!r} (judge API key) is not set")
    # Unknown template fields raise KeyError here rather than on the first sample.
    prompt_template.format(question="q", response="r", reference="", constraints="", score_min=score_min,
                           score_max=score_max)


class JudgeReward:
    """Reward from an LLM judge; configure with `_target_: rewards.judge.JudgeReward` plus kwargs.

    The API key is read from the environment variable named by `api_key_env` when the client is made
    and is kept only inside the client, never in this object's state, repr or results.

    Time budget. One sample takes at most `time_budget_s`: (max_retries + 1) attempts of `timeout_s`
    each plus the backoff sleeps between them (`backoff_base_s * 2**k`, capped at `backoff_max_s`, +20%
    jitter); then it scores `fallback_score` with `judge_error` and `fallback` set to 1. The reward
    manager gives this class (a `score_batch` reward) `reward.timeout_s * n` for a batch of n samples,
    and the judge runs up to `max_concurrency` samples at once, so the batch takes at most
    ceil(n / max_concurrency) * budget <= n * budget: the budget fits every batch (a lone sample
    included) exactly when it is at most `reward.timeout_s`. The reward pool checks that at start-up
    (`time_budget_s`, rlsys/reward/plugins.py::check_time_budgets) and names both keys otherwise. The
    defaults (2 attempts of 4.5 s, 0.5 s backoff: 9.6 s) fit the default `reward.timeout_s` of 10 s; a
    judge that writes long reasoning needs both raised together.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key_env: str | None = None,
        prompt_template: str = DEFAULT_TEMPLATE,
        score_min: float = 0.0,
        score_max: float = 10.0,
        constraints_field: str = "soft_constraints",
        max_concurrency: int = 8,
        max_retries: int = 1,
        backoff_base_s: float = 0.5,
        backoff_max_s: float = 30.0,
        timeout_s: float = 4.5,
        fallback_score: float = 0.0,
        temperature: float = 0.0,
        max_tokens: int = 512,
    ) -> None:
        _check_settings(score_min, score_max, max_concurrency, max_retries, api_key_env, prompt_template,
                        timeout_s, backoff_base_s)
        self.base_url = base_url
        self.model = model
        self.api_key_env = api_key_env
        self.prompt_template = prompt_template
        self.score_min = score_min
        self.score_max = score_max
        self.constraints_field = constraints_field
        self.max_concurrency = max_concurrency
        self.max_retries = max_retries
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.timeout_s = timeout_s
        self.fallback_score = fallback_score
        self.temperature = temperature
        self.max_tokens = max_tokens
        self._semaphore = threading.BoundedSemaphore(max_concurrency)
        self._client_lock = threading.Lock()
        self._client: openai.OpenAI | None = None
        self._last_warning = -math.inf

    @classmethod
    def validate_static(cls, kwargs: dict) -> None:
        """The checks that need no client, for `load_reward_fns` to run where the config is loaded (and
        the reward workers to repeat in their own environment): a missing key variable or a template with
        unknown fields then fails at start-up, naming the entry, instead of at the first batch."""
        args = cls._arguments(kwargs)
        _check_settings(args["score_min"], args["score_max"], args["max_concurrency"], args["max_retries"],
                        args["api_key_env"], args["prompt_template"], args["timeout_s"], args["backoff_base_s"])

    @classmethod
    def time_budget_s(cls, kwargs: dict) -> float:
        """The most seconds one sample can take with these kwargs (see the class docstring); the reward pool
        requires it to be at most `reward.timeout_s`."""
        args = cls._arguments(kwargs)
        return time_budget_s(args["max_retries"], args["timeout_s"], args["backoff_base_s"], args["backoff_max_s"])

    @classmethod
    def _arguments(cls, kwargs: dict) -> dict:
        bound = inspect.signature(cls).bind(**kwargs)
        bound.apply_defaults()
        return bound.arguments

    def __repr__(self) -> str:
        return (
            f"JudgeReward(base_url={self.base_url!r}, model={self.model!r}, "
            f"api_key_env={self.api_key_env!r}, max_concurrency={self.max_concurrency}, "
            f"max_retries={self.max_retries}, timeout_s={self.timeout_s})"
        )

    def __getstate__(self) -> dict:
        # Locks and the client (which holds the key) never leave the process; they are rebuilt lazily.
        skip = ("_semaphore", "_client_lock", "_client", "_last_warning")
        return {k: v for k, v in self.__dict__.items() if k not in skip}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._semaphore = threading.BoundedSemaphore(self.max_concurrency)
        self._client_lock = threading.Lock()
        self._client = None
        self._last_warning = -math.inf

    def _get_client(self) -> openai.OpenAI:
        with self._client_lock:
            if self._client is None:
                # Local servers (vLLM) accept any key; the placeholder keeps the client from demanding one.
                key = os.environ.get(self.api_key_env, "") if self.api_key_env else ""
                self._client = openai.OpenAI(
                    base_url=self.base_url, api_key=key or "EMPTY", timeout=self.timeout_s, max_retries=0
                )
            return self._client

    def _render(self, question: str, response: str, fields: dict) -> str:
        reference = REFERENCE_BLOCK.format(answer=fields["answer"]) if fields.get("answer") is not None else ""
        soft = fields.get(self.constraints_field)
        if isinstance(soft, (list, tuple)):
            soft = "\n".join(f"- {s}" for s in soft)
        constraints = CONSTRAINTS_BLOCK.format(constraints=soft) if soft else ""
        return self.prompt_template.format(
            question=question,
            response=response,
            reference=reference,
            constraints=constraints,
            score_min=self.score_min,
            score_max=self.score_max,
        )

    def _request(self, content: str) -> str:
        with self._semaphore:
            reply = self._get_client().chat.completions.create(
                model=self.model,
                messages=[{"role": "user", "content": content}],
                temperature=self.temperature,
                max_tokens=self.max_tokens,
                timeout=self.timeout_s,
            )
        return reply.choices[0].message.content or ""

    def _backoff(self, attempt: int) -> float:
        # Jitter spreads out retries of concurrent requests that failed together.
        return min(self.backoff_max_s, self.backoff_base_s * 2**attempt) * random.uniform(0.8, _JITTER)

    def __call__(self, prompt: str, completion: str, **fields: object) -> dict:
        response = answer_part(completion) or ""
        content = self._render(prompt, response.strip(), fields)
        retries = 0
        while True:
            try:
                text = self._request(content)
                break
            except _RETRYABLE as exc:
                if retries >= self.max_retries:
                    self._warn(f"judge unreachable after {retries} retries ({type(exc).__name__})")
                    return self._result(self.fallback_score, retries, error=True)
                time.sleep(self._backoff(retries))
                retries += 1
            except openai.APIError as exc:
                self._warn(f"judge request rejected ({type(exc).__name__})")
                return self._result(self.fallback_score, retries, error=True)
        score = parse_judge_score(text, self.score_min, self.score_max)
        if score is None:
            return self._result(self.fallback_score, retries, parse_error=True)
        return self._result(score, retries)

    def _warn(self, message: str) -> None:
        # A dead endpoint fails every sample of a batch; one line per interval is enough to notice it.
        now = time.monotonic()
        with self._client_lock:
            if now - self._last_warning < _WARN_INTERVAL_S:
                return
            self._last_warning = now
        logger.warning("%s; using fallback_score=%s", message, self.fallback_score)

    @staticmethod
    def _result(score: float, retries: int, error: bool = False, parse_error: bool = False) -> dict:
        # Every key is always present so the logged means are rates over all judged samples; `fallback`
        # (no verdict: unreachable, too slow, rejected or unreadable) is summed into a count by the manager.
        return {
            "score": score,
            "judge_error": float(error),
            "judge_parse_error": float(parse_error),
            "judge_retries": float(retries),
            "fallback": float(error or parse_error),
        }

    def score_batch(self, prompts: list[str], completions: list[str], fields_list: list[dict]) -> list[dict]:
        """Judge many samples at once with at most `max_concurrency` requests in flight."""
        if not len(prompts) == len(completions) == len(fields_list):
            raise ValueError("prompts, completions and fields_list must have the same length")
        with ThreadPoolExecutor(max_workers=self.max_concurrency) as pool:
            futures = [pool.submit(self, p, c, **f) for p, c, f in zip(prompts, completions, fields_list)]
            return [f.result() for f in futures]

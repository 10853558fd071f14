"""Generative pairwise judge (Keye-VL 1.5 §4.2): prompt format, verdict parser, its RL rewards, and the
trained judge used as a model-based reward.

The judge reads a request and two responses and ends with one fixed line, `Better: A` or `Better: B`,
optionally after reasoning inside `<think>...</think>`:

    <think>
    A ends with 45. B ends with 46. A: steps hold. B: 7 + 5 = 13 is wrong.
    </think>
    Better: A

or, for a judge that solves the request first (rlsys/jobs/judge.py, `judge_solve`):

    <think>
    A ends with 45. B ends with 46.
    7 + 5 = 12, so 33 + 12 = 45.
    The answer is \\boxed{45}.
    Mine is 45. A: 45, same. B: 46, not mine.
    </think>
    Better: A

`judge_format_reward` and `judge_outcome_reward` train it with GSPO; `PairwiseJudgeReward` serves a
trained judge (its own vLLM OpenAI-compatible server, or any endpoint) and scores a completion against
the row's reference response.
"""

from __future__ import annotations

import logging
import math
import random
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from rewards._common import THINK_CLOSE, THINK_OPEN, answer_part

logger = logging.getLogger(__name__)

LABELS = ("A", "B")
JUDGE_MODES = ("pairwise", "pointwise")
THINK_INSTRUCTION = "First compare them inside <think> and </think>, then finish with one line: Better: A or Better: B."
PLAIN_INSTRUCTION = "Finish with one line: Better: A or Better: B."
PROMPT_TEMPLATE = (
    "Compare two responses to the same request and decide which one is better.\n\n"
    "Request:\n{query}\n\nResponse A:\n{a}\n\nResponse B:\n{b}\n\n{instruction}"
)
# "Better: A", "better: **B**", "Better response: B", "Better: Response A", "BETTER = B" ("better" in any
# case; the letter must be a capital, so "better a lot" is not a verdict).
_VERDICT_RE = re.compile(
    r"(?i:\bbetter)(?:\s+(?i:response|answer|one))?\s*(?:(?i:is)\s*)?[:=]?\s*[*_\"'(\[]*\s*(?:(?i:response)\s+)?([AB])\b"
)
_BRACKET_RE = re.compile(r"\[\[\s*([AB])\s*\]\]")
_LAST_LINE_RE = re.compile(r"^[*_\"'(\[\s]*(?:(?i:response)\s+)?([AB])[*_\"')\].\s]*$")
_STRICT_LINE = r"Better: [AB]"
# PairwiseJudgeReward's endpoint requests per sample at most (both orders; or the completion's and the
# reference's checks) and the backoff between its retries.
_REQUESTS_PER_SAMPLE = 2
_BACKOFF_BASE_S, _BACKOFF_MAX_S = 0.5, 8.0


def judge_prompt(query: str, a: str, b: str, think: bool = True) -> str:
    """The judge's user message for request `query` and responses `a`, `b`."""
    return PROMPT_TEMPLATE.format(query=query.strip(), a=a.strip(), b=b.strip(),
                                  instruction=THINK_INSTRUCTION if think else PLAIN_INSTRUCTION)


def judge_target(label: str, rationale: str = "", think: bool = True) -> str:
    """The judge's answer in the fixed format."""
    if label not in LABELS:
        raise ValueError(f"label must be 'A' or 'B', got {label!r}")
    verdict = f"Better: {label}"
    return f"{THINK_OPEN}\n{rationale.strip()}\n{THINK_CLOSE}\n{verdict}" if think else verdict


def parse_verdict(text: str) -> str | None:
    """'A', 'B' or None. Only the text after the reasoning block counts (an unclosed `<think>` gives
    None). The last "Better: X"-style statement wins; then `[[X]]`; then a last line that is only the
    letter (optionally "Response X")."""
    answer = answer_part(text or "")
    if answer is None:
        return None
    for regex in (_VERDICT_RE, _BRACKET_RE):
        found = regex.findall(answer)
        if found:
            return found[-1]
    lines = [line for line in answer.strip().splitlines() if line.strip()]
    if lines:
        match = _LAST_LINE_RE.match(lines[-1].strip())
        if match:
            return match.group(1)
    return None


CHECK_TEMPLATE = (
    "Request:\n{query}\n\nResponse:\n{response}\n\nCheck the response against each instruction of the request."
)
CHECK_MARKS = ("ok", "no")


def check_prompt(query: str, response: str) -> str:
    """The pointwise check's user message: one request, one response."""
    return CHECK_TEMPLATE.format(query=query.strip(), response=response.strip())


def split_check_prompt(prompt: str) -> tuple[str, str]:
    """(request, response) of a `check_prompt` message."""
    head, tail = CHECK_TEMPLATE.split("{query}")[0], CHECK_TEMPLATE.split("{response}")[1]
    middle = CHECK_TEMPLATE.split("{query}")[1].split("{response}")[0]
    if not (prompt.startswith(head) and prompt.endswith(tail) and middle in prompt):
        raise ValueError(f"not a check prompt: {prompt[:80]!r}")
    query, response = prompt[len(head):len(prompt) - len(tail)].split(middle, 1)
    return query, response


def check_target(tags: list[str], marks: list[str]) -> str:
    """A line per instruction: "keyword include melody: no." """
    return "\n".join(f"{tag}: {mark}." for tag, mark in zip(tags, marks))


def mark_lines(text: str) -> list[tuple[str, str]]:
    """(tag, mark) of each "tag: mark." line of a check answer, the mark as written."""
    out = []
    for line in (text or "").splitlines():
        tag, sep, mark = line.strip().rpartition(": ")
        if sep:
            out.append((tag, mark.rstrip(".").strip()))
    return out


def parse_marks(text: str, tags: list[str]) -> list[str | None]:
    """The mark written for each tag ("ok" / "no"), None where the tag's line is missing or unreadable;
    the first line for a tag counts."""
    found: dict[str, str] = {}
    for tag, mark in mark_lines(text):
        found.setdefault(tag, mark)
    return [found.get(t) if found.get(t) in CHECK_MARKS else None for t in tags]


def check_preference(marks_a: list[str | None], marks_b: list[str | None]) -> str | None:
    """A pairwise verdict from two pointwise checks: the response with fewer failed marks ("no"; a missing
    mark is not a failure), None on a tie."""
    fails_a, fails_b = marks_a.count("no"), marks_b.count("no")
    return None if fails_a == fails_b else "A" if fails_a < fails_b else "B"


def count_fails(text: str) -> tuple[int, int]:
    """Failed ("no") and readable marks in a pointwise check answer whose tags are not known to the reader
    (a served checker's answer about a new completion)."""
    marks = [mark for _, mark in mark_lines(text)]
    return sum(m == "no" for m in marks), sum(m in CHECK_MARKS for m in marks)


def format_ok(completion: str, think: bool | None = True) -> bool:
    """The completion is exactly the fixed format: `<think>reasoning</think>` (required when `think`,
    absent when False, either when None) followed by one `Better: A|B` line."""
    text = completion.strip()
    with_think = re.fullmatch(rf"{re.escape(THINK_OPEN)}(.+?){re.escape(THINK_CLOSE)}\s*{_STRICT_LINE}", text, re.S)
    if with_think and (THINK_OPEN in with_think.group(1) or not with_think.group(1).strip()):
        with_think = None
    plain = re.fullmatch(_STRICT_LINE, text)
    if think is None:
        return bool(with_think or plain)
    return bool(with_think) if think else bool(plain)


def judge_format_reward(prompt: str, completion: str, think: bool | None = True, **_: object) -> dict:
    """1.0 when the judge's answer follows the fixed format (see `format_ok`)."""
    return {"score": float(format_ok(completion, think))}


def judge_outcome_reward(prompt: str, completion: str, label: str | None = None, **_: object) -> dict:
    """1.0 when the judge picked the better response (`label`, the row's field); extras: `parsed` (a
    verdict was found) and `picked_a` (position-bias monitor)."""
    if label not in LABELS:
        raise ValueError(f"judge_outcome_reward needs the row field 'label' ('A' or 'B'), got {label!r}")
    verdict = parse_verdict(completion)
    return {"score": float(verdict == label), "parsed": float(verdict is not None), "picked_a": float(verdict == "A")}


CHECK_SCORES = ("verdict", "marks", "exact", "balanced")


def _balanced_recall(got: list[str | None], marks: list[str]) -> float:
    recalls = []
    for cls in CHECK_MARKS:
        idx = [i for i, m in enumerate(marks) if m == cls]
        if idx:
            recalls.append(sum(got[i] == cls for i in idx) / len(idx))
    return sum(recalls) / len(recalls)


def check_marks_reward(prompt: str, completion: str, tags: list[str] | None = None, marks: list[str] | None = None,
                       score_by: str = "verdict", **_: object) -> dict:
    """The pointwise check's RL outcome reward, against the row's target `marks` (one per `tags` entry, row
    fields). `score_by="verdict"`: 1.0 when the answer fails the response exactly when a target mark is "no"
    (the pairwise verdict's ingredient; chosen and rejected rows come in equal numbers, so always passing
    earns 0.5). `"marks"`: the share of marks right, which the "ok" prior already earns ~0.83 of. `"exact"`:
    1.0 only when every mark is right, so the failure count the pairwise verdict compares is right too;
    neither flagging some tag nor always passing earns it. `"balanced"`: the mean, over the target's
    classes present ("ok", "no"), of the share of that class's tags marked right, so one caught failure
    weighs as much as all the passes beside it. Extras: `verdict_right`, `marks_right`, `exact_right`,
    `balanced_right`, `parsed` (share of tags given a readable mark)."""
    if not tags or not marks or len(tags) != len(marks):
        raise ValueError(f"check_marks_reward needs row fields 'tags' and 'marks' of equal length, got {tags!r}, {marks!r}")
    if score_by not in CHECK_SCORES:
        raise ValueError(f"score_by must be one of {CHECK_SCORES}, got {score_by!r}")
    got = parse_marks(completion, list(tags))
    out = {"verdict_right": float(("no" in got) == ("no" in marks)),
           "marks_right": sum(g == m for g, m in zip(got, marks)) / len(marks),
           "exact_right": float(list(got) == list(marks)),
           "balanced_right": _balanced_recall(got, list(marks)),
           "parsed": sum(g is not None for g in got) / len(got)}
    return {"score": out[f"{score_by}_right"], **out}


class PairwiseJudgeReward:
    """A trained pairwise judge as a reward: is the completion better than the row's reference?

    Give `model_path` (a judge checkpoint; `setup()` starts `rlsys.serve` for it inside the reward worker
    and stops it with the worker) or `base_url` + `model` (any OpenAI-compatible endpoint). Each sample is
    judged against `fields[reference_field]`; with `both_orders` twice, completion as A and as B, which
    cancels position bias: score = share of the verdicts won (0, 0.5 or 1). A sample without a reference,
    or whose verdicts cannot be parsed, or whose endpoint fails or is too slow (each request is cut at
    `timeout_s` and retried `max_retries` times, with backoff), gets `fallback_score` (extra `fallback`: 1,
    counted; `judge_error`: 1 for the endpoint). Against an endpoint (`base_url`) one sample takes at most
    `time_budget_s` (2 requests: both orders, or the completion's and the reference's checks), which the
    reward pool requires to fit in `reward.timeout_s` at start-up, as for `rewards.judge.JudgeReward`; a
    checkpoint it serves itself (`model_path`) is its own compute, like a reward model, and is not checked.
    `think` must match the prompt format the judge was trained on. With `mode="pointwise"` the model is a pointwise checker
    (judge_check_sft): it checks the completion and the reference one at a time, and the completion scores 1,
    0.5 or 0 as it has fewer, as many or more failed marks (`both_orders` does not apply). `votes=K` (pointwise
    only) samples K checks of each at `vote_temperature` and compares mean failed-mark counts instead of greedy
    counts (self-consistency): ties, which cap a greedy checker's pair accuracy, become rare
    (`python -m rlsys.eval judge-votes`; docs/benchmarks/judge.md).
    """

    def __init__(self, model_path: str | None = None, base_url: str | None = None, model: str | None = None,
                 reference_field: str = "response", both_orders: bool = True, think: bool = True,
                 max_tokens: int = 96, max_concurrency: int = 8, timeout_s: float = 120.0, max_retries: int = 2,
                 fallback_score: float = 0.0, max_model_len: int | None = 1024, kv_cache_bytes: int = 128 << 20,
                 api_key_env: str | None = None, mode: str = "pairwise", votes: int = 1,
                 vote_temperature: float = 1.0) -> None:
        self.validate_static({"model_path": model_path, "base_url": base_url, "model": model, "mode": mode,
                              "votes": votes, "vote_temperature": vote_temperature, "timeout_s": timeout_s,
                              "max_retries": max_retries})
        self.votes = votes
        self.vote_temperature = vote_temperature
        self.mode = mode
        self.model_path = model_path
        self.base_url = base_url
        self.model = model
        self.reference_field = reference_field
        self.both_orders = both_orders
        self.think = think
        self.max_tokens = max_tokens
        self.max_concurrency = max_concurrency
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.fallback_score = fallback_score
        self.max_model_len = max_model_len
        self.kv_cache_bytes = kv_cache_bytes
        self.api_key_env = api_key_env
        self._server: Any = None
        self._client: Any = None
        self._lock = threading.Lock()
        self._last_warning = -math.inf
        self._reference_checks: dict[tuple[str, str], float | None] = {}

    @classmethod
    def validate_static(cls, kwargs: dict) -> None:
        path, url = kwargs.get("model_path"), kwargs.get("base_url")
        if bool(path) == bool(url):
            raise ValueError("give exactly one of model_path (serve a checkpoint) or base_url (an endpoint)")
        if path and not (Path(path) / "config.json").is_file():
            raise ValueError(f"model_path {str(path)!r} has no config.json")
        if url and not kwargs.get("model"):
            raise ValueError("base_url needs model (the served model name)")
        if kwargs.get("mode", "pairwise") not in JUDGE_MODES:
            raise ValueError(f"mode must be one of {JUDGE_MODES}, got {kwargs.get('mode')!r}")
        votes = kwargs.get("votes", 1)
        if not isinstance(votes, int) or isinstance(votes, bool) or votes < 1:
            raise ValueError(f"votes must be an int >= 1, got {votes!r}")
        if votes > 1 and kwargs.get("mode", "pairwise") != "pointwise":
            raise ValueError("votes > 1 needs mode: pointwise (a pairwise verdict has no count to average)")
        if votes > 1 and not kwargs.get("vote_temperature", 1.0) > 0:
            raise ValueError(f"votes > 1 needs vote_temperature > 0, got {kwargs.get('vote_temperature')!r}")
        if not kwargs.get("timeout_s", 1.0) > 0 or kwargs.get("max_retries", 0) < 0:
            raise ValueError("timeout_s must be > 0 and max_retries >= 0")

    @classmethod
    def time_budget_s(cls, kwargs: dict) -> float | None:
        """The most seconds one sample can take against an endpoint (`base_url`): two requests, each
        (max_retries + 1) attempts of `timeout_s` plus the backoff; None for a served checkpoint."""
        from rewards.judge import time_budget_s

        if kwargs.get("model_path"):
            return None
        return _REQUESTS_PER_SAMPLE * time_budget_s(kwargs.get("max_retries", 2), kwargs.get("timeout_s", 120.0),
                                                    _BACKOFF_BASE_S, _BACKOFF_MAX_S)

    def __repr__(self) -> str:
        return f"PairwiseJudgeReward(model_path={self.model_path!r}, base_url={self.base_url!r})"

    def __getstate__(self) -> dict:
        # A copy starts its own server / client where it runs.
        return {k: v for k, v in self.__dict__.items() if k not in ("_server", "_client", "_lock", "_reference_checks")}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._server, self._client, self._lock, self._reference_checks = None, None, threading.Lock(), {}
        self._last_warning = -math.inf

    def setup(self) -> None:
        """Start the server (model_path) and the client; idempotent."""
        import os
        import secrets

        import openai

        with self._lock:
            if self._client is not None:
                return
            base_url, model = self.base_url, self.model
            if self.model_path:
                from rlsys.serve import serve_model

                # A fresh key per server: other users of this machine cannot query it on loopback either.
                self._server = serve_model(self.model_path, max_model_len=self.max_model_len,
                                           kv_cache_bytes=self.kv_cache_bytes, dtype="float32",
                                           api_key=secrets.token_urlsafe(24))
                base_url, model = self._server.base_url, self._server.model
                logger.info("pairwise judge served at %s (up in %.1f s)", base_url, self._server.startup_s)
            key = os.environ.get(self.api_key_env, "") if self.api_key_env else ""
            if self._server is not None:
                key = self._server.api_key
            # Retries are ours (_ask), so a server's Retry-After cannot stretch a sample past its budget.
            self._client = openai.OpenAI(base_url=base_url, api_key=key or "EMPTY", timeout=self.timeout_s,
                                         max_retries=0)
            self._served_model = model

    def close(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None
        self._client = None

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    def _ask(self, content: str, n: int = 1, temperature: float = 0.0) -> list[str]:
        from rewards.judge import _JITTER, _RETRYABLE

        for attempt in range(self.max_retries + 1):
            try:
                reply = self._client.chat.completions.create(
                    model=self._served_model, messages=[{"role": "user", "content": content}],
                    temperature=temperature, max_tokens=self.max_tokens, n=n, timeout=self.timeout_s,
                )
                return [choice.message.content or "" for choice in reply.choices]
            except _RETRYABLE:
                if attempt == self.max_retries:
                    raise
                time.sleep(min(_BACKOFF_MAX_S, _BACKOFF_BASE_S * 2**attempt) * random.uniform(0.8, _JITTER))
        raise AssertionError("unreachable")

    def _verdict(self, query: str, a: str, b: str) -> str | None:
        return parse_verdict(self._ask(judge_prompt(query, a, b, self.think))[0])

    def _fails(self, query: str, text: str) -> tuple[float | None, float]:
        """Failed marks of `text` (the greedy count, or the mean over `votes` sampled checks; None when no
        check has a readable mark) and the share of its checks without one."""
        if self.votes == 1:
            answers = self._ask(check_prompt(query, text))
        else:
            answers = self._ask(check_prompt(query, text), n=self.votes, temperature=self.vote_temperature)
        counts = [fails for fails, read in map(count_fails, answers) if read]
        return (sum(counts) / len(counts) if counts else None), 1.0 - len(counts) / len(answers)

    def _reference_fails(self, query: str, reference: str) -> float | None:
        # A group's samples share one reference: check it once per reward worker.
        key = (query, reference)
        if key not in self._reference_checks:
            self._reference_checks[key] = self._fails(query, reference)[0]
        return self._reference_checks[key]

    def _pointwise(self, query: str, answer: str, reference: str) -> dict:
        # `unread_checks` counts the answer's sampled checks left out of its mean (unreadable marks).
        (own, unread), ref = self._fails(query, answer), self._reference_fails(query, reference)
        if own is None or ref is None:
            return {"score": self.fallback_score, "no_reference": 0.0, "parse_error": 1.0, "unread_checks": unread,
                    "fallback": 1.0}
        score = 1.0 if own < ref else 0.5 if own == ref else 0.0
        return {"score": score, "no_reference": 0.0, "parse_error": 0.0, "unread_checks": unread}

    def _judge(self, prompt: str, completion: str, fields: dict) -> dict:
        import openai

        # Every result carries `fallback` (1: scored fallback_score, no verdict) and `judge_error`.
        try:
            out = self._verdicts(prompt, completion, fields)
        except openai.APIError as exc:
            now = time.monotonic()
            if now - self._last_warning >= 60.0:
                self._last_warning = now
                logger.warning("pairwise judge request failed (%s); using fallback_score=%s", type(exc).__name__,
                               self.fallback_score)
            return {"score": self.fallback_score, "no_reference": 0.0, "parse_error": 0.0, "judge_error": 1.0,
                    "fallback": 1.0}
        return {"judge_error": 0.0, "fallback": 0.0, **out}

    def _verdicts(self, prompt: str, completion: str, fields: dict) -> dict:
        reference = fields.get(self.reference_field)
        if not isinstance(reference, str) or not reference.strip():
            return {"score": self.fallback_score, "no_reference": 1.0, "parse_error": 0.0, "fallback": 1.0}
        answer = answer_part(completion) or ""
        if self.mode == "pointwise":
            return self._pointwise(prompt, answer, reference)
        wins, parsed = [], 0
        orders = [("A", answer, reference)] + ([("B", reference, answer)] if self.both_orders else [])
        for own, a, b in orders:
            verdict = self._verdict(prompt, a, b)
            parsed += verdict is not None
            wins.append(float(verdict == own))
        if not parsed:
            return {"score": self.fallback_score, "no_reference": 0.0, "parse_error": 1.0, "fallback": 1.0}
        return {"score": sum(wins) / len(wins), "no_reference": 0.0, "parse_error": float(parsed < len(orders))}

    def score_batch(self, prompts: list[str], completions: list[str], fields_list: list[dict]) -> list[dict]:
        """Judge many samples with at most `max_concurrency` requests in flight."""
        if not len(prompts) == len(completions) == len(fields_list):
            raise ValueError("prompts, completions and fields_list must have the same length")
        self.setup()
        with ThreadPoolExecutor(max_workers=self.max_concurrency) as pool:
            return list(pool.map(self._judge, prompts, completions, fields_list))

    def __call__(self, prompt: str, completion: str, **fields: object) -> dict:
        self.setup()
        return self._judge(prompt, completion, fields)

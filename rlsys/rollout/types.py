"""Typed messages between the controller, the rollout pool and rollout workers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class GroupRequest:
    """One prompt group: `n` samples from the same prompt, always served by one actor.

    Give either `prompt_token_ids` or chat `messages` (rendered with the model's template).
    `meta` travels back untouched (row id, hint level, ...).

    `images` (vision-language models only): image file paths, read by the worker. The prompt holds
    ONE image placeholder per image, in order (`<|vision_start|><|image_pad|><|vision_end|>` for
    Qwen-VL, as the chat template renders an image part); vLLM expands each to the image's tokens.

    `videos` (vision-language models only): video items (`rlsys.data.videos.video_items`: frame files, their
    indices in the source video, its frame count and fps, the size to send them at), read by the worker and sent
    with their metadata. The prompt holds ONE video placeholder per item, in order (images and videos each
    count their own placeholders).
    """

    request_id: str
    prompt_token_ids: list[int] | None = None
    messages: list[dict[str, str]] | None = None
    n: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    max_tokens: int = 128
    stop: list[str] = field(default_factory=list)
    seed: int | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    images: list[str] = field(default_factory=list)
    videos: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Sample:
    """One sampled completion with the sampled token's logprob at every position."""

    token_ids: list[int]
    text: str
    logprobs: list[float]
    finish_reason: str
    # (first token index, policy version) of each run of tokens one weight version drew, with partial rollouts
    # (rlsys/rollout/partial.py); empty: every token by the result's `policy_version`.
    version_spans: list[tuple[int, int]] = field(default_factory=list)


@dataclass
class GroupResult:
    """The answer to one GroupRequest. `error` is set (and `samples` empty) for a bad request.

    `prompt_token_ids` is the prompt as sent (one placeholder per image / video item, not expanded), `images`
    the request's image paths and `videos` its video items (a SlowFast plan's frames and sizes included):
    together they rebuild the model inputs on the learner side.
    """

    request_id: str
    prompt_token_ids: list[int]
    samples: list[Sample]
    policy_version: int
    actor: str = ""
    error: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    images: list[str] = field(default_factory=list)
    videos: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None


class BadRequest(ValueError):
    """A request that cannot be served; reported for that request only."""

"""Partial rollouts (`rollout.partial_rollout: continue`): generation in chunks that new weights may enter.

With "finish" (the default) a batch runs to the end under the weights it started with; a weight sync waits for
the engine. With "continue" every sequence is generated `rollout.partial_chunk_tokens` tokens at a time and the
engine is free between chunks, so a sync that arrives mid-generation is applied there and the sequence goes on
under the new weights, re-prefilled from its prompt and the tokens so far (one request per unfinished sample,
n = 1). Each sample records which policy version drew which tokens (`Sample.version_spans`), and its per-token
logprobs are those of the version that drew each token: the behaviour policy GSPO's ratio is taken against is
that mixture, so the learner's ratio stays right without knowing the spans (tests/rollout/test_partial.py).

A stop string that straddles a chunk boundary is not seen by the engine (each chunk matches only its own text);
the chunk after it still ends at the next stop string or end-of-sequence token.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rlsys.rollout.types import Sample

PARTIAL_MODES = ("finish", "continue")


@dataclass
class Draw:
    """One engine request of a chunk: `n` samples of at most `max_tokens` from `prompt`, for sequence `source`."""
    source: int
    prompt: dict[str, Any]
    n: int
    max_tokens: int
    seed: int | None


@dataclass
class _Growing:
    token_ids: list[int] = field(default_factory=list)
    text: str = ""
    logprobs: list[float] = field(default_factory=list)
    finish_reason: str = "length"
    spans: list[tuple[int, int]] = field(default_factory=list)

    def extend(self, piece: Sample, version: int) -> None:
        if not self.spans or self.spans[-1][1] != version:
            self.spans.append((len(self.token_ids), version))
        self.token_ids += piece.token_ids
        self.text += piece.text
        self.logprobs += piece.logprobs
        self.finish_reason = piece.finish_reason

    def sample(self) -> Sample:
        return Sample(self.token_ids, self.text, self.logprobs, self.finish_reason, list(self.spans))


# Runs one chunk's draws as one engine batch and returns each draw's samples and the policy version used.
RunChunk = Callable[[list[Draw]], tuple[list[list[Sample]], int]]


def chunk_seed(seed: int | None, sample: int, chunk: int) -> int | None:
    """The seed of sample `sample`'s continuation in chunk `chunk` (None stays unseeded)."""
    if seed is None:
        return None
    return (seed * 1_000_003 + sample * 7_919 + chunk) % (2**31 - 1)


def generate_in_spans(run: RunChunk, draws: list[Draw], chunk_tokens: int, max_model_len: int) -> list[list[Sample]]:
    """Every draw's `n` samples, generated `chunk_tokens` tokens per engine call until each sample stops
    (a finish reason other than the length limit), reaches its draw's `max_tokens`, or fills the context."""
    if chunk_tokens < 1:
        raise ValueError(f"chunk_tokens must be >= 1, got {chunk_tokens}")
    first = [Draw(d.source, d.prompt, d.n, min(chunk_tokens, d.max_tokens), d.seed) for d in draws]
    outs, version = run(first)
    growing = [[_Growing() for _ in range(d.n)] for d in draws]
    for i, samples in enumerate(outs):
        for j, piece in enumerate(samples):
            growing[i][j].extend(piece, version)
    chunk = 1
    while todo := [(i, j) for i, d in enumerate(draws) for j, g in enumerate(growing[i])
                   if _goes_on(g, d, max_model_len)]:
        step = []
        for i, j in todo:
            d, g = draws[i], growing[i][j]
            prompt = dict(d.prompt, prompt_token_ids=list(d.prompt["prompt_token_ids"]) + g.token_ids)
            step.append(Draw(d.source, prompt, 1, min(chunk_tokens, d.max_tokens - len(g.token_ids)),
                             chunk_seed(d.seed, j, chunk)))
        outs, version = run(step)
        for (i, j), samples in zip(todo, outs):
            growing[i][j].extend(samples[0], version)
        chunk += 1
    return [[g.sample() for g in row] for row in growing]


def _goes_on(g: _Growing, d: Draw, max_model_len: int) -> bool:
    # A piece with no tokens could not be continued (nothing new to prefill); treat it as finished.
    return (g.finish_reason == "length" and len(g.token_ids) < d.max_tokens and bool(g.token_ids)
            and len(d.prompt["prompt_token_ids"]) + len(g.token_ids) < max_model_len)

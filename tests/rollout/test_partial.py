"""Partial rollouts on a scripted engine: chunked generation, per-token version spans when the weights change
between chunks, and GSPO's ratio against the mixed behaviour logprobs (hand-derived)."""

from __future__ import annotations

import math

import pytest
import torch

from rlsys.algorithms.losses_rl import gspo_loss
from rlsys.rollout.partial import Draw, chunk_seed, generate_in_spans
from rlsys.rollout.types import Sample

EOS = 0


class ScriptedEngine:
    """Sample j of a prompt continues the sequence 10·(j+1), 10·(j+1)+1, ... and ends with EOS once it has
    `lengths[j]` tokens. A token's logprob is −(version + 1): it shows which weights drew it. The version goes
    up by one after each chunk listed in `bump_after`."""

    def __init__(self, lengths: list[int], bump_after: set[int]) -> None:
        self.lengths, self.bump_after = lengths, bump_after
        self.version, self.calls = 0, []

    def __call__(self, draws: list[Draw]) -> tuple[list[list[Sample]], int]:
        self.calls.append([(d.source, d.n, d.max_tokens, d.seed, len(d.prompt["prompt_token_ids"])) for d in draws])
        out = []
        for d in draws:
            done = len(d.prompt["prompt_token_ids"]) - 3  # the prompt has 3 tokens
            samples = []
            for k in range(d.n):
                j = k if done == 0 else self._which(d)
                tokens, reason = [], "length"
                for pos in range(done, done + d.max_tokens):
                    if pos == self.lengths[j]:
                        tokens.append(EOS)
                        reason = "stop"
                        break
                    tokens.append(10 * (j + 1) + pos)
                samples.append(Sample(tokens, "".join(f"<{t}>" for t in tokens), [-(self.version + 1.0)] * len(tokens),
                                      reason))
            out.append(samples)
        used = self.version
        if len(self.calls) - 1 in self.bump_after:
            self.version += 1
        return out, used

    @staticmethod
    def _which(d: Draw) -> int:
        return d.prompt["prompt_token_ids"][3] // 10 - 1  # a continuation starts with its own first token


def _draw(n: int = 2, max_tokens: int = 10, seed: int | None = 7) -> Draw:
    return Draw(source=5, prompt={"prompt_token_ids": [1, 2, 3]}, n=n, max_tokens=max_tokens, seed=seed)


def test_sequences_are_generated_in_chunks_and_end_at_eos_or_max_tokens():
    engine = ScriptedEngine(lengths=[5, 100], bump_after=set())
    [[short, long]] = generate_in_spans(engine, [_draw()], chunk_tokens=4, max_model_len=512)
    assert short.token_ids == [10, 11, 12, 13, 14, EOS] and short.finish_reason == "stop"
    assert long.token_ids == [20 + p for p in range(10)] and long.finish_reason == "length"
    assert short.text == "".join(f"<{t}>" for t in short.token_ids)
    # One version throughout: one span each.
    assert short.version_spans == [(0, 0)] and long.version_spans == [(0, 0)]
    # Chunk 0 draws both samples (n=2); continuations are one request per unfinished sample with its own seed.
    assert engine.calls == [[(5, 2, 4, 7, 3)],
                            [(5, 1, 4, chunk_seed(7, 0, 1), 7), (5, 1, 4, chunk_seed(7, 1, 1), 7)],
                            [(5, 1, 2, chunk_seed(7, 1, 2), 11)]]
    assert chunk_seed(7, 0, 1) != chunk_seed(7, 1, 1) and chunk_seed(None, 0, 1) is None


def test_weights_changing_between_chunks_are_recorded_per_token_span():
    engine = ScriptedEngine(lengths=[100, 6], bump_after={0})  # new weights after the first chunk
    [[a, b]] = generate_in_spans(engine, [_draw(max_tokens=11)], chunk_tokens=4, max_model_len=512)
    assert a.version_spans == [(0, 0), (4, 1)] and len(a.token_ids) == 11
    assert a.logprobs == [-1.0] * 4 + [-2.0] * 7  # each token's logprob is its own version's
    assert b.version_spans == [(0, 0), (4, 1)] and b.token_ids[-1] == EOS and len(b.token_ids) == 7


def test_a_sequence_stops_where_the_context_is_full():
    engine = ScriptedEngine(lengths=[100], bump_after=set())
    [[s]] = generate_in_spans(engine, [_draw(n=1, max_tokens=50)], chunk_tokens=4, max_model_len=3 + 8)
    assert len(s.token_ids) == 8 and s.finish_reason == "length"
    with pytest.raises(ValueError, match="chunk_tokens"):
        generate_in_spans(engine, [_draw()], chunk_tokens=0, max_model_len=64)


def test_gspo_ratio_is_taken_against_each_tokens_own_behaviour_logprob():
    # 8 tokens: 0-3 drawn by v0 (logprob −1.0), 4-7 by v1 (−0.5); the learner now gives every token −0.75.
    # log s = mean(−0.75 − old) = (4·0.25 + 4·(−0.25)) / 8 = 0 → s = 1, inside the clip range, no clipping.
    behaviour = torch.tensor([[-1.0] * 4 + [-0.5] * 4])
    new = torch.full((1, 8), -0.75, requires_grad=True)
    _, metrics = gspo_loss(new, behaviour, torch.tensor([1.0]), torch.ones(1, 8))
    assert metrics["ratio_mean"] == pytest.approx(1.0) and metrics["clip_frac"] == 0.0
    # Taking the group's starting version (v0) as the behaviour policy for every token would give
    # log s = 0.25: s = e^0.25, far outside GSPO's clip range, and the sequence would be clipped away.
    _, wrong = gspo_loss(new, torch.full((1, 8), -1.0), torch.tensor([1.0]), torch.ones(1, 8))
    assert wrong["ratio_mean"] == pytest.approx(math.exp(0.25)) and wrong["clip_frac"] == 1.0

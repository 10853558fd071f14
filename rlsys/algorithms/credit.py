"""Token-level credit from a step verifier: put a failed answer's blame on the tokens that were wrong.

With one outcome advantage per answer (GSPO), a worked solution that is right except for one recalled
fact ("3 * 5 = 21") has every token pushed down, the correct steps included. When a step verifier can
point at the false results (`rewards.steps.false_results` for worked arithmetic), `error_tokens`
keeps the outcome advantage Â_i < 0 on exactly those tokens and sets it to 0 on the rest of the answer
(the process-supervision idea of "Let's Verify Step by Step", arXiv 2305.20050, used as credit
assignment). Answers with Â_i ≥ 0, and failed answers in which the verifier finds nothing, keep Â_i on
every token. `step_penalty` β ≥ 0 additionally subtracts β on false-result tokens of every answer, so a
group in which all answers failed (Â = 0) still says which facts were wrong.

The result feeds a loss that takes per-token advantages [B, T] (`gspo_token`, `grpo`); with
`gspo_token` and no verifier hit this reduces exactly to GSPO.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

Span = tuple[int, int]

# The values of `rl.credit`: one outcome advantage on every token of an answer, or `error_tokens` above.
CREDIT_MODES = ("sequence", "error_tokens")


def decode_with_char_ends(decode: Callable[[list[int]], str], token_ids: Sequence[int]) -> tuple[str, list[int]]:
    """The decoded text and the end offset of each token in it: len(decode(ids[: k + 1])) for every k.

    Decoding prefixes (rather than re-encoding the text) keeps the sampled tokenisation, which need
    not be the canonical one; the last prefix is the whole text, so it is not decoded again.
    """
    ids = list(token_ids)
    prefixes = [decode(ids[: k + 1]) for k in range(len(ids))]
    return (prefixes[-1] if prefixes else ""), [len(p) for p in prefixes]


def tokens_in_spans(char_ends: Sequence[int], spans: Sequence[Span]) -> list[bool]:
    """For each token, whether its characters overlap one of the [start, end) spans."""
    out = []
    start = 0
    for end in char_ends:
        out.append(any(start < s_end and s_start < end for s_start, s_end in spans))
        start = end
    return out


def error_token_advantages(
    advantage: float,
    wrong: Sequence[bool],
    step_penalty: float = 0.0,
) -> tuple[list[float], bool]:
    """Per-token advantages for one answer, and whether the blame was localised.

    advantage: the answer's outcome advantage Â_i (group-normalised)
    wrong:     [T] whether each response token lies in a false result (`tokens_in_spans`)
    """
    if step_penalty < 0:
        raise ValueError(f"step_penalty must be >= 0, got {step_penalty}")
    localised = advantage < 0 and any(wrong)
    if localised:
        adv = [advantage if w else 0.0 for w in wrong]
    else:
        adv = [float(advantage)] * len(wrong)
    if step_penalty:
        adv = [a - step_penalty if w else a for a, w in zip(adv, wrong)]
    return adv, localised

"""Likelihood losses: next-token prediction (pretraining on packed documents) and SFT.

All take per-token log-probs of the target tokens (already gathered from the logits), not logits.
"""

from __future__ import annotations

import torch

from rlsys.algorithms.loss_utils import Denominator, masked_sum, normalise, safe_div, to_metrics, upcast
from rlsys.algorithms.registry import register_loss

SFT_REDUCTIONS = ("token_mean", "sample_mean", "square")


def _token_counts(mask: torch.Tensor) -> torch.Tensor:  # [B, T] -> [B]
    # Counts in float32 at least: bf16 cannot represent integers above 256 exactly.
    dtype = torch.float64 if mask.dtype == torch.float64 else torch.float32
    return mask.to(dtype).sum(-1)


def sft_sample_weights(
    mask: torch.Tensor,  # [B, T] 1.0 on loss tokens
    reduction: str = "token_mean",
) -> torch.Tensor:  # [B]
    """Per-sample token weight w_i for an SFT reduction; N_i = Σ_t mask_{i,t}.

    token_mean: w_i = 1; sample_mean: w_i = 1/N_i; square: w_i = 1/√N_i. Samples without loss
    tokens get w_i = 0 so they count in neither numerator nor denominator.
    """
    if reduction not in SFT_REDUCTIONS:
        raise ValueError(f"unknown SFT reduction {reduction!r}; expected one of {SFT_REDUCTIONS}")
    n = _token_counts(mask)
    has_tokens = n > 0
    if reduction == "token_mean":
        return has_tokens.to(n.dtype)
    # where() keeps 1/0 out of the graph; clamp keeps the unused branch finite.
    safe_n = n.clamp_min(1e-12)
    inverse = safe_n.reciprocal() if reduction == "sample_mean" else safe_n.rsqrt()
    return torch.where(has_tokens, inverse, torch.zeros_like(n))


def sft_weight_sum(
    mask: torch.Tensor,  # [B, T] 1.0 on loss tokens
    reduction: str = "token_mean",
) -> torch.Tensor:
    """Local denominator Σ_i w_i·N_i of `sft` (scalar tensor).

    The learner sums it over all DP ranks and micro-batches of a step (all-reduce) and passes the
    total as `global_denominator`. token_mean: number of loss tokens; sample_mean: number of samples
    with loss tokens; square: Σ_i √N_i.
    """
    return (sft_sample_weights(mask, reduction) * _token_counts(mask)).sum()


@register_loss("sft", kind="token_nll")
def sft_loss(
    logprobs: torch.Tensor,  # [B, T] log π(y_t | y_<t) of the target tokens
    mask: torch.Tensor,  # [B, T] 1.0 on loss (response) tokens, 0 on prompt/pad
    reduction: str = "token_mean",
    global_denominator: Denominator = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Supervised fine-tuning NLL with token-mean, sample-mean or square averaging.

    With N_i = Σ_t m_{i,t} and per-sample weight w_i (see `sft_sample_weights`):

        L = − Σ_i w_i Σ_t m_{i,t} log π(y_{i,t}) / Σ_i w_i N_i

    - token_mean (w_i = 1): every loss token counts equally; long samples dominate.
    - sample_mean (w_i = 1/N_i): the mean of per-sample token means; every sample counts equally.
    - square (w_i = 1/√N_i): InternVL3.5 "square averaging" (arXiv 2508.18265 §2.2), between the two:
      a sample's total weight grows as √N_i.

    The denominator is the sum of the weights of all loss tokens; under data parallelism pass its
    all-reduced value (`sft_weight_sum` summed over ranks and micro-batches) as `global_denominator`.

    Metrics: `nll` (plain local token-mean NLL, comparable across reductions), `num_tokens`,
    `num_samples` (with loss tokens), `weight_sum` (the local denominator).
    """
    logprobs = upcast(logprobs)
    mask = mask.to(logprobs.dtype)
    weights = sft_sample_weights(mask, reduction).to(logprobs.dtype)  # [B]
    nll_per_sample = -masked_sum(logprobs, mask, dim=-1)  # [B]
    n = mask.sum(-1)  # [B]
    weight_sum = (weights * n).sum()
    loss = normalise((weights * nll_per_sample).sum(), weight_sum, global_denominator)
    num_tokens = n.sum()
    metrics = to_metrics(
        loss=loss,
        nll=safe_div(nll_per_sample.sum(), num_tokens),
        num_tokens=num_tokens,
        num_samples=(n > 0).sum(),
        weight_sum=weight_sum,
    )
    return loss, metrics


@register_loss("ntp", kind="token_nll")
def ntp_loss(
    logprobs: torch.Tensor,  # [B, T] log π(x_t | x_<t) of the next tokens of packed documents
    mask: torch.Tensor,  # [B, T] 1.0 on tokens to predict (0 on pad and across document boundaries)
    global_denominator: Denominator = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Next-token prediction (pretraining) loss: token-mean negative log-likelihood.

        L = − Σ_{b,t} m_{b,t} log π(x_{b,t} | x_{b,<t}) / Σ_{b,t} m_{b,t}

    With packed documents each row holds several documents; the packer masks out the padding and
    every position whose target starts a new document (it has no in-document context).
    `global_denominator` is the number of loss tokens over all DP ranks and micro-batches of the step.

    Metrics: `nll` (local token mean), `ppl` = exp(nll), `num_tokens`.
    """
    logprobs = upcast(logprobs)
    mask = mask.to(logprobs.dtype)
    total_nll = -masked_sum(logprobs, mask)
    num_tokens = mask.sum()
    loss = normalise(total_nll, num_tokens, global_denominator)
    local_nll = safe_div(total_nll, num_tokens)
    metrics = to_metrics(loss=loss, nll=local_nll, ppl=local_nll.detach().exp(), num_tokens=num_tokens)
    return loss, metrics

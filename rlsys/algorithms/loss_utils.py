"""Tensor helpers shared by the losses: masked reductions, data-parallel normalisation, metrics.

Data-parallel normalisation: a loss is `numerator / denominator`. When the learner passes
`global_denominator` (the denominator summed over every DP rank and micro-batch of the optimizer
step), the per-micro-batch losses add up, over ranks and micro-batches, to the global mean. Engines
that *average* gradients over ranks (DDP, DeepSpeed) divide by the world size once more; the learner
compensates by scaling the loss by the world size. With `global_denominator=None` the local
denominator is used and the loss is the micro-batch mean.
"""

from __future__ import annotations

import torch

# Clamp for denominators: a micro-batch (or a whole step) with no loss tokens has numerator 0 and
# must give loss 0, not NaN.
_TINY_DENOMINATOR = 1e-12

Denominator = float | torch.Tensor | None


def upcast(x: torch.Tensor) -> torch.Tensor:  # any shape -> same shape
    """Half-precision inputs go to float32: bf16 spacing near 1 is 2^-7, far coarser than GSPO's
    clip range of 3e-4, so ratios and sums must not be formed in bf16. float64 stays float64."""
    if x.dtype in (torch.float16, torch.bfloat16):
        return x.float()
    return x


def zero_outside(
    x: torch.Tensor,  # [B, T] (any shape)
    mask: torch.Tensor,  # same shape as x
) -> torch.Tensor:  # same shape as x
    """`x` with positions outside `mask` set to 0.

    Padded positions may hold garbage such as -inf; `0 * -inf` is NaN and would poison both the sum
    and its gradient. `torch.where` routes gradient only to the kept positions, so no NaN leaks.
    """
    return torch.where(mask != 0, x, torch.zeros((), dtype=x.dtype, device=x.device))


def masked_sum(
    x: torch.Tensor,  # [B, T] (any shape)
    mask: torch.Tensor,  # same shape as x
    dim: int | None = None,
) -> torch.Tensor:  # x's shape without `dim`; a scalar when dim is None
    """Σ mask·x over `dim` (all dims when None); `mask` may hold fractional weights."""
    weighted = zero_outside(x, mask) * mask.to(x.dtype)
    return weighted.sum() if dim is None else weighted.sum(dim)


def normalise(
    numerator: torch.Tensor,  # [] local sum
    local_denominator: torch.Tensor,  # [] local count or weight sum
    global_denominator: Denominator,  # [] or float: the all-reduced denominator, or None
) -> torch.Tensor:  # []
    """numerator / (global_denominator if given else local_denominator), 0 when the denominator is 0."""
    if global_denominator is None:
        denominator = local_denominator
    else:
        denominator = torch.as_tensor(global_denominator, dtype=numerator.dtype, device=numerator.device)
    # The denominator is a count of tokens/samples, never something to differentiate through.
    return numerator / denominator.detach().to(numerator).clamp_min(_TINY_DENOMINATOR)


def safe_div(
    numerator: torch.Tensor,  # any shape
    denominator: torch.Tensor,  # broadcastable to numerator
) -> torch.Tensor:
    """Element-wise numerator / denominator with 0 where the denominator is 0 (for metrics/means)."""
    return numerator / denominator.clamp_min(_TINY_DENOMINATOR)


def to_metrics(**values: torch.Tensor | float) -> dict[str, float]:  # tensors: [] each
    """Detach scalar tensors into python floats with a single device->host copy (one sync, not one
    per metric)."""
    tensors = {k: v for k, v in values.items() if isinstance(v, torch.Tensor)}
    out = {k: float(v) for k, v in values.items() if not isinstance(v, torch.Tensor)}
    if tensors:
        stacked = torch.stack([t.detach().to(torch.float64).reshape(()) for t in tensors.values()])
        out.update(zip(tensors, stacked.cpu().tolist()))
    return {k: out[k] for k in values}


def entropy_from_logits(
    logits: torch.Tensor,  # [B, T, V] unnormalised scores
    mask: torch.Tensor,  # [B, T] 1.0 on tokens to average over
) -> torch.Tensor:
    """Token-mean entropy of the categorical distributions given by `logits`, over masked tokens.

    In log space: log p_t = log_softmax(z_t), H_t = −Σ_v p_{t,v} log p_{t,v}; returns
    Σ mask·H / Σ mask. Logits of −inf (banned tokens) contribute 0 (p log p → 0 as p → 0).
    Returns a scalar tensor (not detached) so it can also serve as an entropy bonus. Materialises a
    softmax of the logits' size; call it under `torch.no_grad()` when it is only a metric.
    """
    log_p = torch.log_softmax(upcast(logits), dim=-1)
    p = log_p.exp()
    # Zero log p where p == 0 *before* the product: 0·(−inf) is NaN in the value and the gradient.
    log_p = torch.where(p > 0, log_p, torch.zeros((), dtype=log_p.dtype, device=log_p.device))
    token_entropy = -(p * log_p).sum(-1)  # [B, T]
    mask = mask.to(token_entropy.dtype)
    return safe_div(masked_sum(token_entropy, mask), mask.sum())

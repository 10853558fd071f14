"""Clipped policy-gradient losses for online RL on sampled responses: GSPO, GSPO-token, GRPO.

Token inputs are [B, T] per-token log-probs of the sampled tokens: `logprobs` under the policy being
trained (π_θ, carries gradient), `old_logprobs` under the behaviour policy that sampled them (π_old),
optional `ref_logprobs` under a frozen reference (π_ref). `mask` is 1.0 on response tokens. Ratios
are formed in log space and exponentiated once, in float32 or wider.

Sequences without loss tokens (padding rows) take no part in any mean. For the sequence-mean
aggregations the data-parallel `global_denominator` is the number of sequences with loss tokens over
all ranks and micro-batches of the step; for GRPO's `token_mean` it is the number of loss tokens.
`rl_loss_denominator` gives the local value to all-reduce.
"""

from __future__ import annotations

import torch

from rlsys.algorithms.loss_utils import (
    Denominator,
    masked_sum,
    normalise,
    safe_div,
    to_metrics,
    upcast,
    zero_outside,
)
from rlsys.algorithms.registry import register_loss

AGGREGATIONS = ("seq_mean_token_mean", "token_mean")

# exp(20) ≈ 4.9e8: keeps ratios finite in float32 when the policy has drifted far from π_old; such
# ratios are clipped anyway whenever the advantage sign makes clipping apply.
_LOG_RATIO_BOUND = 20.0


def rl_loss_denominator(
    mask: torch.Tensor,  # [B, T] 1.0 on response tokens
    aggregation: str = "seq_mean_token_mean",
) -> torch.Tensor:
    """Local denominator of the RL losses, to all-reduce into `global_denominator`.

    seq_mean_token_mean (gspo, gspo_token, grpo's default): number of sequences with loss tokens.
    token_mean (grpo option): number of loss tokens.
    """
    _check_aggregation(aggregation)
    lengths = mask.to(torch.float32).sum(-1)
    return lengths.sum() if aggregation == "token_mean" else (lengths > 0).to(torch.float32).sum()


def _check_aggregation(aggregation: str) -> None:
    if aggregation not in AGGREGATIONS:
        raise ValueError(f"unknown aggregation {aggregation!r}; expected one of {AGGREGATIONS}")


def _prepare(
    logprobs: torch.Tensor,  # [B, T] log π_θ
    other: torch.Tensor,  # [B, T] log π_old or log π_ref
    mask: torch.Tensor,  # [B, T]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:  # three [B, T]
    """Upcast, zero the non-loss positions, and detach `other` (π_old / π_ref are constants)."""
    lp = upcast(logprobs)
    m = mask.to(lp.dtype)
    return zero_outside(lp, m), zero_outside(upcast(other).detach().to(lp.dtype), m), m


def _aggregate(
    per_token: torch.Tensor,  # [B, T]
    mask: torch.Tensor,  # [B, T]
    aggregation: str,
    global_denominator: Denominator,
) -> torch.Tensor:
    """Scalar mean of `per_token` over loss tokens: per-sequence token mean then mean over sequences,
    or one token mean over the whole batch."""
    if aggregation == "token_mean":
        return normalise(masked_sum(per_token, mask), mask.sum(), global_denominator)
    lengths = mask.sum(-1)
    per_sequence = safe_div(masked_sum(per_token, mask, dim=-1), lengths)  # 0 for empty rows
    return normalise(per_sequence.sum(), (lengths > 0).to(lengths.dtype).sum(), global_denominator)


def _k3_kl(
    logprobs: torch.Tensor,  # [B, T]
    ref_logprobs: torch.Tensor | None,  # [B, T]
    mask: torch.Tensor,  # [B, T]
    kl_coef: float,
    aggregation: str,
    global_denominator: Denominator,
    kl_weights: torch.Tensor | None = None,  # [B] per-sequence weight of the KL term
) -> torch.Tensor | None:
    """k3 estimate of KL(π_θ ‖ π_ref) (Schulman 2020, "Approximating KL divergence"), aggregated.

    Per token, with log r = log π_ref − log π_θ: k3 = exp(log r) − log r − 1 ≥ 0, unbiased for
    KL(π_θ ‖ π_ref) under samples from π_θ, and low-variance. None when no reference is given.
    `kl_weights` scales each sequence's k3 before the usual aggregation over all sequences (weight 0:
    the sequence is not anchored but still counts in the mean), e.g. to anchor only reasoning rows.
    """
    if ref_logprobs is None:
        if kl_coef != 0.0:
            raise ValueError("kl_coef is non-zero but no ref_logprobs were given")
        return None
    lp, ref, m = _prepare(logprobs, ref_logprobs, mask)
    log_r = (ref - lp).clamp(-_LOG_RATIO_BOUND, _LOG_RATIO_BOUND)
    k3 = log_r.exp() - log_r - 1.0
    if kl_weights is not None:
        k3 = k3 * upcast(kl_weights).detach().to(k3)[:, None]
    return _aggregate(k3, m, aggregation, global_denominator)


def _clipped_objective(
    ratio: torch.Tensor,  # [B] or [B, T]
    advantages: torch.Tensor,  # same shape as ratio
    eps_low: float,
    eps_high: float,
) -> tuple[torch.Tensor, torch.Tensor]:  # surrogate and clipped flags, shaped like ratio
    """PPO surrogate min(r·A, clip(r, 1−ε_low, 1+ε_high)·A) and where its clipped branch is active.

    The clipped branch is the minimum (and the gradient is zero) exactly when A > 0 and r > 1+ε_high,
    or A < 0 and r < 1−ε_low.
    """
    surrogate = torch.minimum(ratio * advantages, ratio.clamp(1.0 - eps_low, 1.0 + eps_high) * advantages)
    clipped = ((advantages > 0) & (ratio > 1.0 + eps_high)) | ((advantages < 0) & (ratio < 1.0 - eps_low))
    return surrogate, clipped


def _sequence_log_ratio(
    lp: torch.Tensor,  # [B, T] log π_θ, zero outside the mask
    old: torch.Tensor,  # [B, T] log π_old, zero outside the mask
    mask: torch.Tensor,  # [B, T]
) -> tuple[torch.Tensor, torch.Tensor]:  # ([B], [B])
    """log s_i = (1/|y_i|) Σ_t mask·(log π_θ − log π_old), and |y_i| = Σ_t mask."""
    lengths = mask.sum(-1)
    log_s = safe_div(masked_sum(lp - old, mask, dim=-1), lengths)
    return log_s.clamp(-_LOG_RATIO_BOUND, _LOG_RATIO_BOUND), lengths


def _token_advantages(
    advantages: torch.Tensor,  # [B] or [B, T]
    like: torch.Tensor,  # [B, T]
) -> torch.Tensor:  # [B, T]
    adv = upcast(advantages).detach().to(like)
    if adv.dim() == 1:
        return adv[:, None].expand_as(like)
    if adv.shape != like.shape:
        raise ValueError(f"advantages must be [B] or [B, T]={tuple(like.shape)}, got {tuple(adv.shape)}")
    return adv


@register_loss("gspo", kind="policy_gradient")
def gspo_loss(
    logprobs: torch.Tensor,  # [B, T] log π_θ(y_t | x, y_<t), with gradient
    old_logprobs: torch.Tensor,  # [B, T] log π_old(y_t | x, y_<t) from the rollout
    advantages: torch.Tensor,  # [B] one advantage Â_i per sequence
    mask: torch.Tensor,  # [B, T] 1.0 on response tokens
    eps_low: float = 3e-4,
    eps_high: float = 4e-4,
    ref_logprobs: torch.Tensor | None = None,  # [B, T] log π_ref, only for the optional KL term
    kl_coef: float = 0.0,
    kl_weights: torch.Tensor | None = None,  # [B] per-sequence KL weight (None: 1 for all)
    global_denominator: Denominator = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Group Sequence Policy Optimization (Zheng et al. 2025, arXiv 2507.18071 §4.1).

    Length-normalised sequence importance ratio, in log space:

        log s_i = (1/|y_i|) Σ_t [log π_θ(y_{i,t}) − log π_old(y_{i,t})],   s_i = exp(log s_i)
        J       = mean_i min(s_i Â_i, clip(s_i, 1−ε_low, 1+ε_high) Â_i)
        L       = −J + kl_coef · mean_i (1/|y_i|) Σ_t k3_{i,t}                  (KL optional, off)

    Unclipped, ∇J_i = s_i Â_i · (1/|y_i|) Σ_t ∇ log π_θ(y_{i,t}): every token of a sequence gets the
    same weight. A clipped sequence contributes no gradient. Paper defaults ε_low=3e-4, ε_high=4e-4
    and no KL. |log s_i| is clamped at 20 so s_i stays finite.

    Metrics (local): `clip_frac` (share of sequences whose clipped branch is active),
    `clip_frac_tokens` (share of loss tokens in such sequences; comparable with GRPO's token
    clip_frac, the statistic the paper plots), `mean_abs_log_ratio` (mean |log s_i|), `ratio_mean`
    (mean s_i), `policy_loss`, and `kl` when `ref_logprobs` is given.
    """
    if advantages.dim() != 1:
        raise ValueError("gspo takes one advantage per sequence ([B]); use gspo_token for [B, T]")
    lp, old, m = _prepare(logprobs, old_logprobs, mask)
    log_s, lengths = _sequence_log_ratio(lp, old, m)
    ratio = log_s.exp()  # [B]
    adv = upcast(advantages).detach().to(ratio)
    surrogate, clipped = _clipped_objective(ratio, adv, eps_low, eps_high)
    present = (lengths > 0).to(ratio.dtype)
    num_sequences = present.sum()
    policy_loss = normalise(-(surrogate * present).sum(), num_sequences, global_denominator)
    kl = _k3_kl(logprobs, ref_logprobs, mask, kl_coef, "seq_mean_token_mean", global_denominator, kl_weights)
    loss = policy_loss if kl is None else policy_loss + kl_coef * kl
    clipped_f = clipped.to(ratio.dtype) * present
    extra = {} if kl is None else {"kl": kl}
    metrics = to_metrics(
        loss=loss,
        policy_loss=policy_loss,
        clip_frac=safe_div(clipped_f.sum(), num_sequences),
        clip_frac_tokens=safe_div((clipped_f * lengths).sum(), lengths.sum()),
        mean_abs_log_ratio=safe_div((log_s.abs() * present).sum(), num_sequences),
        ratio_mean=safe_div((ratio * present).sum(), num_sequences),
        **extra,
    )
    return loss, metrics


@register_loss("gspo_token", kind="policy_gradient")
def gspo_token_loss(
    logprobs: torch.Tensor,  # [B, T] log π_θ(y_t | x, y_<t), with gradient
    old_logprobs: torch.Tensor,  # [B, T] log π_old(y_t | x, y_<t) from the rollout
    advantages: torch.Tensor,  # [B, T] per-token Â_{i,t}, or [B] broadcast over tokens
    mask: torch.Tensor,  # [B, T] 1.0 on response tokens
    eps_low: float = 3e-4,
    eps_high: float = 4e-4,
    ref_logprobs: torch.Tensor | None = None,  # [B, T] log π_ref, only for the optional KL term
    kl_coef: float = 0.0,
    kl_weights: torch.Tensor | None = None,  # [B] per-sequence KL weight (None: 1 for all)
    global_denominator: Denominator = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """GSPO-token (arXiv 2507.18071 §4.3): GSPO's sequence ratio with per-token advantages.

    With sg[·] the stop-gradient and log s_i as in `gspo_loss`:

        log s_{i,t} = sg[log s_i] + log π_θ(y_{i,t}) − sg[log π_θ(y_{i,t})]
        J           = mean_i (1/|y_i|) Σ_t min(s_{i,t} Â_{i,t}, clip(s_{i,t}, 1−ε_low, 1+ε_high) Â_{i,t})

    Numerically s_{i,t} = s_i, but ∇ log s_{i,t} = ∇ log π_θ(y_{i,t}); so with Â_{i,t} = Â_i for
    all t the value and the gradient equal GSPO's. Clipping acts per token.

    Metrics (local): `clip_frac` (share of loss tokens clipped), `mean_abs_log_ratio` (mean over
    sequences of |log s_i|), `ratio_mean` (token mean of s_{i,t}), `policy_loss`, `kl` if used.
    """
    lp, old, m = _prepare(logprobs, old_logprobs, mask)
    log_s, lengths = _sequence_log_ratio(lp, old, m)
    log_ratio = lp - lp.detach() + log_s.detach()[:, None]  # [B, T]
    ratio = log_ratio.exp()
    adv = _token_advantages(advantages, ratio)
    surrogate, clipped = _clipped_objective(ratio, adv, eps_low, eps_high)
    policy_loss = -_aggregate(surrogate, m, "seq_mean_token_mean", global_denominator)
    kl = _k3_kl(logprobs, ref_logprobs, mask, kl_coef, "seq_mean_token_mean", global_denominator, kl_weights)
    loss = policy_loss if kl is None else policy_loss + kl_coef * kl
    num_tokens = m.sum()
    num_sequences = (lengths > 0).to(m.dtype).sum()
    extra = {} if kl is None else {"kl": kl}
    metrics = to_metrics(
        loss=loss,
        policy_loss=policy_loss,
        clip_frac=safe_div(masked_sum(clipped.to(m.dtype), m), num_tokens),
        mean_abs_log_ratio=safe_div((log_s.abs() * (lengths > 0)).sum(), num_sequences),
        ratio_mean=safe_div(masked_sum(ratio, m), num_tokens),
        **extra,
    )
    return loss, metrics


@register_loss("grpo", kind="policy_gradient")
def grpo_loss(
    logprobs: torch.Tensor,  # [B, T] log π_θ(y_t | x, y_<t), with gradient
    old_logprobs: torch.Tensor,  # [B, T] log π_old(y_t | x, y_<t) from the rollout
    advantages: torch.Tensor,  # [B] per sequence (broadcast over tokens) or [B, T] per token
    mask: torch.Tensor,  # [B, T] 1.0 on response tokens
    eps_low: float = 0.2,
    eps_high: float = 0.27,
    aggregation: str = "seq_mean_token_mean",
    ref_logprobs: torch.Tensor | None = None,  # [B, T] log π_ref, only for the optional KL term
    kl_coef: float = 0.0,
    kl_weights: torch.Tensor | None = None,  # [B] per-sequence KL weight (None: 1 for all)
    global_denominator: Denominator = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """GRPO with a token-level ratio (Shao et al. 2024, arXiv 2402.03300 §4.1, eq. 3) and DAPO's
    asymmetric "clip-higher" range (Yu et al. 2025, arXiv 2503.14476 §3.1).

        log r_{i,t} = log π_θ(y_{i,t}) − log π_old(y_{i,t}),   r_{i,t} = exp(log r_{i,t})
        j_{i,t}     = min(r_{i,t} Â_{i,t}, clip(r_{i,t}, 1−ε_low, 1+ε_high) Â_{i,t})

    aggregation="seq_mean_token_mean" (default, GRPO's original): J = mean_i (1/|y_i|) Σ_t j_{i,t},
    each sequence weighs the same whatever its length. aggregation="token_mean" (DAPO's
    token-level loss): J = Σ_{i,t} j_{i,t} / Σ_i |y_i|, each token weighs the same. The optional k3
    KL to π_ref (off by default) is aggregated the same way; L = −J + kl_coef·KL. Defaults
    ε_low=0.2, ε_high=0.27 are the GSPO paper's GRPO baseline.

    Metrics (local): `clip_frac` (share of loss tokens whose clipped branch is active),
    `ratio_mean` (token mean of r), `mean_abs_log_ratio` (token mean of |log r|), `policy_loss`,
    `kl` if used.
    """
    _check_aggregation(aggregation)
    lp, old, m = _prepare(logprobs, old_logprobs, mask)
    log_ratio = (lp - old).clamp(-_LOG_RATIO_BOUND, _LOG_RATIO_BOUND)
    ratio = log_ratio.exp()  # [B, T]
    adv = _token_advantages(advantages, ratio)
    surrogate, clipped = _clipped_objective(ratio, adv, eps_low, eps_high)
    policy_loss = -_aggregate(surrogate, m, aggregation, global_denominator)
    kl = _k3_kl(logprobs, ref_logprobs, mask, kl_coef, aggregation, global_denominator, kl_weights)
    loss = policy_loss if kl is None else policy_loss + kl_coef * kl
    num_tokens = m.sum()
    extra = {} if kl is None else {"kl": kl}
    metrics = to_metrics(
        loss=loss,
        policy_loss=policy_loss,
        clip_frac=safe_div(masked_sum(clipped.to(m.dtype), m), num_tokens),
        ratio_mean=safe_div(masked_sum(ratio, m), num_tokens),
        mean_abs_log_ratio=safe_div(masked_sum(log_ratio.abs(), m), num_tokens),
        **extra,
    )
    return loss, metrics

"""Preference losses on (chosen, rejected) pairs: DPO, BCO, MPO, and Bradley-Terry for reward models.

Policy inputs are *summed* sequence log-probs log π(y|x) = Σ_t log π(y_t | x, y_<t) over the response
tokens, one per pair, under the trained policy and the frozen reference. Means are over pairs;
`global_denominator` is the number of pairs over all DP ranks and micro-batches of the step.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from rlsys.algorithms.loss_utils import Denominator, normalise, to_metrics, upcast
from rlsys.algorithms.registry import register_loss


def implicit_rewards(
    policy_logps: torch.Tensor,  # [B] Σ_t log π_θ(y_t | x, y_<t)
    ref_logps: torch.Tensor,  # [B] Σ_t log π_ref(y_t | x, y_<t)
    beta: float,
) -> torch.Tensor:  # [B]
    """DPO's implicit reward ρ(y) = β·(log π_θ(y|x) − log π_ref(y|x)); the reference is not trained."""
    return beta * (upcast(policy_logps) - upcast(ref_logps).detach())


@dataclass
class RunningMean:
    """Running mean of every reward seen so far: BCO's reward shift δ.

    Kept outside the loss so the loss stays a pure function: the learner passes `mean` in as
    `delta`, then calls `update` with the batch's detached rewards ρ(y_c) and ρ(y_r). Under data
    parallelism every rank must hold the same δ: all-reduce the batch's reward sum and count and call
    `update_from_sums`. Persist it with `state_dict` so a resumed run continues with the same δ.
    """

    mean: float = 0.0
    count: int = 0

    def update(self, values: torch.Tensor | Sequence[float]) -> float:
        """Fold `values` (any shape) into the mean; returns the new mean."""
        flat = torch.as_tensor(values, dtype=torch.float64).detach().flatten()
        return self.update_from_sums(float(flat.sum()), flat.numel())

    def update_from_sums(self, total: float, count: int) -> float:
        """Fold in `count` values whose sum is `total`; returns the new mean."""
        if count <= 0:
            return self.mean
        new_count = self.count + int(count)
        # Incremental form: stays accurate when count is large and the batch is small.
        self.mean += (float(total) - self.mean * count) / new_count
        self.count = new_count
        return self.mean

    def state_dict(self) -> dict[str, float | int]:
        return {"mean": self.mean, "count": self.count}

    def load_state_dict(self, state: dict[str, float | int]) -> None:
        self.mean = float(state["mean"])
        self.count = int(state["count"])


def _dpo_per_pair(
    rho_chosen: torch.Tensor,  # [B] ρ(y_c)
    rho_rejected: torch.Tensor,  # [B] ρ(y_r)
) -> torch.Tensor:  # [B]
    return -F.logsigmoid(rho_chosen - rho_rejected)


def _bco_per_pair(
    rho_chosen: torch.Tensor,  # [B] ρ(y_c)
    rho_rejected: torch.Tensor,  # [B] ρ(y_r)
    delta: torch.Tensor,  # [] reward shift δ
) -> torch.Tensor:  # [B]
    return -F.logsigmoid(rho_chosen - delta) - F.logsigmoid(-(rho_rejected - delta))


def _as_delta(delta: float | torch.Tensor, like: torch.Tensor) -> torch.Tensor:  # []
    # δ is a baseline estimated from past batches, never a path for gradient.
    return torch.as_tensor(delta, dtype=like.dtype, device=like.device).detach()


def _reward_metrics(
    rho_chosen: torch.Tensor,  # [B]
    rho_rejected: torch.Tensor,  # [B]
) -> dict[str, torch.Tensor]:
    return {
        "reward_accuracy": (rho_chosen > rho_rejected).to(rho_chosen.dtype).mean(),
        "reward_margin": (rho_chosen - rho_rejected).mean(),
        "chosen_reward": rho_chosen.mean(),
        "rejected_reward": rho_rejected.mean(),
    }


@register_loss("dpo", kind="preference")
def dpo_loss(
    policy_chosen_logps: torch.Tensor,  # [B] log π_θ(y_c|x), summed over response tokens
    policy_rejected_logps: torch.Tensor,  # [B] log π_θ(y_r|x)
    ref_chosen_logps: torch.Tensor,  # [B] log π_ref(y_c|x)
    ref_rejected_logps: torch.Tensor,  # [B] log π_ref(y_r|x)
    beta: float = 0.1,
    global_denominator: Denominator = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Direct Preference Optimization, sigmoid form (Rafailov et al. 2023, arXiv 2305.18290, eq. 7).

    With ρ(y) = β·(log π_θ(y|x) − log π_ref(y|x)):

        L = mean_pairs −log σ(ρ(y_c) − ρ(y_r))

    Metrics (local): `reward_accuracy` (share of pairs with ρ(y_c) > ρ(y_r); ties count as wrong),
    `reward_margin` (mean ρ(y_c) − ρ(y_r)), `chosen_reward`, `rejected_reward` (means of ρ).
    """
    rho_c = implicit_rewards(policy_chosen_logps, ref_chosen_logps, beta)
    rho_r = implicit_rewards(policy_rejected_logps, ref_rejected_logps, beta)
    per_pair = _dpo_per_pair(rho_c, rho_r)
    loss = normalise(per_pair.sum(), per_pair.new_tensor(float(per_pair.numel())), global_denominator)
    return loss, to_metrics(loss=loss, **_reward_metrics(rho_c, rho_r))


@register_loss("bco_pair", kind="preference")
def bco_pair_loss(
    policy_chosen_logps: torch.Tensor,  # [B] log π_θ(y_c|x), summed over response tokens
    policy_rejected_logps: torch.Tensor,  # [B] log π_θ(y_r|x)
    ref_chosen_logps: torch.Tensor,  # [B] log π_ref(y_c|x)
    ref_rejected_logps: torch.Tensor,  # [B] log π_ref(y_r|x)
    delta: float | torch.Tensor = 0.0,
    beta: float = 0.1,
    global_denominator: Denominator = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Binary Classifier Optimization on pairs (Jung et al. 2024, arXiv 2404.04656), as used by MPO.

    With ρ(y) = β·(log π_θ(y|x) − log π_ref(y|x)) and reward shift δ:

        L = mean_pairs [ −log σ(ρ(y_c) − δ) − log σ(−(ρ(y_r) − δ)) ]

    i.e. a logistic classifier that pushes chosen rewards above δ and rejected rewards below it.
    δ is the running mean of past rewards (`RunningMean.mean`), passed in and treated as a constant.
    The loss uses δ from *before* this batch's update: every micro-batch of a step then sees the
    same δ, the loss is a pure function of its inputs, and resume is exact. (TRL's DPOTrainer
    `bco_pair` folds the current batch in first; the difference is one batch out of the history.)

    Metrics (local): `chosen_reward`, `rejected_reward`, `reward_accuracy`, `reward_margin`,
    `delta`. The learner updates δ with `RunningMean.update(torch.cat([ρ_c, ρ_r]))`, computing ρ
    with `implicit_rewards`.
    """
    rho_c = implicit_rewards(policy_chosen_logps, ref_chosen_logps, beta)
    rho_r = implicit_rewards(policy_rejected_logps, ref_rejected_logps, beta)
    delta_t = _as_delta(delta, rho_c)
    per_pair = _bco_per_pair(rho_c, rho_r, delta_t)
    loss = normalise(per_pair.sum(), per_pair.new_tensor(float(per_pair.numel())), global_denominator)
    return loss, to_metrics(loss=loss, delta=delta_t, **_reward_metrics(rho_c, rho_r))


@register_loss("mpo", kind="preference")
def mpo_loss(
    policy_chosen_logps: torch.Tensor,  # [B] log π_θ(y_c|x), summed over response tokens
    policy_rejected_logps: torch.Tensor,  # [B] log π_θ(y_r|x)
    ref_chosen_logps: torch.Tensor,  # [B] log π_ref(y_c|x)
    ref_rejected_logps: torch.Tensor,  # [B] log π_ref(y_r|x)
    chosen_lengths: torch.Tensor,  # [B] |y_c|, number of response tokens of the chosen answer
    delta: float | torch.Tensor = 0.0,
    beta: float = 0.1,
    w_p: float = 0.8,
    w_q: float = 0.2,
    w_g: float = 1.0,
    global_denominator: Denominator = None,
    chosen_sft_logps: torch.Tensor | None = None,  # [B] log π_θ(y_c|x) over the whole chosen response
) -> tuple[torch.Tensor, dict[str, float]]:
    """Mixed Preference Optimization (Wang et al. 2024, arXiv 2411.10442 §4.1).

    With ρ(y) = β·(log π_θ(y|x) − log π_0(y|x)) and δ the running mean of past rewards:

        L_DPO = −log σ(ρ(y_c) − ρ(y_r))                         (preference)
        L_BCO = −log σ(ρ(y_c) − δ) − log σ(−(ρ(y_r) − δ))       (quality)
        L_SFT = −log π_θ(y_c|x) / |y_c|                         (generation, length-normalised)
        L     = mean_pairs [ w_p·L_DPO + w_q·L_BCO + w_g·L_SFT ]

    Defaults are the paper's (w_p=0.8, w_q=0.2, w_g=1.0, β=0.1). δ follows `bco_pair_loss`: the
    value from before this batch's update, passed in. When the preference terms score only part of
    each response (stage `pair_scope`), `chosen_sft_logps` gives L_SFT the whole chosen response
    (`chosen_lengths` is then its length too).

    Metrics (local means): `dpo_loss`, `bco_loss`, `sft_loss` (unweighted parts), the reward
    metrics of `dpo_loss`, and `delta`.
    """
    rho_c = implicit_rewards(policy_chosen_logps, ref_chosen_logps, beta)
    rho_r = implicit_rewards(policy_rejected_logps, ref_rejected_logps, beta)
    delta_t = _as_delta(delta, rho_c)
    dpo = _dpo_per_pair(rho_c, rho_r)
    bco = _bco_per_pair(rho_c, rho_r, delta_t)
    lengths = chosen_lengths.to(rho_c).clamp_min(1.0)
    sft = -upcast(policy_chosen_logps if chosen_sft_logps is None else chosen_sft_logps) / lengths
    per_pair = w_p * dpo + w_q * bco + w_g * sft
    loss = normalise(per_pair.sum(), per_pair.new_tensor(float(per_pair.numel())), global_denominator)
    metrics = to_metrics(
        loss=loss,
        dpo_loss=dpo.mean(),
        bco_loss=bco.mean(),
        sft_loss=sft.mean(),
        delta=delta_t,
        **_reward_metrics(rho_c, rho_r),
    )
    return loss, metrics


@register_loss("bradley_terry", kind="pairwise_score")
def bradley_terry_loss(
    chosen_scores: torch.Tensor,  # [B] scalar reward-model score of the preferred response
    rejected_scores: torch.Tensor,  # [B] score of the other response
    margin: float | torch.Tensor | None = None,  # scalar or [B], required score gap
    global_denominator: Denominator = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Bradley-Terry pairwise loss for a scalar reward model (Ouyang et al. 2022, arXiv 2203.02155
    eq. 1; the margin as in Llama 2, arXiv 2307.09288 §3.2.2).

        L = mean_pairs −log σ(s_c − s_r − m)

    Metrics (local): `accuracy` (share with s_c > s_r, ignoring the margin), `margin` (mean s_c − s_r),
    `chosen_score`, `rejected_score`.
    """
    s_c = upcast(chosen_scores)
    s_r = upcast(rejected_scores)
    gap = s_c - s_r
    target_gap = gap if margin is None else gap - torch.as_tensor(margin, dtype=gap.dtype, device=gap.device)
    per_pair = -F.logsigmoid(target_gap)
    loss = normalise(per_pair.sum(), per_pair.new_tensor(float(per_pair.numel())), global_denominator)
    metrics = to_metrics(
        loss=loss,
        accuracy=(gap > 0).to(gap.dtype).mean(),
        margin=gap.mean(),
        chosen_score=s_c.mean(),
        rejected_score=s_r.mean(),
    )
    return loss, metrics

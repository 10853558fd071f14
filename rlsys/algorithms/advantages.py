"""Advantage estimators, registered by name like the losses.

    from rlsys.algorithms.advantages import get_advantage
    adv = get_advantage("grpo_group")(rewards, group_size=8)  # [N] -> [N]

Each estimator maps per-response rewards to per-response advantages (no gradient).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from rlsys.algorithms.registry import F, Registry

AdvantageFn = Callable[..., torch.Tensor]

ADVANTAGES = Registry("advantage estimator")


def register_advantage(name: str) -> Callable[[F], F]:
    """Register an advantage estimator under `name` (decorator)."""
    return ADVANTAGES.register(name)


def get_advantage(name: str) -> AdvantageFn:
    """Return the estimator registered as `name`; KeyError listing the known names otherwise."""
    return ADVANTAGES.get(name)


def list_advantages() -> list[str]:
    """Sorted names of all registered advantage estimators."""
    return ADVANTAGES.names()


def _group_index(
    num: int, group_ids: torch.Tensor | None, group_size: int | None, device: torch.device
) -> tuple[torch.Tensor, int]:
    """Dense group index in [0, G) for every element, and G."""
    if (group_ids is None) == (group_size is None):
        raise ValueError("give exactly one of group_ids and group_size")
    if group_ids is not None:
        if group_ids.shape != (num,):
            raise ValueError(f"group_ids must have shape ({num},), got {tuple(group_ids.shape)}")
        uniques, index = torch.unique(group_ids.to(device), return_inverse=True)
        return index, uniques.numel()
    assert group_size is not None
    if group_size <= 0 or num % group_size != 0:
        raise ValueError(f"group_size={group_size} does not divide the {num} rewards")
    return torch.arange(num, device=device) // group_size, num // group_size


@register_advantage("grpo_group")
def group_normalized_advantages(
    rewards: torch.Tensor,  # [N] one scalar reward per response
    group_ids: torch.Tensor | None = None,  # [N] any ids; equal id = same prompt's group
    group_size: int | None = None,  # alternative: groups are consecutive runs of this size
    eps: float = 1e-6,
    normalize_std: bool = True,
) -> torch.Tensor:  # [N]
    """Group-relative advantages of GRPO/GSPO (arXiv 2402.03300 §4.1.2; arXiv 2507.18071 §4.1).

        Â_i = (r_i − mean_g(r)) / (std_g(r) + eps)      over the group g of response i

    std is the *population* standard deviation (unbiased=False, divide by G): it is the std of the
    group as it is, the one the GSPO formula writes, and is defined for groups of one. A group whose
    rewards are all equal (no learning signal) gets exactly 0, which the formula would only
    approximate after rounding. `normalize_std=False` gives r_i − mean_g(r) (Dr. GRPO,
    arXiv 2503.20783), which leaves the reward scale in. Give either `group_ids` or `group_size`.
    Statistics are taken in float64; the result has the rewards' floating dtype (float32 for
    integer rewards). The result carries no gradient.
    """
    if rewards.dim() != 1:
        raise ValueError(f"rewards must be 1-D [N], got shape {tuple(rewards.shape)}")
    out_dtype = rewards.dtype if rewards.is_floating_point() else torch.float32
    r = rewards.detach().to(torch.float64)
    index, num_groups = _group_index(r.numel(), group_ids, group_size, r.device)

    counts = torch.zeros(num_groups, dtype=r.dtype, device=r.device).index_add_(0, index, torch.ones_like(r))
    sums = torch.zeros_like(counts).index_add_(0, index, r)
    mean = (sums / counts)[index]
    centred = r - mean
    variance = torch.zeros_like(counts).index_add_(0, index, centred.square()) / counts
    group_max = torch.full_like(counts, -torch.inf).scatter_reduce(0, index, r, reduce="amax")
    group_min = torch.full_like(counts, torch.inf).scatter_reduce(0, index, r, reduce="amin")
    constant = (group_max == group_min)[index]

    advantages = centred / (variance.sqrt()[index] + eps) if normalize_std else centred
    return torch.where(constant, torch.zeros_like(advantages), advantages).to(out_dtype)


@register_advantage("group_mean_batch_std")
def group_mean_batch_std_advantages(
    rewards: torch.Tensor,  # [N] one scalar reward per response
    group_ids: torch.Tensor | None = None,  # [N] equal id = same prompt's group
    group_size: int | None = None,  # alternative: groups are consecutive runs of this size
    eps: float = 1e-6,
) -> torch.Tensor:  # [N]
    """Group baseline, batch scale (REINFORCE++-baseline, arXiv 2501.03262 §3):

        c_i = r_i − mean_g(r)                      centred within the group g of response i
        Â_i = c_i / (std_batch(c) + eps)           one scale for every group of the step

    Per-group std scaling blows a group's tiny reward differences (e.g. a small-weight reward-model
    term breaking a tie between answers that pass the same checks) up to unit size; one batch-wide
    scale keeps each group's advantages proportional to how much its rewards really differ. The std
    is the population std over all N centred rewards (zero-signal groups count, with c = 0). A batch
    whose groups are all constant gets exactly 0. Give either `group_ids` or `group_size`.
    """
    centred = group_normalized_advantages(rewards, group_ids, group_size, normalize_std=False)
    c = centred.to(torch.float64)
    scale = c.square().mean().sqrt()  # 0 when every group is constant, and then c / eps = 0 exactly
    return (c / (scale + eps)).to(centred.dtype)

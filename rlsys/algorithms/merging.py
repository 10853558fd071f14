"""Model merging on state dicts: linear task-vector merging and TIES (pure tensor functions).

Keye-VL 1.5 §4.3.2 merges an expert trained from the base back into it; the method is not
stated, so both standard choices are offered.

Task vector of expert i: τ_i = θ_i − θ_base.
- linear:  θ = θ_base + Σ_i w_i τ_i                                   (Ilharco et al. 2023)
- TIES:    (Yadav et al. 2023, arXiv 2306.01708 §3)
    trim:  τ̂_i = τ_i with all but the top-`density` fraction of |τ_i| set to 0
    elect: γ = sign(Σ_i w_i τ̂_i)                                       (sign of the total mass)
    merge: τ_m = Σ_i [sign(τ̂_i) = γ] w_i τ̂_i / Σ_i [sign(τ̂_i) = γ, τ̂_i ≠ 0]   (disjoint mean)
    θ = θ_base + scale · τ_m
"""

from __future__ import annotations

import torch

# The values of a merge stage's `merge_method`.
MERGE_METHODS = ("ties", "linear")


def trim_to_density(tau: torch.Tensor, density: float) -> torch.Tensor:
    """Keep the `density` share of entries with the largest magnitude (ties kept), zero the rest."""
    if not 0.0 < density <= 1.0:
        raise ValueError(f"density must be in (0, 1], got {density}")
    if density == 1.0 or tau.numel() == 0:
        return tau.clone()
    k = max(1, int(round(density * tau.numel())))
    threshold = tau.abs().flatten().kthvalue(tau.numel() - k + 1).values
    return torch.where(tau.abs() >= threshold, tau, torch.zeros_like(tau))


def linear_merge(base: torch.Tensor, experts: list[torch.Tensor], weights: list[float]) -> torch.Tensor:
    merged = base.double().clone()
    for expert, w in zip(experts, weights):
        merged += w * (expert.double() - base.double())
    return merged.to(base.dtype)


def ties_merge(
    base: torch.Tensor, experts: list[torch.Tensor], weights: list[float], density: float, scale: float = 1.0
) -> torch.Tensor:
    taus = torch.stack([w * trim_to_density(e.double() - base.double(), density) for e, w in zip(experts, weights)])
    elected = torch.sign(taus.sum(0))  # [...] sign of the total mass per entry
    agree = (torch.sign(taus) == elected) & (taus != 0)  # [E, ...]
    count = agree.sum(0).clamp(min=1)
    tau_m = (taus * agree).sum(0) / count
    return (base.double() + scale * tau_m).to(base.dtype)


def merge_state_dicts(
    base: dict[str, torch.Tensor],
    experts: list[dict[str, torch.Tensor]],
    method: str,
    weights: list[float] | None = None,
    density: float = 0.5,
) -> dict[str, torch.Tensor]:
    """Merge every floating-point tensor of `base`; other entries are copied from base."""
    weights = list(weights) if weights else [1.0 / len(experts)] * len(experts) if method == "linear" else [1.0] * len(experts)
    if len(weights) != len(experts):
        raise ValueError(f"{len(weights)} merge weights for {len(experts)} experts")
    out = {}
    for name, tensor in base.items():
        missing = [i for i, e in enumerate(experts) if name not in e]
        if missing:
            raise KeyError(f"tensor {name!r} missing from expert(s) {missing}")
        if not tensor.is_floating_point():
            out[name] = tensor
            continue
        others = [e[name] for e in experts]
        if method == "linear":
            out[name] = linear_merge(tensor, others, weights)
        elif method == "ties":
            out[name] = ties_merge(tensor, others, weights, density)
        else:
            raise ValueError(f"merge method {method!r}: expected one of {list(MERGE_METHODS)}")
    return out

"""Objectives: bind a registered pure loss to what the learner computes for a micro-batch.

The losses in `rlsys.algorithms` are pure tensor functions; an objective knows which inputs
a loss needs (token logprobs, sequence sums, reference logprobs, reward-model scores, pooled image and
text embeddings), how to compute the loss's local denominator (all-reduced by the learner so
micro-batches and ranks add up to the global mean), and what per-step state it keeps (BCO's running
reward mean).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from rlsys.algorithms.losses_pref import RunningMean, implicit_rewards
from rlsys.algorithms.losses_rl import rl_loss_denominator
from rlsys.algorithms.losses_sft import sft_weight_sum
from rlsys.algorithms.registry import LOSS_KINDS, get_loss, loss_kind
from rlsys.learner.batching import MicroBatch


@dataclass
class ForwardOut:
    """What the learner computed for one micro-batch."""

    logprobs: torch.Tensor | None = None  # [B, T] aligned with input_ids
    entropy: torch.Tensor | None = None  # [B, T]
    ref_logprobs: torch.Tensor | None = None  # [B, T] frozen reference, no grad
    scores: torch.Tensor | None = None  # [B] reward-model scores
    image_emb: torch.Tensor | None = None  # [B, D] pooled vision-tower output, one row per image
    text_emb: torch.Tensor | None = None  # [B, D] pooled last hidden state of the caption, one row per caption
    log_temp: torch.Tensor | None = None  # [] the contrastive head's learnable log-temperature
    bias: torch.Tensor | None = None  # [] the contrastive head's learnable bias


@dataclass
class Objective(ABC):
    """A loss bound to the learner. Subclasses set the `needs_*` flags and implement `loss`."""

    loss_name: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    needs_ref: bool = False
    needs_entropy: bool = False
    needs_scores: bool = False
    # Image and caption embeddings instead of token logprobs (a contrastive batch: rlsys/learner/contrastive.py).
    needs_embeddings: bool = False

    def __post_init__(self) -> None:  # noqa: B027 - optional hook, not abstract
        """Subclasses set their input needs here (the dataclass __init__ calls it)."""

    @property
    def fn(self) -> Callable[..., tuple[torch.Tensor, dict[str, float]]]:
        return get_loss(self.loss_name)

    def denominator(self, mb: MicroBatch) -> float:
        return float(mb.num_sequences)

    @abstractmethod
    def loss(self, out: ForwardOut, mb: MicroBatch, global_denominator: float) -> tuple[torch.Tensor, dict]:
        """The loss of one micro-batch, scaled so that all micro-batches and ranks sum to the mean."""

    def end_step(self, reduce_sum: Callable[[list[float]], list[float]]) -> dict[str, float]:
        """Fold step-level statistics (all ranks) into state; returns metrics."""
        return {}

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        return None


class TokenNLL(Objective):
    """ntp / sft: per-token NLL with a selectable reduction."""

    def denominator(self, mb: MicroBatch) -> float:
        if self.loss_name == "ntp":
            return float(mb.loss_mask.sum())
        return float(sft_weight_sum(mb.loss_mask, self.kwargs.get("reduction", "token_mean")))

    def loss(self, out: ForwardOut, mb: MicroBatch, global_denominator: float) -> tuple[torch.Tensor, dict]:
        assert out.logprobs is not None
        return self.fn(out.logprobs, mb.loss_mask, global_denominator=global_denominator, **self.kwargs)


class PolicyGradient(Objective):
    """gspo / gspo_token / grpo on rollout samples: needs old logprobs and advantages."""

    def __post_init__(self) -> None:
        self.needs_entropy = True
        self.needs_ref = float(self.kwargs.get("kl_coef", 0.0)) > 0.0

    def denominator(self, mb: MicroBatch) -> float:
        return float(rl_loss_denominator(mb.loss_mask, self.kwargs.get("aggregation", "seq_mean_token_mean")))

    def loss(self, out: ForwardOut, mb: MicroBatch, global_denominator: float) -> tuple[torch.Tensor, dict]:
        assert out.logprobs is not None
        loss, metrics = self.fn(
            out.logprobs,
            mb.fields["old_logprobs"],
            mb.fields["advantages"],
            mb.loss_mask,
            ref_logprobs=out.ref_logprobs,
            kl_weights=mb.fields.get("kl_weights"),
            global_denominator=global_denominator,
            **self.kwargs,
        )
        if out.entropy is not None:
            m = mb.loss_mask
            metrics["entropy"] = float((out.entropy.detach() * m).sum() / m.sum().clamp(min=1.0))
        return loss, metrics


class Preference(Objective):
    """dpo / bco_pair / mpo on (chosen, rejected) pairs stored as adjacent sequences."""

    def __post_init__(self) -> None:
        self.needs_ref = True
        self.delta = RunningMean()
        self._rho_sum = 0.0
        self._rho_count = 0

    def denominator(self, mb: MicroBatch) -> float:
        return float(mb.num_sequences // 2)

    def loss(self, out: ForwardOut, mb: MicroBatch, global_denominator: float) -> tuple[torch.Tensor, dict]:
        assert out.logprobs is not None and out.ref_logprobs is not None
        # The preference terms score the tokens of `pref_mask` when the stage narrows them (pair_scope).
        scored = mb.fields.get("pref_mask", mb.loss_mask)
        seq = (out.logprobs * scored).sum(-1)  # [2B]
        ref = (out.ref_logprobs * scored).sum(-1)  # [2B]
        args = [seq[0::2], seq[1::2], ref[0::2], ref[1::2]]
        kwargs = dict(self.kwargs)
        if self.loss_name == "mpo":
            args.append(mb.loss_mask[0::2].sum(-1))
            if "pref_mask" in mb.fields:
                kwargs["chosen_sft_logps"] = (out.logprobs * mb.loss_mask).sum(-1)[0::2]
        if self.loss_name in ("mpo", "bco_pair"):
            kwargs["delta"] = self.delta.mean
        loss, metrics = self.fn(*args, global_denominator=global_denominator, **kwargs)
        beta = float(self.kwargs.get("beta", 0.1))
        rho = torch.cat([implicit_rewards(args[0], args[2], beta), implicit_rewards(args[1], args[3], beta)])
        self._rho_sum += float(rho.detach().sum())
        self._rho_count += int(rho.numel())
        return loss, metrics

    def end_step(self, reduce_sum: Callable[[list[float]], list[float]]) -> dict[str, float]:
        total, count = reduce_sum([self._rho_sum, float(self._rho_count)])
        self._rho_sum, self._rho_count = 0.0, 0
        self.delta.update_from_sums(total, int(count))
        return {"bco_delta": self.delta.mean}

    def state_dict(self) -> dict[str, Any]:
        return self.delta.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.delta.load_state_dict(state)


class PairwiseScore(Objective):
    """bradley_terry on a scalar reward model: chosen/rejected scores of adjacent sequences."""

    def __post_init__(self) -> None:
        self.needs_scores = True

    def denominator(self, mb: MicroBatch) -> float:
        return float(mb.num_sequences // 2)

    def loss(self, out: ForwardOut, mb: MicroBatch, global_denominator: float) -> tuple[torch.Tensor, dict]:
        assert out.scores is not None
        return self.fn(out.scores[0::2], out.scores[1::2], global_denominator=global_denominator, **self.kwargs)


class Contrastive(Objective):
    """siglip on (image, caption) rows: in-batch negatives are the other rows of the same micro-batch, so
    the learner keeps a rank's share of a batch in one micro-batch (rlsys/jobs/vision.py). The denominator is
    the number of images, all-reduced over ranks and micro-batches like every other objective's."""

    def __post_init__(self) -> None:
        self.needs_embeddings = True

    def loss(self, out: ForwardOut, mb: MicroBatch, global_denominator: float) -> tuple[torch.Tensor, dict]:
        if out.image_emb is None or out.text_emb is None or out.log_temp is None or out.bias is None:
            raise ValueError(f"loss {self.loss_name!r} needs pooled image and text embeddings and the contrastive "
                             "head's log_temp and bias: the learner was not built for a contrastive stage")
        return self.fn(out.image_emb, out.text_emb, out.log_temp, out.bias, global_denominator=global_denominator,
                       **self.kwargs)


# Objective kind (given with each loss at registration, rlsys/algorithms/registry.py) -> its class.
OBJECTIVES: dict[str, type[Objective]] = {
    "token_nll": TokenNLL,
    "policy_gradient": PolicyGradient,
    "preference": Preference,
    "pairwise_score": PairwiseScore,
    "contrastive": Contrastive,
}
# Loss kinds the learner cannot train yet -> why. Every kind is in exactly one of the two tables.
UNBOUND_KINDS: dict[str, str] = {}
if sorted([*OBJECTIVES, *UNBOUND_KINDS]) != sorted(LOSS_KINDS) or set(OBJECTIVES) & set(UNBOUND_KINDS):
    raise RuntimeError(f"objective classes {sorted(OBJECTIVES)} and unbound kinds {sorted(UNBOUND_KINDS)} do not "
                       f"match the loss kinds {sorted(LOSS_KINDS)}")


def make_objective(loss_name: str, kwargs: dict[str, Any] | None = None) -> Objective:
    """The objective for a registered loss, by the kind it was registered with (KeyError listing the known
    losses when `loss_name` is not registered; ValueError saying why for a kind the learner cannot train yet)."""
    kind = loss_kind(loss_name)
    if kind in UNBOUND_KINDS:
        raise ValueError(f"loss {loss_name!r} (objective kind {kind!r}) cannot be trained by the learner: "
                         f"{UNBOUND_KINDS[kind]}")
    return OBJECTIVES[kind](loss_name, dict(kwargs or {}))

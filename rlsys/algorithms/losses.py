"""Every training loss of rlsys, as pure tensor functions registered by name.

    from rlsys.algorithms.losses import get_loss
    loss, metrics = get_loss("gspo")(logprobs, old_logprobs, advantages, mask)

Each loss returns `(loss, metrics)`: a scalar tensor and a dict of detached python floats. The
implementations live by family in `losses_sft` (ntp, sft), `losses_pref` (dpo, bco_pair, mpo,
bradley_terry), `losses_rl` (gspo, gspo_token, grpo) and `losses_contrastive` (siglip); this module
re-exports them and the registry.
"""

from rlsys.algorithms.loss_utils import entropy_from_logits
from rlsys.algorithms.losses_contrastive import SIGLIP_INIT_BIAS, SIGLIP_INIT_LOG_TEMP, siglip_loss
from rlsys.algorithms.losses_pref import (
    RunningMean,
    bco_pair_loss,
    bradley_terry_loss,
    dpo_loss,
    implicit_rewards,
    mpo_loss,
)
from rlsys.algorithms.losses_rl import (
    AGGREGATIONS,
    grpo_loss,
    gspo_loss,
    gspo_token_loss,
    rl_loss_denominator,
)
from rlsys.algorithms.losses_sft import SFT_REDUCTIONS, ntp_loss, sft_loss, sft_sample_weights, sft_weight_sum
from rlsys.algorithms.registry import get_loss, list_losses, register_loss

__all__ = [
    "AGGREGATIONS",
    "SFT_REDUCTIONS",
    "SIGLIP_INIT_BIAS",
    "SIGLIP_INIT_LOG_TEMP",
    "RunningMean",
    "bco_pair_loss",
    "bradley_terry_loss",
    "dpo_loss",
    "entropy_from_logits",
    "get_loss",
    "grpo_loss",
    "gspo_loss",
    "gspo_token_loss",
    "implicit_rewards",
    "list_losses",
    "mpo_loss",
    "ntp_loss",
    "register_loss",
    "rl_loss_denominator",
    "sft_loss",
    "sft_sample_weights",
    "sft_weight_sum",
    "siglip_loss",
]

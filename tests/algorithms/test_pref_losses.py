"""dpo, bco_pair, mpo, bradley_terry and RunningMean against hand-derived values."""

import math

import pytest
import torch

from rlsys.algorithms.losses import (
    RunningMean,
    bco_pair_loss,
    bradley_terry_loss,
    dpo_loss,
    implicit_rewards,
    mpo_loss,
)

BETA = 0.1


def softplus(x: float) -> float:
    """−log σ(−x) = log(1 + e^x), written out for the hand-derived expectations."""
    return math.log1p(math.exp(x))


def _pairs() -> dict[str, torch.Tensor]:
    """Two pairs. Pair 1: ρ_c = 0.1*(−10+12) = 0.2, ρ_r = 0.1*(−11+10) = −0.1.
    Pair 2: ρ_c = 0.1*(−5+4) = −0.1, ρ_r = 0.1*(−6+8) = 0.2."""
    return {
        "policy_chosen_logps": torch.tensor([-10.0, -5.0], dtype=torch.float64, requires_grad=True),
        "policy_rejected_logps": torch.tensor([-11.0, -6.0], dtype=torch.float64, requires_grad=True),
        "ref_chosen_logps": torch.tensor([-12.0, -4.0], dtype=torch.float64, requires_grad=True),
        "ref_rejected_logps": torch.tensor([-10.0, -8.0], dtype=torch.float64),
    }


def test_implicit_rewards() -> None:
    p = _pairs()
    rho = implicit_rewards(p["policy_chosen_logps"], p["ref_chosen_logps"], BETA)
    torch.testing.assert_close(rho, torch.tensor([0.2, -0.1], dtype=torch.float64))


def test_dpo_value_metrics_and_grad() -> None:
    p = _pairs()
    loss, metrics = dpo_loss(**p, beta=BETA)
    # z = ρ_c − ρ_r: pair 1 z = 0.3, pair 2 z = −0.3; −log σ(z) = log(1 + e^{−z}).
    expected = (softplus(-0.3) + softplus(0.3)) / 2
    assert loss.item() == pytest.approx(expected)
    assert metrics["reward_accuracy"] == pytest.approx(0.5)
    assert metrics["reward_margin"] == pytest.approx((0.3 - 0.3) / 2, abs=1e-12)
    assert metrics["chosen_reward"] == pytest.approx((0.2 - 0.1) / 2)
    assert metrics["rejected_reward"] == pytest.approx((-0.1 + 0.2) / 2)
    loss.backward()
    # dL/dπ_c = −β σ(−z) / B with σ(−z) = 1/(1+e^{z}); dL/dπ_r is its negative.
    sig = [1 / (1 + math.exp(0.3)), 1 / (1 + math.exp(-0.3))]
    expected_grad = torch.tensor([-BETA * sig[0] / 2, -BETA * sig[1] / 2], dtype=torch.float64)
    torch.testing.assert_close(p["policy_chosen_logps"].grad, expected_grad)
    torch.testing.assert_close(p["policy_rejected_logps"].grad, -expected_grad)
    assert p["ref_chosen_logps"].grad is None  # the reference is frozen


def test_dpo_global_denominator_over_micro_batches() -> None:
    p = _pairs()
    parts = [
        dpo_loss(**{k: v[i : i + 1] for k, v in p.items()}, beta=BETA, global_denominator=2)[0]
        for i in range(2)
    ]
    assert parts[0].item() == pytest.approx(softplus(-0.3) / 2)
    assert sum(parts).item() == pytest.approx((softplus(-0.3) + softplus(0.3)) / 2)


def test_bco_pair_value_and_frozen_delta() -> None:
    p = _pairs()
    delta = torch.tensor(0.05, requires_grad=True)
    loss, metrics = bco_pair_loss(**p, delta=delta, beta=BETA)
    # −log σ(ρ_c − δ) − log σ(−(ρ_r − δ)) = softplus(−(ρ_c − δ)) + softplus(ρ_r − δ).
    pair1 = softplus(-(0.2 - 0.05)) + softplus(-0.1 - 0.05)
    pair2 = softplus(-(-0.1 - 0.05)) + softplus(0.2 - 0.05)
    assert loss.item() == pytest.approx((pair1 + pair2) / 2)
    assert metrics["delta"] == pytest.approx(0.05)
    loss.backward()
    assert delta.grad is None
    # dL/dπ_c = −β σ(−(ρ_c − δ)) / B; pair 1: ρ_c − δ = 0.15.
    assert p["policy_chosen_logps"].grad[0].item() == pytest.approx(-BETA / (1 + math.exp(0.15)) / 2)


def test_running_mean_update_state_and_resume() -> None:
    running = RunningMean()
    # Loss of the first batch uses δ = 0 (the value before the update); then fold in its rewards.
    assert running.update(torch.tensor([0.2, -0.1, -0.1, 0.2])) == pytest.approx(0.05)
    assert running.count == 4
    assert running.update([1.0]) == pytest.approx((0.05 * 4 + 1.0) / 5)
    assert running.update_from_sums(0.0, 0) == pytest.approx(0.24)  # an empty update changes nothing
    resumed = RunningMean()
    resumed.load_state_dict(running.state_dict())
    assert resumed == running
    # Sums from several ranks: (0.24*5 + 3.0) / (5 + 3).
    assert resumed.update_from_sums(3.0, 3) == pytest.approx((0.24 * 5 + 3.0) / 8)


def test_mpo_hand_derived_value() -> None:
    p = _pairs()
    lengths = torch.tensor([4, 2])
    loss, metrics = mpo_loss(**p, chosen_lengths=lengths, delta=0.05)
    dpo = (softplus(-0.3) + softplus(0.3)) / 2
    bco = (softplus(-0.15) + softplus(-0.15) + softplus(0.15) + softplus(0.15)) / 2
    sft = (10.0 / 4 + 5.0 / 2) / 2  # −log π(y_c) / |y_c|
    assert loss.item() == pytest.approx(0.8 * dpo + 0.2 * bco + 1.0 * sft)
    assert metrics["dpo_loss"] == pytest.approx(dpo)
    assert metrics["bco_loss"] == pytest.approx(bco)
    assert metrics["sft_loss"] == pytest.approx(2.5)


def test_mpo_equals_weighted_sum_of_parts_value_and_grad() -> None:
    w_p, w_q, w_g, beta, delta = 0.5, 0.3, 2.0, 0.2, -0.02
    lengths = torch.tensor([4.0, 2.0])
    p = _pairs()
    mpo, _ = mpo_loss(**p, chosen_lengths=lengths, delta=delta, beta=beta, w_p=w_p, w_q=w_q, w_g=w_g)
    mpo.backward()
    mpo_grad = p["policy_chosen_logps"].grad.clone()

    q = _pairs()
    dpo, _ = dpo_loss(**q, beta=beta)
    bco, _ = bco_pair_loss(**q, delta=delta, beta=beta)
    sft = (-q["policy_chosen_logps"] / lengths).mean()
    parts = w_p * dpo + w_q * bco + w_g * sft
    parts.backward()
    assert mpo.item() == pytest.approx(parts.item())
    torch.testing.assert_close(mpo_grad, q["policy_chosen_logps"].grad)


def test_bradley_terry_without_and_with_margin() -> None:
    chosen = torch.tensor([2.0, 0.5], dtype=torch.float64, requires_grad=True)
    rejected = torch.tensor([1.0, 1.5], dtype=torch.float64)
    loss, metrics = bradley_terry_loss(chosen, rejected)
    # gaps s_c − s_r: +1 and −1.
    assert loss.item() == pytest.approx((softplus(-1.0) + softplus(1.0)) / 2)
    assert metrics["accuracy"] == pytest.approx(0.5)
    assert metrics["margin"] == pytest.approx(0.0)
    assert metrics["chosen_score"] == pytest.approx(1.25)

    loss_m, metrics_m = bradley_terry_loss(chosen, rejected, margin=0.5)
    # gap − margin: 0.5 and −1.5.
    assert loss_m.item() == pytest.approx((softplus(-0.5) + softplus(1.5)) / 2)
    assert metrics_m["accuracy"] == pytest.approx(0.5)  # accuracy ignores the margin
    loss_m.backward()
    # dL/ds_c = −σ(−(gap − m)) / B.
    expected = torch.tensor(
        [-1 / (1 + math.exp(0.5)) / 2, -1 / (1 + math.exp(-1.5)) / 2], dtype=torch.float64
    )
    torch.testing.assert_close(chosen.grad, expected)


def test_bradley_terry_per_pair_margin() -> None:
    loss, _ = bradley_terry_loss(
        torch.tensor([1.0, 1.0]), torch.tensor([0.0, 0.0]), margin=torch.tensor([0.0, 1.0])
    )
    assert loss.item() == pytest.approx((softplus(-1.0) + softplus(0.0)) / 2, rel=1e-6)


def test_mpo_sft_term_on_the_whole_chosen_response() -> None:
    """With `chosen_sft_logps` (pair_scope), L_SFT reads it; DPO/BCO still read the scored parts."""
    p = _pairs()
    lengths = torch.tensor([4, 2])
    loss, metrics = mpo_loss(**p, chosen_lengths=lengths, delta=0.05,
                             chosen_sft_logps=torch.tensor([-20.0, -3.0], dtype=torch.float64))
    dpo = (softplus(-0.3) + softplus(0.3)) / 2
    bco = (softplus(-0.15) + softplus(-0.15) + softplus(0.15) + softplus(0.15)) / 2
    sft = (20.0 / 4 + 3.0 / 2) / 2
    assert metrics["sft_loss"] == pytest.approx(sft)
    assert metrics["dpo_loss"] == pytest.approx(dpo)
    assert loss.item() == pytest.approx(0.8 * dpo + 0.2 * bco + 1.0 * sft)
    loss.backward()
    # The scored chosen logps get only the DPO/BCO gradient (no SFT part): pair 1 on its own,
    # d/dlogπ_c [0.8·softplus(−(ρ_c−ρ_r)) + 0.2·softplus(−(ρ_c−δ))] / 2 with ρ = 0.1·(logπ − logπ_ref).
    sig = lambda x: 1.0 / (1.0 + math.exp(-x))  # noqa: E731
    expected = -(0.8 * sig(-0.3) + 0.2 * sig(-0.15)) * 0.1 / 2
    assert p["policy_chosen_logps"].grad[0].item() == pytest.approx(expected)

"""gspo, gspo_token and grpo against hand-derived values, clipping on both sides, and gradients."""

import math

import pytest
import torch

from rlsys.algorithms.losses import (
    entropy_from_logits,
    grpo_loss,
    gspo_loss,
    gspo_token_loss,
    rl_loss_denominator,
)

NEG_INF = float("-inf")
LN = math.log


def _gspo_batch() -> dict[str, torch.Tensor]:
    """Six sequences (T = 3) with eps_low = 0.1, eps_high = 0.2, i.e. clip range [0.9, 1.2].

    Per-token log ratios are unequal; only their mean (log s_i) matters.
      0: |y|=3, s=1.5, A=+1   -> clipped above:           min(1.5, 1.2)      = 1.2
      1: |y|=2, s=0.5, A=−1   -> clipped below:           min(−0.5, −0.9)    = −0.9
      2: |y|=1, s=0.5, A=+2   -> low ratio, A>0, unclipped: min(1.0, 1.8)    = 1.0
      3: |y|=3, s=1.5, A=−0.5 -> high ratio, A<0, unclipped: min(−0.75, −0.6) = −0.75
      4: |y|=2, s=1.1, A=+1   -> inside the range:         1.1
      5: no loss tokens (padding row), A=+3 -> ignored
    """
    mask = torch.tensor(
        [[1, 1, 1], [1, 1, 0], [0, 1, 0], [1, 1, 1], [1, 1, 0], [0, 0, 0]], dtype=torch.float64
    )
    log_ratio = torch.tensor(
        [
            [LN(1.5) + 0.1, LN(1.5) - 0.3, LN(1.5) + 0.2],
            [LN(0.5) + 0.4, LN(0.5) - 0.4, 0.0],
            [0.0, LN(0.5), 0.0],
            [LN(1.5) - 0.2, LN(1.5), LN(1.5) + 0.2],
            [LN(1.1) - 0.05, LN(1.1) + 0.05, 0.0],
            [0.0, 0.0, 0.0],
        ],
        dtype=torch.float64,
    )
    old = -torch.arange(1.0, 19.0, dtype=torch.float64).reshape(6, 3) / 10
    old = torch.where(mask.bool(), old, torch.full_like(old, NEG_INF))  # garbage outside the mask
    logprobs = (old + torch.where(mask.bool(), log_ratio, 0.0)).detach().requires_grad_()
    return {
        "logprobs": logprobs,
        "old_logprobs": old,
        "advantages": torch.tensor([1.0, -1.0, 2.0, -0.5, 1.0, 3.0], dtype=torch.float64),
        "mask": mask,
    }


def test_gspo_hand_derived_value_metrics_and_grad() -> None:
    batch = _gspo_batch()
    loss, metrics = gspo_loss(**batch, eps_low=0.1, eps_high=0.2)
    assert loss.item() == pytest.approx(-(1.2 - 0.9 + 1.0 - 0.75 + 1.1) / 5)
    assert metrics["clip_frac"] == pytest.approx(2 / 5)
    assert metrics["clip_frac_tokens"] == pytest.approx((3 + 2) / (3 + 2 + 1 + 3 + 2))
    assert metrics["mean_abs_log_ratio"] == pytest.approx((LN(1.5) + LN(2) + LN(2) + LN(1.5) + LN(1.1)) / 5)
    assert metrics["ratio_mean"] == pytest.approx((1.5 + 0.5 + 0.5 + 1.5 + 1.1) / 5)
    assert "kl" not in metrics
    loss.backward()
    # Unclipped: dL/dlogπ_t = −(1/5) · s_i · A_i / |y_i| on every loss token; clipped: 0.
    expected = torch.zeros(6, 3, dtype=torch.float64)
    expected[2, 1] = -(0.5 * 2.0 / 1) / 5
    expected[3, :] = -(1.5 * -0.5 / 3) / 5
    expected[4, :2] = -(1.1 * 1.0 / 2) / 5
    torch.testing.assert_close(batch["logprobs"].grad, expected)


def test_gspo_paper_epsilons_clip_tiny_drift() -> None:
    mask = torch.ones(2, 2)
    old = torch.full((2, 2), -1.0)
    # s_0 = e^{5e-4} > 1 + 4e-4 with A = +1; s_1 = e^{−5e-4} < 1 − 3e-4 with A = −1: both clipped.
    logprobs = old + torch.tensor([[5e-4, 5e-4], [-5e-4, -5e-4]])
    loss, metrics = gspo_loss(logprobs, old, torch.tensor([1.0, -1.0]), mask)
    assert loss.item() == pytest.approx(-((1 + 4e-4) * 1.0 + (1 - 3e-4) * -1.0) / 2, abs=1e-7)
    assert metrics["clip_frac"] == 1.0


def test_gspo_global_denominator_over_micro_batches() -> None:
    batch = _gspo_batch()
    full, _ = gspo_loss(**batch, eps_low=0.1, eps_high=0.2)
    assert rl_loss_denominator(batch["mask"]).item() == 5.0
    halves = [slice(0, 3), slice(3, 6)]
    parts = [
        gspo_loss(**{k: v[s] for k, v in batch.items()}, eps_low=0.1, eps_high=0.2, global_denominator=5)[0]
        for s in halves
    ]
    assert parts[0].item() == pytest.approx(-(1.2 - 0.9 + 1.0) / 5)
    assert sum(parts).item() == pytest.approx(full.item())


def test_gspo_k3_kl_term() -> None:
    mask = torch.tensor([[1.0, 1.0], [1.0, 0.0]])
    logprobs = torch.tensor([[-1.0, -2.0], [-0.5, NEG_INF]])
    # log r = log π_ref − log π_θ: seq 0 tokens 0 and ln 2, seq 1 token −ln 2.
    ref = logprobs + torch.tensor([[0.0, LN(2)], [-LN(2), 0.0]])
    # k3 = e^{log r} − log r − 1: 0, 1 − ln 2, 0.5 + ln 2 − 1.
    kl = ((0.0 + (1 - LN(2))) / 2 + (0.5 + LN(2) - 1)) / 2
    loss, metrics = gspo_loss(
        logprobs, logprobs, torch.tensor([1.0, -1.0]), mask, ref_logprobs=ref, kl_coef=0.5
    )
    # s = 1 for both, so the policy term is −(1 − 1)/2 = 0.
    assert metrics["kl"] == pytest.approx(kl, rel=1e-6)
    assert loss.item() == pytest.approx(0.5 * kl, rel=1e-6)
    with pytest.raises(ValueError, match="ref_logprobs"):
        gspo_loss(logprobs, logprobs, torch.tensor([1.0, -1.0]), mask, kl_coef=0.1)
    # Weights [0, 1] anchor only seq 1; seq 0 still counts in the mean over two sequences.
    _, weighted = gspo_loss(
        logprobs, logprobs, torch.tensor([1.0, -1.0]), mask, ref_logprobs=ref, kl_coef=0.5,
        kl_weights=torch.tensor([0.0, 1.0]),
    )
    assert weighted["kl"] == pytest.approx((0.5 + LN(2) - 1) / 2, rel=1e-6)


def test_gspo_gradcheck_with_kl() -> None:
    gen = torch.Generator().manual_seed(1)
    old = -torch.rand(3, 4, generator=gen, dtype=torch.float64)
    ref = -torch.rand(3, 4, generator=gen, dtype=torch.float64)
    logprobs = (old + 0.01 * torch.randn(3, 4, generator=gen, dtype=torch.float64)).requires_grad_()
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1], [0, 1, 1, 0]], dtype=torch.float64)
    adv = torch.tensor([1.0, -0.5, 0.3], dtype=torch.float64)

    def fn(lp: torch.Tensor) -> torch.Tensor:
        # Wide clip range: gradcheck needs a differentiable point, away from the clip kinks.
        return gspo_loss(lp, old, adv, mask, eps_low=0.5, eps_high=0.5, ref_logprobs=ref, kl_coef=0.1)[0]

    assert torch.autograd.gradcheck(fn, (logprobs,))


def test_gspo_rejects_token_advantages() -> None:
    with pytest.raises(ValueError, match="gspo_token"):
        gspo_loss(torch.zeros(1, 2), torch.zeros(1, 2), torch.zeros(1, 2), torch.ones(1, 2))


def test_gspo_token_matches_gspo_value_and_grad_with_sequence_advantages() -> None:
    batch = _gspo_batch()
    gspo, m_seq = gspo_loss(**batch, eps_low=0.1, eps_high=0.2)
    gspo.backward()
    grad_seq = batch["logprobs"].grad.clone()
    batch["logprobs"].grad = None
    token, m_tok = gspo_token_loss(**batch, eps_low=0.1, eps_high=0.2)
    token.backward()
    torch.testing.assert_close(token, gspo)
    torch.testing.assert_close(batch["logprobs"].grad, grad_seq)
    assert m_tok["mean_abs_log_ratio"] == pytest.approx(m_seq["mean_abs_log_ratio"])
    # With equal per-token advantages the token clip fraction is the token-weighted sequence one.
    assert m_tok["clip_frac"] == pytest.approx(m_seq["clip_frac_tokens"])


def test_gspo_token_random_batch_matches_gspo() -> None:
    gen = torch.Generator().manual_seed(2)
    old = -torch.rand(8, 6, generator=gen, dtype=torch.float64)
    logprobs = (old + 0.3 * torch.randn(8, 6, generator=gen, dtype=torch.float64)).requires_grad_()
    mask = (torch.rand(8, 6, generator=gen) > 0.3).to(torch.float64)
    adv = torch.randn(8, generator=gen, dtype=torch.float64)
    a, _ = gspo_loss(logprobs, old, adv, mask, eps_low=0.05, eps_high=0.08)
    (grad_a,) = torch.autograd.grad(a, logprobs)
    b, _ = gspo_token_loss(logprobs, old, adv[:, None].expand(8, 6), mask, eps_low=0.05, eps_high=0.08)
    (grad_b,) = torch.autograd.grad(b, logprobs)
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(grad_a, grad_b)


def test_gspo_token_per_token_advantages() -> None:
    # One sequence, 2 tokens, s = 1.5; token advantages +1 (clipped at 1.2) and −1 (unclipped, −1.5).
    old = torch.tensor([[-1.0, -2.0]], dtype=torch.float64)
    logprobs = (old + torch.tensor([[LN(1.5) + 0.2, LN(1.5) - 0.2]], dtype=torch.float64)).requires_grad_()
    adv = torch.tensor([[1.0, -1.0]], dtype=torch.float64)
    loss, metrics = gspo_token_loss(logprobs, old, adv, torch.ones(1, 2), eps_low=0.1, eps_high=0.2)
    assert loss.item() == pytest.approx(-(1.2 - 1.5) / 2)
    assert metrics["clip_frac"] == pytest.approx(0.5)
    loss.backward()
    # Token 2 only: −(1/|y|) · s · A = −(1/2) · 1.5 · (−1).
    torch.testing.assert_close(logprobs.grad, torch.tensor([[0.0, 0.75]], dtype=torch.float64))


def _grpo_batch() -> dict[str, torch.Tensor]:
    """Token ratios, default clip range [0.8, 1.27].
    Seq 0 (A=+1): r = 1.5 (clipped: 1.27), 0.9 (inside: 0.9).
    Seq 1 (A=−1): r = 0.5 (clipped: min(−0.5, −0.8) = −0.8), 1.5 (unclipped: min(−1.5, −1.27) = −1.5),
    1.0 (inside: −1)."""
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]], dtype=torch.float64)
    old = torch.tensor([[-0.3, -1.2, NEG_INF], [-2.0, -0.1, -0.7]], dtype=torch.float64)
    ratio_log = torch.tensor([[LN(1.5), LN(0.9), 0.0], [LN(0.5), LN(1.5), 0.0]], dtype=torch.float64)
    logprobs = torch.where(mask.bool(), old + ratio_log, old).detach().requires_grad_()
    return {"logprobs": logprobs, "old_logprobs": old, "advantages": torch.tensor([1.0, -1.0]), "mask": mask}


def test_grpo_seq_mean_token_mean_value_metrics_and_grad() -> None:
    batch = _grpo_batch()
    loss, metrics = grpo_loss(**batch)
    assert loss.item() == pytest.approx(-((1.27 + 0.9) / 2 + (-0.8 - 1.5 - 1.0) / 3) / 2)
    assert metrics["clip_frac"] == pytest.approx(2 / 5)
    assert metrics["ratio_mean"] == pytest.approx((1.5 + 0.9 + 0.5 + 1.5 + 1.0) / 5)
    loss.backward()
    # Unclipped tokens: dL/dlogπ_t = −r_t · A / (|y_i| · 2 sequences); clipped: 0.
    expected = torch.tensor(
        [[0.0, -0.9 / (2 * 2), 0.0], [0.0, 1.5 / (3 * 2), 1.0 / (3 * 2)]], dtype=torch.float64
    )
    torch.testing.assert_close(batch["logprobs"].grad, expected)


def test_grpo_token_mean_value_grad_and_denominator() -> None:
    batch = _grpo_batch()
    loss, _ = grpo_loss(**batch, aggregation="token_mean")
    assert loss.item() == pytest.approx(-(1.27 + 0.9 - 0.8 - 1.5 - 1.0) / 5)
    loss.backward()
    expected = torch.tensor([[0.0, -0.9 / 5, 0.0], [0.0, 1.5 / 5, 1.0 / 5]], dtype=torch.float64)
    torch.testing.assert_close(batch["logprobs"].grad, expected)
    assert rl_loss_denominator(batch["mask"], "token_mean").item() == 5.0
    halves = [
        grpo_loss(
            **{k: v[i : i + 1] for k, v in batch.items()}, aggregation="token_mean", global_denominator=5
        )[0]
        for i in range(2)
    ]
    assert sum(halves).item() == pytest.approx(loss.item())
    with pytest.raises(ValueError, match="token_mean"):
        grpo_loss(**batch, aggregation="sum")


def test_grpo_per_token_advantages_and_kl() -> None:
    mask = torch.ones(1, 2)
    logprobs = torch.tensor([[-1.0, -1.0]])
    ref = logprobs + torch.tensor([[LN(2), 0.0]])
    # r = 1 everywhere; j = A_t: (0.5 − 2) / 2. KL: (1 − ln 2 + 0) / 2.
    loss, metrics = grpo_loss(
        logprobs, logprobs, torch.tensor([[0.5, -2.0]]), mask, ref_logprobs=ref, kl_coef=0.1
    )
    assert metrics["kl"] == pytest.approx((1 - LN(2)) / 2, rel=1e-6)
    assert loss.item() == pytest.approx(-(0.5 - 2.0) / 2 + 0.1 * (1 - LN(2)) / 2, rel=1e-6)


def test_entropy_from_logits() -> None:
    logits = torch.tensor(
        [[[0.0, 0.0, 0.0, 0.0], [LN(0.5), LN(0.25), LN(0.25), NEG_INF]], [[5.0, 1.0, 0.0, 0.0], [0.0] * 4]]
    )
    mask = torch.tensor([[1.0, 1.0], [0.0, 0.0]])
    # Uniform over 4: ln 4. (1/2, 1/4, 1/4, 0): 0.5 ln 2 + 2 · 0.25 ln 4 = 1.5 ln 2.
    assert entropy_from_logits(logits, mask).item() == pytest.approx((LN(4) + 1.5 * LN(2)) / 2, rel=1e-6)


def test_entropy_from_logits_gradient_is_finite_with_banned_tokens() -> None:
    logits = torch.tensor([[[0.0, 1.0, NEG_INF]]], dtype=torch.float64, requires_grad=True)
    entropy_from_logits(logits, torch.ones(1, 1)).backward()
    # H(z) for p = softmax(z0, z1): dH/dz_i = −p_i (log p_i + H); the banned logit gets 0.
    p0, p1 = 1 / (1 + math.e), math.e / (1 + math.e)
    h = -(p0 * LN(p0) + p1 * LN(p1))
    expected = torch.tensor([[[-p0 * (LN(p0) + h), -p1 * (LN(p1) + h), 0.0]]], dtype=torch.float64)
    torch.testing.assert_close(logits.grad, expected)

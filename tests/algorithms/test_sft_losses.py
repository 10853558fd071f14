"""ntp and sft losses against hand-derived values (token-mean, sample-mean, square averaging)."""

import math

import pytest
import torch

from rlsys.algorithms.losses import ntp_loss, sft_loss, sft_sample_weights, sft_weight_sum

NEG_INF = float("-inf")


def _two_samples() -> tuple[torch.Tensor, torch.Tensor]:
    """Sample A: one loss token (logp −2) after a prompt token; sample B: four loss tokens."""
    logprobs = torch.tensor(
        [
            [NEG_INF, -2.0, NEG_INF, NEG_INF, NEG_INF],  # prompt/pad may hold garbage such as −inf
            [-0.5, -1.0, -1.5, -3.0, -7.0],
        ],
        dtype=torch.float64,
        requires_grad=True,
    )
    mask = torch.tensor([[0, 1, 0, 0, 0], [1, 1, 1, 1, 0]], dtype=torch.float64)
    return logprobs, mask


def test_ntp_token_mean_value_metrics_and_grad() -> None:
    logprobs, mask = _two_samples()
    loss, metrics = ntp_loss(logprobs, mask)
    # NLL of the 5 loss tokens: 2 + 0.5 + 1 + 1.5 + 3 = 8.
    assert loss.item() == pytest.approx(8.0 / 5)
    assert metrics["nll"] == pytest.approx(1.6)
    assert metrics["ppl"] == pytest.approx(math.exp(1.6))
    assert metrics["num_tokens"] == 5.0
    loss.backward()
    # dL/dlogp = −mask/5; the −inf prompt/pad positions get exactly 0, not NaN.
    torch.testing.assert_close(logprobs.grad, -mask / 5)


def test_ntp_global_denominator_sums_to_global_mean() -> None:
    logprobs, mask = _two_samples()
    parts = [ntp_loss(logprobs[i : i + 1], mask[i : i + 1], global_denominator=5.0)[0] for i in range(2)]
    # Micro-batch A: 2/5, micro-batch B: 6/5; together the mean over all 5 tokens.
    assert parts[0].item() == pytest.approx(2.0 / 5)
    assert parts[1].item() == pytest.approx(6.0 / 5)
    assert sum(parts).item() == pytest.approx(8.0 / 5)


def test_ntp_without_loss_tokens_is_zero_not_nan() -> None:
    loss, metrics = ntp_loss(torch.tensor([[-1.0, -2.0]]), torch.zeros(1, 2))
    assert loss.item() == 0.0
    assert metrics["nll"] == 0.0


def test_sft_token_mean() -> None:
    logprobs, mask = _two_samples()
    loss, metrics = sft_loss(logprobs, mask, reduction="token_mean")
    assert loss.item() == pytest.approx((2.0 + 0.5 + 1.0 + 1.5 + 3.0) / 5)
    assert metrics["weight_sum"] == 5.0
    assert metrics["num_samples"] == 2.0


def test_sft_sample_mean() -> None:
    logprobs, mask = _two_samples()
    loss, metrics = sft_loss(logprobs, mask, reduction="sample_mean")
    # Mean of per-sample token means: A = 2/1, B = 6/4.
    assert loss.item() == pytest.approx((2.0 / 1 + 6.0 / 4) / 2)
    assert metrics["weight_sum"] == 2.0
    assert metrics["nll"] == pytest.approx(8.0 / 5)  # the plain token mean, whatever the reduction


def test_sft_square_averaging_unequal_lengths_value_and_grad() -> None:
    logprobs, mask = _two_samples()
    loss, metrics = sft_loss(logprobs, mask, reduction="square")
    # N_A = 1 -> w_A = 1/sqrt(1) = 1; N_B = 4 -> w_B = 1/sqrt(4) = 0.5.
    # numerator = 1*2 + 0.5*(0.5+1+1.5+3) = 5; denominator = 1*1 + 0.5*4 = 3.
    assert loss.item() == pytest.approx(5.0 / 3)
    assert metrics["weight_sum"] == pytest.approx(3.0)
    loss.backward()
    expected_grad = torch.tensor([[0, -1 / 3, 0, 0, 0], [-0.5 / 3] * 4 + [0]], dtype=torch.float64)
    torch.testing.assert_close(logprobs.grad, expected_grad)


def test_sft_square_with_global_denominator_across_ranks() -> None:
    logprobs, mask = _two_samples()
    # Each "rank" holds one sample; the all-reduced denominator is 1 + 2 = 3.
    local = [sft_weight_sum(mask[i : i + 1], "square") for i in range(2)]
    assert [x.item() for x in local] == pytest.approx([1.0, 2.0])
    global_den = sum(local)
    parts = [
        sft_loss(logprobs[i : i + 1], mask[i : i + 1], "square", global_denominator=global_den)[0]
        for i in range(2)
    ]
    assert parts[0].item() == pytest.approx(2.0 / 3)  # 1 * 2 / 3
    assert parts[1].item() == pytest.approx(1.0)  # 0.5 * 6 / 3
    assert sum(parts).item() == pytest.approx(5.0 / 3)


def test_sft_weights_and_weight_sums_with_an_empty_sample() -> None:
    mask = torch.tensor([[1.0, 0, 0, 0], [1, 1, 1, 1], [0, 0, 0, 0]])
    torch.testing.assert_close(sft_sample_weights(mask, "token_mean"), torch.tensor([1.0, 1.0, 0.0]))
    torch.testing.assert_close(sft_sample_weights(mask, "sample_mean"), torch.tensor([1.0, 0.25, 0.0]))
    torch.testing.assert_close(sft_sample_weights(mask, "square"), torch.tensor([1.0, 0.5, 0.0]))
    assert sft_weight_sum(mask, "token_mean").item() == 5.0
    assert sft_weight_sum(mask, "sample_mean").item() == 2.0  # the empty sample does not count
    assert sft_weight_sum(mask, "square").item() == pytest.approx(1.0 + 2.0)  # sqrt(1) + sqrt(4)


def test_sft_square_gradcheck() -> None:
    gen = torch.Generator().manual_seed(0)
    logprobs = -torch.rand(3, 5, generator=gen, dtype=torch.float64).requires_grad_()
    mask = torch.tensor([[1, 1, 0, 0, 0], [1, 1, 1, 1, 1], [0, 1, 1, 1, 0]], dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda lp: sft_loss(lp, mask, "square")[0], (logprobs,))


def test_sft_upcasts_bf16_and_rejects_unknown_reduction() -> None:
    loss, _ = sft_loss(torch.full((1, 300), -1.0, dtype=torch.bfloat16), torch.ones(1, 300))
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="square"):
        sft_loss(torch.zeros(1, 2), torch.ones(1, 2), reduction="sqrt")

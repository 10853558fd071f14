"""SigLIP's sigmoid loss against hand-derived values (N = 2, D = 2), its gradients, symmetries and metrics."""

import math

import pytest
import torch

from rlsys.algorithms.losses import SIGLIP_INIT_BIAS, SIGLIP_INIT_LOG_TEMP, get_loss, siglip_loss
from rlsys.algorithms.registry import loss_kind

F64 = torch.float64


def sigmoid(u: float) -> float:
    return 1.0 / (1.0 + math.exp(-u))


def softplus(u: float) -> float:
    """−log σ(−u) = log(1 + e^u): the loss of one pair whose signed logit l·z is −u."""
    return math.log1p(math.exp(u))


def scalar(value: float) -> torch.Tensor:  # [] a learnable scalar
    return torch.tensor(value, dtype=F64, requires_grad=True)


def emb(rows: list[list[float]]) -> torch.Tensor:  # [N, D]
    return torch.tensor(rows, dtype=F64, requires_grad=True)


def test_registered_as_siglip_with_the_contrastive_kind() -> None:
    assert get_loss("siglip") is siglip_loss
    assert loss_kind("siglip") == "contrastive"
    assert SIGLIP_INIT_LOG_TEMP == pytest.approx(math.log(10.0)) and SIGLIP_INIT_BIAS == -10.0


def test_orthonormal_pairs_at_unit_temperature_and_zero_bias() -> None:
    """x = y = identity rows, t = exp(0) = 1, b = 0, so z = t·<x_i, y_j> + b = I:
         z = [[1, 0], [0, 1]],  l = [[+1, −1], [−1, +1]],  l·z = [[1, 0], [0, 1]]
         L = −(1/2)·[2·log σ(1) + 2·log σ(0)] = log(1 + e^−1) + log 2 ≈ 0.31326 + 0.69315 = 1.00641
       Gradients, with dL/dz_ij = −l_ij·σ(−l_ij·z_ij) / N:
         diagonal  (l = +1, z = 1): −σ(−1)/2 each;  off-diagonal (l = −1, z = 0): +σ(0)/2 = +1/4 each
         dL/db  = Σ_ij dL/dz_ij             = −σ(−1) + 1/2 ≈ 0.23106
         dL/dt' = Σ_ij dL/dz_ij · t·<x_i, y_j> = −σ(−1)·1 (only the diagonal dots are non-zero) ≈ −0.26894
       (raising the temperature sharpens a correct diagonal, so dL/dt' < 0)."""
    x, y = emb([[1.0, 0.0], [0.0, 1.0]]), emb([[1.0, 0.0], [0.0, 1.0]])
    log_temp, bias = scalar(0.0), scalar(0.0)
    loss, metrics = siglip_loss(x, y, log_temp, bias)
    assert loss.item() == pytest.approx(math.log(1 + math.exp(-1)) + math.log(2))
    assert loss.item() == pytest.approx(1.0064, abs=1e-4)
    loss.backward()
    assert bias.grad.item() == pytest.approx(0.5 - sigmoid(-1))
    assert log_temp.grad.item() == pytest.approx(-sigmoid(-1))
    assert metrics == pytest.approx({"loss": loss.item(), "pos_logit": 1.0, "neg_logit": 0.0, "accuracy_i2t": 1.0,
                                     "accuracy_t2i": 1.0, "temperature": 1.0, "bias": 0.0})


def test_paper_initialisation_starts_near_log_two() -> None:
    """t = 10, b = −10 on the same orthonormal pairs: z_ii = 10·1 − 10 = 0, z_ij = 10·0 − 10 = −10.
         L = (1/2)·[2·(−log σ(0)) + 2·(−log σ(+10))] = log 2 + log(1 + e^−10) ≈ 0.693193
       The negatives cost almost nothing at the start; the positives cost log 2 each over N = 2."""
    x = y = torch.eye(2, dtype=F64)
    loss, metrics = siglip_loss(x, y, torch.tensor(SIGLIP_INIT_LOG_TEMP, dtype=F64),
                                torch.tensor(SIGLIP_INIT_BIAS, dtype=F64))
    assert loss.item() == pytest.approx(math.log(2) + math.log1p(math.exp(-10)))
    assert metrics["pos_logit"] == pytest.approx(0.0, abs=1e-12)
    assert metrics["neg_logit"] == pytest.approx(-10.0)
    assert metrics["temperature"] == pytest.approx(10.0) and metrics["bias"] == -10.0


def test_unnormalised_embeddings_with_unequal_dot_products() -> None:
    """Raw rows are L2-normalised first: images (2, 0) -> (1, 0) and (0, 0.5) -> (0, 1); captions
    (3, 4) -> (0.6, 0.8) and (0, 7) -> (0, 1). Dot products <x_i, y_j>:
         [[0.6, 0.0],
          [0.8, 1.0]]
       With t' = log 2 (t = 2) and b = −1, z = 2·dot − 1:
         z = [[0.2, −1.0],
              [0.6,  1.0]]     l·z = [[0.2, 1.0], [−0.6, 1.0]]
         L = (1/2)·[sp(−0.2) + sp(−1) + sp(0.6) + sp(−1)],  sp(u) = log(1 + e^u)
           = (0.59814 + 0.31326 + 1.03748 + 0.31326) / 2 ≈ 1.13108
       Gradients (dL/dz_ij = −l_ij·σ(−l_ij·z_ij) / 2; t·dot = z − b = z + 1):
         dL/dz = [[−σ(−0.2), +σ(−1)], [+σ(0.6), −σ(−1)]] / 2
         dL/db  = (−σ(−0.2) + σ(0.6)) / 2                       (the two σ(−1) terms cancel)
         dL/dt' = (−σ(−0.2)·1.2 + σ(−1)·0 + σ(0.6)·1.6 − σ(−1)·2) / 2
       Metrics: pos_logit (0.2 + 1)/2 = 0.6; neg_logit (−1 + 0.6)/2 = −0.2. Image → text: row 0 has
       0.2 > −1, row 1 has 1 > 0.6: accuracy 1. Text → image: column 0 has 0.2 < 0.6 (caption 0 sits closer
       to image 1), column 1 has 1 > −1: accuracy 1/2."""
    x, y = emb([[2.0, 0.0], [0.0, 0.5]]), emb([[3.0, 4.0], [0.0, 7.0]])
    log_temp, bias = scalar(math.log(2.0)), scalar(-1.0)
    loss, metrics = siglip_loss(x, y, log_temp, bias)
    expected = (softplus(-0.2) + softplus(-1.0) + softplus(0.6) + softplus(-1.0)) / 2
    assert loss.item() == pytest.approx(expected)
    assert loss.item() == pytest.approx(1.13108, abs=1e-5)
    loss.backward()
    assert bias.grad.item() == pytest.approx((-sigmoid(-0.2) + sigmoid(0.6)) / 2)
    assert log_temp.grad.item() == pytest.approx((-sigmoid(-0.2) * 1.2 + sigmoid(0.6) * 1.6 - sigmoid(-1.0) * 2) / 2)
    assert x.grad is not None and y.grad is not None
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0 and y.grad.abs().sum() > 0
    assert metrics["pos_logit"] == pytest.approx(0.6)
    assert metrics["neg_logit"] == pytest.approx(-0.2)
    assert metrics["accuracy_i2t"] == 1.0 and metrics["accuracy_t2i"] == 0.5
    assert metrics["temperature"] == pytest.approx(2.0) and metrics["bias"] == -1.0


def test_confident_pairs_cost_almost_nothing() -> None:
    """t = 20, b = −10 on orthonormal pairs: z_ii = +10, z_ij = −10, every signed logit is +10:
         L = (1/2)·4·log(1 + e^−10) = 2·log(1 + e^−10) ≈ 9.08e-5."""
    x = y = torch.eye(2, dtype=F64)
    loss, _ = siglip_loss(x, y, torch.tensor(math.log(20.0), dtype=F64), torch.tensor(-10.0, dtype=F64))
    assert loss.item() == pytest.approx(2 * math.log1p(math.exp(-10)))


def test_swapping_images_and_texts_transposes_the_logits() -> None:
    """z(y, x) = z(x, y)^T and the labels are symmetric, so the loss is the same and the two retrieval
    accuracies trade places."""
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(5, 3, generator=gen, dtype=F64), torch.randn(5, 3, generator=gen, dtype=F64)
    log_temp, bias = torch.tensor(1.3, dtype=F64), torch.tensor(-2.0, dtype=F64)
    forward, m_xy = siglip_loss(x, y, log_temp, bias)
    backward, m_yx = siglip_loss(y, x, log_temp, bias)
    assert forward.item() == pytest.approx(backward.item())
    assert (m_xy["accuracy_i2t"], m_xy["accuracy_t2i"]) == (m_yx["accuracy_t2i"], m_yx["accuracy_i2t"])
    assert m_xy["pos_logit"] == pytest.approx(m_yx["pos_logit"]) and m_xy["neg_logit"] == pytest.approx(m_yx["neg_logit"])


def test_reordering_the_pairs_and_rescaling_the_embeddings_change_nothing() -> None:
    gen = torch.Generator().manual_seed(1)
    x, y = torch.randn(4, 3, generator=gen, dtype=F64), torch.randn(4, 3, generator=gen, dtype=F64)
    log_temp, bias = torch.tensor(0.5, dtype=F64), torch.tensor(-1.0, dtype=F64)
    base, _ = siglip_loss(x, y, log_temp, bias)
    perm = torch.tensor([2, 0, 3, 1])
    assert siglip_loss(x[perm], y[perm], log_temp, bias)[0].item() == pytest.approx(base.item())
    scale = torch.tensor([[0.5], [2.0], [3.0], [7.0]], dtype=F64)
    assert siglip_loss(x * scale, y / scale, log_temp, bias)[0].item() == pytest.approx(base.item())


def test_equal_logits_are_no_retrieval_and_one_pair_has_no_negatives() -> None:
    same = torch.ones(3, 2, dtype=F64)  # every z_ij equal: no row or column has a strict maximum
    _, metrics = siglip_loss(same, same, torch.tensor(0.0, dtype=F64), torch.tensor(0.0, dtype=F64))
    assert metrics["accuracy_i2t"] == 0.0 and metrics["accuracy_t2i"] == 0.0
    # N = 1: z = t·1 + b = 10 − 10 = 0, L = −log σ(0) = log 2; no negatives, the lone pair is retrieved.
    one = torch.tensor([[0.0, 3.0]], dtype=F64)
    loss, metrics = siglip_loss(one, one, torch.tensor(math.log(10.0), dtype=F64), torch.tensor(-10.0, dtype=F64))
    assert loss.item() == pytest.approx(math.log(2))
    assert metrics["neg_logit"] == 0.0 and metrics["accuracy_i2t"] == metrics["accuracy_t2i"] == 1.0


def test_global_denominator_replaces_the_local_batch_size() -> None:
    """Two ranks of N = 2 each: each rank's sum over its N² pairs is divided by the global 4 images."""
    x = y = torch.eye(2, dtype=F64)
    log_temp, bias = torch.tensor(0.0, dtype=F64), torch.tensor(0.0, dtype=F64)
    local, _ = siglip_loss(x, y, log_temp, bias)
    shared, metrics = siglip_loss(x, y, log_temp, bias, global_denominator=4.0)
    assert shared.item() == pytest.approx(local.item() * 2 / 4)
    assert metrics["loss"] == pytest.approx(shared.item())


def test_bf16_embeddings_are_computed_in_float32() -> None:
    x = torch.eye(2, dtype=torch.bfloat16, requires_grad=True)
    loss, _ = siglip_loss(x, x, torch.tensor(0.0), torch.tensor(0.0))
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(math.log(1 + math.exp(-1)) + math.log(2), rel=1e-6)


@pytest.mark.parametrize(("image", "text", "log_temp"), [
    ((2, 3), (3, 3), ()),  # unequal batch sizes
    ((2,), (2,), ()),  # not [N, D]
    ((0, 3), (0, 3), ()),  # empty batch
    ((2, 3), (2, 3), (1,)),  # log_temp not a scalar
])
def test_bad_shapes_are_rejected(image: tuple, text: tuple, log_temp: tuple) -> None:
    with pytest.raises(ValueError, match="siglip"):
        siglip_loss(torch.ones(image), torch.ones(text), torch.zeros(log_temp), torch.zeros(()))

"""Contrastive image–text losses: SigLIP's sigmoid loss, for pretraining a vision tower on captions.

Inputs are one pooled embedding per image and per caption, row i of each describing the same pair.
The learner's `Contrastive` objective (rlsys/learner/objectives.py) feeds them from a vision-language
model: the vision tower's output tokens of each image and the language model's last hidden state over each
caption, both mean-pooled (rlsys/learner/contrastive.py); the `contrastive` stage kind trains it
(rlsys/jobs/vision.py).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from rlsys.algorithms.loss_utils import Denominator, normalise, to_metrics, upcast
from rlsys.algorithms.registry import register_loss

# The paper's initialisation of the learnable log-temperature t' (t = exp(t') = 10) and bias b.
SIGLIP_INIT_LOG_TEMP = math.log(10.0)
SIGLIP_INIT_BIAS = -10.0


@register_loss("siglip", kind="contrastive")
def siglip_loss(
    image_emb: torch.Tensor,  # [N, D] image embeddings (any norm; L2-normalised here)
    text_emb: torch.Tensor,  # [N, D] text embeddings; row i is the caption of image i
    log_temp: torch.Tensor,  # [] learnable log-temperature t' (init SIGLIP_INIT_LOG_TEMP)
    bias: torch.Tensor,  # [] learnable bias b (init SIGLIP_INIT_BIAS)
    global_denominator: Denominator = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """SigLIP's sigmoid loss (Zhai et al. 2023, "Sigmoid Loss for Language Image Pre-Training",
    arXiv 2303.15343, eq. 1): every (image, text) pair of the batch is its own binary classification,
    positive on the diagonal, negative elsewhere; no softmax over the batch.

        x_i = img_i / ‖img_i‖,   y_j = txt_j / ‖txt_j‖
        z_ij = t · ⟨x_i, y_j⟩ + b,   t = exp(t')
        l_ij = +1 if i = j else −1
        L = −(1/N) Σ_i Σ_j log σ(l_ij · z_ij)

    The sum runs over all N² pairs but is divided by N (the paper's 1/|B|); with `global_denominator`
    (images over every rank and micro-batch) the local sum is divided by that instead. With the paper's
    initialisation (t = 10, b = −10) the N² − N negatives start near zero loss, so the first steps are not
    spent pushing every pair apart.

    Metrics (local): `pos_logit` (mean z_ii), `neg_logit` (mean z_ij, i ≠ j; 0 when N = 1),
    `accuracy_i2t` (share of images whose own caption has the row's strictly highest logit), `accuracy_t2i`
    (share of captions whose own image has the column's strictly highest logit), `temperature` (t), `bias` (b).
    """
    if image_emb.dim() != 2 or image_emb.shape != text_emb.shape or image_emb.shape[0] == 0:
        raise ValueError(f"siglip: image and text embeddings must both be [N, D] with N > 0, got "
                         f"{tuple(image_emb.shape)} and {tuple(text_emb.shape)}")
    if log_temp.dim() != 0 or bias.dim() != 0:
        raise ValueError(f"siglip: log_temp and bias must be scalars, got shapes {tuple(log_temp.shape)} and "
                         f"{tuple(bias.shape)}")
    x = F.normalize(upcast(image_emb), dim=-1)  # [N, D]
    y = F.normalize(upcast(text_emb), dim=-1)  # [N, D]
    t = upcast(log_temp).exp()  # []
    b = upcast(bias)  # []
    logits = t * (x @ y.T) + b  # [N, N] z_ij
    n = logits.shape[0]
    eye = torch.eye(n, dtype=torch.bool, device=logits.device)  # [N, N]
    labels = torch.where(eye, 1.0, -1.0).to(logits.dtype)  # [N, N] l_ij
    per_pair = -F.logsigmoid(labels * logits)  # [N, N]
    loss = normalise(per_pair.sum(), per_pair.new_tensor(float(n)), global_denominator)

    with torch.no_grad():
        z = logits.detach()
        diag = z.diagonal()  # [N]
        off = z.masked_fill(eye, float("-inf"))  # [N, N] negatives only
        i2t = (diag > off.max(dim=1).values).to(z.dtype).mean()  # row i: image i against every caption
        t2i = (diag > off.max(dim=0).values).to(z.dtype).mean()  # column j: caption j against every image
        neg = z[~eye].mean() if n > 1 else z.new_zeros(())
    metrics = to_metrics(loss=loss, pos_logit=diag.mean(), neg_logit=neg, accuracy_i2t=i2t, accuracy_t2i=t2i,
                         temperature=t, bias=b)
    return loss, metrics

"""The learner's preference objective: which tokens the DPO/BCO terms and MPO's SFT term read."""

from __future__ import annotations

import pytest
import torch

from rlsys.algorithms.losses import mpo_loss
from rlsys.learner.batching import MicroBatch
from rlsys.learner.objectives import ForwardOut, make_objective


def _batch(pref_mask: torch.Tensor | None) -> tuple[ForwardOut, MicroBatch]:
    # One pair: chosen (row 0) and rejected (row 1), 4 positions, the first is the prompt.
    logprobs = torch.tensor([[0.0, -1.0, -2.0, -3.0], [0.0, -1.0, -4.0, -5.0]], dtype=torch.float64)
    ref = torch.tensor([[0.0, -1.5, -2.5, -3.0], [0.0, -1.0, -3.0, -4.0]], dtype=torch.float64)
    mask = torch.tensor([[0.0, 1.0, 1.0, 1.0], [0.0, 1.0, 1.0, 1.0]], dtype=torch.float64)
    fields = {} if pref_mask is None else {"pref_mask": pref_mask}
    ids = torch.zeros(2, 4, dtype=torch.long)
    return ForwardOut(logprobs=logprobs, ref_logprobs=ref), MicroBatch(ids, torch.ones_like(ids), mask, fields, 2)


def test_pref_mask_narrows_the_preference_terms_but_not_the_sft_term() -> None:
    pref = torch.tensor([[0.0, 1.0, 1.0, 0.0], [0.0, 1.0, 1.0, 0.0]], dtype=torch.float64)
    out, mb = _batch(pref)
    loss, _ = make_objective("mpo", {"beta": 0.1}).loss(out, mb, 1.0)
    t = lambda *v: torch.tensor(v, dtype=torch.float64)  # noqa: E731
    # Scored parts: chosen −3 vs ref −4, rejected −5 vs ref −4; SFT: the whole chosen response, −6 over 3 tokens.
    expected, _ = mpo_loss(t(-3.0), t(-5.0), t(-4.0), t(-4.0), t(3.0), beta=0.1, chosen_sft_logps=t(-6.0),
                           global_denominator=1.0)
    assert loss.item() == pytest.approx(expected.item())
    out, mb = _batch(None)
    full, _ = make_objective("mpo", {"beta": 0.1}).loss(out, mb, 1.0)
    expected_full, _ = mpo_loss(t(-6.0), t(-10.0), t(-7.0), t(-8.0), t(3.0), beta=0.1, global_denominator=1.0)
    assert full.item() == pytest.approx(expected_full.item())
    assert full.item() != pytest.approx(loss.item())

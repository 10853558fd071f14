"""Merge math on small tensors, with expected values worked out by hand."""

from __future__ import annotations

import pytest
import torch

from rlsys.algorithms.merging import linear_merge, merge_state_dicts, ties_merge, trim_to_density


def test_linear_task_vector_merge():
    base = torch.tensor([1.0, 2.0, 3.0])
    e1 = torch.tensor([2.0, 2.0, 1.0])  # tau1 = [1, 0, -2]
    e2 = torch.tensor([1.0, 4.0, 3.0])  # tau2 = [0, 2, 0]
    # base + 0.5*tau1 + 0.25*tau2 = [1.5, 2.5, 2.0]
    assert torch.allclose(linear_merge(base, [e1, e2], [0.5, 0.25]), torch.tensor([1.5, 2.5, 2.0]))


def test_trim_keeps_largest_magnitudes():
    tau = torch.tensor([0.1, -3.0, 0.5, 2.0])
    assert torch.equal(trim_to_density(tau, 0.5), torch.tensor([0.0, -3.0, 0.0, 2.0]))
    with pytest.raises(ValueError):
        trim_to_density(tau, 0.0)


def test_ties_trim_elect_disjoint_mean():
    base = torch.zeros(4)
    e1 = torch.tensor([3.0, -1.0, 2.0, 0.1])
    e2 = torch.tensor([1.0, 2.0, -4.0, 0.2])
    # density 0.5: trimmed tau1 = [3, 0, 2, 0]; tau2 = [0, 2, -4, 0]
    # elected sign of the sum [3, 2, -2, 0] = [+, +, -, 0]
    # disjoint means: e0: only tau1 agrees -> 3; e1: tau2 -> 2; e2: tau2 (-4) -> -4; e3: none -> 0
    merged = ties_merge(base, [e1, e2], [1.0, 1.0], density=0.5)
    assert torch.allclose(merged, torch.tensor([3.0, 2.0, -4.0, 0.0]))


def test_ties_averages_agreeing_experts():
    base = torch.tensor([1.0])
    merged = ties_merge(base, [torch.tensor([3.0]), torch.tensor([5.0])], [1.0, 1.0], density=1.0)
    # both tau agree (+2, +4): mean 3 -> 1 + 3
    assert torch.allclose(merged, torch.tensor([4.0]))


def test_state_dict_merge_copies_integer_buffers_and_checks_names():
    base = {"w": torch.tensor([1.0, 1.0]), "idx": torch.tensor([1, 2])}
    expert = {"w": torch.tensor([3.0, 1.0]), "idx": torch.tensor([7, 7])}
    out = merge_state_dicts(base, [expert], "linear", [0.5])
    assert torch.allclose(out["w"], torch.tensor([2.0, 1.0]))
    assert torch.equal(out["idx"], base["idx"])
    with pytest.raises(KeyError, match="'w'"):
        merge_state_dicts(base, [{"idx": expert["idx"]}], "ties")
    with pytest.raises(ValueError, match="merge method"):
        merge_state_dicts(base, [expert], "average")

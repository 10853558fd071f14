"""group_normalized_advantages against hand-derived values, and the advantage registry."""

import math

import pytest
import torch

from rlsys.algorithms.advantages import (
    get_advantage,
    group_mean_batch_std_advantages,
    group_normalized_advantages,
    list_advantages,
)

EPS = 1e-6


def test_group_size_population_std_and_constant_group() -> None:
    rewards = torch.tensor([1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.5, 1.0, 0.0], dtype=torch.float64)
    adv = group_normalized_advantages(rewards, group_size=3)
    # Group 0: mean 1/3, population variance ((2/3)^2 + 2*(1/3)^2)/3 = 2/9, std = sqrt(2)/3.
    std0 = math.sqrt(2) / 3
    # Group 1: all equal -> exactly 0. Group 2: mean 0.5, variance (0 + 0.25 + 0.25)/3 = 1/6.
    std2 = 1 / math.sqrt(6)
    expected = [
        (2 / 3) / (std0 + EPS),
        (-1 / 3) / (std0 + EPS),
        (-1 / 3) / (std0 + EPS),
        0.0,
        0.0,
        0.0,
        0.0,
        0.5 / (std2 + EPS),
        -0.5 / (std2 + EPS),
    ]
    torch.testing.assert_close(adv, torch.tensor(expected, dtype=torch.float64))


def test_group_ids_in_any_order() -> None:
    rewards = torch.tensor([1.0, 0.0, 0.0, 1.0, 0.25])
    ids = torch.tensor([7, 3, 7, 3, 9])
    adv = group_normalized_advantages(rewards, group_ids=ids)
    # Groups {7: [1, 0], 3: [0, 1]}: mean 0.5, population std 0.5 -> ±0.5/(0.5 + eps). Group 9: one
    # response, std 0 -> 0.
    a = 0.5 / (0.5 + EPS)
    torch.testing.assert_close(adv, torch.tensor([a, -a, -a, a, 0.0]))


def test_without_std_normalisation_and_float32_constant_group_is_exactly_zero() -> None:
    rewards = torch.tensor([0.1, 0.1, 0.1, 0.0, 0.3, 0.6])
    adv = group_normalized_advantages(rewards, group_size=3, normalize_std=False)
    # Group 1 mean 0.3: r − mean.
    torch.testing.assert_close(adv, torch.tensor([0.0, 0.0, 0.0, -0.3, 0.0, 0.3]))
    assert torch.equal(adv[:3], torch.zeros(3))
    assert torch.equal(group_normalized_advantages(rewards, group_size=3)[:3], torch.zeros(3))


def test_integer_rewards_give_float32_and_no_gradient() -> None:
    adv = group_normalized_advantages(torch.tensor([1, 0]), group_size=2)
    assert adv.dtype == torch.float32
    torch.testing.assert_close(adv, torch.tensor([0.5 / (0.5 + EPS), -0.5 / (0.5 + EPS)]))
    assert not group_normalized_advantages(
        torch.tensor([1.0, 0.0], requires_grad=True), group_size=2
    ).requires_grad


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({}, "exactly one"),
        ({"group_size": 2, "group_ids": torch.zeros(3)}, "exactly one"),
        ({"group_size": 2}, "does not divide"),
        ({"group_ids": torch.zeros(2)}, "shape"),
    ],
)
def test_argument_errors(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        group_normalized_advantages(torch.zeros(3), **kwargs)


def test_advantage_registry() -> None:
    assert "grpo_group" in list_advantages()
    assert get_advantage("grpo_group") is group_normalized_advantages
    with pytest.raises(KeyError, match="grpo_group"):
        get_advantage("gae")


def test_batch_std_keeps_groups_in_proportion() -> None:
    # Group 0: [1, 0] -> centred ±0.5; group 1: [0.1, 0] (a tie broken by a weak term) -> ±0.05.
    # Batch scale sqrt(mean c²) = sqrt((0.25 + 0.25 + 0.0025 + 0.0025) / 4) = sqrt(0.12625).
    rewards = torch.tensor([1.0, 0.0, 0.1, 0.0])
    adv = group_mean_batch_std_advantages(rewards, group_size=2)
    scale = 0.12625**0.5
    expected = torch.tensor([0.5, -0.5, 0.05, -0.05]) / scale
    assert torch.allclose(adv, expected, atol=1e-5)
    assert adv[0] / adv[2] == pytest.approx(10.0, rel=1e-5)
    # Per-group std scaling makes both groups ±1: the weak term counts as much as the strong one.
    assert torch.allclose(group_normalized_advantages(rewards, group_size=2), torch.tensor([1.0, -1.0, 1.0, -1.0]), atol=1e-4)


def test_batch_std_constant_groups() -> None:
    # Group 0 [1, 0] -> ±0.5; group 1 constant -> 0; scale sqrt(0.5 / 4) = 1/(2√2), so ±√2.
    adv = group_mean_batch_std_advantages(torch.tensor([1.0, 0.0, 0.5, 0.5]), group_ids=torch.tensor([7, 7, 3, 3]))
    assert torch.allclose(adv, torch.tensor([2**0.5, -(2**0.5), 0.0, 0.0]), atol=1e-5)
    assert torch.equal(group_mean_batch_std_advantages(torch.ones(4), group_size=2), torch.zeros(4))
    assert get_advantage("group_mean_batch_std") is group_mean_batch_std_advantages

"""The learner picks a loss's objective from the kind the loss was registered with; no second table."""

from __future__ import annotations

import pytest

from rlsys.algorithms import registry
from rlsys.algorithms.registry import LOSS_KINDS, list_losses, loss_kind, register_loss
from rlsys.learner.objectives import (
    OBJECTIVES,
    UNBOUND_KINDS,
    PairwiseScore,
    PolicyGradient,
    Preference,
    TokenNLL,
    make_objective,
)


@pytest.fixture
def scratch_losses(monkeypatch: pytest.MonkeyPatch) -> None:
    registry.LOSSES.names()
    monkeypatch.setattr(registry.LOSSES, "_table", dict(registry.LOSSES._table))
    monkeypatch.setattr(registry.LOSSES, "_meta", dict(registry.LOSSES._meta))


def test_one_objective_class_per_kind() -> None:
    assert tuple(OBJECTIVES) + tuple(UNBOUND_KINDS) == LOSS_KINDS
    expected = {"ntp": TokenNLL, "sft": TokenNLL, "gspo": PolicyGradient, "gspo_token": PolicyGradient,
                "grpo": PolicyGradient, "dpo": Preference, "bco_pair": Preference, "mpo": Preference,
                "bradley_terry": PairwiseScore}
    assert {name: type(make_objective(name)) for name in list_losses() if name != "siglip"} == expected
    assert all(OBJECTIVES[loss_kind(name)] is cls for name, cls in expected.items())


def test_a_plugin_loss_gets_the_objective_of_its_registered_kind(scratch_losses: None) -> None:
    @register_loss("my_pref", kind="preference")
    def my_pref(*args: object, **kwargs: object) -> None: ...

    objective = make_objective("my_pref", {"beta": 0.2})
    assert isinstance(objective, Preference) and objective.needs_ref and objective.fn is my_pref


def test_an_unregistered_loss_is_an_error_listing_the_known_ones() -> None:
    with pytest.raises(KeyError, match="unknown loss 'gpso'; known: .*gspo_token"):
        make_objective("gpso")


def test_a_contrastive_loss_has_no_learner_objective_yet() -> None:
    """siglip is registered (kind "contrastive") but the objective that feeds it pooled image and text
    embeddings comes with the vision-language model: the learner says so instead of failing obscurely."""
    assert set(UNBOUND_KINDS) == {"contrastive"}
    with pytest.raises(ValueError, match=r"loss 'siglip' \(objective kind 'contrastive'\) cannot be trained.*"
                                         r"vision-language model.*issue #24"):
        make_objective("siglip")

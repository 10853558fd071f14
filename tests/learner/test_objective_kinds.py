"""The learner picks a loss's objective from the kind the loss was registered with; no second table."""

from __future__ import annotations

import pytest

from rlsys.algorithms import registry
from rlsys.algorithms.registry import LOSS_KINDS, list_losses, loss_kind, register_loss
from rlsys.learner.objectives import (
    OBJECTIVES,
    UNBOUND_KINDS,
    Contrastive,
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
                "bradley_terry": PairwiseScore, "siglip": Contrastive}
    assert {name: type(make_objective(name)) for name in list_losses()} == expected
    assert all(OBJECTIVES[loss_kind(name)] is cls for name, cls in expected.items())


def test_a_plugin_loss_gets_the_objective_of_its_registered_kind(scratch_losses: None) -> None:
    @register_loss("my_pref", kind="preference")
    def my_pref(*args: object, **kwargs: object) -> None: ...

    objective = make_objective("my_pref", {"beta": 0.2})
    assert isinstance(objective, Preference) and objective.needs_ref and objective.fn is my_pref


def test_an_unregistered_loss_is_an_error_listing_the_known_ones() -> None:
    with pytest.raises(KeyError, match="unknown loss 'gpso'; known: .*gspo_token"):
        make_objective("gpso")


def test_the_contrastive_objective_asks_for_embeddings_not_logprobs() -> None:
    """siglip (kind "contrastive") is bound: its objective needs pooled image and text embeddings, and says so
    when the learner gave it none (a learner not built for a contrastive stage)."""
    from rlsys.learner.objectives import ForwardOut

    assert not UNBOUND_KINDS
    objective = make_objective("siglip")
    assert objective.needs_embeddings and not (objective.needs_ref or objective.needs_entropy)
    with pytest.raises(ValueError, match="needs pooled image and text embeddings"):
        objective.loss(ForwardOut(), None, 1.0)  # type: ignore[arg-type]

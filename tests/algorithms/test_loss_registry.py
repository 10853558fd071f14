"""The loss registry, and the contract every registered loss keeps: (scalar tensor, dict of floats)."""

import subprocess
import sys

import pytest
import torch

from rlsys.algorithms import registry
from rlsys.algorithms.losses import get_loss, gspo_loss, list_losses
from rlsys.algorithms.registry import LOSS_KINDS, Registry, loss_kind, register_loss

BUILTINS = ["bco_pair", "bradley_terry", "dpo", "grpo", "gspo", "gspo_token", "mpo", "ntp", "sft", "siglip"]


def test_builtin_names_and_lookup() -> None:
    assert list_losses() == BUILTINS
    assert get_loss("gspo") is gspo_loss


def test_unknown_name_lists_known_ones() -> None:
    with pytest.raises(KeyError, match="unknown loss 'ppo'.*gspo_token"):
        get_loss("ppo")


def test_registering_twice_is_an_error() -> None:
    registry = Registry("thing")

    @registry.register("a")
    def a() -> None: ...

    def other() -> None: ...

    assert registry.get("a") is a
    registry.register("a")(a)  # the same function again is harmless
    with pytest.raises(ValueError, match="already registered"):
        registry.register("a")(other)


KINDS = {
    "ntp": "token_nll", "sft": "token_nll",
    "gspo": "policy_gradient", "gspo_token": "policy_gradient", "grpo": "policy_gradient",
    "dpo": "preference", "bco_pair": "preference", "mpo": "preference",
    "bradley_terry": "pairwise_score",
    "siglip": "contrastive",
}


@pytest.fixture
def scratch_losses(monkeypatch: pytest.MonkeyPatch) -> None:
    """Registrations made by the test are dropped afterwards (the built-ins stay)."""
    registry.LOSSES.names()  # load the built-ins first
    monkeypatch.setattr(registry.LOSSES, "_table", dict(registry.LOSSES._table))
    monkeypatch.setattr(registry.LOSSES, "_meta", dict(registry.LOSSES._meta))


def test_every_builtin_is_registered_once_with_its_objective_kind() -> None:
    assert {name: loss_kind(name) for name in BUILTINS} == KINDS
    assert list_losses("policy_gradient") == ["grpo", "gspo", "gspo_token"]
    assert set(KINDS.values()) == set(LOSS_KINDS)


def test_a_plugin_loss_is_registered_with_its_kind(scratch_losses: None) -> None:
    @register_loss("my_pg", kind="policy_gradient")
    def my_pg(*args: object, **kwargs: object) -> None: ...

    assert get_loss("my_pg") is my_pg and loss_kind("my_pg") == "policy_gradient"
    assert "my_pg" in list_losses("policy_gradient") and "my_pg" not in list_losses("preference")
    with pytest.raises(ValueError, match="already registered"):
        register_loss("my_pg", kind="preference")(my_pg)


def test_a_loss_needs_a_known_kind(scratch_losses: None) -> None:
    with pytest.raises(TypeError):
        register_loss("no_kind")  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="unknown objective kind 'pg'; known: token_nll, policy_gradient"):
        register_loss("bad_kind", kind="pg")
    assert "bad_kind" not in list_losses()
    with pytest.raises(KeyError, match="unknown loss 'ppo'"):
        loss_kind("ppo")


def test_registry_alone_sees_builtins_in_a_fresh_interpreter() -> None:
    code = "from rlsys.algorithms.registry import list_losses; print(','.join(list_losses()))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip().split(",") == BUILTINS


def _inputs(name: str) -> dict:
    lp = -torch.rand(2, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0)).requires_grad_()
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]], dtype=torch.float64)
    pair = {
        "policy_chosen_logps": lp.sum(-1),
        "policy_rejected_logps": lp.sum(-1).flip(0),
        "ref_chosen_logps": torch.tensor([-1.0, -2.0], dtype=torch.float64),
        "ref_rejected_logps": torch.tensor([-2.0, -1.0], dtype=torch.float64),
    }
    rl = {
        "logprobs": lp,
        "old_logprobs": lp.detach() - 0.01,
        "advantages": torch.tensor([1.0, -1.0]),
        "mask": mask,
    }
    return {
        "ntp": {"logprobs": lp, "mask": mask},
        "sft": {"logprobs": lp, "mask": mask, "reduction": "square"},
        "dpo": pair,
        "bco_pair": {**pair, "delta": 0.1},
        "mpo": {**pair, "chosen_lengths": torch.tensor([3, 3])},
        "bradley_terry": {"chosen_scores": lp[:, 0], "rejected_scores": lp[:, 1]},
        "gspo": rl,
        "gspo_token": rl,
        "grpo": rl,
        "siglip": {"image_emb": lp, "text_emb": lp.detach().flip(0), "log_temp": torch.tensor(2.3),
                   "bias": torch.tensor(-10.0)},
    }[name]


@pytest.mark.parametrize("name", BUILTINS)
def test_every_loss_returns_scalar_and_float_metrics(name: str) -> None:
    loss, metrics = get_loss(name)(**_inputs(name))
    assert isinstance(loss, torch.Tensor) and loss.dim() == 0 and loss.requires_grad
    assert metrics and all(type(v) is float for v in metrics.values())
    assert metrics["loss"] == pytest.approx(loss.item())

"""Parameter freezing by config (`stages.<name>.trainable`): which parameters train, and the errors naming the key.

The real DeepSpeed learner keeping frozen weights byte-identical is in test_freeze_learner.py (slow)."""

from __future__ import annotations

import pytest
import torch

from rlsys.learner.freeze import freeze_parameters, name_prefixes, trainable_names


def _tiny_qwen3() -> torch.nn.Module:
    from transformers import Qwen3Config, Qwen3ForCausalLM

    config = Qwen3Config(vocab_size=32, hidden_size=8, intermediate_size=16, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, head_dim=4, tie_word_embeddings=False)
    return Qwen3ForCausalLM(config)


def _trained(model: torch.nn.Module) -> set[str]:
    return {n for n, p in model.named_parameters() if p.requires_grad}


def test_no_patterns_train_every_parameter() -> None:
    model = _tiny_qwen3()
    counts = freeze_parameters(model, [])
    names = {n for n, _ in model.named_parameters()}
    assert _trained(model) == names
    total = sum(p.numel() for p in model.parameters())
    assert counts == {"trainable_tensors": len(names), "trainable_params": total, "frozen_tensors": 0,
                      "frozen_params": 0}


def test_only_the_matching_parameters_train() -> None:
    model = _tiny_qwen3()
    counts = freeze_parameters(model, ["model.layers.1.*"])
    trained = _trained(model)
    assert trained and all(n.startswith("model.layers.1.") for n in trained)
    assert trained == {n for n, _ in model.named_parameters() if n.startswith("model.layers.1.")}
    assert "model.layers.0.mlp.up_proj.weight" not in trained and "lm_head.weight" not in trained
    assert counts["trainable_tensors"] == len(trained)
    assert counts["trainable_params"] == sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert counts["frozen_params"] == sum(p.numel() for p in model.parameters() if not p.requires_grad) > 0
    # Several patterns train their union; an exact name is a pattern too.
    model = _tiny_qwen3()
    freeze_parameters(model, ["model.layers.0.mlp.*", "lm_head.weight"])
    assert _trained(model) == {"lm_head.weight"} | {n for n, _ in model.named_parameters()
                                                   if n.startswith("model.layers.0.mlp.")}


def test_a_pattern_matching_nothing_names_the_key_and_the_prefixes() -> None:
    model = _tiny_qwen3()
    with pytest.raises(ValueError) as err:
        freeze_parameters(model, ["model.layers.1.*", "visual.*"], where="stages.vit.trainable")
    message = str(err.value)
    assert message.startswith("stages.vit.trainable: pattern 'visual.*' matches no parameter")
    assert "model.embed_tokens, model.layers.0, model.layers.1, model.norm, lm_head" in message
    assert all(p.requires_grad for p in model.parameters()), "a failed check freezes nothing"


def test_name_prefixes_are_module_paths_in_order() -> None:
    names = ["model.embed_tokens.weight", "model.layers.0.a.weight", "model.layers.0.b.weight",
             "model.layers.1.a.weight", "lm_head.weight", "scale"]
    assert name_prefixes(names) == ["model.embed_tokens", "model.layers.0", "model.layers.1", "lm_head", "scale"]
    # `*` crosses dots (fnmatch), matching is case-sensitive, and "model.layers.1.*" does not take layer 10.
    assert trainable_names(["a.b.c", "a.B.c", "x.1.y", "x.10.y"], ["a.*.c", "x.1.*"]) == {"a.b.c", "a.B.c", "x.1.y"}
    with pytest.raises(ValueError, match="trainable: pattern 'A.*'"):
        trainable_names(["a.b"], ["A.*"])

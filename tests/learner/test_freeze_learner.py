"""A real DeepSpeed learner with `trainable` patterns: frozen tensors leave byte-identical, trained ones move."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from rlsys_testing import learner_config

from rlsys.learner.batching import make_batch
from rlsys.learner.group import LearnerGroup
from rlsys.runtime.ray_utils import ActorFailure

pytestmark = pytest.mark.slow

TRAINED = "model.layers.1."


def _batch(seed: int, n: int = 8) -> dict:
    rng = random.Random(seed)
    ids = [[rng.randrange(5, 300) for _ in range(rng.randrange(6, 30))] for _ in range(n)]
    return make_batch(ids, [[0] * 3 + [1] * (len(x) - 3) for x in ids])


def _frozen_config(patterns: list[str], **overrides) -> dict:
    # What build_stage_learners adds for a stage with `trainable` (rlsys/stages/builders.py).
    return {**learner_config(**overrides), "trainable": patterns, "trainable_key": "stages.vit.trainable"}


def _bytes(tensor) -> bytes:
    return tensor.detach().cpu().contiguous().numpy().tobytes()


# bf16 casts the module to bf16; the frozen tensors of this fp32 checkpoint still leave with their fp32 bytes.
@pytest.mark.parametrize(("actors", "zero", "precision"), [(1, 0, "fp32"), (2, 2, "fp32"), (2, 3, "bf16")],
                         ids=["zero0", "zero2-2ranks", "zero3-2ranks-bf16"])
def test_frozen_weights_stay_byte_identical(ray_session, tiny_model_dir, tmp_path, actors, zero, precision):
    import ray
    from safetensors.torch import load_file

    start = load_file(str(Path(tiny_model_dir) / "model.safetensors"))
    group = LearnerGroup(tiny_model_dir, _frozen_config([f"{TRAINED}*"], num_actors=actors, zero_stage=zero,
                                                        precision=precision))
    try:
        counts = group.parameter_counts
        losses = [group.train_step(_batch(s), "sft", {"reduction": "square"})["loss"] for s in range(3)]
        exported = dict(item for ref in group.export_weights(64 << 10) for item in ray.get(ref))
        group.save_hf(str(tmp_path / "out"))
    finally:
        group.shutdown()
    saved = load_file(str(tmp_path / "out" / "model.safetensors"))
    trained = {n for n in start if n.startswith(TRAINED)}
    assert trained and len(trained) < len(start)
    assert counts["trainable_tensors"] == len(trained) and counts["frozen_tensors"] == len(start) - len(trained)
    assert counts["trainable_params"] == sum(start[n].numel() for n in trained)
    assert all(loss == loss for loss in losses), losses
    assert set(saved) == set(exported) == set(start)
    for name, before in start.items():
        for where, after in (("saved", saved[name]), ("exported", exported[name])):
            assert after.dtype == before.dtype and after.shape == before.shape, (where, name)
            if name in trained:
                assert _bytes(after) != _bytes(before), f"{where} {name} should have trained"
            else:
                assert _bytes(after) == _bytes(before), f"{where} {name} should be frozen"


def test_a_pattern_matching_no_parameter_fails_naming_the_key(ray_session, tiny_model_dir):
    with pytest.raises(ActorFailure, match=r"stages\.vit\.trainable: pattern 'visual\.\*' matches no parameter.*"
                                           r"model\.embed_tokens, model\.layers\.0"):
        LearnerGroup(tiny_model_dir, _frozen_config(["model.layers.1.*", "visual.*"]))

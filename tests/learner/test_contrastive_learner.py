"""A real DeepSpeed learner (2 ranks, ZeRO-2) training the contrastive objective on a tiny Qwen3-VL with only the
vision tower trainable: SigLIP's temperature and bias train and sit in the DeepSpeed checkpoint, but never in
the exported or saved HF weights, which load back with no unexpected key; the LM leaves byte-identical."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from rlsys_testing import draw_image, learner_config

from rlsys.learner.batching import make_batch
from rlsys.learner.contrastive import HEAD_ATTR
from rlsys.learner.group import LearnerGroup
from rlsys.runtime.ray_utils import ActorFailure

pytestmark = pytest.mark.slow

CAPTIONS = ["Three red circles.", "A blue square on a white background.", "Two green bars."]


@pytest.fixture(scope="module")
def vl_dir(tiny_vl_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("vl-contrastive-learner")
    images = [draw_image(root / f"{c}.png", (64, 64), c) for c in ("red", "blue", "green")]
    return tiny_vl_dir, images


def _config(**overrides) -> dict:
    # What run_contrastive adds (rlsys/jobs/vision.py) to what build_stage_learners adds for `trainable`.
    return {**learner_config(**overrides), "trainable": ["model.visual.*"], "trainable_key": "stages.vit.trainable",
            "contrastive": "stages.vit"}


def _batch(model_dir: str, images: list[str], rows: list[int]) -> dict:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    ids = [tokenizer(CAPTIONS[i], add_special_tokens=False)["input_ids"] for i in rows]
    return make_batch(ids, [[1] * len(x) for x in ids], images=[[images[i]] for i in rows])


def _bytes(tensor: torch.Tensor) -> bytes:
    return tensor.detach().cpu().contiguous().numpy().tobytes()


def test_two_ranks_train_the_tower_and_head_and_export_only_hf_weights(ray_session, vl_dir, tmp_path):
    import ray
    from safetensors.torch import load_file
    from transformers import AutoModelForImageTextToText

    model_dir, images = vl_dir
    start = load_file(str(Path(model_dir) / "model.safetensors"))
    group = LearnerGroup(model_dir, _config(num_actors=2, zero_stage=2))
    try:
        # 3 rows over 2 ranks (2 + 1), then 1 row: rank 1 has no data and joins the reductions with a zero loss.
        steps = [group.train_step(_batch(model_dir, images, rows), "siglip") for rows in ([0, 1, 2], [0, 1, 2], [1])]
        emb_images, emb_texts = group.compute_embeddings(_batch(model_dir, images, [0, 1, 2]))
        exported = dict(item for ref in group.export_weights(64 << 10) for item in ray.get(ref))
        ckpt = group.save_checkpoint(str(tmp_path / "ckpt"), "step3")
        group.save_hf(str(tmp_path / "out"))
    finally:
        group.shutdown()

    assert all(math.isfinite(s["loss"]) and s["loss"] > 0 for s in steps), steps
    assert steps[0]["temperature"] == pytest.approx(10.0) and steps[0]["bias"] == pytest.approx(-10.0)
    assert steps[1]["temperature"] != pytest.approx(10.0, abs=1e-6) and steps[1]["bias"] != pytest.approx(-10.0, abs=1e-6)
    assert steps[0]["micro_batches"] == 1.0
    hidden = len(start["model.language_model.embed_tokens.weight"][0])
    assert [len(e) for e in emb_images] == [len(e) for e in emb_texts] == [hidden] * 3

    # The head is not an HF weight: not exported, not saved; the DeepSpeed checkpoint keeps it, trained.
    saved = load_file(str(tmp_path / "out" / "model.safetensors"))
    assert set(exported) == set(saved) == set(start)
    states = torch.load(next(Path(ckpt).glob("*model_states.pt")), map_location="cpu", weights_only=False)["module"]
    assert float(states[f"{HEAD_ATTR}.log_temp"]) != pytest.approx(math.log(10.0), abs=1e-6)
    assert float(states[f"{HEAD_ATTR}.bias"]) != pytest.approx(-10.0, abs=1e-6)
    _, info = AutoModelForImageTextToText.from_pretrained(str(tmp_path / "out"), output_loading_info=True)
    assert not info["unexpected_keys"] and not info["missing_keys"], info

    moved = {n for n in start if _bytes(saved[n]) != _bytes(start[n])}
    assert moved and all(n.startswith("model.visual.") for n in moved), sorted(moved)
    assert {"model.visual.blocks.0.attn.qkv.weight", "model.visual.merger.linear_fc2.weight"} <= moved
    for name in start:
        if not name.startswith("model.visual."):
            assert _bytes(saved[name]) == _bytes(start[name]) == _bytes(exported[name]), name


def test_a_contrastive_learner_needs_a_vlm_and_zero_0_to_2(ray_session, vl_dir, tiny_model_dir):
    with pytest.raises(ActorFailure, match=r"stages\.vit: contrastive stages run on ZeRO 0-2"):
        LearnerGroup(vl_dir[0], _config(zero_stage=3))
    text_only = {**_config(), "trainable": []}
    with pytest.raises(ActorFailure, match=r"stages\.vit: a contrastive stage .* not a vision-language model"):
        LearnerGroup(tiny_model_dir, text_only)

"""The contrastive objective on a tiny Qwen3-VL, on CPU without DeepSpeed: (caption, image) rows become pooled
embeddings through the vision tower and the language model, the loss is `siglip` of exactly those, and with
`trainable: [model.visual.*]` its gradients reach the tower and the head's temperature and bias, never the LM."""

from __future__ import annotations

import math

import pytest
import torch
from rlsys_testing import draw_image

from rlsys.algorithms.losses_contrastive import SIGLIP_INIT_BIAS, SIGLIP_INIT_LOG_TEMP, siglip_loss
from rlsys.learner.batching import make_batch
from rlsys.learner.contrastive import (
    HEAD_ATTR,
    attach_head,
    check_contrastive_support,
    collate_pairs,
    contrastive_forward,
    is_head_parameter,
)
from rlsys.learner.freeze import freeze_parameters
from rlsys.learner.objectives import Contrastive, make_objective
from rlsys.learner.vl_inputs import image_inputs

CPU = torch.device("cpu")
CAPTIONS = ["Three red circles on a white background.", "A blue square.",
            "Two green triangles and one yellow star on a grey background."]


@pytest.fixture(scope="module")
def vl(tiny_vl_dir, tmp_path_factory):
    from transformers import AutoProcessor, AutoTokenizer

    root = tmp_path_factory.mktemp("vl-contrastive")
    model_dir = tiny_vl_dir
    # Different sizes: the images give different token counts, so the per-image split and pooling matter.
    images = [draw_image(root / "a.png", (96, 64), "red", "rectangle"),
              draw_image(root / "b.png", (64, 64), "blue", "rectangle"),
              draw_image(root / "c.png", (128, 96), "green", "rectangle")]
    return model_dir, AutoProcessor.from_pretrained(model_dir), AutoTokenizer.from_pretrained(model_dir), images


def _model(model_dir: str, trainable: list[str]) -> torch.nn.Module:
    from rlsys.learner.worker import load_policy_model

    model = load_policy_model(model_dir, torch.float32)
    freeze_parameters(model, trainable)
    attach_head(model)
    return model


def _batch(tokenizer, images: list[str]) -> dict:
    ids = [tokenizer(c, add_special_tokens=False)["input_ids"] for c in CAPTIONS]
    return make_batch(ids, [[1] * len(x) for x in ids], images=[[p] for p in images])


def _by_hand(model, processor, tokenizer, images: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Qwen3-VL's own modules, one row at a time (no padding): merger output tokens and last hidden states."""
    inner = model.model
    feats = image_inputs(processor, images)
    merged = inner.visual(feats["pixel_values"], grid_thw=feats["image_grid_thw"]).pooler_output
    sizes = (feats["image_grid_thw"].prod(-1) // inner.visual.spatial_merge_size**2).tolist()
    assert len(set(sizes)) > 1
    image_emb = torch.stack([t.mean(0) for t in torch.split(merged, sizes)])
    text_rows = []
    for caption in CAPTIONS:
        ids = torch.tensor([tokenizer(caption, add_special_tokens=False)["input_ids"]])
        hidden = inner.language_model(input_ids=ids, attention_mask=torch.ones_like(ids)).last_hidden_state
        text_rows.append(hidden[0].mean(0))
    return image_emb, torch.stack(text_rows)


def test_the_loss_is_siglip_of_the_pooled_embeddings_and_trains_only_the_tower_and_head(vl):
    model_dir, processor, tokenizer, images = vl
    model = _model(model_dir, ["model.visual.*"])
    batch = _batch(tokenizer, images)
    mb = collate_pairs(batch, [0, 1, 2], tokenizer.pad_token_id or 0, CPU, processor)
    assert mb.attention_mask.sum(1).tolist() == [len(x) for x in batch["input_ids"]]  # padded captions
    assert "pixel_values" in mb.model_inputs and "image_grid_thw" in mb.model_inputs
    objective = make_objective("siglip")
    assert isinstance(objective, Contrastive)

    out = contrastive_forward(model, mb)
    loss, metrics = objective.loss(out, mb, global_denominator=float(objective.denominator(mb)))
    assert objective.denominator(mb) == 3.0 and math.isfinite(float(loss.detach()))

    with torch.no_grad():
        image_emb, text_emb = _by_hand(model, processor, tokenizer, images)
        expected, _ = siglip_loss(image_emb, text_emb, torch.tensor(SIGLIP_INIT_LOG_TEMP),
                                  torch.tensor(SIGLIP_INIT_BIAS), global_denominator=3.0)
    assert out.image_emb.shape == out.text_emb.shape == (3, model.config.text_config.hidden_size)
    torch.testing.assert_close(out.image_emb.detach(), image_emb, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out.text_emb.detach(), text_emb, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(loss.detach(), expected, rtol=1e-6, atol=1e-6)
    assert metrics["temperature"] == pytest.approx(10.0) and metrics["bias"] == pytest.approx(-10.0)

    loss.backward()
    grads = {n: p.grad for n, p in model.named_parameters()}
    head = getattr(model, HEAD_ATTR)
    assert head.log_temp.grad is not None and float(head.log_temp.grad) != 0.0
    assert head.bias.grad is not None and float(head.bias.grad) != 0.0
    for name in ("model.visual.blocks.0.attn.qkv.weight", "model.visual.patch_embed.proj.weight",
                 "model.visual.merger.linear_fc2.weight"):
        assert grads[name] is not None and float(grads[name].abs().sum()) > 0.0, name
    # Tensors the loss does not reach still get a (zero) gradient: every rank reduces the same set.
    deepstack = [n for n in grads if "deepstack" in n]
    assert deepstack and all(grads[n] is not None and not grads[n].any() for n in deepstack)
    lm = [n for n in grads if not n.startswith("model.visual.") and not is_head_parameter(n)]
    assert lm and all(grads[n] is None for n in lm)


def test_a_micro_batch_loss_is_divided_by_the_global_image_count(vl):
    """One row of a 3-image step (another rank or micro-batch holds the rest): its pair sum over 3, not 1."""
    model_dir, processor, tokenizer, images = vl
    model = _model(model_dir, ["model.visual.*"])
    batch = _batch(tokenizer, images)
    objective = make_objective("siglip")
    whole = objective.loss(contrastive_forward(model, collate_pairs(batch, [0], 0, CPU, processor)), None, 3.0)[0]
    alone = objective.loss(contrastive_forward(model, collate_pairs(batch, [0], 0, CPU, processor)), None, 1.0)[0]
    torch.testing.assert_close(whole * 3.0, alone)


def test_bad_contrastive_input_is_named(vl):
    model_dir, processor, tokenizer, images = vl
    two = make_batch([[5, 6], [7, 8]], [[1, 1], [1, 1]], images=[[images[0]], [images[0], images[1]]])
    with pytest.raises(ValueError, match="row 1 has 2 images; a row is one caption and exactly one image"):
        collate_pairs(two, [0, 1], 0, CPU, processor)
    with pytest.raises(ValueError, match="contrastive batch has no `images`"):
        collate_pairs(make_batch([[5, 6]], [[1, 1]]), [0], 0, CPU, processor)
    with pytest.raises(ValueError, match=r"stages\.vit: a contrastive stage .* not a vision-language model"):
        check_contrastive_support(None, 0, "stages.vit")
    with pytest.raises(ValueError, match=r"stages\.vit: contrastive stages run on ZeRO 0-2"):
        check_contrastive_support(processor, 3, "stages.vit")
    model = _model(model_dir, [])
    with pytest.raises(ValueError, match="already has an attribute"):
        attach_head(model)


def test_the_hf_forward_is_unchanged_by_the_head(vl):
    """A model with the head attached still answers ordinary forward calls exactly as before."""
    from rlsys.learner.worker import load_policy_model

    model_dir, _, tokenizer, _ = vl
    ids = torch.tensor([tokenizer(CAPTIONS[0], add_special_tokens=False)["input_ids"]])
    plain = load_policy_model(model_dir, torch.float32)
    with_head = _model(model_dir, [])
    with torch.no_grad():
        torch.testing.assert_close(with_head(input_ids=ids).logits, plain(input_ids=ids).logits)
    names = [n for n, _ in with_head.named_parameters() if is_head_parameter(n)]
    assert names == [f"{HEAD_ATTR}.log_temp", f"{HEAD_ATTR}.bias"]

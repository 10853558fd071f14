"""The learner's contrastive path: (caption, image) rows -> pooled image and text embeddings for `siglip`.

A contrastive batch row is one caption's tokens (the caption text alone: no chat template, no image
placeholder) and exactly one image (`make_batch(..., images=[[path]])`). The image goes through the
processor's image processor only (`image_inputs`), never into the text, and through the model's vision tower
(`get_image_features`: for Qwen-VL the merger's output, already in the language model's width); its output
tokens are mean-pooled into one embedding per image. The caption goes through the language model alone
(`base_model`), its last hidden state mean-pooled over the caption's tokens. Both are HF's generic VLM API,
so the same code serves any HF VLM whose `get_image_features` returns per-image tokens.

SigLIP's learnable log-temperature and bias live in `ContrastiveHead`, attached to the model under
`HEAD_ATTR` before DeepSpeed is built, so the optimizer trains them and DeepSpeed checkpoints keep them;
the learner leaves them out of every HF export (`is_head_parameter`).
"""

from __future__ import annotations

from typing import Any

import torch

from rlsys.algorithms.losses_contrastive import SIGLIP_INIT_BIAS, SIGLIP_INIT_LOG_TEMP
from rlsys.learner.batching import MicroBatch, collate
from rlsys.learner.objectives import ForwardOut
from rlsys.learner.vl_inputs import image_inputs

# Attribute (and parameter-name prefix) of the head on the model; not an HF parameter name.
HEAD_ATTR = "rlsys_contrastive_head"


class ContrastiveHead(torch.nn.Module):
    """SigLIP's learnable log-temperature t' and bias b, at the paper's initialisation. Stored as [1] tensors:
    DeepSpeed cannot broadcast or flatten 0-dim parameters; `scalars` gives them as the loss takes them."""

    def __init__(self) -> None:
        super().__init__()
        self.log_temp = torch.nn.Parameter(torch.tensor([SIGLIP_INIT_LOG_TEMP]))
        self.bias = torch.nn.Parameter(torch.tensor([SIGLIP_INIT_BIAS]))

    def scalars(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(log_temp, bias) as 0-dim tensors, still in the graph."""
        return self.log_temp.reshape(()), self.bias.reshape(())


def is_head_parameter(name: str) -> bool:
    """Whether `name` (from `named_parameters`) belongs to the contrastive head, not to the HF model."""
    return name.startswith(HEAD_ATTR + ".")


def check_contrastive_support(processor: Any, zero_stage: int, where: str) -> None:
    """A contrastive learner needs a vision-language model (its processor) and ZeRO 0-2: raise ValueError
    naming `where` (the stage's config key) otherwise."""
    if processor is None:
        raise ValueError(f"{where}: a contrastive stage trains image-caption embeddings, but its model is not a "
                         "vision-language model (no `vision_config` in its config.json); start it from a VLM "
                         "(e.g. model=tiny_vl, or model.path of a Qwen3-VL directory)")
    if int(zero_stage) == 3:
        # The vision tower and the language model are called outside the engine's forward, and ZeRO-3's
        # partitioned parameters cannot be touched that way; the zero-valued anchor needs whole tensors too.
        raise ValueError(f"{where}: contrastive stages run on ZeRO 0-2; learner.zero_stage = 3 is not supported")


def attach_head(model: torch.nn.Module) -> ContrastiveHead:
    """Add a fresh trainable head to `model` (after freezing, so `trainable` patterns never freeze it) and
    route `model(contrastive=mb)` / `model(anchor=True)` to `contrastive_pass` / `trainable_anchor`: the
    DeepSpeed engine's forward must wrap the pass, since the hooks it puts on the outputs start ZeRO's
    backward (reduction boundary, gradient bookkeeping). Any other call is the HF forward, unchanged."""
    if hasattr(model, HEAD_ATTR):
        raise ValueError(f"the model already has an attribute {HEAD_ATTR!r}")
    head = ContrastiveHead()
    model.add_module(HEAD_ATTR, head)
    hf_forward = model.forward

    def forward(*args: Any, contrastive: MicroBatch | None = None, anchor: bool = False, **kwargs: Any) -> Any:
        if anchor:
            return trainable_anchor(model)
        if contrastive is not None:
            return contrastive_pass(model, contrastive)
        return hf_forward(*args, **kwargs)

    # An instance attribute: nn.Module.__call__ (hence the engine) finds it before the class's forward.
    model.forward = forward  # type: ignore[method-assign]
    return head


def head_of(model: torch.nn.Module) -> ContrastiveHead:
    """The model's contrastive head (ValueError when the learner was not built for a contrastive stage)."""
    head = getattr(model, HEAD_ATTR, None)
    if not isinstance(head, ContrastiveHead):
        raise ValueError("the learner has no contrastive head: it was not built for a contrastive stage")
    return head


def collate_pairs(
    batch: dict[str, Any], indices: list[int], pad_id: int, device: torch.device, processor: Any
) -> MicroBatch:
    """A contrastive micro-batch: the captions right-padded as plain text, and the rows' images (one each, in
    row order) through the image processor into `model_inputs`. ValueError naming the row otherwise."""
    rows = batch.get("images")
    if rows is None:
        raise ValueError("contrastive batch has no `images`: each row is one caption and one image")
    for i in indices:
        if len(rows[i]) != 1:
            raise ValueError(f"contrastive batch row {i} has {len(rows[i])} images; a row is one caption and "
                             "exactly one image")
    mb = collate(batch, indices, pad_id, device)
    features = image_inputs(processor, [rows[i][0] for i in indices])
    mb.model_inputs = {k: v.to(device) for k, v in features.items() if isinstance(v, torch.Tensor)}
    return mb


def per_image_features(output: Any, num_images: int) -> list[torch.Tensor]:
    """The `[tokens, D]` features of each image from what `get_image_features` returned: an output with
    `pooler_output` (Qwen-VL in transformers 5: a tuple of per-image tensors), a tuple/list of them, or one
    tensor `[num_images, tokens, D]`."""
    feats = getattr(output, "pooler_output", output)
    if isinstance(feats, torch.Tensor):
        feats = list(feats) if feats.dim() == 3 else [feats]
    feats = [f.reshape(-1, f.shape[-1]) for f in feats]
    if len(feats) != num_images:
        raise ValueError(f"get_image_features gave features for {len(feats)} images, expected {num_images}; "
                         "the contrastive path needs per-image vision-tower tokens")
    return feats


def pooled_image_embeddings(model: torch.nn.Module, model_inputs: dict[str, Any], num_images: int) -> torch.Tensor:
    """[N, D]: each image's vision-tower output tokens, mean-pooled."""
    output = model.get_image_features(**model_inputs)
    return torch.stack([f.mean(dim=0) for f in per_image_features(output, num_images)])


def pooled_text_embeddings(model: torch.nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """[N, D]: the language model's last hidden state, mean-pooled over each caption's tokens."""
    hidden = model.base_model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state  # [N, T, D]
    mask = attention_mask.to(hidden.dtype).unsqueeze(-1)  # [N, T, 1]
    return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)


def trainable_anchor(model: torch.nn.Module) -> torch.Tensor:
    """Zero, with a (zero) gradient path to every trainable tensor: every rank then reduces the same set of
    gradients each micro-batch, also a rank without data and tensors the loss does not reach (Qwen3-VL's
    deepstack mergers)."""
    terms = [p.reshape(-1)[:1].sum() for p in model.parameters() if p.requires_grad]
    return torch.stack(terms).sum() * 0.0 if terms else torch.zeros(())


def contrastive_pass(model: torch.nn.Module, mb: MicroBatch) -> tuple[torch.Tensor, torch.Tensor]:
    """Pooled image and text embeddings ([N, D] each) of `mb` (built by `collate_pairs`). With gradients on, the
    zero anchor rides on the image embeddings (it adds exactly 0), so they always carry the engine's hooks."""
    image_emb = pooled_image_embeddings(model, mb.model_inputs, mb.num_sequences)
    text_emb = pooled_text_embeddings(model, mb.input_ids, mb.attention_mask)
    if torch.is_grad_enabled():
        image_emb = image_emb + trainable_anchor(model).to(image_emb.dtype)
    return image_emb, text_emb


def contrastive_forward(engine: Any, mb: MicroBatch) -> ForwardOut:
    """The objective's inputs for `mb`: embeddings through `engine` (the DeepSpeed engine, or the model itself)
    and the head's log-temperature and bias."""
    image_emb, text_emb = engine(contrastive=mb)
    log_temp, bias = head_of(getattr(engine, "module", engine)).scalars()
    return ForwardOut(image_emb=image_emb, text_emb=text_emb, log_temp=log_temp, bias=bias)

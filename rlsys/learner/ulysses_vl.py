"""Ulysses sequence parallelism for Qwen3-VL vision-language models (`learner.sequence_parallel` on a VLM).

What runs where. Qwen3VLModel.forward builds the decoder's inputs from the whole sequence before any decoder
layer: token embeddings, the vision tower on the micro-batch's pictures and video frames, the scatter of its
features into the placeholder positions, the deepstack features (added to the hidden states of the first
decoder layers at the visual positions) and the 3D mRoPE position ids (`get_rope_index`, which walks each row
from its start). None of this is split: every rank of an SP group runs it on the full (identical) micro-batch.
A forward pre-hook on `model.model.language_model` (Qwen3VLTextModel), installed only for the duration of an
SP forward (`decoder_slice`), then cuts the decoder's inputs to the rank's positions [start, end):
`inputs_embeds` [B, T, D] and `position_ids` ([3 or 4, B, T], built as 0..T-1 when the micro-batch has no
picture and the model passes none) on their last position dim, `visual_pos_masks` [B, T] to the slice, and
each `deepstack_visual_embeds` entry ([n_visual, D], one row per True of visual_pos_masks in row-major [B, T]
order) to the rows whose positions fall in the slice (the same order `_deepstack_process` reads them in). It
drops the attention mask like the text path (right padding and causal attention) and adds the Ulysses
group to the decoder's kwargs, so only the decoder's attention exchanges. The lm head then gives this rank's
logits, scored like the text path (ulysses.py: each token by the rank owning its predicting position).

Why the gradients add up. Rank r's loss reaches the front end only through the decoder inputs of its slice
(inputs_embeds[:, start:end] and the deepstack rows inside it); the cross-rank dependencies are carried by the
attention exchanges, whose backward returns every gradient to the rank that owns the position. So rank r's
backward pushes into the vision tower and the embeddings exactly dL/d(front-end outputs at its positions), L
the whole micro-batch loss; its gradient for the front-end weights is that vector-Jacobian product of its own
(identical) full front-end forward. Backprop is linear in the output gradient and the slices tile [0, T), so
the S ranks' front-end gradients sum to the gradient of the unsplit model, as the decoder's do; the learner's
`loss * world_size` under DeepSpeed's mean then gives the global-batch gradient. The front end's compute is
repeated S times (it is small next to a long sequence's decoder); its activations are not split.

Refused: other VLM architectures (their decoder inputs differ), and ZeRO-3 (`learner.zero_stage=3`): its
`VisionSync` (vl_passes.py) adds a dummy picture row to forwards without pictures so all ranks gather the
tower's parameters alike; that row would need its own padding to the SP split and its scores cut, which the
SP path does not do.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch

# Model types whose decoder takes Qwen3VLTextModel's inputs (inputs_embeds, mRoPE ids, deepstack features).
SUPPORTED_MODEL_TYPES = ("qwen3_vl",)
# Model inputs aligned with the sequence ([B, T]): right-padded with 0 (text) with input_ids.
PER_POSITION_INPUTS = ("mm_token_type_ids",)


def is_vision_language_config(config: Any) -> bool:
    return getattr(config, "vision_config", None) is not None


def check_vl_model(config: Any, where: str, zero_stage: int) -> None:
    """Refuse VLMs whose decoder inputs the slice hook does not know, and ZeRO-3 with a VLM."""
    model_type = getattr(config, "model_type", None)
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise ValueError(f"{where}: vision-language model_type {model_type!r} is not supported (only "
                         f"{', '.join(SUPPORTED_MODEL_TYPES)}: its decoder inputs are split by ulysses_vl.py)")
    if int(zero_stage) == 3:
        raise ValueError(f"{where} and learner.zero_stage=3: a vision-language model under ZeRO-3 needs the "
                         "dummy-picture tower pass (rlsys/learner/vl_passes.py VisionSync), which sequence "
                         "parallelism does not support; use learner.zero_stage 0-2 or learner.sequence_parallel=1")


def visual_rows_in(visual_pos_masks: torch.Tensor, start: int, end: int) -> torch.Tensor:
    """[n_visual] bool: which visual rows (row-major over the True entries of `visual_pos_masks` [B, T]) sit at
    positions [start, end)."""
    inside = torch.zeros_like(visual_pos_masks, dtype=torch.bool)
    inside[:, start:end] = True
    return inside[visual_pos_masks.bool()]


def slice_decoder_inputs(kwargs: dict[str, Any], start: int, end: int) -> dict[str, Any]:
    """Qwen3VLTextModel's keyword inputs for the full sequence -> those of positions [start, end)."""
    embeds = kwargs.get("inputs_embeds")
    if embeds is None:
        raise ValueError("ulysses_vl: the language model was called without inputs_embeds (Qwen3VLModel passes them)")
    b, t = embeds.shape[:2]
    if not 0 <= start < end <= t:
        raise ValueError(f"ulysses_vl: slice [{start}, {end}) outside the sequence of {t} positions")
    out = dict(kwargs, inputs_embeds=embeds[:, start:end], attention_mask=None)
    positions = kwargs.get("position_ids")
    if positions is None:  # no picture in the micro-batch: the decoder would count 0..L-1 on the slice
        positions = torch.arange(t, device=embeds.device).view(1, 1, -1).expand(3, b, -1)
    out["position_ids"] = positions[..., start:end]
    mask = kwargs.get("visual_pos_masks")
    if mask is not None:
        out["visual_pos_masks"] = mask[:, start:end]
        deepstack = kwargs.get("deepstack_visual_embeds")
        if deepstack is not None:
            keep = visual_rows_in(mask, start, end).to(deepstack[0].device)
            out["deepstack_visual_embeds"] = [features[keep] for features in deepstack]
    return out


@contextmanager
def decoder_slice(decoder: torch.nn.Module, start: int, end: int, group: Any, size: int) -> Iterator[None]:
    """While active, every call of `decoder` (the VLM's language model) runs on positions [start, end) with
    Ulysses attention over `group` (its kwargs reach each layer's attention, recomputation included)."""

    def hook(module: torch.nn.Module, args: tuple, kwargs: dict[str, Any]) -> tuple[tuple, dict[str, Any]]:
        if args:
            raise ValueError("ulysses_vl: the language model was called with positional inputs; Qwen3VLModel "
                             "passes keywords only")
        return args, dict(slice_decoder_inputs(kwargs, start, end), ulysses_group=group, ulysses_size=size)

    handle = decoder.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        yield
    finally:
        handle.remove()


def language_model_of(model: torch.nn.Module, where: str) -> torch.nn.Module:
    """The decoder the slice hook goes on (`model.model.language_model` of Qwen3VLForConditionalGeneration)."""
    decoder = getattr(getattr(model, "model", None), "language_model", None)
    if decoder is None:
        raise ValueError(f"{where}: {type(model).__name__} has no model.language_model to split")
    return decoder


def local_logits(engine: Any, decoder: torch.nn.Module, input_ids: torch.Tensor, model_inputs: dict[str, Any],
                 start: int, end: int, group: Any, size: int) -> torch.Tensor:
    """[B, end - start, V] logits of positions [start, end): the front end on the whole micro-batch (no
    attention mask: right padding keeps every real token's mRoPE position), the decoder on the slice."""
    with decoder_slice(decoder, start, end, group, size):
        return engine(input_ids=input_ids, **model_inputs).logits

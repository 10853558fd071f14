"""Learner-side inputs of a vision-language model: (prompt + images + sampled tokens) -> HF tensors.

A rollout returns the prompt ids as sent to vLLM (ONE placeholder per image, e.g.
`<|vision_start|><|image_pad|><|vision_end|>`), the image paths and the sampled completion ids.
`build_vl_inputs` rebuilds what the HF model needs through the model's own HF processor: its image
processor makes `pixel_values` / `image_grid_thw`, and its `replace_image_token` expands each
placeholder into the image's tokens, exactly as vLLM expands it (vLLM runs the same HF processor).
The completion ids are appended untouched, so the learner scores exactly the sampled tokens.

Videos work the same way: each video item (`rlsys.data.videos.video_items`; one video placeholder each) is
read by `load_video_item` into (frames, metadata), the processor's video processor makes
`pixel_values_videos` / `video_grid_thw` with `do_sample_frames=False` and that metadata, and
`replace_video_token` expands the placeholder (per temporal group: its timestamp text and its frame tokens),
as vLLM does from the same (frames, metadata) pair.

`load_image` and `load_video_item` are the one image / video decoders used by the rollout worker and the
learner, so both see the same pixels.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any


def load_image(path: str | Path) -> Any:
    """Read an image file as an RGB PIL image; a missing or unreadable file raises ValueError naming it."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except FileNotFoundError as exc:
        raise ValueError(f"image file {str(path)!r} does not exist") from exc
    except (UnidentifiedImageError, OSError) as exc:
        raise ValueError(f"image file {str(path)!r} is not a readable image: {exc}") from exc


def build_vl_inputs(
    processor: Any, prompt_ids: Sequence[int], images: Sequence[Any], completion_ids: Sequence[int] = (),
    videos: Sequence[Any] = (),
) -> dict[str, Any]:
    """HF model inputs (batch of one) for `prompt_ids` (one placeholder per image and per video item) +
    `completion_ids`; `videos` are video items or `load_video_item` pairs, in placeholder order.

    `images` are paths (read with `load_image`) or PIL images, in placeholder order. Returns
    `input_ids` / `attention_mask` (placeholders expanded), the image processor's outputs
    (`pixel_values`, `image_grid_thw` for Qwen-VL), `mm_token_type_ids` when the processor uses them
    (Qwen3-VL's M-RoPE does), and `completion_start`: the index of the first completion token.
    """
    inputs, _ = expand_vl_sequence(processor, prompt_ids, images, completion_ids, videos)
    return inputs


def video_features(processor: Any, videos: Sequence[Any]) -> dict[str, Any]:
    """The video processor's outputs for video items (or `load_video_item` pairs), with their metadata under
    `video_metadata` (used by `replace_video_token`; not a model input)."""
    from rlsys.data.videos import hf_video_metadata, load_video_item

    pairs = [load_video_item(v) if isinstance(v, dict) else v for v in videos]
    return dict(processor.video_processor(videos=[f for f, _ in pairs],
                                          video_metadata=[hf_video_metadata(m) for _, m in pairs],
                                          do_sample_frames=False, return_metadata=True, return_tensors="pt"))


def video_token_count(processor: Any, video: Any) -> int:
    """How many tokens one video placeholder becomes for `video` (an item or a `load_video_item` pair), as
    `expand_vl_sequence` (and vLLM) expand it: timestamps included."""
    expansion = processor.replace_video_token(video_features(processor, [video]), video_idx=0)
    return len(processor.tokenizer(expansion, add_special_tokens=False)["input_ids"])


def expand_vl_sequence(
    processor: Any, prompt_ids: Sequence[int], images: Sequence[Any], completion_ids: Sequence[int] = (),
    videos: Sequence[Any] = (),
) -> tuple[dict[str, Any], list[int]]:
    """`build_vl_inputs` plus `positions`: where each token of `prompt_ids + completion_ids` sits in
    the expanded `input_ids` (an image placeholder: the first of its expanded tokens). The learner
    maps per-token values (loss masks, old logprobs) into the expanded sequence and its logprobs
    back with it; only the first `len(images)` image and `len(videos)` video placeholders are expanded."""
    import torch

    pil = [load_image(im) if isinstance(im, (str, Path)) else im for im in images]
    image_id = getattr(processor, "image_token_id", None)
    placeholders = [i for i, t in enumerate(prompt_ids) if t == image_id] if image_id is not None else []
    if len(placeholders) != len(pil):
        raise ValueError(f"prompt has {len(placeholders)} image placeholders for {len(pil)} images")
    video_id = getattr(processor, "video_token_id", None) if videos else None
    n_video = sum(t == video_id for t in prompt_ids) if videos else 0
    if n_video != len(videos):
        raise ValueError(f"prompt has {n_video} video placeholders for {len(videos)} video items")
    features: dict[str, Any] = {}
    if pil:
        features = dict(processor.image_processor(images=pil, return_tensors="pt"))
    video = video_features(processor, videos) if videos else {}
    ids: list[int] = []
    positions: list[int] = []
    k = v = 0
    for token in prompt_ids:
        positions.append(len(ids))
        if k < len(pil) and token == image_id:
            expansion = processor.replace_image_token(features, image_idx=k)
            ids.extend(processor.tokenizer(expansion, add_special_tokens=False)["input_ids"])
            k += 1
        elif v < len(videos) and token == video_id:
            expansion = processor.replace_video_token(video, video_idx=v)
            ids.extend(processor.tokenizer(expansion, add_special_tokens=False)["input_ids"])
            v += 1
        else:
            ids.append(int(token))
    completion_start = len(ids)
    for token in completion_ids:
        positions.append(len(ids))
        ids.append(int(token))
    inputs: dict[str, Any] = {
        "input_ids": torch.tensor([ids], dtype=torch.long),
        "attention_mask": torch.ones(1, len(ids), dtype=torch.long),
    }
    if "mm_token_type_ids" in getattr(processor, "model_input_names", []):
        inputs["mm_token_type_ids"] = torch.tensor(processor.create_mm_token_type_ids([ids]), dtype=torch.long)
    inputs.update(features)
    video.pop("video_metadata", None)
    inputs.update(video)
    inputs["completion_start"] = completion_start
    return inputs, positions


def image_inputs(processor: Any, images: Sequence[Any]) -> dict[str, Any]:
    """The image processor's outputs for `images` (paths or PIL images, in order) and nothing else: no text,
    no placeholder expansion (e.g. `pixel_values` and `image_grid_thw` for Qwen-VL). For a pass through the
    vision tower alone, such as the contrastive objective's image embeddings."""
    if not images:
        raise ValueError("image_inputs: no images given")
    pil = [load_image(im) if isinstance(im, (str, Path)) else im for im in images]
    return dict(processor.image_processor(images=pil, return_tensors="pt"))


class ImageTokenCounter:
    """Image path -> the tokens its placeholder expands to under `processor` (`image_token_count`), each file
    counted once: the prompt-length checks and the learner's micro-batch budgets ask for the same images often."""

    def __init__(self, processor: Any) -> None:
        self.processor = processor
        self.counts: dict[str, int] = {}

    def __call__(self, path: str) -> int:
        if path not in self.counts:
            self.counts[path] = image_token_count(self.processor, path)
        return self.counts[path]


# Per-token tensors padded on the right when sequences are batched; the rest concatenate.
_SEQUENCE_KEYS = ("input_ids", "attention_mask", "mm_token_type_ids")


def collate_vl_inputs(items: list[dict[str, Any]], pad_token_id: int) -> dict[str, Any]:
    """Batch `build_vl_inputs` results: sequences right-padded (attention mask 0 on padding), image
    tensors (`pixel_values`, `pixel_values_videos`, grids) concatenated in order, whichever items hold them;
    `completion_start` becomes a list."""
    import torch

    width = max(item["input_ids"].shape[1] for item in items)
    batch: dict[str, Any] = {"completion_start": [item["completion_start"] for item in items]}
    for key in _SEQUENCE_KEYS:
        if key not in items[0]:
            continue
        fill = pad_token_id if key == "input_ids" else 0
        batch[key] = torch.cat([
            torch.nn.functional.pad(item[key], (0, width - item[key].shape[1]), value=fill) for item in items
        ])
    # Keys of every item, first seen first: a batch's first row may have images and no video, or neither.
    for key in dict.fromkeys(k for item in items for k in item):
        if key in batch or key in _SEQUENCE_KEYS:
            continue
        present = [item[key] for item in items if key in item]
        batch[key] = torch.cat(present) if present else None
    return batch


def completion_logprobs(model: Any, inputs: dict[str, Any], num_tokens: list[int] | int) -> list[Any]:
    """Logprob (float32, full-vocab softmax) of each completion token under `model`, per sequence.

    `inputs` come from `build_vl_inputs` or `collate_vl_inputs`; `num_tokens` is each sequence's
    completion length (its tokens start at `completion_start`). Runs with whatever grad mode the
    caller has set (training keeps the graph).
    """
    forward = {k: v for k, v in inputs.items() if k != "completion_start" and v is not None}
    logits = model(**forward).logits.float()
    starts = inputs["completion_start"]
    starts = [starts] if isinstance(starts, int) else list(starts)
    counts = [num_tokens] * len(starts) if isinstance(num_tokens, int) else list(num_tokens)
    out = []
    for row, (start, count) in enumerate(zip(starts, counts)):
        targets = inputs["input_ids"][row, start : start + count]
        logp = logits[row, start - 1 : start - 1 + count].log_softmax(-1)
        out.append(logp.gather(-1, targets[:, None])[:, 0])
    return out


def image_token_count(processor: Any, image: str | Path | Any) -> int:
    """How many tokens one image placeholder becomes for `image` (a path or PIL image): the length of the
    processor's `replace_image_token` expansion, as `expand_vl_sequence` (and vLLM) build it. A prompt of
    n tokens with placeholders for images i is n - len(images) + sum of their counts tokens long."""
    pil = load_image(image) if isinstance(image, (str, Path)) else image
    features = dict(processor.image_processor(images=[pil], return_tensors="pt"))
    expansion = processor.replace_image_token(features, image_idx=0)
    return len(processor.tokenizer(expansion, add_special_tokens=False)["input_ids"])

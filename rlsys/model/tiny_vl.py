"""A tiny vision-language model of the Qwen3-VL architecture, made locally from a text LM.

`build_tiny_vl` takes a Qwen3 causal-LM directory (the embedded tiny model, or any Qwen3) and
writes one HF directory holding a `Qwen3VLForConditionalGeneration`:

- the language model's weights carried over exactly (Qwen3's decoder is Qwen3-VL's text model:
  `model.*` -> `model.language_model.*`, `lm_head` unchanged); text-only prompts give the LM's
  logits (Qwen3-VL's interleaved M-RoPE equals plain RoPE when the three position axes agree,
  as they do on text);
- a randomly initialised (seeded) ViT with patch merger and deepstack mergers, whose output width
  is the LM's hidden size;
- the tokenizer extended with the vision special tokens (embedding and output rows of the new
  tokens start at the mean of the old rows) and a chat template that renders image/video parts;
- a `Qwen3VLProcessor` (image + video processor, same normalisation) saved beside it.

The result is an ordinary HF VLM directory: transformers (`AutoModelForImageTextToText`) and
vLLM load it by path, exactly like a downloaded Qwen3-VL; nothing downstream knows it is tiny.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

VISION_START = "<|vision_start|>"
VISION_END = "<|vision_end|>"
IMAGE_PAD = "<|image_pad|>"
VIDEO_PAD = "<|video_pad|>"
VISION_TOKENS = [VISION_START, VISION_END, IMAGE_PAD, VIDEO_PAD]

# Qwen-style ChatML as in rlsys.model.tiny (string contents render identically), plus content parts:
# an image part is one <|image_pad|> between vision markers, which the processor (HF) or vLLM
# expands to the image's token count; a video part likewise (Qwen3-VL's own layout).
VL_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' or 'image' in part %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif part['type'] == 'video' or 'video' in part %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}"
    "{% endif %}{% endfor %}{% endif %}"
    "<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# Qwen3-VL normalises pixels to [-1, 1]; image and video processors must agree (vLLM normalises
# inside the model with the image processor's values).
PIXEL_MEAN = [0.5, 0.5, 0.5]
PIXEL_STD = [0.5, 0.5, 0.5]


@dataclass(frozen=True)
class TinyVLSpec:
    """Shape of the vision tower and processor added to the language model."""

    depth: int = 2  # vision transformer blocks
    hidden_size: int = 64  # vision transformer width
    num_heads: int = 2  # vision attention heads (hidden_size / num_heads >= 32: vLLM CPU attention)
    intermediate_size: int = 128  # vision MLP width
    patch_size: int = 16  # side of one square pixel patch
    temporal_patch_size: int = 2  # frames per patch (an image is repeated to fill it)
    spatial_merge_size: int = 2  # the merger folds merge x merge patches into one LM token
    out_hidden_size: int | None = None  # merger output width: the LM's hidden size (None = take it)
    num_position_embeddings: int = 256  # learned position grid, a square (16 x 16), resampled per image
    deepstack_layers: tuple[int, ...] = (1,)  # vision blocks whose features are added to the first LM layers
    mrope_section: tuple[int, int, int] | None = None  # RoPE pairs per (t, h, w) axis, summing to head_dim/2
    min_pixels: int = 32 * 32  # images are resized to at least this many pixels
    max_pixels: int = 256 * 256  # and at most this many (256 x 256 -> 64 LM tokens)
    video_max_pixels: int = 8 * 128 * 128  # a video's pixel budget over all its frames


def default_mrope_section(head_dim: int) -> list[int]:
    """Qwen3-VL's (t, h, w) split of the rotary pairs (24:20:20 at head_dim 128), scaled."""
    half = head_dim // 2
    hw = half * 20 // 64
    return [half - 2 * hw, hw, hw]


def _lm_text_config(lm_config: Any, vocab_size: int, spec: TinyVLSpec) -> dict[str, Any]:
    if lm_config.model_type != "qwen3":
        raise ValueError(f"build_tiny_vl: the language model must be a Qwen3 causal LM, got model_type "
                         f"{lm_config.model_type!r} (its decoder is what Qwen3-VL's text model is)")
    if getattr(lm_config, "use_sliding_window", False):
        raise ValueError("build_tiny_vl: sliding-window Qwen3 models have no Qwen3-VL counterpart")
    head_dim = lm_config.head_dim or lm_config.hidden_size // lm_config.num_attention_heads
    rope = dict(lm_config.rope_parameters or {})
    if rope.get("rope_type", "default") != "default":
        raise ValueError(f"build_tiny_vl: rope type {rope.get('rope_type')!r} is not supported (default only)")
    mrope = list(spec.mrope_section) if spec.mrope_section else default_mrope_section(head_dim)
    if sum(mrope) != head_dim // 2:
        raise ValueError(f"mrope_section {mrope} must sum to head_dim/2 = {head_dim // 2}")
    return {
        "vocab_size": vocab_size,
        "hidden_size": lm_config.hidden_size,
        "intermediate_size": lm_config.intermediate_size,
        "num_hidden_layers": lm_config.num_hidden_layers,
        "num_attention_heads": lm_config.num_attention_heads,
        "num_key_value_heads": lm_config.num_key_value_heads,
        "head_dim": head_dim,
        "hidden_act": lm_config.hidden_act,
        "max_position_embeddings": lm_config.max_position_embeddings,
        "rms_norm_eps": lm_config.rms_norm_eps,
        "attention_bias": lm_config.attention_bias,
        "rope_parameters": {
            "rope_type": "default",
            "rope_theta": rope["rope_theta"],
            "mrope_section": mrope,
            "mrope_interleaved": True,
        },
        "pad_token_id": lm_config.pad_token_id,
        "dtype": "float32",
    }


def _vision_config(spec: TinyVLSpec, lm_hidden: int) -> dict[str, Any]:
    if spec.out_hidden_size not in (None, lm_hidden):
        raise ValueError(f"out_hidden_size {spec.out_hidden_size} must equal the LM's hidden size {lm_hidden}")
    if spec.hidden_size % spec.num_heads:
        raise ValueError(f"vision hidden_size {spec.hidden_size} is not divisible by num_heads {spec.num_heads}")
    side = round(spec.num_position_embeddings ** 0.5)
    if side * side != spec.num_position_embeddings:
        raise ValueError(f"num_position_embeddings {spec.num_position_embeddings} must be a square")
    if any(not 0 <= i < spec.depth for i in spec.deepstack_layers):
        raise ValueError(f"deepstack_layers {spec.deepstack_layers} must index vision blocks [0, {spec.depth})")
    return {
        "depth": spec.depth,
        "hidden_size": spec.hidden_size,
        "num_heads": spec.num_heads,
        "intermediate_size": spec.intermediate_size,
        "patch_size": spec.patch_size,
        "temporal_patch_size": spec.temporal_patch_size,
        "spatial_merge_size": spec.spatial_merge_size,
        "out_hidden_size": lm_hidden,
        "num_position_embeddings": spec.num_position_embeddings,
        "deepstack_visual_indexes": list(spec.deepstack_layers),
    }


def extend_tokenizer(tokenizer: Any) -> list[int]:
    """Add the vision special tokens (those missing) and the VL chat template; returns their ids."""
    from tokenizers import AddedToken

    missing = [t for t in VISION_TOKENS if t not in tokenizer.get_vocab()]
    tokenizer.add_tokens([AddedToken(t, special=True, normalized=False) for t in missing], special_tokens=True)
    tokenizer.chat_template = VL_CHAT_TEMPLATE
    return tokenizer.convert_tokens_to_ids(VISION_TOKENS)


def make_processor(tokenizer: Any, spec: TinyVLSpec) -> Any:
    """A Qwen3VLProcessor (image + video processors sized by `spec`) around `tokenizer`."""
    from transformers import Qwen2VLImageProcessor, Qwen3VLProcessor, Qwen3VLVideoProcessor

    shared = {
        "patch_size": spec.patch_size,
        "temporal_patch_size": spec.temporal_patch_size,
        "merge_size": spec.spatial_merge_size,
        "image_mean": PIXEL_MEAN,
        "image_std": PIXEL_STD,
    }
    image = Qwen2VLImageProcessor(size={"shortest_edge": spec.min_pixels, "longest_edge": spec.max_pixels},
                                  **shared)
    video = Qwen3VLVideoProcessor(size={"shortest_edge": spec.min_pixels, "longest_edge": spec.video_max_pixels},
                                  **shared)
    return Qwen3VLProcessor(image_processor=image, tokenizer=tokenizer, video_processor=video,
                            chat_template=VL_CHAT_TEMPLATE)


# Parameters with one row per vocabulary entry (grown for the added tokens).
VOCAB_ROWS = ("model.language_model.embed_tokens.weight", "lm_head.weight")


def lm_to_vl_name(name: str) -> str:
    """A Qwen3ForCausalLM parameter name -> the Qwen3VLForConditionalGeneration name it becomes."""
    if name.startswith("model."):
        return "model.language_model." + name[len("model."):]
    if name == "lm_head.weight":
        return name
    raise KeyError(f"unexpected language-model parameter {name!r}")


def build_tiny_vl(lm_dir: str, out_dir: str, spec: TinyVLSpec | None = None, seed: int = 0) -> str:
    """Write a Qwen3-VL directory at `out_dir`: the LM of `lm_dir` + a seeded vision tower + processor."""
    import torch
    from transformers import (
        AutoConfig,
        AutoModelForCausalLM,
        AutoTokenizer,
        GenerationConfig,
        Qwen3VLConfig,
        Qwen3VLForConditionalGeneration,
    )

    spec = spec or TinyVLSpec()
    out = Path(out_dir)
    lm_config = AutoConfig.from_pretrained(lm_dir)
    tokenizer = AutoTokenizer.from_pretrained(lm_dir)
    old_vocab = lm_config.vocab_size
    if len(tokenizer) > old_vocab:
        raise ValueError(f"{lm_dir}: tokenizer has {len(tokenizer)} tokens but the model only {old_vocab} rows")
    known = len(tokenizer)
    start_id, end_id, image_id, video_id = extend_tokenizer(tokenizer)
    added = [i for i in (start_id, end_id, image_id, video_id) if i >= known]
    vocab = max(old_vocab, len(tokenizer))

    config = Qwen3VLConfig(
        text_config=_lm_text_config(lm_config, vocab, spec),
        vision_config=_vision_config(spec, lm_config.hidden_size),
        image_token_id=image_id,
        video_token_id=video_id,
        vision_start_token_id=start_id,
        vision_end_token_id=end_id,
        tie_word_embeddings=bool(lm_config.tie_word_embeddings),
        eos_token_id=lm_config.eos_token_id,
        pad_token_id=lm_config.pad_token_id,
    )
    lm = AutoModelForCausalLM.from_pretrained(lm_dir, dtype=torch.float32)
    lm_state = lm.state_dict()
    rng_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        model = Qwen3VLForConditionalGeneration(config).to(torch.float32)
    finally:
        torch.random.set_rng_state(rng_state)

    state = model.state_dict()
    text_names = {n for n in state if n.startswith("model.language_model.") or n == "lm_head.weight"}
    mapped = {lm_to_vl_name(n): t for n, t in lm_state.items()}
    if config.tie_word_embeddings:
        mapped.pop("lm_head.weight", None)
        text_names.discard("lm_head.weight")
    if set(mapped) != text_names:
        raise ValueError(f"LM -> VL name mapping mismatch: LM only {sorted(set(mapped) - text_names)[:5]}, "
                         f"VL only {sorted(text_names - set(mapped))[:5]}")
    new_state = {}
    for name, tensor in mapped.items():
        target = state[name]
        if name in VOCAB_ROWS:
            # Embedding / output head: the LM's rows verbatim; each added token's row starts at the
            # mean row of the tokens the tokenizer had (also when it lands in padding rows).
            grown = target.new_zeros(target.shape)
            grown[:old_vocab] = tensor
            grown[added] = tensor[:known].mean(0)
            new_state[name] = grown
        elif tensor.shape == target.shape:
            new_state[name] = tensor.clone()
        else:
            raise ValueError(f"{name}: LM shape {tuple(tensor.shape)} vs VL shape {tuple(target.shape)}")
    missing, unexpected = model.load_state_dict(new_state, strict=False)
    if unexpected or any(n in text_names for n in missing):
        raise ValueError(f"loading the LM weights: unexpected {unexpected}, missing {missing}")

    generation = GenerationConfig.from_pretrained(lm_dir) if (Path(lm_dir) / "generation_config.json").exists() \
        else GenerationConfig(eos_token_id=lm_config.eos_token_id, pad_token_id=lm_config.pad_token_id)
    model.generation_config = generation
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    processor = make_processor(tokenizer, spec)
    processor.save_pretrained(out)
    tokenizer.save_pretrained(out)
    # Provenance only (nothing reads it back).
    record = {"lm_dir": str(lm_dir), "seed": seed, "spec": asdict(spec)}
    (out / "tiny_vl.json").write_text(json.dumps(record, indent=2) + "\n")
    return str(out)

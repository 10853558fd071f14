"""The tiny Qwen3-VL made from the tiny Qwen3: builder, processor, learner inputs, and (slow) vLLM
rollouts with images whose logprobs equal the HF model's before and after an in-place reload."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch

from rlsys.jobs.smoke import draw_shapes
from rlsys.model.tiny_vl import VISION_TOKENS, TinyVLSpec, build_tiny_vl, lm_to_vl_name

PROMPT_ROW = {"id": "shapes-1", "prompt": "How many shapes are in the picture?"}


@pytest.fixture(scope="module")
def tiny_vl_dir(tiny_model_dir, tmp_path_factory) -> str:
    return build_tiny_vl(tiny_model_dir, str(tmp_path_factory.mktemp("tiny-vl") / "model"), TinyVLSpec(), seed=0)


@pytest.fixture(scope="module")
def shapes_png(tmp_path_factory) -> str:
    return draw_shapes(tmp_path_factory.mktemp("images") / "shapes.png")


def _tensors(model_dir: str) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(Path(model_dir) / "model.safetensors"))


def test_config_tokenizer_and_processor(tiny_model_dir, tiny_vl_dir, shapes_png):
    from PIL import Image
    from transformers import AutoConfig, AutoProcessor, AutoTokenizer

    lm_config, config = AutoConfig.from_pretrained(tiny_model_dir), AutoConfig.from_pretrained(tiny_vl_dir)
    assert config.model_type == "qwen3_vl" and config.architectures == ["Qwen3VLForConditionalGeneration"]
    text, vision = config.text_config, config.vision_config
    for key in ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
                "head_dim", "rms_norm_eps", "max_position_embeddings"):
        assert getattr(text, key) == getattr(lm_config, key), key
    assert sum(text.rope_parameters["mrope_section"]) == text.head_dim // 2
    assert vision.out_hidden_size == lm_config.hidden_size and vision.patch_size == 16 and vision.spatial_merge_size == 2

    tok = AutoTokenizer.from_pretrained(tiny_vl_dir)
    lm_tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    ids = tok.convert_tokens_to_ids(VISION_TOKENS)
    assert ids == [config.vision_start_token_id, config.vision_end_token_id, config.image_token_id, config.video_token_id]
    assert ids == list(range(len(lm_tok), len(lm_tok) + 4)) and text.vocab_size == len(tok)
    assert all(tok(t, add_special_tokens=False)["input_ids"] == [i] for t, i in zip(VISION_TOKENS, ids))
    # String contents render exactly as the LM's template; image / video parts as Qwen-VL's.
    chat = [{"role": "user", "content": "What is 3 + 4?"}]
    assert tok.apply_chat_template(chat, tokenize=False, add_generation_prompt=True) == \
        lm_tok.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
    parts = [{"role": "user", "content": [{"type": "image"}, {"type": "video"}, {"type": "text", "text": "hi"}]}]
    assert tok.apply_chat_template(parts, tokenize=False) == (
        "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|><|vision_start|><|video_pad|><|vision_end|>hi"
        "<|im_end|>\n")

    processor = AutoProcessor.from_pretrained(tiny_vl_dir)
    assert type(processor).__name__ == "Qwen3VLProcessor" and processor.video_processor is not None
    assert processor.image_processor.image_mean == processor.video_processor.image_mean
    assert processor.image_processor.image_std == processor.video_processor.image_std
    text_in = processor.apply_chat_template([{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "?"}]}],
                                            tokenize=False, add_generation_prompt=True)
    enc = processor(text=[text_in], images=[Image.open(shapes_png)], return_tensors="pt")
    # 120 x 90 -> resized to 128 x 96 (multiples of patch 16 x merge 2) -> 8 x 6 patches -> 12 tokens.
    assert enc["image_grid_thw"].tolist() == [[1, 6, 8]]
    assert tuple(enc["pixel_values"].shape) == (48, 3 * 2 * 16 * 16)
    assert (enc["input_ids"][0] == config.image_token_id).sum().item() == 12
    assert (enc["mm_token_type_ids"][0] == 1).sum().item() == 12


def test_lm_weights_carried_over_exactly(tiny_model_dir, tiny_vl_dir):
    from transformers import AutoModelForCausalLM, AutoModelForImageTextToText, AutoTokenizer

    lm_state, vl_state = _tensors(tiny_model_dir), _tensors(tiny_vl_dir)
    vocab = AutoTokenizer.from_pretrained(tiny_model_dir).__len__()
    for name, tensor in lm_state.items():
        mapped = vl_state[lm_to_vl_name(name)]
        if mapped.shape == tensor.shape:
            assert torch.equal(mapped, tensor), name
        else:  # vocabulary rows: old rows verbatim, the four new ones the mean row
            assert torch.equal(mapped[:vocab], tensor), name
            assert torch.allclose(mapped[vocab:], tensor.mean(0, keepdim=True).expand(4, -1)), name
    text_names = {lm_to_vl_name(n) for n in lm_state}
    assert {n for n in vl_state if n not in text_names} == {n for n in vl_state if n.startswith("model.visual.")}

    lm = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    vl = AutoModelForImageTextToText.from_pretrained(tiny_vl_dir, dtype=torch.float32).eval()
    ids = torch.tensor([AutoTokenizer.from_pretrained(tiny_model_dir)("What is 12 + 9? The answer is 21.")["input_ids"]])
    with torch.no_grad():
        expected, got = lm(ids).logits, vl(input_ids=ids).logits
    assert got.shape[-1] == expected.shape[-1] + 4
    assert torch.equal(got[..., : expected.shape[-1]], expected)


def test_vision_tower_is_seeded(tiny_model_dir, tiny_vl_dir, tmp_path):
    def digest(t: torch.Tensor) -> str:
        return hashlib.sha256(t.numpy().tobytes()).hexdigest()

    same = _tensors(build_tiny_vl(tiny_model_dir, str(tmp_path / "same"), TinyVLSpec(), seed=0))
    other = _tensors(build_tiny_vl(tiny_model_dir, str(tmp_path / "other"), TinyVLSpec(), seed=1))
    base = _tensors(tiny_vl_dir)
    assert {n: digest(t) for n, t in same.items()} == {n: digest(t) for n, t in base.items()}
    visual = [n for n in base if n.startswith("model.visual.") and n.endswith("weight") and "norm" not in n]
    assert visual and all(not torch.equal(base[n], other[n]) for n in visual)
    assert all(torch.equal(base[n], other[n]) for n in base if not n.startswith("model.visual."))


def test_spec_errors(tiny_model_dir, tmp_path):
    with pytest.raises(ValueError, match="mrope_section"):
        build_tiny_vl(tiny_model_dir, str(tmp_path / "a"), TinyVLSpec(mrope_section=(8, 8, 8)))
    with pytest.raises(ValueError, match="out_hidden_size"):
        build_tiny_vl(tiny_model_dir, str(tmp_path / "b"), TinyVLSpec(out_hidden_size=999))


def test_prompt_encoding_and_learner_inputs_match_the_processor(tiny_vl_dir, shapes_png):
    from PIL import Image
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from rlsys.data.encode import encode_vl_prompt
    from rlsys.learner.vl_inputs import build_vl_inputs, collate_vl_inputs, completion_logprobs

    processor = AutoProcessor.from_pretrained(tiny_vl_dir)
    image_id = processor.image_token_id
    row = {**PROMPT_ROW, "images": [shapes_png, shapes_png]}
    ids = encode_vl_prompt(processor, row, hint="count them")
    assert ids.count(image_id) == 2  # one placeholder per image: vLLM expands it
    assert encode_vl_prompt(processor.tokenizer, row, hint="count them") == ids
    with pytest.raises(ValueError, match="2 image placeholders for 1 images"):
        encode_vl_prompt(processor, {"messages": [{"role": "user", "content": [{"type": "image"}] * 2}],
                                     "images": [shapes_png]})

    completion = [40, 41, 42, 2]
    inputs = build_vl_inputs(processor, ids, row["images"], completion)
    text = processor.tokenizer.decode(ids, skip_special_tokens=False)
    reference = processor(text=[text], images=[Image.open(shapes_png)] * 2, return_tensors="pt")
    n_prompt = reference["input_ids"].shape[1]
    assert inputs["completion_start"] == n_prompt
    assert inputs["input_ids"][0].tolist() == reference["input_ids"][0].tolist() + completion
    for key in ("pixel_values", "image_grid_thw"):
        assert torch.equal(inputs[key], reference[key]), key
    assert inputs["mm_token_type_ids"][0, :n_prompt].tolist() == reference["mm_token_type_ids"][0].tolist()

    # A batch (right-padded, two prompts with different image counts) scores like one at a time.
    one_prompt = encode_vl_prompt(processor, {**PROMPT_ROW, "images": [shapes_png]})
    one = build_vl_inputs(processor, one_prompt, [shapes_png], completion[:2])
    model = AutoModelForImageTextToText.from_pretrained(tiny_vl_dir, dtype=torch.float32).eval()
    with torch.no_grad():
        batched = completion_logprobs(model, collate_vl_inputs([inputs, one], processor.tokenizer.pad_token_id), [4, 2])
        single = [completion_logprobs(model, inputs, 4)[0], completion_logprobs(model, one, 2)[0]]
    for a, b in zip(batched, single):
        assert torch.allclose(a, b, atol=1e-5)
    with pytest.raises(ValueError, match="1 image placeholders for 2 images"):
        build_vl_inputs(processor, one_prompt, [shapes_png] * 2)


def test_unreadable_images_name_the_file(tmp_path):
    from rlsys.learner.vl_inputs import load_image

    with pytest.raises(ValueError, match="missing.png.*does not exist"):
        load_image(tmp_path / "missing.png")
    (tmp_path / "junk.png").write_bytes(b"not an image")
    with pytest.raises(ValueError, match="junk.png.*not a readable image"):
        load_image(tmp_path / "junk.png")


@pytest.mark.slow
def test_vllm_rollout_with_an_image_matches_hf_before_and_after_an_inplace_reload(
    ray_session, tiny_vl_dir, shapes_png, tmp_path
):
    """Sampled tokens' logprobs equal the HF model's (1e-4); after perturbing a vision-tower and an
    LM weight and reloading in place, the same image gives new logprobs that equal HF's again
    (the encoder cache was reset: a stale one fails with "Encoder cache miss")."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from rlsys.data.encode import encode_vl_prompt
    from rlsys.learner.vl_inputs import build_vl_inputs, collate_vl_inputs, completion_logprobs
    from rlsys.rollout.types import GroupRequest
    from rlsys.rollout.weight_sync import publish_version
    from rlsys.rollout.worker import IN_PROCESS_ENV, RolloutWorker
    from rlsys.runtime.ray_utils import ActorGroup, ActorResources, get

    processor = AutoProcessor.from_pretrained(tiny_vl_dir)
    model = AutoModelForImageTextToText.from_pretrained(tiny_vl_dir, dtype=torch.float32).eval()
    row = {**PROMPT_ROW, "images": [shapes_png]}
    prompt = encode_vl_prompt(processor, row)
    request = GroupRequest("shapes", prompt_token_ids=prompt, n=4, max_tokens=16, seed=3, images=row["images"])

    def hf_max_diff(result) -> float:
        assert result.ok, result.error
        assert result.prompt_token_ids == prompt and result.images == row["images"]
        items = [build_vl_inputs(processor, result.prompt_token_ids, result.images, s.token_ids) for s in result.samples]
        with torch.no_grad():
            logps = completion_logprobs(model, collate_vl_inputs(items, processor.tokenizer.pad_token_id),
                                        [len(s.token_ids) for s in result.samples])
        return max((torch.tensor(s.logprobs) - lp).abs().max().item() for s, lp in zip(result.samples, logps))

    group = ActorGroup(
        RolloutWorker, 1, name="vl-roundtrip", resources=ActorResources(num_cpus=0.5, env_vars=IN_PROCESS_ENV),
        init_kwargs={"model_path": tiny_vl_dir, "max_model_len": 256, "kv_cache_bytes": 64 << 20}, timeout=300,
    )
    try:
        actor = group.actors[0]
        stats = get(actor.stats.remote(), timeout=60, what="stats")
        bad_count = GroupRequest("bad-count", prompt_token_ids=prompt, images=[shapes_png] * 2)
        missing = GroupRequest("missing", prompt_token_ids=prompt, images=[str(tmp_path / "nope.png")])
        big = draw_shapes(tmp_path / "big.png", (256, 256))  # 64 tokens each: 4 overflow max_model_len 256
        too_long = GroupRequest("too-long", prompt_token_ids=encode_vl_prompt(processor, {**PROMPT_ROW, "images": [big] * 4}),
                                images=[big] * 4)
        first, err_count, err_missing, err_long = get(
            actor.generate_groups.remote([request, bad_count, missing, too_long]), timeout=300, what="generate")
        assert "1 image placeholders for 2 images" in err_count.error
        assert "nope.png" in err_missing.error and "does not exist" in err_missing.error
        assert "with its images expanded" in err_long.error and "max_model_len" in err_long.error
        before = hf_max_diff(first)
        assert before < 1e-4, before

        with torch.no_grad():
            model.model.visual.blocks[0].mlp.linear_fc1.weight.mul_(3.0)
            model.model.language_model.layers[0].mlp.up_proj.weight.mul_(3.0)
        published = publish_version(model.state_dict().items(), 1 << 20, version=1)
        get(actor.sync_from_object_store.remote(published.refs, 1), timeout=120, what="sync")
        second = get(actor.generate_group.remote(request), timeout=300, what="generate")
        assert second.policy_version == 1
        changed = max(abs(a - b) for s1, s2 in zip(first.samples, second.samples)
                      for a, b in zip(s1.logprobs, s2.logprobs))
        assert changed > 1e-3, changed
        after = hf_max_diff(second)
        assert after < 1e-4, after
        print(f"engine start {stats['startup_s']:.1f} s; max |logprob diff| before {before:.2e}, after {after:.2e}")
    finally:
        group.shutdown()

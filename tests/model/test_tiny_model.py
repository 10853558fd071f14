"""The embedded model: deterministic build; HF and vLLM load the same directory and agree."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch

from rlsys.model.tiny import build_tiny_model


def _digest(path: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(path.iterdir()) if p.is_file()}


def test_build_is_deterministic_by_seed(tmp_path):
    from rlsys_testing import TinyArch, tiny_texts

    a = build_tiny_model(tmp_path / "a", TinyArch, tiny_texts(), seed=3)
    b = build_tiny_model(tmp_path / "b", TinyArch, tiny_texts(), seed=3)
    c = build_tiny_model(tmp_path / "c", TinyArch, tiny_texts(), seed=4)
    assert _digest(a) == _digest(b)
    assert _digest(a)["model.safetensors"] != _digest(c)["model.safetensors"]
    assert _digest(a)["tokenizer.json"] == _digest(c)["tokenizer.json"]


def test_tokenizer_digits_and_chat_template(tiny_model_dir):
    from transformers import AutoConfig, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    pieces = tok.tokenize("What is 347 + 28?")
    digits = [p.replace("Ġ", "") for p in pieces if any(ch.isdigit() for ch in p)]
    assert digits == ["3", "4", "7", "2", "8"], pieces
    text = tok.apply_chat_template([{"role": "user", "content": "hi"}], add_generation_prompt=True, tokenize=False)
    assert text == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    config = AutoConfig.from_pretrained(tiny_model_dir)
    assert config.model_type == "qwen3" and config.tie_word_embeddings is False
    assert config.eos_token_id == tok.convert_tokens_to_ids("<|im_end|>")


@pytest.mark.slow
def test_hf_and_vllm_agree_on_greedy_tokens_and_logprobs(ray_session, tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rlsys.rollout.types import GroupRequest
    from rlsys.rollout.worker import IN_PROCESS_ENV, RolloutWorker
    from rlsys.runtime.ray_utils import ActorGroup, ActorResources, get

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    hf = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    prompt = tok("What is 3 + 4?", add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        expected = hf.generate(
            torch.tensor([prompt]), max_new_tokens=12, do_sample=False, eos_token_id=None,
            pad_token_id=tok.pad_token_id,
        )[0, len(prompt):].tolist()

    group = ActorGroup(
        RolloutWorker, 1, name="roundtrip", resources=ActorResources(num_cpus=0.5, env_vars=IN_PROCESS_ENV),
        init_kwargs={"model_path": tiny_model_dir, "max_model_len": 256, "kv_cache_bytes": 64 << 20}, timeout=300,
    )
    try:
        request = GroupRequest("g", prompt_token_ids=prompt, n=1, temperature=0.0, max_tokens=12)
        result = get(group.actors[0].generate_group.remote(request), timeout=300, what="generate")
    finally:
        group.shutdown()
    sample = result.samples[0]
    assert sample.token_ids == expected[: len(sample.token_ids)]
    with torch.no_grad():
        ids = torch.tensor([prompt + sample.token_ids])
        logp = hf(ids).logits.log_softmax(-1)[0, len(prompt) - 1 : -1].gather(-1, ids[0, len(prompt):, None])[:, 0]
    assert torch.allclose(torch.tensor(sample.logprobs), logp, atol=1e-4)

"""The scalar reward-model reward against a tiny randomly initialised Qwen3ForSequenceClassification."""

import math
from pathlib import Path

import pytest

from rewards.reward_model import RewardModelReward
from rlsys.reward.plugins import RewardConfigError, load_reward_fns

TEXTS = [
    "What is 12 plus 30? The answer is 42.",
    "Write a short poem about the sea, all in lowercase.",
    "Tom has 3 apples and buys 4 more. How many apples does he have now? He has 7.",
    "List three facts about the number 47. It is prime. It comes after 46.",
    "<think>add the tens then the ones</think> \\boxed{42}",
] * 20

PROMPTS = ["What is 12 plus 30?", "Write a poem about the sea.", "How many apples?", "Facts about 47?"]
COMPLETIONS = [
    "<think>12 + 30 = 42</think> The answer is \\boxed{42}.",
    "the sea is wide\nthe sea is deep",
    "He has 7 apples.",
    "47 is prime. It comes after 46 and before 48. " * 3,
]


def build_tiny_reward_model(out_dir: Path, seed: int = 0) -> Path:
    """A random scalar reward model saved the way `+exp=rm` saves one: weights, tokenizer, chat template."""
    import torch
    from transformers import Qwen3Config, Qwen3ForSequenceClassification

    from rlsys.model.tiny import train_tokenizer

    tokenizer = train_tokenizer(TEXTS, vocab_size=300, max_length=256)
    config = Qwen3Config(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=1, head_dim=16, max_position_embeddings=256,
        num_labels=1, pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    model = Qwen3ForSequenceClassification(config)
    # The default init leaves the score head near zero; a larger head makes differences between inputs
    # visible far above float noise.
    torch.nn.init.normal_(model.score.weight, std=1.0)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir


@pytest.fixture(scope="module")
def rm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_reward_model(tmp_path_factory.mktemp("tiny_rm"))


def test_scores_are_deterministic_and_batched_equals_one_by_one(rm_dir: Path) -> None:
    reward = RewardModelReward(str(rm_dir), batch_size=3)
    batched = reward.score_batch(PROMPTS, COMPLETIONS, [{} for _ in PROMPTS])
    single = [reward(p, c, answer="x") for p, c in zip(PROMPTS, COMPLETIONS)]
    again = RewardModelReward(str(rm_dir), batch_size=16).score_batch(PROMPTS, COMPLETIONS, [{}] * 4)
    raw = [r["raw_score"] for r in batched]
    assert raw == pytest.approx([r["raw_score"] for r in single], rel=1e-5, abs=1e-5)
    assert raw == pytest.approx([r["raw_score"] for r in again], rel=1e-5, abs=1e-5)
    assert all(r["score"] == r["raw_score"] for r in batched)
    assert all(math.isfinite(x) for x in raw)
    # A real model, not a constant: different inputs get clearly different scores.
    assert max(raw) - min(raw) > 1e-3


def test_sigmoid_squash_and_raw_score_extra(rm_dir: Path) -> None:
    plain = RewardModelReward(str(rm_dir))(PROMPTS[0], COMPLETIONS[0])
    squashed = RewardModelReward(str(rm_dir), sigmoid=True, temperature=2.0)(PROMPTS[0], COMPLETIONS[0])
    assert squashed["raw_score"] == pytest.approx(plain["raw_score"], abs=1e-6)
    assert squashed["score"] == pytest.approx(1 / (1 + math.exp(-plain["raw_score"] / 2.0)))
    assert 0.0 < squashed["score"] < 1.0


def test_chat_template_rendering_and_left_truncation(rm_dir: Path) -> None:
    reward = RewardModelReward(str(rm_dir), max_length=24)
    text = reward.render("What is 2 plus 2?", "It is 4.")
    assert text.startswith("<|im_start|>user\nWhat is 2 plus 2?<|im_end|>\n<|im_start|>assistant\nIt is 4.")
    # Only the last 24 tokens are read, so completions that differ only far from the end score the same.
    tail = " 47 is prime. It comes after 46 and before 48." * 4
    a, b = reward.score_batch(["q", "q"], ["Tom has 3 apples." + tail, "the sea is wide." + tail], [{}, {}])
    assert a["raw_score"] == pytest.approx(b["raw_score"], abs=1e-6)
    full = RewardModelReward(str(rm_dir))
    c, d = full.score_batch(["q", "q"], ["Tom has 3 apples." + tail, "the sea is wide." + tail], [{}, {}])
    assert c["raw_score"] != pytest.approx(d["raw_score"], abs=1e-6)


def test_config_entry_validates_without_loading_the_model(rm_dir: Path, tmp_path: Path) -> None:
    specs = load_reward_fns([{"_target_": "reward_model", "kwargs": {"model_path": str(rm_dir), "sigmoid": True}}])
    assert [(s.name, s.style, s.is_class) for s in specs] == [("reward_model", "rows", True)]
    with pytest.raises(RewardConfigError, match=r"reward\.fns\[0\] \('reward_model'\): model_path .*no config\.json"):
        load_reward_fns([{"_target_": "reward_model", "kwargs": {"model_path": str(tmp_path / "missing")}}])
    with pytest.raises(RewardConfigError, match=r"reward\.fns\[0\] .*dtype must be one of"):
        load_reward_fns([{"_target_": "reward_model", "kwargs": {"model_path": str(rm_dir), "dtype": "int8"}}])


def test_pickled_copy_carries_settings_not_weights(rm_dir: Path) -> None:
    import pickle

    reward = RewardModelReward(str(rm_dir), sigmoid=True)
    reward.setup()
    copy = pickle.loads(pickle.dumps(reward))
    assert copy._model is None and copy.sigmoid is True
    assert copy(PROMPTS[1], COMPLETIONS[1]) == pytest.approx(reward(PROMPTS[1], COMPLETIONS[1]))


@pytest.mark.slow
def test_reward_model_plugs_into_the_pool_with_one_config_entry(ray_session, rm_dir: Path) -> None:
    from rlsys.reward.workers import RewardWorkerPool

    cfg = {"fns": [{"_target_": "reward_model", "kwargs": {"model_path": str(rm_dir), "sigmoid": True}}],
           "num_workers": 1, "timeout_s": 30.0, "correct_threshold": 0.5}
    samples = [{"prompt": p, "completion": c, "data_source": "chat", "id": i}
               for i, (p, c) in enumerate(zip(PROMPTS * 2, COMPLETIONS * 2))]
    with RewardWorkerPool(cfg) as pool:
        scores, extras, metrics = pool.score(samples)
    want = RewardModelReward(str(rm_dir), sigmoid=True).score_batch(PROMPTS, COMPLETIONS, [{}] * 4)
    assert scores == pytest.approx([w["score"] for w in want] * 2, abs=1e-5)
    assert [e["reward_model/raw_score"] for e in extras] == pytest.approx([w["raw_score"] for w in want] * 2, abs=1e-5)
    assert [e["correct"] for e in extras] == [s >= 0.5 for s in scores]
    assert metrics["reward/errors/total"] == 0.0

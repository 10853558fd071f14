"""Off-policy guidance: which groups get the reference, where it goes, and its tokens."""

from __future__ import annotations

from rlsys.rl.collector import Group
from rlsys.rl.guide import REFERENCE, reference_sample, wants_guide, with_reference
from rlsys.rollout.types import Sample

IF_ROW = {"id": "if-1", "data_source": "rlsys/ifeval", "prompt": "Say hi in capitals.", "response": "HI THERE"}


def _group(scores: list[float]) -> Group:
    samples = [Sample([i + 1], f"a{i}", [-0.5], "stop") for i in range(len(scores))]
    return Group(IF_ROW, 0, 0, [9], [9], samples, 3, scores=list(scores), correct=[False] * len(scores),
                 extras=[{"ifeval": s} for s in scores])


def test_wants_guide_needs_the_field_and_an_allowed_source() -> None:
    assert wants_guide(IF_ROW, "response", [])
    assert wants_guide(IF_ROW, "response", ["rlsys/ifeval", "rlsys/format"])
    assert not wants_guide(IF_ROW, "response", ["rlsys/math"])
    assert not wants_guide(IF_ROW, None, [])
    assert not wants_guide({**IF_ROW, "response": " "}, "response", [])
    assert not wants_guide(IF_ROW, "solution", [])


def test_reference_replaces_the_lowest_score_and_leaves_the_group_alone() -> None:
    group = _group([0.5, 0.25, 0.75, 0.25])
    ref = reference_sample([7, 8, 2], "HI THERE")
    guided = with_reference(group, ref, 1.0, {"ifeval": 1.0, "correct": True})
    # The first of the two lowest (index 1) goes; the others keep their place.
    assert [s.text for s in guided.samples] == ["a0", "HI THERE", "a2", "a3"]
    assert guided.scores == [0.5, 1.0, 0.75, 0.25]
    assert guided.correct == [False, True, False, False] and guided.pass_rate == 0.25
    assert guided.samples[1].finish_reason == REFERENCE and guided.samples[1].logprobs == [0.0, 0.0, 0.0]
    assert group.scores == [0.5, 0.25, 0.75, 0.25] and group.samples[1].text == "a1" and group.n_correct == 0
    assert guided.version == group.version and guided.train_prompt_ids == group.train_prompt_ids
    # The reference's placeholder logprobs are not the policy's: the learner must recompute them.
    assert group.rollout_logprobs_valid and not guided.rollout_logprobs_valid


def test_reference_tokens_are_the_assistant_turn_up_to_its_end_token(tiny_model_dir: str) -> None:
    from transformers import AutoTokenizer

    from rlsys.data.encode import encode_completion, encode_prompt

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    ids = encode_completion(tok, IF_ROW, IF_ROW["response"], "Be brief.")
    assert ids[-1] == tok.eos_token_id and tok.eos_token_id not in ids[:-1]
    assert tok.decode(ids, skip_special_tokens=True) == IF_ROW["response"]
    # Prompt + answer is the rendered conversation, less what the template puts after the end token.
    prompt = encode_prompt(tok, IF_ROW, "Be brief.")
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": IF_ROW["prompt"]},
                {"role": "assistant", "content": IF_ROW["response"]}]
    full = tok(tok.apply_chat_template(messages, tokenize=False), add_special_tokens=False)["input_ids"]
    assert full[: len(prompt) + len(ids)] == prompt + ids

"""The alignment reward: hard instructions by rule, soft ones by a judge over an OpenAI-compatible endpoint
(a stdlib server on loopback that marks a soft instruction met when the response holds its cue word)."""

from __future__ import annotations

import pytest
from rlsys_testing import SoftJudgeServer

from rewards.alignment import AlignmentReward, check_soft, soft_check_prompt, soft_check_target, soft_tags
from rewards.pairwise_judge import parse_marks
from rewards.registry import get_reward

FORMAL = {"type": "tone", "params": {"variant": "formal"}, "instruction": "Keep a formal tone.",
          "rubric": "The wording is formal."}
THANKS = {"type": "gratitude", "params": {"variant": "any"}, "instruction": "Thank the reader.",
          "rubric": "It thanks the reader."}
# The stand-in judge's cue word per soft instruction name.
CUES = {"tone formal": "pleasure", "gratitude": "thank"}
NO_COMMAS = {"type": "no_commas", "params": {}}


@pytest.fixture
def judge():
    server = SoftJudgeServer(CUES)
    with server as url:
        server.url = url
        yield server


def test_soft_prompt_names_each_instruction_with_its_rubric_and_targets_round_trip():
    assert soft_tags([FORMAL, THANKS]) == ["tone formal", "gratitude"]
    assert soft_tags([{"instruction": "Be kind."}, {"instruction": "Be brief."}]) == ["soft 1", "soft 2"]
    prompt = soft_check_prompt("Describe x.", "It is my pleasure.", [FORMAL, THANKS])
    assert "- tone formal: The wording is formal.\n- gratitude: It thanks the reader." in prompt
    assert "Request:\nDescribe x." in prompt and "Response:\nIt is my pleasure." in prompt
    target = soft_check_target([FORMAL, THANKS], ["ok", "no"])
    assert target == "tone formal: ok.\ngratitude: no."
    assert parse_marks(target, soft_tags([FORMAL, THANKS])) == ["ok", "no"]
    with pytest.raises(ValueError, match="distinct names"):
        soft_tags([FORMAL, FORMAL])


@pytest.mark.parametrize("bad", [["Be formal."], [{"rubric": "no instruction"}], {"instruction": "x"},
                                 [{"instruction": "  "}]])
def test_malformed_soft_instructions_fail_naming_the_field(bad):
    with pytest.raises(ValueError, match="soft_constraints must be a list"):
        check_soft(bad)


def test_hard_and_soft_instructions_are_scored_together(judge):
    reward = get_reward("alignment")(base_url=judge.url, model="judge")
    fields = {"constraints": [NO_COMMAS], "soft_constraints": [FORMAL, THANKS]}
    both = reward("Describe x.", "It is my pleasure to help. Thank you for asking.", **fields)
    assert both["score"] == 1.0 and both["all_pass"] == 1.0 and both["soft_pass"] == 1.0
    # Formal met, thanks missing, one comma: 1 of 3 instructions.
    one = reward("Describe x.", "It is my pleasure, as always.", **fields)
    assert one["score"] == pytest.approx(1 / 3)
    assert (one["hard_pass"], one["soft_pass"], one["all_pass"]) == (0.0, 0.5, 0.0)
    assert "- tone formal: The wording is formal." in judge.seen[-1]
    weighted = AlignmentReward(base_url=judge.url, model="judge", hard_weight=2.0, soft_weight=1.0)
    # Hard met (weight 2), one soft of two met (weight 1 each): (2 + 1) / (2 + 2).
    assert weighted("q", "Thank you.", **fields)["score"] == pytest.approx(3 / 4)


def test_rows_without_soft_instructions_never_ask_the_judge(judge):
    reward = AlignmentReward(base_url=judge.url, model="judge")
    out = reward("q", "a, b", constraints=[NO_COMMAS])
    assert out["score"] == 0.0 and out["soft_pass"] == 1.0 and judge.seen == []
    with pytest.raises(ValueError, match="needs a row with 'constraints' or 'soft_constraints'"):
        reward("q", "text")


def test_unread_marks_are_unmet_and_counted(judge):
    reward = AlignmentReward(base_url=judge.url, model="judge")
    fields = {"soft_constraints": [FORMAL, THANKS]}
    garbled = reward("q", "garble: my pleasure, thank you", **fields)
    assert garbled["score"] == 0.0 and garbled["soft_unread"] == 1.0 and garbled["parse_error"] == 1.0
    half = reward("q", "half: my pleasure, thank you", **fields)
    assert half["score"] == 0.5 and half["soft_unread"] == 0.5 and half["parse_error"] == 0.0


def test_unfinished_reasoning_meets_nothing(judge):
    reward = AlignmentReward(base_url=judge.url, model="judge")
    out = reward("q", "<think>my pleasure, thank you", constraints=[NO_COMMAS], soft_constraints=[FORMAL])
    assert out["score"] == 0.0 and judge.seen == []
    assert reward("q", "<think>hm</think>My pleasure.", soft_constraints=[FORMAL])["score"] == 1.0


def test_dead_endpoint_is_a_counted_fallback():
    reward = AlignmentReward(base_url="http://127.0.0.1:9/v1", model="judge", timeout_s=0.5, max_retries=0,
                             fallback_score=0.25)
    out = reward.score_batch(["q"], ["my pleasure"], [{"soft_constraints": [FORMAL]}])[0]
    assert out["score"] == 0.25 and out["judge_error"] == 1.0 and out["fallback"] == 1.0


def test_settings_are_checked_at_start_up():
    with pytest.raises(ValueError, match="positive sum"):
        AlignmentReward.validate_static({"base_url": "http://x/v1", "model": "m", "hard_weight": 0.0,
                                         "soft_weight": 0.0})
    with pytest.raises(ValueError, match="exactly one of model_path"):
        AlignmentReward.validate_static({})
    assert AlignmentReward.time_budget_s({"base_url": "u", "model": "m", "timeout_s": 1.0, "max_retries": 0}) == 1.0


@pytest.mark.slow
def test_a_served_checkpoint_judges_the_soft_instructions(tiny_model_dir):
    # The untrained tiny model writes no readable marks: the soft instruction then counts as unmet, and the
    # score is the hard share alone over all instructions.
    reward = AlignmentReward(model_path=tiny_model_dir, max_tokens=16, max_model_len=512, kv_cache_bytes=64 << 20)
    try:
        out = reward.score_batch(["Describe x. Keep a formal tone."], ["It is my pleasure to help."],
                                 [{"constraints": [NO_COMMAS], "soft_constraints": [FORMAL]}])[0]
    finally:
        reward.close()
    assert out["judge_error"] == 0.0 and out["hard_pass"] == 1.0
    met_soft = out["soft_pass"]
    assert out["score"] == pytest.approx((1.0 + met_soft) / 2)
    assert out["soft_unread"] + ("soft/tone formal" in out) == 1.0

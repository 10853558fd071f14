import json

import pytest

from rewards.registry import resolve_target
from rewards.unasked_markup import unasked_markup, unasked_markup_penalty

ASKS_COMMAS = [{"type": "no_commas", "params": {}}]
ALL_PROBED = ["placeholders", "postscript", "highlighted_sections", "title", "wrapped_in_quotes", "json_format"]


def test_plain_answer_costs_nothing_and_every_type_is_probed():
    out = unasked_markup_penalty("Write about cats.", "Cats sleep a lot.", ASKS_COMMAS)
    assert out == {"score": 0.0} | {f"unasked/{kind}": 0.0 for kind in ALL_PROBED}


def test_each_unasked_type_found_counts_half_and_two_reach_the_floor():
    one = unasked_markup_penalty("Write about cats.", "Dear [name] cats sleep.", ASKS_COMMAS)
    assert one["score"] == -0.5 and one["unasked/placeholders"] == 1.0 and one["unasked/title"] == 0.0
    # A placeholder, *a highlight*, a title and a postscript: four found, floored at -1.
    text = "<<Cats>>\nDear [name] cats *really* sleep.\nP.P.S. they purr"
    four = unasked_markup_penalty("Write about cats.", text, ASKS_COMMAS)
    assert four["score"] == -1.0
    assert [k for k in ALL_PROBED if four[f"unasked/{k}"]] == ["placeholders", "postscript", "highlighted_sections", "title"]
    # full_at=4 scales the same four finds to exactly -1, and one find to -1/4.
    assert unasked_markup_penalty("Write about cats.", text, ASKS_COMMAS, full_at=4)["score"] == -1.0
    assert unasked_markup_penalty("Write.", "Dear [name].", ASKS_COMMAS, full_at=4)["score"] == -0.25


def test_asked_types_are_not_probed():
    asks = [{"type": "placeholders", "params": {"n": 1}}, {"type": "postscript", "params": {"marker": "P.S."}}]
    out = unasked_markup_penalty("Write.", "Dear [name].\nP.S. bye", json.dumps(asks))
    assert out["score"] == 0.0
    assert "unasked/placeholders" not in out and "unasked/postscript" not in out and out["unasked/title"] == 0.0


def test_json_excuses_its_own_lists_and_emphasis_but_not_a_postscript():
    asks = [{"type": "json_format", "params": {}}]
    assert unasked_markup('{"tags": ["a", "b"], "note": "*hi*"}', asks) == {
        "postscript": False, "title": False, "wrapped_in_quotes": False}
    # Unasked JSON is found: a whole-answer JSON object nobody asked for.
    assert unasked_markup('{"a": 1}', ASKS_COMMAS)["json_format"] is True


def test_markup_the_request_itself_carries_is_not_probed():
    # An answer that repeats a request containing [brackets] keeps them for a reason.
    prompt = "Explain what [citation needed] means."
    assert "placeholders" not in unasked_markup("Explain what [citation needed] means. It asks for a source.",
                                                ASKS_COMMAS, prompt)


def test_only_the_answer_after_reasoning_counts():
    assert unasked_markup_penalty("Write.", "<think>draft [name]</think>Plain text.", ASKS_COMMAS)["score"] == 0.0
    # Unfinished reasoning: no answer, so no markup and no penalty (`ifeval` already scores it 0).
    assert unasked_markup_penalty("Write.", "<think>Dear [name]", ASKS_COMMAS)["score"] == 0.0


@pytest.mark.parametrize("full_at", [0, -1, 1.5, True])
def test_bad_full_at_is_named(full_at):
    with pytest.raises(ValueError, match="full_at"):
        unasked_markup_penalty("p", "a", ASKS_COMMAS, full_at=full_at)


def test_registered_as_a_builtin():
    assert resolve_target("unasked_markup") == "rewards.unasked_markup.unasked_markup_penalty"

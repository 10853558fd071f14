import json
import random

import pytest

from rewards.ifeval import (
    CONSTRAINTS,
    Constraint,
    are_compatible,
    check_constraints,
    ifeval_reward,
    sample_constraints,
)
from rewards.ifeval.layout import REPEAT_INSTRUCTION

QUESTION = "Describe a walk by the sea."
REPEAT_PROMPT = f"{QUESTION} {REPEAT_INSTRUCTION}"

# (type, params, passing response, failing response, prompt)
CASES = [
    ("word_count", {"relation": "at least", "n": 5}, "One two three four five.", "One two three four.", ""),
    ("word_count", {"relation": "at most", "n": 3}, "Don't stop now.", "Please do not stop now.", ""),
    ("sentence_count", {"relation": "at least", "n": 2}, "It rained. We stayed in!", "It rained all day.", ""),
    ("sentence_count", {"relation": "at most", "n": 1}, "Pi is 3.14 roughly.", "One. Two.", ""),
    ("paragraph_count", {"n": 2}, "First part.\n***\nSecond part.", "First.\n***\nSecond.\n***\nThird.", ""),
    ("paragraph_count", {"n": 2}, "A.\n\nStill A.\n***\nB.", "A.\n\nB.", ""),
    ("keyword_include", {"keywords": ["river", "garden"]}, "The River ran by the garden.", "The river ran.", ""),
    ("keyword_exclude", {"forbidden": ["very"]}, "Everything is fine.", "It is Very fine.", ""),
    ("keyword_frequency", {"keyword": "orbit", "n": 2}, "An orbit, then another orbit.", "One orbit, orbits.", ""),
    ("letter_frequency", {"letter": "z", "n": 3}, "Zany zebras buzz.", "Zany zebras hum.", ""),
    ("no_commas", {}, "No commas here.", "Well, there is one.", ""),
    ("no_digits", {}, "I have three cats.", "I have 3 cats.", ""),
    ("all_lowercase", {}, "all quiet here.", "All quiet here.", ""),
    ("all_uppercase", {}, "ALL LOUD HERE!", "ALL LOUD HERe!", ""),
    ("capital_word_frequency", {"relation": "at least", "n": 2}, "This is VERY VERY big.", "Quite TIRED.", ""),
    ("capital_word_frequency", {"relation": "at most", "n": 1}, "We saw NASA once.", "I saw NASA once.", ""),
    ("starts_with", {"phrase": "Let me explain."}, "  Let me explain. It works.", "So, Let me explain.", ""),
    ("ends_with", {"phrase": "That is all."}, "It works. That is all.\n", "That is all. Bye.", ""),
    ("wrapped_in_quotes", {}, '"Hello there."', 'Hello "there."', ""),
    ("title", {}, "<<A Calm Sea>>\nThe sea was calm.", "<< >>\nThe sea was calm.", ""),
    ("bullet_points", {"n": 2}, "Items:\n* apples\n- pears", "Items:\n* apples\n* pears\n* figs", ""),
    ("highlighted_sections", {"n": 2}, "Note *this* and **that**.", "Note * this * and * that *.", ""),
    ("sections", {"marker": "SECTION", "n": 2}, "SECTION 1\nIntro.\nSECTION 2\nEnd.", "SECTION 1\nIntro.\nSECTION 3\n", ""),
    ("placeholders", {"n": 2}, "Dear [name], see you at [place].", "Dear [name], see you at [ ].", ""),
    ("postscript", {"marker": "P.S."}, "Hello.\n\nP.S. Bring snacks.", "Hello. P.S. Bring snacks.", ""),
    ("postscript", {"marker": "P.P.S."}, "Hi.\np.p.s. see you", "Hi.\nP.S. see you", ""),
    ("json_format", {}, '```json\n{"answer": "sea"}\n```', '{"answer": "sea"', ""),
    ("repeat_prompt", {}, f"{QUESTION}  The waves were loud.", "The waves were loud.", REPEAT_PROMPT),
    ("two_responses", {}, "The sea is blue.\n******\nThe sea is grey.", "Blue.\n******\nBlue.", ""),
    ("answer_options", {"options": ["Yes", "No"]}, " No\n", "No way", ""),
    ("nth_paragraph_first_word", {"num_paragraphs": 2, "nth_paragraph": 2, "first_word": "orbit"},
     "Intro.\n\nOrbit next.", "Intro.\n\nThe orbit.", ""),
    ("response_language", {"language": "fr"}, "Le chat est sur la table avec une souris.",
     "The cat is on the table with a mouse.", ""),
]


def test_registry_has_ifevals_25_types_and_the_projects_two() -> None:
    assert len(CONSTRAINTS) == 27
    for name, constraint in CONSTRAINTS.items():
        assert isinstance(constraint, Constraint)
        assert constraint.name == name


def test_every_constraint_has_a_case() -> None:
    assert {case[0] for case in CASES} == set(CONSTRAINTS)


@pytest.mark.parametrize(("name", "params", "good", "bad", "prompt"), CASES)
def test_constraint_passes_and_fails(name: str, params: dict, good: str, bad: str, prompt: str) -> None:
    check = CONSTRAINTS[name].check
    assert check(good, params, prompt) is True
    assert check(bad, params, prompt) is False


def test_repeat_prompt_uses_stored_request_when_given() -> None:
    params = {"request": "Say hi."}
    assert CONSTRAINTS["repeat_prompt"].check("Say hi. Hi!", params, "anything else")
    assert not CONSTRAINTS["repeat_prompt"].check("Say hi.", params, "")  # repetition without an answer


def test_describe_mentions_parameters() -> None:
    assert "at least 15 words" in CONSTRAINTS["word_count"].describe({"relation": "at least", "n": 15})
    assert '"river" and "orbit"' in CONSTRAINTS["keyword_include"].describe({"keywords": ["river", "orbit"]})
    assert "SECTION 1" in CONSTRAINTS["sections"].describe({"marker": "SECTION", "n": 2})


def test_sample_constraints_is_deterministic_by_seed() -> None:
    first = sample_constraints(random.Random(7), 3)
    assert first == sample_constraints(random.Random(7), 3)
    assert any(sample_constraints(random.Random(s), 3) != first for s in range(8, 12))


def test_sampled_constraints_are_distinct_compatible_serialisable_and_describable() -> None:
    pairs_seen = set()
    for seed in range(400):
        rng = random.Random(seed)
        drawn = sample_constraints(rng, 1 + seed % 4)
        names = [c["type"] for c in drawn]
        assert len(names) == len(set(names)) == 1 + seed % 4
        for i, a in enumerate(names):
            for b in names[i + 1 :]:
                assert are_compatible(a, b), (seed, a, b)
                pairs_seen.add(frozenset((a, b)))
        assert json.loads(json.dumps(drawn)) == drawn
        for c in drawn:
            assert CONSTRAINTS[c["type"]].describe(c["params"]).strip()
    for forbidden in [("all_lowercase", "all_uppercase"), ("json_format", "bullet_points"),
                      ("json_format", "title"), ("json_format", "postscript"), ("answer_options", "word_count")]:
        assert frozenset(forbidden) not in pairs_seen
        assert not are_compatible(*forbidden)


def test_sampled_word_counts_stay_small() -> None:
    for seed in range(200):
        params = CONSTRAINTS["word_count"].sample_params(random.Random(seed))
        assert 10 <= params["n"] <= 40


def test_sample_constraints_rejects_bad_k() -> None:
    with pytest.raises(ValueError, match="k must be"):
        sample_constraints(random.Random(0), 0)


def test_check_constraints_in_order_and_unknown_type() -> None:
    constraints = [{"type": "no_commas", "params": {}}, {"type": "all_uppercase", "params": {}}]
    assert check_constraints("quiet, please", constraints) == [False, False]
    assert check_constraints("QUIET PLEASE", constraints) == [True, True]
    with pytest.raises(KeyError, match="nope"):
        check_constraints("x", [{"type": "nope", "params": {}}])


def test_ifeval_reward_share_and_per_constraint_flags() -> None:
    constraints = [
        {"type": "no_commas", "params": {}},
        {"type": "all_lowercase", "params": {}},
        {"type": "word_count", "params": {"relation": "at most", "n": 2}},
    ]
    out = ifeval_reward("p", "<think>Plan, then write.</think>hello there friend", constraints)
    assert out == {
        "score": pytest.approx(2 / 3),
        "constraint/no_commas": 1.0,
        "constraint/all_lowercase": 1.0,
        "constraint/word_count": 0.0,
    }


def test_ifeval_reward_accepts_json_string_and_fails_unfinished_answers() -> None:
    constraints = json.dumps([{"type": "no_commas", "params": {}}])
    assert ifeval_reward("p", "fine", constraints)["score"] == 1.0
    assert ifeval_reward("p", "<think>still going", constraints)["score"] == 0.0
    assert ifeval_reward("p", "<think>done</think>   ", constraints)["score"] == 0.0

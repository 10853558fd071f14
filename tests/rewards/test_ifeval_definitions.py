"""Boundary cases of each IF constraint's definition, following IFEval's (lm-eval `ifeval`) where the two
meet, and the IFEval-name aliases."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from rewards.ifeval import CONSTRAINTS, IFEVAL_ALIASES, check_constraints, ifeval_reward, sample_constraints
from rewards.ifeval._base import divider_paragraphs, sentences
from rewards.ifeval.language import SUPPORTED_LANGUAGES, detect_language, looks_english

REFERENCE = json.loads((Path(__file__).parent / "ifeval_reference_cases.json").read_text())


def _check(name: str, response: str, prompt: str = "", **params: object) -> bool:
    return CONSTRAINTS[name].check(response, params, prompt)


@pytest.mark.parametrize("case", REFERENCE, ids=lambda c: f"{c['type']}:{c['why']}")
def test_hand_labelled_reference_case(case: dict) -> None:
    entry = [{"type": case["type"], "params": case["params"]}]
    assert check_constraints(case["response"], entry, case.get("prompt", "")) == [case["label"]]


def test_reference_cases_cover_every_type_both_ways() -> None:
    for name in CONSTRAINTS:
        labels = {c["label"] for c in REFERENCE if c["type"] == name}
        assert labels == {True, False}, name


def test_paragraphs_follow_ifevals_divider_rule() -> None:
    assert divider_paragraphs("A\n\nstill A\n***\nB") == ["A\n\nstill A", "B"]
    assert divider_paragraphs("***\nA\n***\nB\n***\n") == ["A", "B"]  # leading/trailing empty ignored
    assert divider_paragraphs("A\n***\n   \n***\nB") is None  # an empty one in the middle is invalid
    assert divider_paragraphs("no divider at all") == ["no divider at all"]
    assert _check("paragraph_count", "A *** B", n=2)  # IFEval splits an inline divider too
    assert not _check("paragraph_count", "A\n***\n\n***\nB", n=2)
    assert not _check("paragraph_count", "", n=1)


def test_nth_paragraph_first_word_boundaries() -> None:
    params = {"num_paragraphs": 3, "nth_paragraph": 1, "first_word": "River"}
    assert _check("nth_paragraph_first_word", "\n\nriver first.\n\nB.\n\nC.\n\n", **params)  # edges trimmed
    assert not _check("nth_paragraph_first_word", "River first.\n\nB.", **params)  # count must match
    assert not _check("nth_paragraph_first_word", "Riverbank.\n\nB.\n\nC.", **params)
    assert _check("nth_paragraph_first_word", "River's bank.\n\nB.\n\nC.", **params)  # cut at the apostrophe
    assert not _check("nth_paragraph_first_word", "**River** first.\n\nB.\n\nC.", **params)  # as IFEval
    out_of_range = {"num_paragraphs": 2, "nth_paragraph": 3, "first_word": "river"}
    assert not _check("nth_paragraph_first_word", "River.\n\nRiver.", **out_of_range)


def test_sentence_split_ignores_abbreviations_but_not_real_ends() -> None:
    assert len(sentences("Mrs. Lee and Prof. Kim met at 3 p.m. on Monday.")) == 1
    assert len(sentences("Dr. Who? Yes. Mr. X, etc. and so on.")) == 3
    assert len(sentences('He said "Stop." Then he left.')) == 2  # closing quote after the period
    assert len(sentences("A heading\n\nA body sentence.")) == 2  # a blank line ends a sentence
    assert len(sentences("Prodr. is not an abbreviation. Next.")) == 3  # whole-token match only


def test_capital_words_count_single_letters_and_acronyms() -> None:
    assert _check("capital_word_frequency", "I A U.S.", relation="at least", n=3)
    assert not _check("capital_word_frequency", "I A U.S.", relation="less than", n=3)
    assert _check("capital_word_frequency", "iPhone McDonald OK", relation="at most", n=1)  # mixed case is not


def test_case_constraints_require_english() -> None:
    assert _check("all_lowercase", "hello world")  # short text without function words: no evidence against
    assert not _check("all_lowercase", "das ist nicht gut und die katze ist klein.")
    assert not _check("all_uppercase", "ЭТО НЕ АНГЛИЙСКИЙ ТЕКСТ.")
    assert _check("all_uppercase", "“THE END” — IS IT?")  # typographic punctuation is not a language
    assert looks_english("i think the sea is calm") and not looks_english("")


def test_postscript_markup_and_marker_variants() -> None:
    assert _check("postscript", "Hi.\n\n__P.S.__: bring snacks.", marker="P.S.")
    assert _check("postscript", "Hi.\n> P.S. quoted postscript", marker="P.S.")
    assert not _check("postscript", "Hi.\n\n**P.S.**", marker="P.S.")  # a marker with nothing after it
    assert not _check("postscript", "Hi.\nP.S. done", marker="P.P.S.")


def test_json_accepts_any_value_fenced_or_not() -> None:
    for good in ('{"a": 1}', "[]", "42", "null", '```JSON\n[{"a": 1}]\n```', '```json {"a":1}```'):
        assert _check("json_format", good), good
    for bad in ("```json\n{'a': 1}\n```", "", "```json```", "{} {}"):
        assert not _check("json_format", bad), bad


def test_relations_accept_ifevals_less_than() -> None:
    assert _check("word_count", "a b c", relation="less than", n=4)
    assert not _check("word_count", "a b c d", relation="less than", n=4)
    with pytest.raises(ValueError, match="unknown relation 'more than'"):
        _check("word_count", "a", relation="more than", n=1)


def test_response_language_detection_and_unsupported_code() -> None:
    samples = {
        "pt": "O tempo está bom e o mar não está agitado.",
        "pl": "To jest bardzo dobry dzień i nie pada deszcz.",
        "bg": "Това е хубав ден и морето е спокойно.",
        "ar": "الطقس جميل اليوم في المدينة",
        "fa": "هوا امروز در شهر خیلی خوب است",
        "th": "วันนี้อากาศดีมาก",
        "he": "היום מזג האוויר יפה",
        "bn": "আজ আবহাওয়া খুব ভালো",
    }
    for lang, text in samples.items():
        assert detect_language(text) == lang, lang
        assert _check("response_language", text, language=lang)
    assert detect_language("今天天气很好") is None  # Chinese (no kana) is not among IFEval's languages
    assert len(SUPPORTED_LANGUAGES) == 30
    with pytest.raises(ValueError, match="unsupported language code 'zh'"):
        _check("response_language", "hello", language="zh")


def test_ifeval_format_entries_are_translated() -> None:
    assert len(IFEVAL_ALIASES) == 25 and {a[0] for a in IFEVAL_ALIASES.values()} <= set(CONSTRAINTS)
    entries = [
        {"type": "detectable_format:json_format", "kwargs": {}},
        {"type": "length_constraints:number_words", "kwargs": {"num_words": 3, "relation": "less than"}},
        {"type": "keywords:letter_frequency", "kwargs": {"letter": "a", "let_frequency": 2,
                                                         "let_relation": "at least", "keywords": None}},
        {"type": "detectable_format:constrained_response", "kwargs": None},
        {"type": "punctuation:no_comma", "params": {}},
    ]
    assert check_constraints('{"a": "aa"}', entries) == [True, True, True, False, True]
    assert check_constraints("My answer is yes.", entries[3:]) == [True, True]
    out = ifeval_reward("p", '[1, 2]', [entries[0]])
    assert out == {"score": 1.0, "constraint/json_format": 1.0}
    with pytest.raises(KeyError, match="unknown argument 'num_word'"):
        check_constraints("x", [{"type": "length_constraints:number_words", "kwargs": {"num_word": 3}}])


def test_unsampled_types_are_never_drawn_but_stay_compatible_checked() -> None:
    unsampled = {n for n, c in CONSTRAINTS.items() if not c.sampled}
    assert unsampled == {"response_language", "nth_paragraph_first_word"}
    for seed in range(300):
        drawn = sample_constraints(random.Random(seed), 4)
        assert not unsampled & {c["type"] for c in drawn}
    with pytest.raises(ValueError, match=r"k must be in \[1, 25\]"):
        sample_constraints(random.Random(0), 26)


def test_json_probe_can_skip_bare_values() -> None:
    # unasked_markup probes with containers_only, so a quoted or one-number answer is not JSON markup.
    assert _check("json_format", '"Hello there."') and _check("json_format", "7")
    assert not _check("json_format", '"Hello there."', containers_only=True)
    assert _check("json_format", "```json\n[1]\n```", containers_only=True)

"""rlsys.eval.wide's sample averaging and markup table, on hand-worked answers."""

from __future__ import annotations

import pytest

from rlsys.eval import wide

ROWS = {
    "math": [{"prompt": "Add 2 and 3.", "answer": "5"}],
    "ifeval": [{"prompt": "Say hi. Use no commas. Write in all lowercase letters.",
                "constraints": [{"type": "no_commas", "params": {}}, {"type": "all_lowercase", "params": {}}]}],
    "format": [{"prompt": "Reply only with JSON.", "format": "json"}],
}


def test_per_prompt_avg_means_each_score_and_each_constraint_over_samples() -> None:
    samples = [
        ["The answer is \\boxed{5}.", "The answer is \\boxed{6}."],
        ["hi there friend", "Hi, there"],  # both met / both failed
        ['{"a": 1}', "not json"],
    ]
    scores, checks, words = wide.per_prompt_avg(ROWS, samples)
    assert scores == {"math": [0.5], "if_share": [0.5], "if_all": [0.5], "format": [0.5]}
    assert checks == [[0.5, 0.5]]
    assert words == [2.5]


def test_one_sample_is_the_greedy_scoring() -> None:
    samples = [["The answer is \\boxed{5}."], ["hi, there"], ['{"a": 1}']]
    scores, checks, words = wide.per_prompt_avg(ROWS, samples)
    assert scores == {"math": [1.0], "if_share": [0.5], "if_all": [0.0], "format": [1.0]}
    assert checks == [[0.0, 1.0]]
    assert words == [2]


def test_a_prompt_short_of_samples_fails_instead_of_scoring_fewer() -> None:
    with pytest.raises(SystemExit, match="fewer than 2 samples"):
        wide.per_prompt_avg(ROWS, [["a", "b"], ["c"], ["d", "e"]])
    with pytest.raises(SystemExit, match="fewer than 1 samples"):  # a failed greedy answer on the first prompt
        wide.per_prompt_avg(ROWS, [[], ["c"], ["d"]])


def test_unasked_table_counts_markup_only_where_the_prompt_did_not_ask() -> None:
    """Prompt 0 asks for a title, prompt 1 asks for nothing probed, prompt 2 asks for JSON (which excuses
    placeholders: JSON lists look like them). Model m: prompt 0's answer has a title (asked: not counted),
    prompt 1's answers have a title in 1 of 2 samples and a placeholder in both; prompt 2's JSON has a list."""
    rows = [{"prompt": "Give it a title.", "constraints": [{"type": "title", "params": {}}]},
            {"prompt": "Say hi.", "constraints": [{"type": "no_commas", "params": {}}]},
            {"prompt": "As JSON.", "constraints": [{"type": "json_format", "params": {}}]}]
    answers = {"m": [["<<T>> hi"], ["<<Hi>> [name]", "hi [name]"], ['{"a": [1]}']]}
    table = {line.split(" | ")[0].strip("| "): line for line in wide.unasked_table(rows, answers)[2:]}
    assert table["title"] == "| title | 2 | 0.33 |"
    assert table["placeholders"] == "| placeholders | 2 | 0.67 |"
    assert table["json_format"] == "| json_format | 2 | 0.00 |"
    # No prompt probes a type: its cell is "-", not an average over nothing.
    only_title = wide.unasked_table(rows[:1], {"m": answers["m"][:1]})
    assert "| title | 0 | - |" in only_title

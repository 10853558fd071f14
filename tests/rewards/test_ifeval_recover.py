"""Recovering a prompt's IF constraints from its text (rewards/ifeval/recover.py)."""

from __future__ import annotations

from rewards.ifeval import check_constraints
from rewards.ifeval.recover import constraints_in
from rlsys.data.tasks.ifeval_tasks import ifeval_rows


def test_every_generated_if_prompt_gives_back_exactly_its_constraints():
    # The generator's own rows carry their constraint lists: recovery must reproduce each one, in order,
    # including the echoed request of repeat_prompt (the text before the first instruction).
    rows = ifeval_rows(300, 7, "train")[0] + ifeval_rows(100, 7, "eval")[0]
    assert sum(r["constraints"][0]["type"] == "repeat_prompt" or len(r["constraints"]) > 1 for r in rows) > 50
    for row in rows:
        assert constraints_in(row["prompt"]) == row["constraints"], row["prompt"]


def test_recovered_constraints_check_like_the_stored_ones():
    prompt = ('Describe the number 8. Use the word "garden" at least 2 times. Do not use a single comma anywhere '
              "in your response.")
    found = constraints_in(prompt)
    assert found == [{"type": "keyword_frequency", "params": {"keyword": "garden", "n": 2}},
                     {"type": "no_commas", "params": {}}]
    assert check_constraints("The garden is a garden.", found, prompt) == [True, True]
    assert check_constraints("A garden, I think.", found, prompt) == [False, False]
    assert constraints_in("What is 3 + 4?") == []

import pytest

from rewards.ifeval_all import ifeval_all_reward
from rewards.registry import resolve_target

CONSTRAINTS = [
    {"type": "no_commas", "params": {}},
    {"type": "all_lowercase", "params": {}},
    {"type": "word_count", "params": {"relation": "at most", "n": 2}},
]


def test_all_or_nothing_with_the_share_and_flags_kept():
    # Two of three met (three words is too many): 0, though the share is 2/3.
    out = ifeval_all_reward("p", "hello there friend", CONSTRAINTS)
    assert out == {"score": 0.0, "share": pytest.approx(2 / 3), "constraint/no_commas": 1.0,
                   "constraint/all_lowercase": 1.0, "constraint/word_count": 0.0}
    assert ifeval_all_reward("p", "hello there", CONSTRAINTS)["score"] == 1.0
    # Only the answer after the reasoning block counts, as for `ifeval`.
    assert ifeval_all_reward("p", "<think>Plan, A, B.</think>hello there", CONSTRAINTS)["score"] == 1.0
    assert ifeval_all_reward("p", "<think>unfinished", CONSTRAINTS)["score"] == 0.0


def test_registered_as_a_builtin():
    assert resolve_target("ifeval_all") == "rewards.ifeval_all.ifeval_all_reward"

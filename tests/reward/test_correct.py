import pytest

from rlsys.reward.correct import CorrectRule, is_correct, parse_correct_by
from rlsys.reward.plugins import RewardConfigError, load_reward_fns

SPECS = load_reward_fns([
    {"_target_": "math", "data_sources": ["rlsys/math"]},
    {"_target_": "ifeval", "data_sources": ["rlsys/ifeval"]},
    {"_target_": "ref_length", "weight": 0.5},
])


def test_rule_decides_on_its_source_and_the_combined_score_elsewhere():
    rules = parse_correct_by([{"data_source": "rlsys/ifeval", "term": "ifeval", "threshold": 1.0}], SPECS)
    assert rules == {"rlsys/ifeval": CorrectRule("ifeval", 1.0)}
    # 3 of 4 constraints met: the combined score 0.75 passes the 0.5 default, the rule does not.
    assert not is_correct(0.75, {"ifeval": 0.75}, "rlsys/ifeval", rules, 0.5)
    assert is_correct(0.9, {"ifeval": 1.0, "ref_length": -0.1}, "rlsys/ifeval", rules, 0.5)
    # Every constraint met but a length penalty pulls the sum below 0.5: the rule still passes it.
    assert is_correct(0.4, {"ifeval": 1.0, "ref_length": -0.6}, "rlsys/ifeval", rules, 0.5)
    assert is_correct(1.0, {"math": 1.0}, "rlsys/math", rules, 0.5)
    assert not is_correct(0.49, {"math": 0.49}, "rlsys/math", rules, 0.5)
    assert is_correct(0.5, {}, None, rules, 0.5)


def test_threshold_defaults_to_half():
    assert parse_correct_by([{"data_source": "rlsys/ifeval", "term": "ifeval"}], SPECS)["rlsys/ifeval"].threshold == 0.5
    assert parse_correct_by(None, SPECS) == {}


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"data_source": "rlsys/ifeval", "term": "ifevl"}, r"reward.correct_by\[0\]: term 'ifevl' is not a reward name"),
        ({"data_source": "rlsys/format", "term": "math"}, "reward 'math' does not score data_source 'rlsys/format'"),
        ({"data_source": "rlsys/ifeval", "term": "ifeval", "treshold": 1}, r"unknown keys \['treshold'\]"),
        ({"term": "ifeval"}, r"missing keys \['data_source'\]"),
        ({"data_source": "rlsys/ifeval", "term": "ifeval", "threshold": "all"}, r"correct_by\[0\]\.threshold"),
        ("ifeval", "expected {data_source, term, threshold}"),
    ],
)
def test_bad_entries_fail_naming_the_entry(entry, message):
    with pytest.raises(RewardConfigError, match=message):
        parse_correct_by([entry], SPECS)


def test_two_rules_for_one_source_fail():
    entry = {"data_source": "rlsys/ifeval", "term": "ifeval"}
    with pytest.raises(RewardConfigError, match=r"correct_by\[1\]: data_source 'rlsys/ifeval' has two rules"):
        parse_correct_by([entry, entry], SPECS)

import subprocess
import sys

import pytest

from rewards.format import format_reward
from rewards.ifeval import ifeval_reward
from rewards.registry import BUILTINS, get_reward, resolve_target


def test_short_names_and_dotted_paths_resolve_to_the_same_function() -> None:
    assert get_reward("format") is format_reward
    assert get_reward("rewards.format.format_reward") is format_reward
    assert get_reward("ifeval") is ifeval_reward
    assert get_reward("judge").__name__ == "JudgeReward"
    assert get_reward("reward_model").__name__ == "RewardModelReward"
    assert set(BUILTINS) == {"math", "format", "ifeval", "ifeval_all", "length", "ref_length", "arithmetic_steps", "judge", "reward_model", "unasked_markup",
                             "pairwise_judge", "judge_format", "judge_outcome", "judge_check", "alignment"}


def test_unknown_names() -> None:
    with pytest.raises(KeyError, match="unknown reward 'nope'"):
        resolve_target("nope")
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        get_reward("rewards.format.nope")


def test_importing_rewards_does_not_import_heavy_libraries() -> None:
    code = (
        "import sys, rewards, rewards.ifeval, rewards.format, rewards.length;"
        "print(sorted(m for m in ('openai', 'math_verify', 'sympy') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"

"""Built-in rewards by short name; resolved lazily so naming one never imports the others' libraries."""

from __future__ import annotations

import importlib

BUILTINS: dict[str, str] = {
    "math": "rewards.math.math_reward",
    "format": "rewards.format.format_reward",
    "ifeval": "rewards.ifeval.ifeval_reward",
    "ifeval_all": "rewards.ifeval_all.ifeval_all_reward",
    "length": "rewards.length.length_penalty",
    "ref_length": "rewards.length.reference_length_penalty",
    "unasked_markup": "rewards.unasked_markup.unasked_markup_penalty",
    "arithmetic_steps": "rewards.steps.arithmetic_steps",
    "judge": "rewards.judge.JudgeReward",
    "reward_model": "rewards.reward_model.RewardModelReward",
    "pairwise_judge": "rewards.pairwise_judge.PairwiseJudgeReward",
    "judge_format": "rewards.pairwise_judge.judge_format_reward",
    "judge_outcome": "rewards.pairwise_judge.judge_outcome_reward",
    "judge_check": "rewards.pairwise_judge.check_marks_reward",
    "alignment": "rewards.alignment.AlignmentReward",
}


def resolve_target(name_or_path: str) -> str:
    """The dotted path for a short built-in name; dotted paths pass through unchanged."""
    if name_or_path in BUILTINS:
        return BUILTINS[name_or_path]
    if "." not in name_or_path:
        raise KeyError(f"unknown reward {name_or_path!r}; built-ins are {sorted(BUILTINS)}")
    return name_or_path


def import_target(path: str) -> object:
    """Import `pkg.module.attr`; raises ImportError / AttributeError naming the missing part."""
    module_name, _, attr = path.rpartition(".")
    if not module_name:
        raise ImportError(f"{path!r} is not a dotted path like 'package.module.function'")
    module = importlib.import_module(module_name)
    try:
        return getattr(module, attr)
    except AttributeError:
        raise AttributeError(f"module {module_name!r} has no attribute {attr!r}") from None


def get_reward(name: str) -> object:
    """A reward function (or class, for `judge`) by short name or dotted `_target_` path."""
    return import_target(resolve_target(name))

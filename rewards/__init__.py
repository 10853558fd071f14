"""Pure reward functions: `fn(prompt, completion, **sample_fields) -> float | dict`.

Built-ins live one per module and are looked up lazily through `rewards.registry`.
"""

from rewards.registry import BUILTINS, get_reward

__all__ = ["BUILTINS", "get_reward"]

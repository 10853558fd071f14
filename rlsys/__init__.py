"""rlsys: RL post-training on Ray actors (vLLM rollout, DeepSpeed learners, reward workers)."""

__version__ = "0.1.0"

"""The RL stage: GSPO with progressive hints and a difficulty filter on the rollout and reward pools."""

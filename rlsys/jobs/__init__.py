"""Stage kinds other than RL: learner jobs, merging, offline sampling, judge data, the smoke check."""

"""Rewards for the reward-pool tests, imported by name inside the Ray reward workers."""

import math
import os
import time
from pathlib import Path


def length_reward(prompt: str, completion: str, **fields: object) -> dict:
    return {"score": float(len(completion)), "even": float(len(completion) % 2 == 0), "pid": float(os.getppid())}


def exact(prompt: str, completion: str, answer: object = None, **fields: object) -> float:
    return float(completion == answer)


def prompt_echo(prompt: str, completion: str, **fields: object) -> dict:
    # Proves each sample reaches the worker with its own prompt and row fields.
    return {"score": float(fields["id"]), "prompt": prompt, "tier": float(fields.get("tier", -1))}


def misbehaving(prompt: str, completion: str, **fields: object) -> float:
    if completion == "raise":
        raise RuntimeError("reward bug")
    if completion == "hang":
        time.sleep(10_000)
    if completion == "stubborn":
        while True:  # swallows the worker's interrupt, so only killing the scoring process ends it
            try:
                time.sleep(10_000)
            except BaseException:
                pass
    if completion == "nan":
        return math.nan
    if completion == "inf":
        return {"score": math.inf}
    return 1.0


def slow_with_marker(prompt: str, completion: str, marker_dir: str, delay_s: float = 0.2, **fields: object) -> float:
    # The scoring process's parent is the Ray actor: the marker tells the test which actor is mid-batch.
    (Path(marker_dir) / str(os.getppid())).touch()
    time.sleep(delay_s)
    return float(len(completion))

"""Shared fixtures: one local Ray per test session, and the tiny model built once."""

from __future__ import annotations

import os
import sys

import pytest

os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def ray_session():
    import ray

    from rlsys.runtime.ray_utils import init_ray

    # More logical CPUs than cores: tests start several light actors side by side.
    # Test modules define actor classes; workers import them by module name.
    init_ray(num_cpus=6, env_vars={"PYTHONPATH": os.pathsep.join(p for p in sys.path if p)})
    yield ray
    ray.shutdown()

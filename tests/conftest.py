"""Shared fixtures: one local Ray per test session, the tiny models built once, the base stages of the short
real runs built once, and a small video suite."""

from __future__ import annotations

import os
import sys
from pathlib import Path

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


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> str:
    """A randomly initialised tiny Qwen3 + locally trained tokenizer, saved as an HF directory."""
    from rlsys_testing import TinyArch, tiny_texts

    from rlsys.model.tiny import build_tiny_model

    out = tmp_path_factory.mktemp("tiny-model")
    build_tiny_model(out, TinyArch, tiny_texts(), seed=0)
    return str(out)


@pytest.fixture(scope="session")
def base_artifacts(tmp_path_factory) -> Path:
    """Artifacts of pretrain -> sft -> sft_more on the small suite (rlsys_testing.BASE_STAGES), built once."""
    from rlsys_testing import build_base_artifacts

    return build_base_artifacts(tmp_path_factory.mktemp("base"))


@pytest.fixture
def seeded_artifacts(base_artifacts, tmp_path) -> Path:
    """`tmp_path / "artifacts"` holding a copy of the base artifacts: a short real run there starts at RL."""
    from rlsys_testing import seed_artifacts

    return seed_artifacts(base_artifacts, tmp_path / "artifacts")


@pytest.fixture(scope="session")
def tiny_vl_dir(tiny_model_dir, tmp_path_factory) -> str:
    """The tiny Qwen3-VL built around `tiny_model_dir` (default TinyVLSpec, seed 0); shared, so read it only."""
    from rlsys.model.tiny_vl import TinyVLSpec, build_tiny_vl

    return build_tiny_vl(tiny_model_dir, str(tmp_path_factory.mktemp("tiny-vl") / "model"), TinyVLSpec(), seed=0)


@pytest.fixture(scope="session")
def video_suite_files(tmp_path_factory) -> dict[str, str]:
    """A small video suite: two tasks, one train and one SFT row each, 6 frames of 64 px."""
    from rlsys.data.tasks.video.suite import VideoSuiteSpec, build_video_suite

    spec = VideoSuiteSpec(tasks=["video_count", "video_related"], n_train_per_task=1, n_eval_per_task=0,
                          n_sft_per_task=1, frame_size=64, n_frames=6)
    return build_video_suite(str(tmp_path_factory.mktemp("video")), spec)


@pytest.fixture(scope="session")
def video_rows(video_suite_files, tmp_path_factory) -> list[dict]:
    """The small video suite's train rows, loaded (absolute frame paths)."""
    from rlsys.data.loading import load_rows

    rows, _ = load_rows(video_suite_files["video_train"], "rl", cache_dir=str(tmp_path_factory.mktemp("cache")))
    return rows

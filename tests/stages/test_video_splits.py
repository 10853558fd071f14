"""Stage data on the video suite's splits (`data.video`): `video_*` names resolve to the built suite, and the
stage cache key holds the suite's identity and how frames reach the model (`data.video_sampling`, `data.slowfast`),
while text and visual splits' keys stay free of both."""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

from rlsys.config.schema import Config
from rlsys.data.tasks.video.suite import VideoSuiteSpec
from rlsys.stages.io import suite_data_identity, suite_files, video_splits


def _cfg(tmp_path: Path):
    cfg = OmegaConf.structured(Config)
    cfg.artifacts_dir = str(tmp_path)
    cfg.data.video = VideoSuiteSpec(tasks=["video_count"], n_train_per_task=1, n_eval_per_task=1, n_sft_per_task=1,
                                    frame_size=64, n_frames=6)
    return cfg


def test_video_splits_resolve_to_the_video_suite(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path)
    assert video_splits() == {"video_train", "video_eval", "video_sft_train"}
    files = suite_files(cfg, ["video_train", "video_sft_train"])
    assert set(files) == set(video_splits()) and all(Path(p).is_file() for p in files.values())
    assert "data_video" in Path(files["video_train"]).parts
    # Only the video suite was built: no text suite for video-only stage data.
    assert not (tmp_path / "data").exists()


def test_video_identity_follows_the_sampling_settings(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path)
    uniform = suite_data_identity(cfg, "video_train:4")
    assert uniform["video_sampling"] == {"mode": "uniform"} and "generator" in uniform["video"]
    cfg.data.video_sampling = "slowfast"
    slow = suite_data_identity(cfg, "video_train:4")
    cfg.data.slowfast.token_budget = 99
    assert suite_data_identity(cfg, "video_train:4") != slow != uniform
    text = suite_data_identity(cfg, "math_train")
    assert "video" not in text and "video_sampling" not in text
    cfg.data.video.n_frames = 7
    assert suite_data_identity(cfg, "math_train") == text

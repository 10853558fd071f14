"""The video suite: build, manifest, reuse, caching, loading through the row loader, SlowFast on its videos."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rlsys.data.embedded import ensure_video_suite
from rlsys.data.loading import load_rows
from rlsys.data.tasks.video.scene import clips_of, frames_of
from rlsys.data.tasks.video.suite import VideoSuiteSpec, build_video_suite, video_fingerprint
from rlsys.data.video.slowfast import SlowFastConfig
from rlsys.data.videos import load_frames, plan_row, plan_streams

SPEC = VideoSuiteSpec(n_train_per_task=2, n_eval_per_task=1, n_sft_per_task=2, frame_size=96, n_frames=8)


@pytest.fixture(scope="module")
def suite(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return build_video_suite(str(tmp_path_factory.mktemp("video")), SPEC)


def test_manifest_and_rows_load(suite: dict[str, str], tmp_path: Path) -> None:
    out = Path(suite["video_train"]).parent
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"] == {"video_train": 12, "video_eval": 6, "video_sft_train": 12}
    assert manifest["kinds"] == {"video_train": "rl", "video_eval": "rl", "video_sft_train": "sft"}
    assert manifest["n_frames"] == sum(1 for _ in (out / "videos").glob("*/*.png"))
    for name, kind in manifest["kinds"].items():
        rows, stats = load_rows(suite[name], kind, cache_dir=str(tmp_path))
        assert stats["skipped"] == 0 and len(rows) == manifest["counts"][name]
        for row in rows:
            clips = clips_of(row["scene"])
            assert len(row["videos"]) == len(clips)
            for paths, clip in zip(row["videos"], clips):
                assert len(paths) == len(frames_of(clip)) and all(Path(p).is_absolute() for p in paths)


def test_rebuild_reuses_and_is_deterministic(suite: dict[str, str], tmp_path: Path) -> None:
    out = Path(suite["video_train"]).parent
    stamp = (out / "manifest.json").stat().st_mtime_ns
    assert build_video_suite(str(out), SPEC) == suite
    assert (out / "manifest.json").stat().st_mtime_ns == stamp
    other = build_video_suite(str(tmp_path / "again"), SPEC)
    hashes = [json.loads((Path(f["video_train"]).parent / "manifest.json").read_text())["content_hash"]
              for f in (suite, other)]
    assert hashes[0] == hashes[1]


def test_ensure_caches_by_spec(tmp_path: Path) -> None:
    small = VideoSuiteSpec(tasks=["video_count"], n_train_per_task=1, n_eval_per_task=1, n_sft_per_task=1)
    files = ensure_video_suite(str(tmp_path), small)
    assert "data_video" in Path(files["video_train"]).parts
    assert ensure_video_suite(str(tmp_path), small) == files
    other = ensure_video_suite(str(tmp_path), VideoSuiteSpec(tasks=["video_count"], n_train_per_task=2,
                                                             n_eval_per_task=1, n_sft_per_task=1))
    assert Path(other["video_train"]).parent != Path(files["video_train"]).parent
    assert len(video_fingerprint()) == 16


@pytest.mark.parametrize(("kwargs", "named"), [({"tasks": ["nope"]}, "tasks"), ({"frame_size": 32}, "frame_size"),
                                               ({"n_frames": 3}, "n_frames"), ({"n_train_per_task": -1},
                                                                               "n_train_per_task")])
def test_spec_checks(kwargs: dict, named: str) -> None:
    with pytest.raises(ValueError, match=named):
        VideoSuiteSpec(**kwargs)


@pytest.mark.parametrize(("patch", "merge", "temporal"), [(16, 2, 2), (14, 2, 2), (16, 1, 1)])
def test_slowfast_finds_the_changes(suite: dict[str, str], tmp_path: Path, patch: int, merge: int,
                                    temporal: int) -> None:
    # Frames change only at event frames (frame_order clips are shuffled: every frame differs), so the slow
    # frames are frame 0 and exactly the event frames.
    rows, _ = load_rows(suite["video_train"], "rl", cache_dir=str(tmp_path))
    cfg = SlowFastConfig(token_budget=4000)
    for row in rows:
        plans = plan_row(row, patch, merge, temporal, cfg)
        for plan, clip in zip(plans, clips_of(row["scene"])):
            if "shown" in clip:
                assert all(plan["slow"]), row["id"]
                continue
            changes = sorted({0} | {e["frame"] for e in clip["events"]})
            assert [i for i, s in enumerate(plan["slow"]) if s] == changes, row["id"]
            assert plan["total_tokens"] <= 4000
            assert len(load_frames(row["videos"][0])) == len(plan["slow"])


def test_plan_streams_follow_the_stored_plan(suite: dict[str, str], tmp_path: Path) -> None:
    rows, _ = load_rows(suite["video_train"], "rl", cache_dir=str(tmp_path))
    row = next(r for r in rows if r["task"] == "video_count")
    frames = load_frames(row["videos"][0])
    plan = json.loads(json.dumps(plan_row(row, 16, 2, 2, SlowFastConfig(token_budget=40))[0]))
    slow, fast = plan_streams(frames, plan, row["fps"])
    assert slow[0].shape == (sum(plan["slow"]), *plan["slow_size"], 3)
    assert fast[0].shape == (len(frames) - sum(plan["slow"]), *plan["fast_size"], 3)
    assert slow[1]["frames_indices"] + fast[1]["frames_indices"] == sorted(
        range(len(frames)), key=lambda i: not plan["slow"][i])
    assert slow[1]["total_num_frames"] == len(frames) and slow[1]["do_sample_frames"] is False
    with pytest.raises(ValueError, match="frames"):
        plan_streams(frames[:-1], plan, row["fps"])

"""Rows with `videos` in the RL collector: the request carries the row's video items (every frame, or SlowFast
streams by `data.video_sampling`) and the prompt one video placeholder per item; each group keeps the items, and
`update_policy` hands them to the learner with each sequence."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf
from rlsys_testing import RecordingPool

from hints.progressive import HintSource
from rlsys.config.schema import Config, RLConfig
from rlsys.data.encode import encode_vl_prompt
from rlsys.data.loading import load_rows
from rlsys.data.tasks.video.suite import VideoSuiteSpec, build_video_suite
from rlsys.data.videos import RowVideoItems, plan_row, video_items
from rlsys.rl.collector import GroupCollector
from rlsys.rl.loop import update_policy
from rlsys.rollout.types import Sample

SPEC = VideoSuiteSpec(tasks=["video_count", "video_related"], n_train_per_task=1, n_eval_per_task=0,
                      n_sft_per_task=0, frame_size=64, n_frames=6)
TEXT_ROW = {"id": "t-1", "prompt": "What is 2 + 3?", "answer": "5", "data_source": "rlsys/math"}


@pytest.fixture(scope="module")
def rows(tmp_path_factory) -> list[dict]:
    files = build_video_suite(str(tmp_path_factory.mktemp("video")), SPEC)
    video_rows, _ = load_rows([files["video_train"]], "rl", "error")
    return [*video_rows, dict(TEXT_ROW)]


def _cfg(sampling: str):
    cfg = OmegaConf.structured(Config)
    cfg.data.video_sampling = sampling
    cfg.data.slowfast.token_budget = 64
    return cfg


@pytest.mark.parametrize("sampling", ["uniform", "slowfast"])
def test_collector_requests_and_groups_carry_video_items(tiny_vl_dir, rows, sampling: str) -> None:
    from transformers import AutoProcessor, AutoTokenizer

    tok, processor = AutoTokenizer.from_pretrained(tiny_vl_dir), AutoProcessor.from_pretrained(tiny_vl_dir)
    pool = RecordingPool()
    collector = GroupCollector(rows, tok, pool, None, HintSource(), _cfg(sampling), None)
    collector._score = lambda groups: None  # no reward workers here: the requests and groups are under test
    groups = collector._sample_and_score(0, 0, [(0, 1), (1, 0), (2, 0)], 2)
    count, related, text = pool.requests
    plans = {r["id"]: plan_row(r, 16, 2, 2, collector.video_items_of.slowfast) for r in rows[:2]}
    for req, row in ((count, rows[0]), (related, rows[1])):
        expected = video_items(row, plans[row["id"]] if sampling == "slowfast" else None)
        assert req.videos == expected and req.images == []
        hint = row["hints"][0] if req is count else None
        assert req.prompt_token_ids == encode_vl_prompt(processor, row, None, hint, n_videos=len(expected))
        assert req.prompt_token_ids.count(processor.video_token_id) == len(expected)
    assert text.videos == [] and processor.video_token_id not in text.prompt_token_ids
    assert len(related.videos) == (len(rows[1]["videos"]) if sampling == "uniform" else
                                   sum(1 + (not all(p["slow"])) for p in plans[rows[1]["id"]]))
    assert [g.videos for g in groups] == [count.videos, related.videos, []]
    if sampling == "slowfast":
        assert isinstance(collector.video_items_of, RowVideoItems) and set(collector.video_items_of.plans) == {
            rows[0]["id"], rows[1]["id"]}

    class Learners:
        batches: list[dict] = []

        def compute_logprobs(self, batch: dict) -> list[list[float]]:
            return [[0.0] * len(ids) for ids in batch["input_ids"]]

        def train_step(self, batch: dict, loss: str, kwargs: dict) -> dict[str, float]:
            self.batches.append(batch)
            return {"loss": 0.0}

    for g, first in zip(groups, (10, 20, 30)):
        g.samples = [Sample([first, 2], "a", [-0.1, -0.2], "stop"), Sample([first, 3], "b", [-0.1, -0.2], "stop")]
        g.scores, g.correct = [1.0, 0.0], [True, False]
    learners = Learners()
    update_policy(learners, groups, OmegaConf.create({"seed": 0}), RLConfig(mini_batches=1), step=0)
    (batch,) = learners.batches
    by_first = {ids[mask.index(1)]: vids for ids, mask, vids in zip(batch["input_ids"], batch["loss_mask"], batch["videos"])}
    assert by_first == {10: count.videos, 20: related.videos, 30: []}


def test_bad_sampling_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="data.video_sampling"):
        RowVideoItems("random")
    with pytest.raises(ValueError, match="patch"):
        RowVideoItems("slowfast")

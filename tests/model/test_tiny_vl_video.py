"""(slow, real vLLM) Video rollouts of the tiny Qwen3-VL: the worker sends video items with their metadata, the
learner's batching rebuilds the same inputs from the GroupResult, and the sampled tokens' logprobs equal vLLM's
within 1e-4, before and after an in-place weight sync (vision tower and LM perturbed)."""

from __future__ import annotations

import json

import pytest
import torch

from rlsys.data.video.slowfast import SlowFastConfig
from rlsys.data.videos import plan_row, video_items


@pytest.mark.slow
def test_vllm_video_rollout_matches_the_learner_before_and_after_a_sync(ray_session, tiny_vl_dir, video_rows):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from rlsys.data.encode import encode_vl_prompt
    from rlsys.learner.batching import collate, make_batch, token_logprobs
    from rlsys.rollout.types import GroupRequest
    from rlsys.rollout.weight_sync import publish_version
    from rlsys.rollout.worker import IN_PROCESS_ENV, RolloutWorker
    from rlsys.runtime.ray_utils import ActorGroup, ActorResources, get

    processor = AutoProcessor.from_pretrained(tiny_vl_dir)
    model = AutoModelForImageTextToText.from_pretrained(tiny_vl_dir, dtype=torch.float32).eval()
    count = next(r for r in video_rows if r["task"] == "video_count")
    related = next(r for r in video_rows if r["task"] == "video_related")
    # The count row as SlowFast streams (slow + fast item, plan through JSON as stored); the related row's four
    # videos as one uniform item each.
    plans = json.loads(json.dumps(plan_row(count, 16, 2, 2, SlowFastConfig(token_budget=64))))
    count_items, related_items = video_items(count, plans), video_items(related)
    assert len(count_items) == 2 and len(related_items) == 4
    requests = [
        GroupRequest("count", prompt_token_ids=encode_vl_prompt(processor, count, n_videos=2), n=3, max_tokens=12,
                     seed=3, videos=count_items),
        GroupRequest("related", prompt_token_ids=encode_vl_prompt(processor, related), n=3, max_tokens=12, seed=4,
                     videos=related_items),
    ]

    def max_diff(results) -> float:
        """Learner batching (collate with the processor) over every sample of every result vs vLLM's logprobs."""
        ids, masks, videos, sampled = [], [], [], []
        for req, res in zip(requests, results):
            assert res.ok, res.error
            assert res.prompt_token_ids == req.prompt_token_ids and res.videos == req.videos
            for s in res.samples:
                ids.append(res.prompt_token_ids + s.token_ids)
                masks.append([0] * len(res.prompt_token_ids) + [1] * len(s.token_ids))
                videos.append(res.videos)
                sampled.append(s)
        batch = make_batch(ids, masks, videos=videos)
        mb = collate(batch, list(range(len(ids))), processor.tokenizer.pad_token_id, torch.device("cpu"), processor)
        with torch.no_grad():
            logp = token_logprobs(model(**mb.forward_inputs()).logits, mb.input_ids)
        worst = 0.0
        for row, s in enumerate(sampled):
            learner = mb.unexpand(logp, row, len(ids[row]))[-len(s.token_ids):]
            worst = max(worst, (learner - torch.tensor(s.logprobs)).abs().max().item())
        return worst

    group = ActorGroup(
        RolloutWorker, 1, name="vl-video-roundtrip", resources=ActorResources(num_cpus=0.5, env_vars=IN_PROCESS_ENV),
        init_kwargs={"model_path": tiny_vl_dir, "max_model_len": 512, "kv_cache_bytes": 64 << 20}, timeout=300,
    )
    try:
        actor = group.actors[0]
        bad_count = GroupRequest("bad-count", prompt_token_ids=requests[0].prompt_token_ids, videos=count_items[:1])
        missing = GroupRequest("missing", prompt_token_ids=encode_vl_prompt(processor, count),
                               videos=[{**count_items[0], "frames": ["/nonexistent/f0.png"] * len(count_items[0]["frames"])}])
        too_many = GroupRequest("too-many", prompt_token_ids=encode_vl_prompt(processor, related, n_videos=9),
                                videos=related_items * 2 + related_items[:1])
        first = get(actor.generate_groups.remote(requests + [bad_count, missing, too_many]), timeout=300,
                    what="generate")
        err_count, err_missing, err_many = first[2:]
        assert "2 video placeholders for 1 videos" in err_count.error
        assert "f0.png" in err_missing.error
        assert "9 videos; the engine allows 8" in err_many.error
        before = max_diff(first[:2])
        assert before < 1e-4, before

        with torch.no_grad():
            model.model.visual.blocks[0].mlp.linear_fc1.weight.mul_(3.0)
            model.model.language_model.layers[0].mlp.up_proj.weight.mul_(3.0)
        published = publish_version(model.state_dict().items(), 1 << 20, version=1)
        get(actor.sync_from_object_store.remote(published.refs, 1), timeout=120, what="sync")
        second = get(actor.generate_groups.remote(requests), timeout=300, what="generate")
        assert all(r.policy_version == 1 for r in second)
        changed = max(abs(a - b) for r1, r2 in zip(first, second) for s1, s2 in zip(r1.samples, r2.samples)
                      for a, b in zip(s1.logprobs, s2.logprobs))
        assert changed > 1e-3, changed
        after = max_diff(second)
        assert after < 1e-4, after
        print(f"video rollouts: max |logprob diff| learner vs vLLM before sync {before:.2e}, after {after:.2e}")
    finally:
        group.shutdown()


@pytest.mark.slow
def test_deepspeed_learner_scores_video_rollouts_like_vllm_after_a_training_step_and_sync(
    ray_session, tiny_vl_dir, video_rows
):
    """The real learner (DeepSpeed actor) on a batch built from a video GroupResult: its logprobs equal vLLM's
    sampled ones; after one SFT step on that batch and a weight sync they equal the engine's teacher-forced
    logprobs of the same tokens with the videos resent (`score_tokens(..., videos=)`), and differ from before."""
    from rlsys_testing import learner_config
    from transformers import AutoProcessor

    from rlsys.data.encode import encode_vl_prompt
    from rlsys.learner.batching import make_batch
    from rlsys.learner.group import LearnerGroup
    from rlsys.rollout.types import GroupRequest
    from rlsys.rollout.worker import IN_PROCESS_ENV, RolloutWorker
    from rlsys.runtime.ray_utils import ActorGroup, ActorResources, get

    processor = AutoProcessor.from_pretrained(tiny_vl_dir)
    count = next(r for r in video_rows if r["task"] == "video_count")
    items = video_items(count, json.loads(json.dumps(plan_row(count, 16, 2, 2, SlowFastConfig(token_budget=64)))))
    prompt = encode_vl_prompt(processor, count, n_videos=len(items))
    rollout = ActorGroup(
        RolloutWorker, 1, name="vl-video-learner", resources=ActorResources(num_cpus=0.5, env_vars=IN_PROCESS_ENV),
        init_kwargs={"model_path": tiny_vl_dir, "max_model_len": 512, "kv_cache_bytes": 64 << 20}, timeout=300,
    )
    learners = LearnerGroup(tiny_vl_dir, learner_config(optim={"lr": 1e-2, "total_steps": 1}))
    try:
        actor = rollout.actors[0]
        group = get(actor.generate_group.remote(GroupRequest("count", prompt_token_ids=prompt, n=3, max_tokens=12,
                                                             seed=5, videos=items)), timeout=300, what="generate")
        assert group.ok, group.error
        seqs = [group.prompt_token_ids + s.token_ids for s in group.samples]
        masks = [[0] * len(prompt) + [1] * len(s.token_ids) for s in group.samples]
        batch = make_batch(seqs, masks, videos=[group.videos] * len(seqs))

        def diff(a: list[list[float]], b: list[list[float]]) -> float:
            return max(abs(x - y) for u, v in zip(a, b) for x, y in zip(u, v))

        before = [lp[len(prompt):] for lp in learners.compute_logprobs(batch)]
        d_before = diff(before, [s.logprobs for s in group.samples])
        assert d_before < 1e-4, d_before
        learners.train_step(batch, "sft", {"reduction": "token_mean"})
        refs = learners.export_weights(1 << 20)
        get(actor.sync_from_object_store.remote(refs, 1), timeout=120, what="sync")
        after = [lp[len(prompt):] for lp in learners.compute_logprobs(batch)]
        engine = [get(actor.score_tokens.remote(prompt, s.token_ids, None, group.videos), timeout=120, what="score")
                  for s in group.samples]
        d_after, moved = diff(after, engine), diff(after, before)
        assert d_after < 1e-4, d_after
        assert moved > 1e-3, moved
        print(f"DeepSpeed learner vs vLLM on video rollouts: before {d_before:.2e}, after a step + sync {d_after:.2e} "
              f"(the step moved logprobs by {moved:.2e})")
    finally:
        learners.shutdown()
        rollout.shutdown()

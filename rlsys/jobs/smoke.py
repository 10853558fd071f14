"""`+exp=smoke`: the spine end to end on real Ray, vLLM and DeepSpeed.

Sample a group with per-token logprobs from a vLLM actor, take one learner step on it, push
the new weights into the running engine, and check that vLLM now scores the same tokens as the
learner does. Exits non-zero if any check fails.

With a vision-language model (`+exp=smoke_vl`: model=tiny_vl, or any HF VLM by model.path) the prompt
carries an image drawn into the run directory: vLLM expands it, the learner rebuilds the same pixel
inputs through the HF processor, and after the sync the engine rescores the same image (its
encoder cache must have been reset with the weights).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from rlsys.learner.batching import make_batch
from rlsys.learner.schedule import Schedule
from rlsys.learner.worker import is_vision_language
from rlsys.model.resolve import resolve_base_model
from rlsys.rollout.types import GroupRequest
from rlsys.runtime.ray_utils import get
from rlsys.stages.builders import build_learners, build_metrics, build_rollout_group, start_ray

log = logging.getLogger(__name__)


class SmokeCheckFailed(RuntimeError):
    pass


def run(cfg: Any) -> dict[str, float]:
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    start_ray(cfg)
    model_path = resolve_base_model(cfg)
    timings["setup_model_s"] = time.perf_counter() - t0

    t = time.perf_counter()
    rollout = build_rollout_group(cfg, model_path, num_actors=1)
    learners = build_learners(cfg, model_path, Schedule(lr=cfg.smoke.lr, total_steps=1))
    timings["start_workers_s"] = time.perf_counter() - t
    metrics = build_metrics(cfg)
    try:
        actor = rollout.actors[0]
        images = [draw_shapes(Path(cfg.run_dir) / "smoke_image.png")] if is_vision_language(model_path) else []
        if images:
            request = _vl_request(cfg, model_path, images)
        else:
            request = GroupRequest(
                "smoke-0",
                messages=[{"role": "user", "content": cfg.smoke.prompt}],
                n=cfg.smoke.group_size,
                temperature=1.0,
                max_tokens=cfg.smoke.max_tokens,
                seed=cfg.seed,
            )
        t = time.perf_counter()
        group = get(actor.generate_group.remote(request), timeout=cfg.ray.actor_timeout_s, what="rollout.generate")
        timings["rollout_s"] = time.perf_counter() - t
        if not group.ok:
            raise SmokeCheckFailed(f"rollout failed: {group.error}")
        prompt = group.prompt_token_ids
        seqs = [prompt + s.token_ids for s in group.samples]
        masks = [[0] * len(prompt) + [1] * len(s.token_ids) for s in group.samples]
        batch = make_batch(seqs, masks, images=[images] * len(seqs)) if images else make_batch(seqs, masks)

        # Before any update, learner and engine hold the same weights: their logprobs agree.
        before = learners.compute_logprobs(batch)
        diff_before = _max_diff([b[len(prompt):] for b in before], [s.logprobs for s in group.samples])

        t = time.perf_counter()
        train_metrics = learners.train_step(batch, "sft", {"reduction": "token_mean"})
        timings["train_s"] = time.perf_counter() - t

        t = time.perf_counter()
        refs = learners.export_weights(cfg.rollout.pool.sync_bucket_bytes)
        sync_s = get(actor.sync_from_object_store.remote(refs, 1), timeout=cfg.ray.actor_timeout_s, what="sync")
        timings["sync_total_s"] = time.perf_counter() - t
        timings["sync_load_s"] = sync_s

        after = learners.compute_logprobs(batch)
        # With images, the same image is resent: the engine must encode it with the new weights.
        extra = [images] if images else []
        engine_after = [
            get(actor.score_tokens.remote(prompt, s.token_ids, *extra), timeout=120, what="score_tokens")
            for s in group.samples
        ]
        learner_after = [a[len(prompt):] for a in after]
        diff_after = _max_diff(learner_after, engine_after)
        moved = _max_diff(learner_after, [s.logprobs for s in group.samples])
        version = get(actor.policy_version.remote(), timeout=60, what="policy_version")

        result = {
            "smoke/samples": len(group.samples),
            "smoke/completion_tokens": sum(len(s.token_ids) for s in group.samples),
            "smoke/logprob_maxdiff_before": diff_before,
            "smoke/logprob_maxdiff_after_sync": diff_after,
            "smoke/logprob_change_from_update": moved,
            "smoke/policy_version": version,
            **({"smoke/images": len(images)} if images else {}),
            **{f"train/{k}": v for k, v in train_metrics.items()},
            **{f"time/{k}": v for k, v in timings.items()},
        }
        metrics.log(result, step=1)
        learners.save_hf(str(Path(cfg.run_dir) / "checkpoints" / "final"))
        (Path(cfg.run_dir) / "summary.json").write_text(json.dumps(result, indent=2))
        log.info("smoke: %s", json.dumps(result, indent=1))

        tol = cfg.smoke.logprob_tol
        if diff_before > tol:
            raise SmokeCheckFailed(f"learner and vLLM disagree before the update: {diff_before:.2e} > {tol}")
        if moved <= 10 * tol:
            raise SmokeCheckFailed(f"the train step did not change the logprobs ({moved:.2e})")
        if diff_after > tol:
            raise SmokeCheckFailed(f"vLLM logprobs differ from the learner's after sync: {diff_after:.2e} > {tol}")
        if version != 1:
            raise SmokeCheckFailed(f"rollout actor reports policy version {version}, expected 1")
        return result
    finally:
        metrics.close(plots=cfg.logging.plots)
        rollout.shutdown()
        learners.shutdown()


def draw_shapes(path: Path, size: tuple[int, int] = (120, 90)) -> str:
    """A white canvas with a red square, a blue disc and a green triangle (the smoke's image)."""
    from PIL import Image, ImageDraw

    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    draw.rectangle([10, 10, 50, 50], fill="red")
    draw.ellipse([60, 20, 110, 80], fill="blue")
    draw.polygon([(20, 85), (45, 55), (70, 85)], fill="green")
    image.save(path)
    return str(path)


def _vl_request(cfg: Any, model_path: str, images: list[str]) -> GroupRequest:
    """The smoke question about `images`, rendered by the VLM's processor (one placeholder per image)."""
    from transformers import AutoProcessor

    from rlsys.data.encode import encode_vl_prompt

    processor = AutoProcessor.from_pretrained(model_path)
    prompt = encode_vl_prompt(processor, {"id": "smoke-0", "prompt": cfg.smoke.prompt, "images": images})
    return GroupRequest(
        "smoke-0",
        prompt_token_ids=prompt,
        n=cfg.smoke.group_size,
        temperature=1.0,
        max_tokens=cfg.smoke.max_tokens,
        seed=cfg.seed,
        images=images,
    )


def _max_diff(a: list[list[float]], b: list[list[float]]) -> float:
    worst = 0.0
    for x, y in zip(a, b):
        if len(x) != len(y):
            raise SmokeCheckFailed(f"length mismatch {len(x)} vs {len(y)}")
        worst = max([worst, *(abs(p - q) for p, q in zip(x, y))])
    return worst

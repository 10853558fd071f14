"""The learner group: N DeepSpeed ranks behind one small interface for the controller."""

from __future__ import annotations

import logging
from typing import Any

from rlsys.learner.batching import batch_size, shard_batch
from rlsys.learner.ulysses import check_layout, rank_shards
from rlsys.learner.worker import LearnerWorker
from rlsys.runtime.ray_utils import ActorGroup, ActorResources

log = logging.getLogger(__name__)


class LearnerGroup:
    """Data-parallel learners. Every call fans out to all ranks (the calls are collective)."""

    def __init__(
        self,
        model_path: str,
        learner_cfg: dict[str, Any],
        *,
        name: str = "learner",
        model_kind: str = "causal_lm",
        timeout: float = 1800.0,
        resources: ActorResources | None = None,
    ) -> None:
        n = int(learner_cfg["num_actors"])
        res = resources or ActorResources(
            num_cpus=learner_cfg["cpus_per_actor"], num_gpus=learner_cfg["gpus_per_actor"]
        )
        threads = learner_cfg.get("num_threads") or max(1, int(res.num_cpus))
        self.world_size = n
        # `learner.sequence_parallel`: S ranks share each sequence, so the batch splits over n / S groups.
        self.sp_size = int(learner_cfg.get("sequence_parallel", 1))
        check_layout(n, self.sp_size)
        self.model_path = model_path
        self.cfg = learner_cfg
        self.group = ActorGroup(
            LearnerWorker,
            n,
            name=name,
            resources=res,
            init_kwargs=lambda rank: {
                "rank": rank,
                "world_size": n,
                "model_path": model_path,
                "cfg": learner_cfg,
                "model_kind": model_kind,
                "num_threads": threads,
            },
            timeout=timeout,
        )
        addr, port = self.group.wait([self.group.actors[0].rendezvous_address.remote()], "rendezvous_address")[0]
        try:
            counts = self.group.call("setup", addr, port)[0]
        except BaseException:
            # A rank that failed to set up (e.g. a `trainable` pattern matching no parameter) leaves no actor behind.
            self.group.shutdown()
            raise
        # Trained and frozen tensors and elements (rlsys/learner/freeze.py); all parameters train by default.
        self.parameter_counts: dict[str, int] = counts
        log.info("%s: %d DeepSpeed rank(s) ready (ZeRO-%s, %s); training %d parameters in %d tensors, %d frozen in "
                 "%d tensors", name, n, learner_cfg["zero_stage"], learner_cfg["precision"], counts["trainable_params"],
                 counts["trainable_tensors"], counts["frozen_params"], counts["frozen_tensors"])

    @property
    def actors(self) -> list[Any]:
        """The rank actors in rank order (an NCCL weight broadcast starts from rank 0)."""
        return list(self.group.actors)

    def train_step(self, batch: dict[str, Any], loss_name: str, loss_kwargs: dict[str, Any] | None = None) -> dict[str, float]:
        """One optimizer step on the global batch; metrics are already reduced over ranks."""
        shards = rank_shards(shard_batch(batch, self.world_size // self.sp_size), self.sp_size)
        results = self.group.call_each("train_step", [(s, loss_name, loss_kwargs or {}) for s in shards])
        return results[0]

    def compute_logprobs(self, batch: dict[str, Any], reference: bool = False) -> list[list[float]]:
        """Per-token logprobs of every sequence, in the batch's order."""
        if batch_size(batch) == 0:
            return []
        # Inference needs no collective, but spreading it uses every rank.
        index = list(range(batch_size(batch)))
        shards = shard_batch({**batch, "fields": {**batch["fields"], "_index": index}}, self.world_size)
        parts = self.group.call_each("compute_logprobs", [(s, reference) for s in shards])
        out: list[list[float]] = [[] for _ in index]
        for shard, lps in zip(shards, parts):
            for i, lp in zip(shard["fields"]["_index"], lps):
                out[i] = lp
        return out

    def compute_scores(self, batch: dict[str, Any]) -> list[float]:
        index = list(range(batch_size(batch)))
        shards = shard_batch({**batch, "fields": {**batch["fields"], "_index": index}}, self.world_size)
        parts = self.group.call_each("compute_scores", [(s,) for s in shards])
        out = [0.0] * len(index)
        for shard, scores in zip(shards, parts):
            for i, sc in zip(shard["fields"]["_index"], scores):
                out[i] = sc
        return out

    def compute_embeddings(self, batch: dict[str, Any]) -> tuple[list[list[float]], list[list[float]]]:
        """Pooled (image, caption) embeddings of every row of a contrastive batch, in the batch's order."""
        index = list(range(batch_size(batch)))
        if not index:
            return [], []
        shards = shard_batch({**batch, "fields": {**batch["fields"], "_index": index}}, self.world_size)
        parts = self.group.call_each("compute_embeddings", [(s,) for s in shards])
        images: list[list[float]] = [[] for _ in index]
        texts: list[list[float]] = [[] for _ in index]
        for shard, part in zip(shards, parts):
            for row, i in enumerate(shard["fields"]["_index"]):
                images[i], texts[i] = part["image"][row], part["text"][row]
        return images, texts

    def export_weights(self, bucket_bytes: int) -> list[Any]:
        """Object-store refs of the full weights in buckets (rank 0 publishes)."""
        return self.group.call("export_weights", bucket_bytes)[0]

    def save_hf(self, out_dir: str) -> str:
        self.group.call("save_hf", out_dir)
        return out_dir

    def save_checkpoint(self, ckpt_dir: str, tag: str) -> str:
        return self.group.call("save_checkpoint", ckpt_dir, tag)[0]

    def load_checkpoint(self, ckpt_dir: str, tag: str) -> int:
        return self.group.call("load_checkpoint", ckpt_dir, tag)[0]

    def enable_reference(self, path: str | None = None) -> None:
        self.group.call("enable_reference", path)

    def shutdown(self) -> None:
        self.group.shutdown()

"""Learner worker: a Ray actor holding one DeepSpeed engine (one data-parallel rank).

The controller talks to the whole group through `LearnerGroup`; every method here that
touches parameters or gradients is collective, so all ranks are called together.
"""

from __future__ import annotations

import logging
import os
import random
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from rlsys.learner.batching import MicroBatch, collate, micro_batches, token_entropy, token_logprobs
from rlsys.learner.contrastive import (
    attach_head,
    check_contrastive_support,
    collate_pairs,
    contrastive_forward,
    contrastive_pass,
    is_head_parameter,
)
from rlsys.learner.engine import deepspeed_config, pick_backend, set_dist_env
from rlsys.learner.freeze import freeze_parameters
from rlsys.learner.objectives import ForwardOut, Objective, make_objective
from rlsys.learner.schedule import lr_lambda
from rlsys.learner.ulysses import check_objective, sp_setup
from rlsys.learner.vl_passes import ImageTokens, VisionSync, engine_logits, padding_pass

log = logging.getLogger(__name__)

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja")


def is_vision_language(model_path: str) -> bool:
    """Whether `model_path` holds a vision-language model (a `vision_config` in its config.json)."""
    import json

    path = Path(model_path) / "config.json"
    return path.is_file() and bool(json.loads(path.read_text()).get("vision_config"))


def load_policy_model(model_path: str, dtype: torch.dtype) -> torch.nn.Module:
    """The HF model scored and trained: a causal LM, or (vision_config) an image-text-to-text model."""
    from transformers import AutoModelForCausalLM, AutoModelForImageTextToText

    if is_vision_language(model_path):
        return AutoModelForImageTextToText.from_pretrained(model_path, dtype=dtype)
    return AutoModelForCausalLM.from_pretrained(model_path, dtype=dtype)


class LearnerWorker:
    """One DeepSpeed rank: train steps with named losses, logprobs, weight export, checkpoints."""

    def __init__(
        self,
        rank: int,
        world_size: int,
        model_path: str,
        cfg: dict[str, Any],
        model_kind: str = "causal_lm",
        num_threads: int | None = None,
    ) -> None:
        # Heavy set-up waits for `setup`: rank 0's address is only known once it is placed.
        self.rank, self.world_size = rank, world_size
        self.cfg = cfg
        self.model_path = model_path
        self.model_kind = model_kind
        if num_threads:
            torch.set_num_threads(num_threads)

    def rendezvous_address(self) -> tuple[str, int]:
        """This node's address and a free port, for rank 0 to host the process group."""
        import socket

        import ray

        with socket.socket() as sock:
            sock.bind(("", 0))
            port = sock.getsockname()[1]
        return ray.util.get_node_ip_address(), port

    def setup(self, master_addr: str, master_port: int) -> dict[str, int]:
        """Join the process group and build the DeepSpeed engine (collective over all ranks). Returns the
        counts of trained and frozen parameters (`freeze_parameters`)."""
        cfg, model_path, model_kind = self.cfg, self.model_path, self.model_kind
        set_dist_env(self.rank, self.world_size, master_addr, master_port)
        import deepspeed
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        deepspeed.init_distributed(dist_backend=pick_backend(cfg["dist_backend"]), auto_mpi_discovery=False)
        self.device = torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else torch.device("cpu")
        torch.manual_seed(cfg["seed"])
        random.seed(cfg["seed"])
        self.tokenizer = AutoTokenizer.from_pretrained(model_path)
        # A vision-language model (a `vision_config` in config.json): batches with images go through its processor.
        self.processor: Any = None
        if model_kind != "reward_model" and is_vision_language(model_path):
            from transformers import AutoProcessor

            self.processor = AutoProcessor.from_pretrained(model_path)
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        # Micro-batch budgets count each image placeholder as the tokens it expands into.
        self.image_tokens = ImageTokens(self.processor)
        # ZeRO-3 over several ranks: a forward without images still runs the vision tower, so all ranks gather
        # alike (rlsys/learner/vl_passes.py). Contrastive stages refuse ZeRO-3.
        self.vision_sync = (VisionSync(self.processor, self.pad_id, self.device) if self.processor is not None
                            and cfg["zero_stage"] == 3 and self.world_size > 1 and not cfg.get("contrastive") else None)
        if model_kind == "reward_model":
            model = AutoModelForSequenceClassification.from_pretrained(model_path, num_labels=1, dtype=torch.float32)
            model.config.pad_token_id = self.pad_id
        else:
            model = load_policy_model(model_path, torch.float32)
        # Parameters matching none of the stage's `trainable` patterns are frozen before DeepSpeed sees the
        # model: they join no optimizer group and keep their loaded bytes (rlsys/learner/freeze.py).
        self.parameter_counts = freeze_parameters(model, cfg.get("trainable") or [],
                                                  where=cfg.get("trainable_key", "trainable"))
        # bf16 casts every module tensor to bf16, frozen ones too: rank 0 (which exports and saves) keeps an exact
        # copy of each frozen tensor that bf16 would round (none for a bf16 checkpoint), so they leave unchanged.
        self.frozen_exact: dict[str, torch.Tensor] = {}
        if cfg["precision"] == "bf16" and self.rank == 0:
            for name, param in model.named_parameters():
                value = param.detach()
                if not param.requires_grad and not torch.equal(value.to(torch.bfloat16).to(value.dtype), value):
                    self.frozen_exact[name] = value.to("cpu", copy=True)
        # A contrastive stage (`contrastive`: its config key) trains SigLIP's temperature and bias beside the model:
        # attached after freezing so no `trainable` pattern freezes them; not counted in `parameter_counts`.
        self.contrastive = cfg.get("contrastive")
        if self.contrastive:
            check_contrastive_support(self.processor, cfg["zero_stage"], str(self.contrastive))
            attach_head(model)
        if cfg.get("gradient_checkpointing"):
            model.gradient_checkpointing_enable()
        # `learner.sequence_parallel` > 1: S ranks share each sequence (rlsys/learner/ulysses.py).
        self.sp = sp_setup(model, self.rank, self.world_size, model_path, model_kind, cfg.get("sequence_parallel", 1),
                           cfg["zero_stage"])
        optim = cfg["optim"]
        schedule = dict(
            warmup_steps=optim["warmup_steps"],
            total_steps=optim["total_steps"],
            schedule=optim["schedule"],
            min_lr_ratio=optim["min_lr_ratio"],
            anneal_fraction=optim.get("anneal_fraction", 0.0),
            anneal_lr_ratio=optim.get("anneal_lr_ratio", 0.1),
        )
        self.engine, self.optimizer, _, self.scheduler = deepspeed.initialize(
            model=model,
            model_parameters=[p for p in model.parameters() if p.requires_grad],
            config=deepspeed_config(cfg),
            lr_scheduler=lambda opt: torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_lambda(s, **schedule)),
        )
        from rlsys.learner.checkpoint import install_weights_only_loader

        # Checkpoint files are read with torch's weights-only unpickler: a resumed `.pt` cannot run code.
        install_weights_only_loader(self.engine)
        self.ref_model: torch.nn.Module | None = None
        self.objectives: dict[str, Objective] = {}
        self.global_step = 0
        return self.parameter_counts

    # ------------------------------------------------------------------ helpers
    def _all_reduce(self, values: list[float], op: str = "sum") -> list[float]:
        import torch.distributed as dist

        tensor = torch.tensor(values, dtype=torch.float64, device=self.device)
        if self.world_size > 1:
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM if op == "sum" else dist.ReduceOp.MAX)
        return tensor.tolist()

    def _objective(self, loss_name: str, loss_kwargs: dict[str, Any]) -> Objective:
        key = f"{loss_name}:{sorted(loss_kwargs.items())}"
        if key not in self.objectives:
            self.objectives[key] = make_objective(loss_name, loss_kwargs)
        return self.objectives[key]

    def enable_reference(self, path: str | None = None) -> None:
        """Load a frozen reference model (default: the initial weights) for KL / preference losses, in the
        training precision (a full unsharded copy per rank: bf16 halves it for real models)."""
        dtype = torch.bfloat16 if self.cfg["precision"] == "bf16" else torch.float32
        self.ref_model = load_policy_model(path or self.model_path, dtype)
        self.ref_model.to(self.device).eval().requires_grad_(False)

    def _forward(self, mb: MicroBatch, obj: Objective | None, with_grad: bool) -> tuple[ForwardOut, torch.Tensor | None]:
        """The objective's inputs, and a zero-valued anchor to add to the loss when the forward ran the vision
        tower on a dummy image (`VisionSync`), else None."""
        if obj is not None and obj.needs_embeddings:
            with torch.set_grad_enabled(with_grad):
                return contrastive_forward(self.engine, mb), None
        if self.sp is not None:  # a micro-batch `localize`d by train_step: this rank's positions and tokens
            with torch.set_grad_enabled(with_grad):
                return ForwardOut(logprobs=self.sp.logprobs(self.engine, mb)), None
        out = ForwardOut()
        with torch.set_grad_enabled(with_grad):
            logits, anchor = engine_logits(self.engine, self.vision_sync, mb)
        if self.model_kind == "reward_model":
            out.scores = logits[:, 0].float()
            return out, anchor
        out.logprobs = token_logprobs(logits, mb.input_ids)
        if obj is not None and obj.needs_entropy:
            with torch.no_grad():
                out.entropy = token_entropy(logits.detach())
        if obj is not None and obj.needs_ref:
            if "ref_logprobs" in mb.fields:
                out.ref_logprobs = mb.fields["ref_logprobs"]
            else:
                if self.ref_model is None:
                    self.enable_reference()
                assert self.ref_model is not None
                with torch.no_grad():
                    ref_logits = self.ref_model(**mb.forward_inputs()).logits
                    out.ref_logprobs = token_logprobs(ref_logits, mb.input_ids)
        return out, anchor

    def _micro(self, batch: dict[str, Any], expanded: bool = True) -> list[list[int]]:
        """Micro-batch groups; `expanded`: token budgets count image placeholders as their expansion (a
        contrastive batch's images never enter the text)."""
        extra = self.image_tokens.extra_tokens(batch) if expanded else None
        return micro_batches(batch, self.cfg["micro_batch_size"], self.cfg["max_tokens_per_micro"], extra)

    def _collate(self, batch: dict[str, Any], idx: list[int], obj: Objective | None = None) -> MicroBatch:
        """A micro-batch in the form the objective reads: (caption, image) rows for embeddings, else sequences."""
        if obj is not None and obj.needs_embeddings:
            if not self.contrastive:
                raise ValueError(f"loss {obj.loss_name!r} needs a learner built for a contrastive stage "
                                 "(learner config `contrastive`), which attaches its temperature and bias")
            return collate_pairs(batch, idx, self.pad_id, self.device, self.processor)
        return collate(batch, idx, self.pad_id, self.device, self.processor)

    # ------------------------------------------------------------------ training
    def train_step(self, batch: dict[str, Any], loss_name: str, loss_kwargs: dict[str, Any] | None = None) -> dict[str, float]:
        """One optimizer step on this rank's shard: micro-batches with gradient accumulation.

        Each micro-batch loss is divided by the global denominator (all ranks, all micro-batches)
        and multiplied by the world size, because DeepSpeed averages gradients over ranks; the
        accumulated gradient is then exactly that of the global-batch mean.
        """
        started = time.perf_counter()
        obj = self._objective(loss_name, dict(loss_kwargs or {}))
        self.engine.train()
        groups = self._micro(batch, expanded=not obj.needs_embeddings) if batch["input_ids"] else []
        mbs = [self._collate(batch, idx, obj) for idx in groups]
        if self.sp is not None:
            check_objective(obj, self.sp.size)
            mbs = [self.sp.localize(mb, self.pad_id) for mb in mbs]
        local_den = sum(obj.denominator(mb) for mb in mbs)
        n_micro_max, _ = self._all_reduce([float(len(mbs)), 0.0], op="max")
        (global_den,) = self._all_reduce([local_den])
        global_den = max(global_den, 1e-8)
        metric_sums: dict[str, float] = {}
        tokens = 0
        for i in range(int(n_micro_max)):
            self.engine.set_gradient_accumulation_boundary(i == int(n_micro_max) - 1)
            if i < len(mbs):
                mb = mbs[i]
                out, anchor = self._forward(mb, obj, with_grad=True)
                loss, metrics = obj.loss(out, mb, global_den)
                if anchor is not None:
                    loss = loss + anchor
                weight = obj.denominator(mb)
                for key, value in metrics.items():
                    # "loss" is already this micro-batch's share of the global mean; the rest are
                    # local means, weighted by the micro-batch's share of the denominator.
                    contribution = float(value) * (global_den if key == "loss" else weight)
                    metric_sums[key] = metric_sums.get(key, 0.0) + contribution
                tokens += int(mb.attention_mask.sum())
            else:
                # A rank with fewer micro-batches still joins every collective of the step.
                loss = self._dummy_loss()
            self.engine.backward(loss * self.world_size, scale_wrt_gas=False)
        plain_norm = self._plain_grad_norm()
        self.engine.step()
        self.global_step += 1
        keys = self._metric_keys(metric_sums)
        reduced = self._all_reduce([metric_sums.get(k, 0.0) for k in keys] + [float(tokens)])
        metrics = {k: v / global_den for k, v in zip(keys, reduced[:-1])}
        metrics.update(obj.end_step(self._all_reduce))
        grad_norm = self.engine.get_global_grad_norm()
        metrics.update(
            {
                "grad_norm": float(grad_norm) if grad_norm is not None else plain_norm,
                "lr": float(self.scheduler.get_last_lr()[0]),
                "tokens": reduced[-1],
                "micro_batches": n_micro_max,
                "step_time_s": time.perf_counter() - started,
            }
        )
        return metrics

    def _metric_keys(self, metric_sums: dict[str, float]) -> list[str]:
        """The metric names of every rank (a rank without data has none), so all reduce the same vector."""
        keys = set(metric_sums)
        if self.world_size > 1:
            import torch.distributed as dist

            gathered: list[Any] = [None] * self.world_size
            dist.all_gather_object(gathered, sorted(keys))
            keys = {k for part in gathered for k in part}
        return sorted(keys)

    def _plain_grad_norm(self) -> float:
        """Gradient norm when DeepSpeed keeps none (fp32 without ZeRO clips but drops the norm)."""
        if self.cfg["zero_stage"] > 0 or self.cfg["precision"] != "fp32":
            return float("nan")
        grads = [p.grad.detach().float().norm() for p in self.engine.module.parameters() if p.grad is not None]
        return float(torch.stack(grads).norm()) if grads else 0.0

    def _dummy_loss(self) -> torch.Tensor:
        """A zero loss through the whole model, so this rank joins ZeRO's gathers and reductions."""
        if self.contrastive:
            # Zero gradients on exactly the tensors a contrastive micro-batch gives gradients (ZeRO 0-2 only).
            return self.engine(anchor=True)
        if self.vision_sync is not None:
            return padding_pass(self.engine, self.vision_sync)
        ids = torch.full((1, 2), self.pad_id, dtype=torch.long, device=self.device)
        out = self.engine(input_ids=ids)
        return out.logits.sum() * 0.0

    def _inference_passes(self, batch: dict[str, Any]) -> list[tuple[list[int], MicroBatch | None]]:
        """Micro-batches padded to the same count on every rank (ZeRO-3 forwards are collective)."""
        groups = self._micro(batch) if batch["input_ids"] else []
        (n_max,) = self._all_reduce([float(len(groups))], op="max")
        passes: list[tuple[list[int], MicroBatch | None]] = [
            (idx, collate(batch, idx, self.pad_id, self.device, self.processor)) for idx in groups
        ]
        return passes + [([], None)] * (int(n_max) - len(groups))

    @torch.no_grad()
    def compute_logprobs(self, batch: dict[str, Any], reference: bool = False) -> list[list[float]]:
        """Per-token logprobs aligned with input_ids (position 0 is 0), for every sequence."""
        if reference and self.ref_model is None:
            self.enable_reference()
        model = self.ref_model if reference else self.engine
        assert model is not None
        model.eval()
        results: list[list[float]] = [[] for _ in batch["input_ids"]]
        for idx, mb in self._inference_passes(batch):
            if mb is None:
                if not reference:
                    self._dummy_loss()
                continue
            logits = model(**mb.forward_inputs()).logits if reference else engine_logits(model, self.vision_sync, mb)[0]
            lp = token_logprobs(logits, mb.input_ids)
            for row, i in enumerate(idx):
                results[i] = mb.unexpand(lp, row, len(batch["input_ids"][i])).tolist()
        return results

    @torch.no_grad()
    def compute_scores(self, batch: dict[str, Any]) -> list[float]:
        """Reward-model scores (model_kind=reward_model) for every sequence."""
        self.engine.eval()
        scores = [0.0] * len(batch["input_ids"])
        for idx, mb in self._inference_passes(batch):
            if mb is None:
                self._dummy_loss()
                continue
            values = self.engine(input_ids=mb.input_ids, attention_mask=mb.attention_mask).logits[:, 0]
            for row, i in enumerate(idx):
                scores[i] = float(values[row])
        return scores

    @torch.no_grad()
    def compute_embeddings(self, batch: dict[str, Any]) -> dict[str, list[list[float]]]:
        """Pooled image and caption embeddings (`image`, `text`: one row per batch row) of a contrastive batch
        (rlsys/learner/contrastive.py), e.g. for retrieval metrics."""
        check_contrastive_support(self.processor, self.cfg["zero_stage"], "compute_embeddings")
        self.engine.eval()
        out: dict[str, list[list[float]]] = {"image": [[] for _ in batch["input_ids"]],
                                             "text": [[] for _ in batch["input_ids"]]}
        for idx in self._micro(batch, expanded=False) if batch["input_ids"] else []:
            mb = collate_pairs(batch, idx, self.pad_id, self.device, self.processor)
            # No gradients, hence none of the engine's backward hooks: the model itself serves any VLM learner.
            image, text = (t.float().cpu() for t in contrastive_pass(self.engine.module, mb))
            for row, i in enumerate(idx):
                out["image"][i], out["text"][i] = image[row].tolist(), text[row].tolist()
        return out

    # ------------------------------------------------------------------ weights
    def gathered_parameters(self) -> Iterator[tuple[str, torch.nn.Parameter]]:
        """Every parameter of the HF model in full, one at a time, in `named_parameters` order; the contrastive
        head is not an HF weight and lives only in DeepSpeed checkpoints. Under ZeRO-3 each is gathered only
        while it is yielded (collective: all ranks iterate together)."""
        import deepspeed

        if self.cfg["zero_stage"] == 3:
            # A forward can leave prefetched parameters in flight (seen on a 1.4B model on an H100);
            # gathering one then fails with "Cannot partition a param in flight". Settle them first.
            self.engine.optimizer.empty_partition_cache()
        for name, param in self.engine.module.named_parameters():
            if is_head_parameter(name):
                continue
            if hasattr(param, "ds_id"):
                with deepspeed.zero.GatheredParameters([param], modifier_rank=None):
                    yield name, param
            else:
                yield name, param

    def _full_parameters(self) -> Iterator[tuple[str, torch.Tensor]]:
        """Full fp32 CPU copies of every parameter (collective under ZeRO-3); a frozen tensor that bf16 rounded
        comes from its exact copy (rank 0)."""
        for name, param in self.gathered_parameters():
            exact = self.frozen_exact.get(name)
            yield name, (exact if exact is not None else param.detach()).to("cpu", torch.float32, copy=True)

    def export_weights(self, bucket_bytes: int) -> list[Any]:
        """Publish full weights to the Ray object store in buckets; rank 0 returns the refs."""
        import ray

        refs: list[Any] = []
        bucket: list[tuple[str, torch.Tensor]] = []
        size = 0
        for name, tensor in self._full_parameters():
            if self.rank != 0:
                continue
            bucket.append((name, tensor))
            size += tensor.numel() * tensor.element_size()
            if size >= bucket_bytes:
                refs.append(ray.put(bucket))
                bucket, size = [], 0
        if bucket:
            refs.append(ray.put(bucket))
        return refs

    def state_dict_cpu(self) -> dict[str, torch.Tensor]:
        """Full fp32 state (collective); only rank 0's return value is meaningful."""
        return dict(self._full_parameters())

    def save_hf(self, out_dir: str) -> str:
        """Write an HF `save_pretrained` directory (safetensors + tokenizer) from rank 0."""
        state = self.state_dict_cpu()
        if self.rank == 0:
            out = Path(out_dir)
            out.mkdir(parents=True, exist_ok=True)
            self.engine.module.save_pretrained(out, state_dict=state, safe_serialization=True)
            for name in TOKENIZER_FILES:
                src = Path(self.model_path) / name
                if src.exists():
                    shutil.copy(src, out / name)
            self.tokenizer.save_pretrained(out)
            if self.processor is not None:
                # Image / video processor configs (and the processor's chat template) for vLLM and HF.
                self.processor.save_pretrained(out)
        return out_dir

    # ------------------------------------------------------------------ checkpoints
    def save_checkpoint(self, ckpt_dir: str, tag: str) -> str:
        """DeepSpeed checkpoint (weights, optimizer, scheduler) plus RNG and objective state."""
        client_state = {
            "global_step": self.global_step,
            "torch_rng": torch.random.get_rng_state(),
            "python_rng": random.getstate(),
            "objectives": {
                k: {"loss": o.loss_name, "kwargs": o.kwargs, "state": o.state_dict()}
                for k, o in self.objectives.items()
            },
        }
        # save_latest=False: the caller owns the "latest" pointer and writes it only once its own
        # state sits next to the weights, so a kill in between never leaves a half checkpoint.
        self.engine.save_checkpoint(ckpt_dir, tag=tag, client_state=client_state, save_latest=False)
        return os.path.join(ckpt_dir, tag)

    def load_checkpoint(self, ckpt_dir: str, tag: str) -> int:
        """Restore what `save_checkpoint` wrote under `ckpt_dir/tag`; every file is read weights-only
        (rlsys/learner/checkpoint.py), so a crafted file raises UnsafeCheckpointError instead of running."""
        if os.path.basename(tag) != tag or tag in ("", ".", ".."):
            raise ValueError(f"checkpoint tag {tag!r} is not a directory name inside {ckpt_dir}")
        if self.engine.load_universal_checkpoint():
            # DeepSpeed's universal-checkpoint path calls torch.load(weights_only=False) itself.
            raise RuntimeError("DeepSpeed universal checkpoints are not supported by rlsys resume")
        _, client_state = self.engine.load_checkpoint(
            ckpt_dir, tag=tag, load_optimizer_states=True, load_lr_scheduler_states=True
        )
        if client_state is None:
            raise FileNotFoundError(f"no learner checkpoint {tag!r} in {ckpt_dir}")
        self.global_step = int(client_state["global_step"])
        torch.random.set_rng_state(client_state["torch_rng"])
        random.setstate(client_state["python_rng"])
        for key, saved in client_state.get("objectives", {}).items():
            obj = self.objectives.setdefault(key, make_objective(saved["loss"], saved["kwargs"]))
            obj.load_state_dict(saved["state"])
        return self.global_step

    def ping(self) -> int:
        return self.rank


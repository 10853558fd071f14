"""Ulysses-style sequence parallelism (`learner.sequence_parallel = S`): S ranks share each sequence.

Layout. The learner's W ranks form W/S sequence-parallel (SP) groups of S consecutive ranks; every rank of
group g gets the same data shard (LearnerGroup.train_step), so the data-parallel degree is W/S. Each
micro-batch is right-padded to a length T that S divides; rank r of a group runs the model on the
contiguous positions [r*T/S, (r+1)*T/S) (its input_ids slice and their global position ids). Everything
but attention is position-wise, so only attention needs the other ranks: the registered attention
function `ulysses_sdpa` exchanges q, k, v with one all-to-all each, from sequence-sharded [B, H, T/S, d]
to head-sharded [B, H/S, T, d], runs causal SDPA over the whole sequence for its H/S heads, and
exchanges the output back. The exchanges are autograd functions whose backward is the opposite
exchange, so gradients reach the ranks that own the positions.

Padding sits at the right and attention is causal, so padded keys only reach padded queries, which are
never scored: no padding mask is needed, and the mask HF builds for the local slice is ignored.

Loss. Position p predicts token p+1, so a rank computes the logprobs of the tokens whose predicting
position lies in its slice (it holds the full input_ids, hence the label of its last position), and its
copy of the micro-batch's loss mask is zeroed elsewhere: each token is scored by exactly one rank of the
group. For a loss that is a plain sum over tokens divided by the global token count (TokenNLL: `ntp`,
`sft` with reduction=token_mean) the ranks' local denominators then add up to the global one without
correction, each rank's gradient is its tokens' share (the exchanges' backward carries the cross-rank
terms), and the learner's `loss * world_size` under DeepSpeed's mean over all W ranks sums the shares:
exactly the global-batch gradient. Losses with per-sequence weights or sequence-level terms (sample
means, sequence ratios, preference pairs) would need the whole sequence on one rank and are refused.

Micro-batch budgets (`learner.max_tokens_per_micro`) still count whole padded sequences, so with S ranks
each forward holds about budget / S positions per rank.

Vision-language models (Qwen3-VL): every rank runs the multimodal front end (embeddings, vision tower, mRoPE
position ids) on the whole micro-batch and only the language model's decoder on its slice (ulysses_vl.py,
which also explains why the ranks' gradients still add up); ZeRO-3 with a VLM is refused.

Inference (`compute_logprobs`) does not use the groups: the attention function falls back to plain SDPA
whenever it is called without a group, so each rank scores whole sequences as without SP.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from rlsys.learner.batching import MicroBatch
from rlsys.learner.ulysses_vl import (
    PER_POSITION_INPUTS,
    check_vl_model,
    is_vision_language_config,
    language_model_of,
    local_logits,
)

ATTENTION_NAME = "ulysses_sdpa"
KEY = "learner.sequence_parallel"


# ---------------------------------------------------------------------------------------------- pure layout
def padded_length(length: int, size: int) -> int:
    """`length` rounded up to a multiple of the SP size."""
    return -(-length // size) * size


def local_span(length: int, size: int, index: int) -> tuple[int, int]:
    """Positions [start, end) that SP rank `index` runs, of a padded `length` (a multiple of `size`)."""
    if length % size:
        raise ValueError(f"sequence length {length} is not a multiple of {KEY}={size}")
    chunk = length // size
    return index * chunk, (index + 1) * chunk


def scored_span(length: int, size: int, index: int) -> tuple[int, int]:
    """Tokens [lo, hi) whose logprob SP rank `index` computes: those predicted from a position of its span
    (token t from position t-1; token 0 has no predictor). Over the ranks the spans tile [1, length)."""
    start, end = local_span(length, size, index)
    return start + 1, min(end + 1, length)


def pack_seq_to_head(x: torch.Tensor, size: int) -> torch.Tensor:
    """[B, H, L, d] (my positions, all heads) -> [S, B, H/S, L, d]: block j goes to rank j (its heads)."""
    b, h, n, d = x.shape
    return x.reshape(b, size, h // size, n, d).permute(1, 0, 2, 3, 4).contiguous()


def unpack_seq_to_head(received: torch.Tensor) -> torch.Tensor:
    """[S, B, H/S, L, d] (block j: rank j's positions of my heads) -> [B, H/S, S*L, d]."""
    s, b, h, n, d = received.shape
    return received.permute(1, 2, 0, 3, 4).reshape(b, h, s * n, d)


def pack_head_to_seq(x: torch.Tensor, size: int) -> torch.Tensor:
    """[B, H/S, T, d] (my heads, all positions) -> [S, B, H/S, T/S, d]: block j goes to rank j (its positions)."""
    b, h, t, d = x.shape
    return x.reshape(b, h, size, t // size, d).permute(2, 0, 1, 3, 4).contiguous()


def unpack_head_to_seq(received: torch.Tensor) -> torch.Tensor:
    """[S, B, H/S, L, d] (block j: rank j's heads at my positions) -> [B, H, L, d]."""
    s, b, h, n, d = received.shape
    return received.permute(1, 0, 2, 3, 4).reshape(b, s * h, n, d)


def simulate_exchange(sent: list[torch.Tensor]) -> list[torch.Tensor]:
    """What each of S ranks receives from an all-to-all where rank j sends block i of `sent[j]` to rank i
    (received[i][j] = sent[j][i]): the one-process model of `dist.all_to_all_single`, for tests."""
    return [torch.stack([blocks[i] for blocks in sent]) for i in range(len(sent))]


def simulated_attention(queries: list[torch.Tensor], keys: list[torch.Tensor], values: list[torch.Tensor],
                        scaling: float | None = None) -> list[torch.Tensor]:
    """The S ranks' attention outputs [B, H, L, d] from their sequence slices, with the exchanges simulated
    in one process (same packing, kv expansion and head-sharded SDPA as `ulysses_attention`), for tests."""
    size, heads = len(queries), queries[0].shape[1]
    if keys[0].shape[1] % size:
        keys, values = [expand_kv(k, heads) for k in keys], [expand_kv(v, heads) for v in values]

    def to_heads(parts: list[torch.Tensor]) -> list[torch.Tensor]:
        return [unpack_seq_to_head(r) for r in simulate_exchange([pack_seq_to_head(p, size) for p in parts])]

    q, k, v = to_heads(queries), to_heads(keys), to_heads(values)
    outs = [head_sharded_attention(q[r], expand_kv(k[r], q[r].shape[1]), expand_kv(v[r], q[r].shape[1]), scaling)
            for r in range(size)]
    return [unpack_head_to_seq(r) for r in simulate_exchange([pack_head_to_seq(o, size) for o in outs])]


# ---------------------------------------------------------------------------------------------- collectives
def _exchange(packed: torch.Tensor, group: Any) -> torch.Tensor:
    import torch.distributed as dist

    received = torch.empty_like(packed)
    dist.all_to_all_single(received, packed, group=group)
    return received


class _Exchange(torch.autograd.Function):
    """Sequence-sharded -> head-sharded (`to_heads`) or back; the backward is the opposite exchange of the gradient."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, group: Any, size: int, to_heads: bool) -> torch.Tensor:
        ctx.group, ctx.size, ctx.to_heads = group, size, to_heads
        return _exchange_as(x, group, size, to_heads)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None, None]:
        return _exchange_as(grad, ctx.group, ctx.size, not ctx.to_heads), None, None, None


def _exchange_as(x: torch.Tensor, group: Any, size: int, to_heads: bool) -> torch.Tensor:
    if to_heads:
        return unpack_seq_to_head(_exchange(pack_seq_to_head(x, size), group))
    return unpack_head_to_seq(_exchange(pack_head_to_seq(x, size), group))


def head_sharded_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, scaling: float | None,
                           dropout: float = 0.0) -> torch.Tensor:
    """Causal SDPA of one rank's heads over the whole sequence: [B, h, T, d] each (k, v already expanded
    to q's heads) -> [B, h, T, d]."""
    return F.scaled_dot_product_attention(query, key, value, dropout_p=dropout, scale=scaling, is_causal=True)


def expand_kv(x: torch.Tensor, num_heads: int) -> torch.Tensor:
    """Repeat grouped key/value heads [B, Hkv, L, d] to [B, num_heads, L, d] (query head h uses kv head
    h // (num_heads / Hkv), as HF's repeat_kv)."""
    groups = num_heads // x.shape[1]
    return x if groups == 1 else x.repeat_interleave(groups, dim=1)


def ulysses_attention(module: torch.nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                      attention_mask: torch.Tensor | None, dropout: float = 0.0, scaling: float | None = None,
                      ulysses_group: Any = None, ulysses_size: int = 1, **kwargs: Any) -> tuple[torch.Tensor, None]:
    """HF attention function (`AttentionInterface` name `ulysses_sdpa`). With `ulysses_group` (passed through
    the model's forward kwargs, so gradient-checkpoint recomputation gets it too) q, k, v [B, H*, L, d] hold
    this rank's L positions and attention runs over all S*L positions; without it, plain HF SDPA."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    if ulysses_group is None:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      **kwargs)
    if kwargs.get("sliding_window") is not None:
        raise ValueError(f"{KEY}: sliding-window attention layers are not supported")
    heads = query.shape[1]
    # Grouped kv heads split over the ranks when S divides their count (q head chunk r then uses exactly kv
    # chunk r); otherwise they are repeated to one per query head first (more traffic, same result).
    if key.shape[1] % ulysses_size:
        key, value = expand_kv(key, heads), expand_kv(value, heads)
    q, k, v = (_Exchange.apply(t, ulysses_group, ulysses_size, True) for t in (query, key, value))
    out = head_sharded_attention(q, expand_kv(k, q.shape[1]), expand_kv(v, q.shape[1]), scaling,
                                 dropout if module.training else 0.0)
    return _Exchange.apply(out, ulysses_group, ulysses_size, False).transpose(1, 2).contiguous(), None


def register_attention() -> None:
    """Register `ulysses_sdpa` with transformers; its masks are SDPA's (used only on the plain path)."""
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

    AttentionInterface.register(ATTENTION_NAME, ulysses_attention)
    ALL_MASK_ATTENTION_FUNCTIONS.register(ATTENTION_NAME, sdpa_mask)


# ---------------------------------------------------------------------------------------------- checks
def check_layout(world_size: int, size: int) -> None:
    if size < 1 or world_size % size:
        raise ValueError(f"{KEY}={size} must divide learner.num_actors={world_size} (each sequence-parallel group "
                         "is that many consecutive ranks)")


def check_model(config: Any, model_kind: str, model_path: str, size: int, zero_stage: int = 0) -> None:
    """Refuse models the SP path cannot split exactly (named by `learner.sequence_parallel`)."""
    where = f"{KEY}={size} with model {model_path}"
    if model_kind != "causal_lm":
        raise ValueError(f"{where}: only causal LMs are supported, not model_kind={model_kind!r}")
    if is_vision_language_config(config):
        check_vl_model(config, where, zero_stage)
        config = config.text_config  # the decoder that is split
    heads = int(config.num_attention_heads)
    if heads % size:
        raise ValueError(f"{where}: num_attention_heads={heads} is not divisible by {size}")
    if getattr(config, "use_sliding_window", False) and "sliding_attention" in (getattr(config, "layer_types", None)
                                                                               or []):
        raise ValueError(f"{where}: sliding-window attention layers are not supported")
    rope = getattr(config, "rope_parameters", None) or {}
    rope_type = str(rope.get("rope_type", "default")) if isinstance(rope, dict) else "default"
    if "dynamic" in rope_type or rope_type == "longrope":
        raise ValueError(f"{where}: rope_type={rope_type!r} rescales its frequencies by the largest position a "
                         "forward sees, which differs between the ranks' slices")


def check_objective(obj: Any, size: int) -> None:
    """Only losses that are a token sum over a global token count stay exact when ranks split sequences."""
    from rlsys.learner.objectives import TokenNLL

    ok = isinstance(obj, TokenNLL) and (obj.loss_name == "ntp" or obj.kwargs.get("reduction", "token_mean")
                                        == "token_mean")
    if not ok or obj.needs_ref or obj.needs_entropy or obj.needs_scores or obj.needs_embeddings:
        raise ValueError(f"{KEY}={size}: loss {obj.loss_name!r} (kwargs {obj.kwargs}) is not a plain token sum; "
                         "only 'ntp' and 'sft' with reduction=token_mean can be trained with sequence parallelism")


# ---------------------------------------------------------------------------------------------- the rank's part
class SequenceParallel:
    """This rank's SP group (created collectively: every rank must construct it) and its share of the work."""

    def __init__(self, size: int, rank: int, world_size: int, decoder: torch.nn.Module | None = None) -> None:
        import torch.distributed as dist

        check_layout(world_size, size)
        self.size, self.index = size, rank % size
        # A VLM's language model: the front end then runs on the whole sequence, the decoder on the slice.
        self.decoder = decoder
        self.group: Any = None
        # new_group is collective over the whole world: every rank creates every group, in the same order.
        for first in range(0, world_size, size):
            group = dist.new_group(ranks=list(range(first, first + size)))
            if first <= rank < first + size:
                self.group = group

    def localize(self, mb: MicroBatch, pad_id: int) -> MicroBatch:
        """The micro-batch right-padded to a multiple of S, with the loss mask kept only on the tokens this
        rank scores (`scored_span`) and the attention mask only on its positions (token counts add up)."""
        b, t = mb.input_ids.shape
        width = padded_length(t, self.size)

        def pad(x: torch.Tensor, value: float = 0.0) -> torch.Tensor:
            return F.pad(x, (0, width - t), value=value) if x.dim() == 2 and x.shape == (b, t) else x

        ids = pad(mb.input_ids, pad_id)
        lo, hi = scored_span(width, self.size, self.index)
        start, end = local_span(width, self.size, self.index)
        loss_mask = torch.zeros_like(pad(mb.loss_mask))
        loss_mask[:, lo:hi] = pad(mb.loss_mask)[:, lo:hi]
        attention = torch.zeros_like(pad(mb.attention_mask))
        attention[:, start:end] = pad(mb.attention_mask)[:, start:end]
        fields = {k: pad(v) if isinstance(v, torch.Tensor) else v for k, v in mb.fields.items()}
        # Per-position VLM inputs (mm_token_type_ids) pad as text; pixel tensors and grids are not per position.
        inputs = {k: pad(v) if k in PER_POSITION_INPUTS else v for k, v in mb.model_inputs.items()}
        return MicroBatch(ids, attention, loss_mask, fields, mb.unit_size, inputs, mb.positions)

    def logprobs(self, engine: Any, mb: MicroBatch) -> torch.Tensor:
        """[B, T] logprobs of a `localize`d micro-batch: this rank's scored tokens filled, 0 elsewhere."""
        b, t = mb.input_ids.shape
        start, end = local_span(t, self.size, self.index)
        lo, hi = scored_span(t, self.size, self.index)
        if self.decoder is not None:
            logits = local_logits(engine, self.decoder, mb.input_ids, mb.model_inputs, start, end, self.group,
                                  self.size)
        else:
            positions = torch.arange(start, end, device=mb.input_ids.device).unsqueeze(0).expand(b, -1)
            logits = engine(input_ids=mb.input_ids[:, start:end], position_ids=positions, ulysses_group=self.group,
                            ulysses_size=self.size).logits
        shifted = logits[:, : hi - lo].float()
        targets = mb.input_ids[:, lo:hi]
        picked = shifted.gather(-1, targets.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(shifted, dim=-1)
        return F.pad(picked, (lo, t - hi), value=0.0)


def sp_setup(model: torch.nn.Module, rank: int, world_size: int, model_path: str, model_kind: str,
             size: int, zero_stage: int = 0) -> SequenceParallel | None:
    """For `learner.sequence_parallel` > 1: check the model, switch its attention to `ulysses_sdpa` and join
    the SP groups (collective); None when sequence parallelism is off."""
    if int(size) == 1:
        return None
    check_layout(world_size, size)
    check_model(model.config, model_kind, model_path, size, zero_stage)
    register_attention()
    # A VLM's vision tower gets it too; called without a group (the hook adds it to the decoder only) it is
    # plain SDPA with the tower's own is_causal=False.
    model.set_attn_implementation(ATTENTION_NAME)
    decoder = None
    if is_vision_language_config(model.config):
        decoder = language_model_of(model, f"{KEY}={size} with model {model_path}")
    return SequenceParallel(size, rank, world_size, decoder)


def rank_shards(shards: list[dict[str, Any]], size: int) -> list[dict[str, Any]]:
    """Data shards of the W/S SP groups -> one per rank: every rank of group g gets shard g."""
    return [shard for shard in shards for _ in range(size)]

"""Sequence batches for the learner: sharding over data-parallel ranks and micro-batching.

A batch is a plain dict (cheap to send through Ray):
  input_ids  list[list[int]]   prompt + response tokens of each sequence
  loss_mask  list[list[int]]   1 where the token is trained on (aligned with input_ids)
  fields     dict[str, list]   per-sequence values (advantages, ...) or per-token lists aligned
                               with input_ids (old_logprobs, ref_logprobs, ...)
  unit_size int               sequences that must stay together (2 for chosen/rejected pairs)
  images    list[list[str]]   (vision-language batches only) image files of each sequence, one per
                               image placeholder of its prompt, in order; [] for a text row
  videos    list[list[dict]]  (vision-language batches only) video items of each sequence
                               (rlsys.data.videos.video_items), one per video placeholder, in order

A micro-batch with images is built through the model's HF processor (`collate(..., processor=)`):
each placeholder expands to the image's (video item's) tokens, per-token values move with their tokens
(`MicroBatch.positions`), and the pixel tensors ride in `MicroBatch.model_inputs`. Micro-batch token
budgets count expanded lengths when given each sequence's extra tokens (`micro_batches(...,
extra_tokens=)`, as the learner does); sharding counts unexpanded tokens. Text batches (no `images` key) take the plain path unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch


def make_batch(
    input_ids: list[list[int]],
    loss_mask: list[list[int]],
    fields: dict[str, list[Any]] | None = None,
    unit_size: int = 1,
    images: list[list[str]] | None = None,
    videos: list[list[dict]] | None = None,
) -> dict[str, Any]:
    if len(input_ids) != len(loss_mask):
        raise ValueError(f"{len(input_ids)} sequences but {len(loss_mask)} loss masks")
    for i, (ids, mask) in enumerate(zip(input_ids, loss_mask)):
        if len(ids) != len(mask):
            raise ValueError(f"sequence {i}: {len(ids)} tokens but {len(mask)} mask entries")
    if len(input_ids) % unit_size:
        raise ValueError(f"{len(input_ids)} sequences do not split into units of {unit_size}")
    fields = dict(fields or {})
    for name, values in fields.items():
        if len(values) != len(input_ids):
            raise ValueError(f"field '{name}' has {len(values)} entries for {len(input_ids)} sequences")
    batch = {"input_ids": input_ids, "loss_mask": loss_mask, "fields": fields, "unit_size": unit_size}
    if images is not None:
        if len(images) != len(input_ids):
            raise ValueError(f"{len(images)} image lists for {len(input_ids)} sequences")
        batch["images"] = [[str(p) for p in row] for row in images]
    if videos is not None:
        if len(videos) != len(input_ids):
            raise ValueError(f"{len(videos)} video lists for {len(input_ids)} sequences")
        from rlsys.data.videos import check_video_item

        batch["videos"] = [[check_video_item(dict(item), f"sequence {i} video {j}") for j, item in enumerate(row)]
                           for i, row in enumerate(videos)]
    return batch


def has_images(batch: dict[str, Any], indices: list[int] | None = None) -> bool:
    """Whether any (selected) sequence of the batch carries images or video items (pixels for the processor)."""
    for key in ("images", "videos"):
        rows = batch.get(key)
        if rows and any(rows[i] for i in (range(len(rows)) if indices is None else indices)):
            return True
    return False


def batch_size(batch: dict[str, Any]) -> int:
    return len(batch["input_ids"])


def select(batch: dict[str, Any], indices: list[int]) -> dict[str, Any]:
    out = {
        "input_ids": [batch["input_ids"][i] for i in indices],
        "loss_mask": [batch["loss_mask"][i] for i in indices],
        "fields": {k: [v[i] for i in indices] for k, v in batch["fields"].items()},
        "unit_size": batch["unit_size"],
    }
    for key in ("images", "videos"):
        if key in batch:
            out[key] = [batch[key][i] for i in indices]
    return out


def _units(batch: dict[str, Any]) -> list[list[int]]:
    g = batch["unit_size"]
    return [list(range(start, start + g)) for start in range(0, batch_size(batch), g)]


def shard_batch(batch: dict[str, Any], world_size: int) -> list[dict[str, Any]]:
    """Split over ranks with balanced token counts (longest-first greedy), units kept whole.

    A rank may get an empty shard when there are fewer units than ranks.
    """
    units = _units(batch)
    cost = [sum(len(batch["input_ids"][i]) for i in unit) for unit in units]
    order = sorted(range(len(units)), key=lambda u: -cost[u])
    loads = [0] * world_size
    counts = [0] * world_size
    per_rank: list[list[int]] = [[] for _ in range(world_size)]
    target_count = max(1, -(-len(units) // world_size))
    for u in order:
        rank = min(
            (r for r in range(world_size) if counts[r] < target_count), key=lambda r: (loads[r], counts[r])
        )
        per_rank[rank].extend(units[u])
        loads[rank] += cost[u]
        counts[rank] += 1
    return [select(batch, sorted(idx)) for idx in per_rank]


def micro_batches(
    batch: dict[str, Any], max_sequences: int, max_tokens: int, extra_tokens: list[int] | None = None
) -> list[list[int]]:
    """Length-grouped micro-batches: sort units by length, fill each up to the padded-token budget.

    Sorting keeps similar lengths together, so little compute goes to padding. `extra_tokens` (one per
    sequence) adds to a sequence's length what the model sees beyond its ids, e.g. the tokens its image
    placeholders expand into, so the budget counts the padded tensor the forward really gets.
    """
    if extra_tokens is not None and len(extra_tokens) != batch_size(batch):
        raise ValueError(f"{len(extra_tokens)} extra-token counts for {batch_size(batch)} sequences")
    units = _units(batch)
    extra = extra_tokens or [0] * batch_size(batch)
    longest = [max(len(batch["input_ids"][i]) + extra[i] for i in unit) for unit in units]
    order = sorted(range(len(units)), key=lambda u: longest[u])
    groups: list[list[int]] = []
    current: list[int] = []
    current_max = 0
    for u in order:
        new_max = max(current_max, longest[u])
        n_seq = len(current) + len(units[u])
        if current and (n_seq > max_sequences or new_max * n_seq > max_tokens):
            groups.append(current)
            current, new_max = [], longest[u]
        current.extend(units[u])
        current_max = new_max
    if current:
        groups.append(current)
    return groups


@dataclass
class MicroBatch:
    """Padded tensors of one micro-batch; per-token fields are aligned with input_ids."""

    input_ids: torch.Tensor  # [B, T]
    attention_mask: torch.Tensor  # [B, T]
    loss_mask: torch.Tensor  # [B, T] float, already shifted: position t scores token t
    fields: dict[str, Any]
    unit_size: int
    # Extra forward inputs of a vision-language micro-batch (pixel_values, image_grid_thw, mm_token_type_ids).
    model_inputs: dict[str, Any] = field(default_factory=dict)
    # Per sequence, where each token of the batch's (unexpanded) sequence sits in input_ids; None = identity.
    positions: list[list[int]] | None = None

    def forward_inputs(self) -> dict[str, Any]:
        """Keyword arguments of the model's forward."""
        return {"input_ids": self.input_ids, "attention_mask": self.attention_mask, **self.model_inputs}

    def unexpand(self, values: torch.Tensor, row: int, length: int) -> torch.Tensor:
        """Per-token `values[row]` (aligned with input_ids) at the `length` tokens of the batch's sequence."""
        if self.positions is None:
            return values[row, :length]
        return values[row, self.positions[row][:length]]

    @property
    def num_sequences(self) -> int:
        return int(self.input_ids.shape[0])


def collate(
    batch: dict[str, Any], indices: list[int], pad_id: int, device: torch.device, processor: Any = None
) -> MicroBatch:
    """Right-pad the selected sequences. Position 0 is never trained (nothing predicts it).

    With a `processor` (a VLM's HF processor) and images among the selected rows, the sequences are
    expanded through it (`collate_vl`)."""
    if processor is not None and has_images(batch, indices):
        return collate_vl(batch, indices, pad_id, device, processor)
    seqs = [batch["input_ids"][i] for i in indices]
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    attn = torch.zeros((len(seqs), width), dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.float32)
    for row, i in enumerate(indices):
        n = len(batch["input_ids"][i])
        ids[row, :n] = torch.tensor(batch["input_ids"][i])
        attn[row, :n] = 1
        mask[row, :n] = torch.tensor(batch["loss_mask"][i], dtype=torch.float32)
    mask[:, 0] = 0.0
    fields = _collate_fields(batch, indices, width, None, device)
    return MicroBatch(ids.to(device), attn.to(device), mask.to(device), fields, batch["unit_size"])


def collate_vl(batch: dict[str, Any], indices: list[int], pad_id: int, device: torch.device, processor: Any) -> MicroBatch:
    """A vision-language micro-batch: each sequence's first len(images) image and len(videos) video placeholders
    expanded by the processor (the rest of the sequence, sampled tokens included, left as it is), loss mask and
    per-token fields moved to the expanded positions (expansion tokens get 0), pixel tensors in `model_inputs`."""
    from rlsys.learner.vl_inputs import collate_vl_inputs, expand_vl_sequence

    items, positions = [], []
    image_id = getattr(processor, "image_token_id", None)
    video_id = getattr(processor, "video_token_id", None)
    for i in indices:
        seq = list(batch["input_ids"][i])
        images = batch["images"][i] if "images" in batch else []
        videos = batch["videos"][i] if "videos" in batch else []
        # The prompt ends at the last image's / video item's placeholder as far as expansion goes.
        cut = 0
        for what, token, inputs in (("image", image_id, images), ("video", video_id, videos)):
            if inputs:
                at = [j for j, t in enumerate(seq) if t == token]
                if len(at) < len(inputs):
                    raise ValueError(f"sequence has {len(at)} {what} placeholders for {len(inputs)} {what}s")
                cut = max(cut, at[len(inputs) - 1] + 1)
        inputs, pos = expand_vl_sequence(processor, seq[:cut], images, seq[cut:], videos)
        items.append(inputs)
        positions.append(pos)
    vl = collate_vl_inputs(items, pad_id)
    ids, attn = vl.pop("input_ids"), vl.pop("attention_mask")
    vl.pop("completion_start")
    width = int(ids.shape[1])
    mask = torch.zeros((len(indices), width), dtype=torch.float32)
    for row, i in enumerate(indices):
        mask[row, positions[row]] = torch.tensor(batch["loss_mask"][i], dtype=torch.float32)
    mask[:, 0] = 0.0
    fields = _collate_fields(batch, indices, width, positions, device)
    model_inputs = {k: v.to(device) for k, v in vl.items() if v is not None}
    return MicroBatch(ids.to(device), attn.to(device), mask.to(device), fields, batch["unit_size"],
                      model_inputs=model_inputs, positions=positions)


def _collate_fields(
    batch: dict[str, Any], indices: list[int], width: int, positions: list[list[int]] | None, device: torch.device
) -> dict[str, Any]:
    """Per-token fields padded to `width` (placed at `positions` when given), per-sequence numbers as a
    vector, anything else as a list."""
    fields: dict[str, Any] = {}
    for name, values in batch["fields"].items():
        picked = [values[i] for i in indices]
        if isinstance(picked[0], (list, tuple)):
            tensor = torch.zeros((len(indices), width), dtype=torch.float32)
            for row, v in enumerate(picked):
                if positions is None:
                    tensor[row, : len(v)] = torch.tensor(v, dtype=torch.float32)
                else:
                    tensor[row, positions[row][: len(v)]] = torch.tensor(v, dtype=torch.float32)
            fields[name] = tensor.to(device)
        elif isinstance(picked[0], (int, float)):
            fields[name] = torch.tensor(picked, dtype=torch.float32, device=device)
        else:
            fields[name] = picked
    return fields


def token_logprobs(logits: torch.Tensor, input_ids: torch.Tensor) -> torch.Tensor:
    """Per-token logprob of each token given its prefix, aligned with input_ids.

    logits [B, T, V], input_ids [B, T] -> [B, T]; position 0 (no prefix) is 0.
    log p(x_t | x_<t) = logits[t-1, x_t] - logsumexp(logits[t-1])
    """
    shifted = logits[:, :-1].float()
    targets = input_ids[:, 1:]
    picked = shifted.gather(-1, targets.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(shifted, dim=-1)
    return torch.nn.functional.pad(picked, (1, 0), value=0.0)


def token_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Entropy of the next-token distribution, aligned like token_logprobs. [B,T,V] -> [B,T]."""
    shifted = logits[:, :-1].float()
    logp = torch.log_softmax(shifted, dim=-1)
    ent = -(logp.exp() * logp).sum(-1)
    return torch.nn.functional.pad(ent, (1, 0), value=0.0)

"""Sequence batches for the learner: sharding over data-parallel ranks and micro-batching.

A batch is a plain dict (cheap to send through Ray):
  input_ids  list[list[int]]   prompt + response tokens of each sequence
  loss_mask  list[list[int]]   1 where the token is trained on (aligned with input_ids)
  fields     dict[str, list]   per-sequence values (advantages, ...) or per-token lists aligned
                               with input_ids (old_logprobs, ref_logprobs, ...)
  unit_size int               sequences that must stay together (2 for chosen/rejected pairs)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch


def make_batch(
    input_ids: list[list[int]],
    loss_mask: list[list[int]],
    fields: dict[str, list[Any]] | None = None,
    unit_size: int = 1,
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
    return {"input_ids": input_ids, "loss_mask": loss_mask, "fields": fields, "unit_size": unit_size}


def batch_size(batch: dict[str, Any]) -> int:
    return len(batch["input_ids"])


def select(batch: dict[str, Any], indices: list[int]) -> dict[str, Any]:
    return {
        "input_ids": [batch["input_ids"][i] for i in indices],
        "loss_mask": [batch["loss_mask"][i] for i in indices],
        "fields": {k: [v[i] for i in indices] for k, v in batch["fields"].items()},
        "unit_size": batch["unit_size"],
    }


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


def micro_batches(batch: dict[str, Any], max_sequences: int, max_tokens: int) -> list[list[int]]:
    """Length-grouped micro-batches: sort units by length, fill each up to the padded-token budget.

    Sorting keeps similar lengths together, so little compute goes to padding.
    """
    units = _units(batch)
    longest = [max(len(batch["input_ids"][i]) for i in unit) for unit in units]
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

    @property
    def num_sequences(self) -> int:
        return int(self.input_ids.shape[0])


def collate(batch: dict[str, Any], indices: list[int], pad_id: int, device: torch.device) -> MicroBatch:
    """Right-pad the selected sequences. Position 0 is never trained (nothing predicts it)."""
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
    fields: dict[str, Any] = {}
    for name, values in batch["fields"].items():
        picked = [values[i] for i in indices]
        if isinstance(picked[0], (list, tuple)):
            tensor = torch.zeros((len(seqs), width), dtype=torch.float32)
            for row, v in enumerate(picked):
                tensor[row, : len(v)] = torch.tensor(v, dtype=torch.float32)
            fields[name] = tensor.to(device)
        elif isinstance(picked[0], (int, float)):
            fields[name] = torch.tensor(picked, dtype=torch.float32, device=device)
        else:
            fields[name] = picked
    return MicroBatch(ids.to(device), attn.to(device), mask.to(device), fields, batch["unit_size"])


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

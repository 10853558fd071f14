"""The learner's vision-language specifics: ZeRO-3's vision-tower sync and expanded token counts.

ZeRO-3 gathers each submodule's parameters collectively when it runs, so every data-parallel rank must run
the same submodules in the same order. A VLM's forward runs its vision tower only when the micro-batch has
images: a rank forwarding images while another forwards text only (its own rows, a padding pass, an empty
shard) issues different gathers, and the step hangs or crashes. `VisionSync` appends one tiny image row to
every forward without images, so the tower runs inside the model's own forward, in the order of any image
micro-batch (embeddings, tower, language model). The row's logits are cut from the scores and enter a
training loss times 0: every tower parameter then also gets a (zero) gradient, so the backward's gathers and
reductions agree as well. Only a learner with ZeRO-3, several ranks and a VLM uses it.
"""

from __future__ import annotations

from typing import Any

import torch

from rlsys.learner.batching import MicroBatch


class VisionSync:
    """Appends a dummy image row (built once, from the processor) to forwards that carry no image."""

    def __init__(self, processor: Any, pad_id: int, device: torch.device) -> None:
        self.processor, self.pad_id, self.device = processor, pad_id, device
        self._row: dict[str, Any] | None = None

    def dummy_row(self) -> dict[str, Any]:
        """`expand_vl_sequence` inputs of a user turn holding one black image alone, through the processor's chat
        template; the image is as small as the processor takes (it resizes it to its own minimum)."""
        if self._row is None:
            from PIL import Image

            from rlsys.learner.vl_inputs import expand_vl_sequence

            image_processor = getattr(self.processor, "image_processor", None)
            # Qwen-VL refuses a side below one merged patch; 64 px covers processors without these attributes.
            side = max(64, int(getattr(image_processor, "patch_size", 1) or 1) * int(getattr(image_processor, "merge_size", 1) or 1))
            image = Image.new("RGB", (side, side))
            text = self.processor.apply_chat_template([{"role": "user", "content": [{"type": "image"}]}], tokenize=False)
            ids = self.processor.tokenizer(text, add_special_tokens=False)["input_ids"]
            image_id = getattr(self.processor, "image_token_id", None)
            if ids.count(image_id) != 1:
                raise ValueError(f"the processor's chat template rendered {ids.count(image_id)} image placeholders "
                                 f"(token id {image_id}) for one image part; ZeRO-3's vision-tower pass needs one")
            self._row, _ = expand_vl_sequence(self.processor, ids, [image])
        return self._row

    @staticmethod
    def has_images(mb: MicroBatch | None) -> bool:
        """Whether `mb` runs the vision tower itself (its image or video pixels ride in `model_inputs`)."""
        return mb is not None and ("pixel_values" in mb.model_inputs or "pixel_values_videos" in mb.model_inputs)

    def forward_inputs(self, mb: MicroBatch | None) -> dict[str, Any]:
        """Forward kwargs of the dummy image row followed by `mb`'s rows (none: a padding pass)."""
        row = self.dummy_row()
        # First: `collate_vl_inputs` takes the image tensors' keys from the first item.
        items: list[dict[str, Any]] = [row]
        if mb is not None:
            for r in range(mb.num_sequences):
                item = {"input_ids": mb.input_ids[r : r + 1].cpu(), "attention_mask": mb.attention_mask[r : r + 1].cpu(),
                        "completion_start": 0}
                if "mm_token_type_ids" in row:
                    # Text tokens: type 0, as the processor marks them.
                    item["mm_token_type_ids"] = torch.zeros_like(item["input_ids"])
                items.append(item)
        from rlsys.learner.vl_inputs import collate_vl_inputs

        inputs = collate_vl_inputs(items, self.pad_id)
        inputs.pop("completion_start")
        return {k: v.to(self.device) for k, v in inputs.items() if v is not None}


def engine_logits(engine: Any, sync: VisionSync | None, mb: MicroBatch) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The engine's logits for `mb`'s rows and, when `sync` adds the tower pass, the dummy row's zero-valued
    anchor (add it to a training loss; an inference pass drops it)."""
    if sync is None or sync.has_images(mb):
        return engine(**mb.forward_inputs()).logits, None
    logits = engine(**sync.forward_inputs(mb)).logits
    return logits[1:, : mb.input_ids.shape[1]], logits[:1].sum() * 0.0


def padding_pass(engine: Any, sync: VisionSync) -> torch.Tensor:
    """A zero loss through the whole model, vision tower included (a rank's padding pass under ZeRO-3)."""
    return engine(**sync.forward_inputs(None)).logits.sum() * 0.0


class ImageTokens:
    """Extra tokens each sequence's image (and video) placeholders expand into, counted once per image file /
    video item."""

    def __init__(self, processor: Any) -> None:
        from rlsys.learner.vl_inputs import ImageTokenCounter

        self.processor = processor
        self.count = ImageTokenCounter(processor) if processor is not None else None
        self.video_counts: dict[str, int] = {}

    def video_count(self, item: dict) -> int:
        """Tokens one video item's placeholder expands into (timestamps included), counted once per item."""
        import json

        from rlsys.learner.vl_inputs import video_token_count

        key = json.dumps(item, sort_keys=True)
        if key not in self.video_counts:
            self.video_counts[key] = video_token_count(self.processor, item)
        return self.video_counts[key]

    @property
    def counts(self) -> dict[str, int]:
        """The image files counted so far and their token counts."""
        return self.count.counts if self.count is not None else {}

    def extra_tokens(self, batch: dict[str, Any]) -> list[int] | None:
        """Per sequence, its expanded length minus its length (None for a batch without images)."""
        rows, videos = batch.get("images"), batch.get("videos")
        if self.count is None or not any(rows or []) and not any(videos or []):
            return None
        n = len(batch["input_ids"])
        rows, videos = rows or [[]] * n, videos or [[]] * n
        # A placeholder is one token of the sequence already.
        return [sum(self.count(p) - 1 for p in row) + sum(self.video_count(v) - 1 for v in vids)
                for row, vids in zip(rows, videos)]

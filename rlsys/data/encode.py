"""Rows -> token sequences with loss masks, for every learner job.

All prompts go through the tokenizer's chat template, so the same code serves the embedded tiny
model and any HF chat model.
"""

from __future__ import annotations

import random
from typing import Any

from rlsys.data.loading import prompt_messages, sft_messages


def _ids(tokenizer: Any, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def encode_chat(
    tokenizer: Any, messages: list[dict], max_len: int, renderer: Any = None
) -> tuple[list[int], list[int]] | None:
    """Token ids of a conversation and a mask that is 1 on every assistant turn (incl. its end token).

    Each assistant turn's span is found by rendering the conversation up to it with the generation
    prompt and up to its end, which works for any chat template whose prefixes tokenize stably.
    `renderer` (default: the tokenizer) applies the chat template, e.g. a VLM's HF processor.
    Returns None when the first trained token would lie beyond `max_len`.
    """
    render = (renderer or tokenizer).apply_chat_template
    full = _ids(tokenizer, render(messages, tokenize=False))
    mask = [0] * len(full)
    for i, msg in enumerate(messages):
        if msg["role"] != "assistant":
            continue
        start = len(_ids(tokenizer, render(messages[:i], tokenize=False, add_generation_prompt=True)))
        end = len(_ids(tokenizer, render(messages[: i + 1], tokenize=False)))
        for t in range(start, min(end, len(full))):
            mask[t] = 1
    if len(full) > max_len:
        full, mask = full[:max_len], mask[:max_len]
    if not any(mask):
        return None
    return full, mask


def encode_completion(tokenizer: Any, row: dict, text: str, system_prompt: str | None = None) -> list[int]:
    """Token ids of `text` as the assistant's answer to the row's prompt, as the policy would sample
    it: the assistant turn's tokens up to and including the first end-of-sequence token."""
    messages = prompt_messages(row, system_prompt)
    prompt = _ids(tokenizer, tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True))
    full = _ids(tokenizer, tokenizer.apply_chat_template(messages + [{"role": "assistant", "content": text}],
                                                         tokenize=False))
    if full[: len(prompt)] != prompt:
        raise ValueError(f"row {row.get('id')!r}: the chat template does not render the prompt as a prefix of "
                         "the conversation, so the answer's tokens cannot be cut out")
    ids = full[len(prompt):]
    eos = tokenizer.eos_token_id
    return ids[: ids.index(eos) + 1] if eos in ids else ids


def encode_sft_rows(
    tokenizer: Any, rows: list[dict], max_len: int, system_prompt: str | None = None, processor: Any = None,
    video_items_of: Any = None,
) -> list[tuple]:
    """(ids, mask) per row that fits; a row with `images` gives (ids, mask, {}, images), one with `videos`
    (ids, mask, {}, images, video items) through the VLM's `processor` (`encode_vl_sft_row`; `video_items_of`:
    row -> its video items, default one item per video with every frame). Rows whose trained tokens all lie
    beyond `max_len` are left out."""
    out = []
    for row in rows:
        if row.get("images") or row.get("videos"):
            videos = video_items_of(row) if video_items_of is not None and row.get("videos") else None
            enc = encode_vl_sft_row(processor, row, max_len, system_prompt, videos)
        else:
            enc = encode_chat(tokenizer, sft_messages(row, system_prompt), max_len)
        if enc is not None:
            out.append(enc)
    return out


def _image_token_id(processor: Any, row: dict, what: str = "image") -> int:
    image_id = getattr(processor, f"{what}_token_id", None)
    if image_id is None:
        why = "no processor was given" if processor is None else f"{type(processor).__name__} has no {what}_token_id"
        raise ValueError(f"row {row.get('id')!r} has {what}s, but {why}: only a vision-language model's HF "
                         f"processor renders and expands {what} placeholders")
    return image_id


def row_video_items(row: dict) -> list[dict]:
    """The row's video items without a SlowFast plan: one per video, every frame (rlsys.data.videos)."""
    from rlsys.data.videos import video_items

    return video_items(row)


def encode_vl_sft_row(processor: Any, row: dict, max_len: int, system_prompt: str | None = None,
                      videos: list[dict] | None = None) -> tuple | None:
    """(ids, mask, {}, images) of an SFT row with `images`, (ids, mask, {}, images, video items) of one with
    `videos`: its conversation rendered by the processor's chat template with one placeholder per image and per
    video item (`videos`, default `row_video_items`; placed as `vl_prompt_messages` places them), which the
    learner expands (rlsys.learner.batching.collate_vl). None when the trained tokens or a placeholder would
    lie beyond `max_len` (counted in unexpanded tokens)."""
    images = list(row.get("images") or [])
    if row.get("videos") and videos is None:
        videos = row_video_items(row)
    videos = list(videos or [])
    counts = [("image", _image_token_id(processor, row), len(images))] if images else []
    if videos:
        counts.append(("video", _image_token_id(processor, row, "video"), len(videos)))
    messages = _with_image_parts(sft_messages(row, system_prompt), len(images), len(videos))
    tokenizer = getattr(processor, "tokenizer", processor)
    full = _ids(tokenizer, processor.apply_chat_template(messages, tokenize=False))
    for what, token_id, n in counts:
        if full.count(token_id) != n:
            raise ValueError(f"row {row.get('id')!r}: the chat template rendered {full.count(token_id)} {what} "
                             f"placeholders for {n} {what}s")
    enc = encode_chat(tokenizer, messages, max_len, renderer=processor)
    if enc is None or any(enc[0].count(token_id) < n for _, token_id, n in counts):
        return None
    if videos:
        return enc[0], enc[1], {}, images, videos
    return enc[0], enc[1], {}, images


def encode_prompt(tokenizer: Any, row: dict, system_prompt: str | None = None, hint: str | None = None) -> list[int]:
    text = tokenizer.apply_chat_template(prompt_messages(row, system_prompt, hint), tokenize=False, add_generation_prompt=True)
    return _ids(tokenizer, text)


PAIR_SCOPES = ("full", "first_diff_line")


def first_diff_line_ends(a: str, b: str) -> tuple[int, int]:
    """Character ends in `a` and `b` of the first line where they differ (its newline included).

    Lines before it are shared; a text that is a line-prefix of the other ends at its own length.
    """
    lines_a, lines_b = a.splitlines(keepends=True), b.splitlines(keepends=True)
    end_a = end_b = 0
    for line_a, line_b in zip(lines_a, lines_b):
        end_a, end_b = end_a + len(line_a), end_b + len(line_b)
        if line_a != line_b:
            return end_a, end_b
    return (end_a + len(lines_a[len(lines_b)]) if len(lines_a) > len(lines_b) else end_a,
            end_b + len(lines_b[len(lines_a)]) if len(lines_b) > len(lines_a) else end_b)


def _prefix_tokens(tokenizer: Any, text: str, ids: list[int], end: int) -> int:
    """How many of `ids` (the tokens of `text`) cover text[:end]; a token crossing `end` counts."""
    if end >= len(text):
        return len(ids)
    head = _ids(tokenizer, text[:end])
    if ids[: len(head)] == head:
        return len(head)
    return next(k for k in range(1, len(ids) + 1) if len(tokenizer.decode(ids[:k])) >= end)


def encode_response(tokenizer: Any, prompt_ids: list[int], response: str, max_len: int, scored_chars: int | None = None) -> tuple:
    """Prompt ids + response ids + end-of-turn token; the mask covers the response part.

    With `scored_chars`, a third element is a per-token `pref_mask` covering only the response tokens
    of response[:scored_chars] (and the end token when that is the whole response).
    """
    body = _ids(tokenizer, response)
    resp = body + [tokenizer.eos_token_id]
    ids = (prompt_ids + resp)[:max_len]
    mask = ([0] * len(prompt_ids) + [1] * len(resp))[:max_len]
    if scored_chars is None:
        return ids, mask
    scored = _prefix_tokens(tokenizer, response, body, scored_chars) + (scored_chars >= len(response))
    pref = ([0] * len(prompt_ids) + [1] * scored + [0] * (len(resp) - scored))[:max_len]
    return ids, mask, {"pref_mask": pref}


def encode_pairs(
    tokenizer: Any, rows: list[dict], max_len: int, system_prompt: str | None = None, scope: str = "full",
    processor: Any = None, video_items_of: Any = None,
) -> list[tuple[tuple, tuple]]:
    """(chosen, rejected) sequences per preference row, sharing the rendered prompt.

    scope "first_diff_line" adds each sequence's `pref_mask` (see `first_diff_line_ends`). A row with
    `images` renders its prompt through the VLM's `processor` (`encode_vl_prompt`), and both of its
    sequences are (ids, mask, fields, images); a row with `videos` adds its video items (`video_items_of`:
    row -> items, default `row_video_items`) as a fifth element.
    """
    if scope not in PAIR_SCOPES:
        raise ValueError(f"pair scope {scope!r}: must be one of {list(PAIR_SCOPES)}")
    pairs = []
    for row in rows:
        images = list(row.get("images") or [])
        videos = (video_items_of or row_video_items)(row) if row.get("videos") else []
        if images or videos:
            if images:
                _image_token_id(processor, row)
            if videos:
                _image_token_id(processor, row, "video")
            prompt = encode_vl_prompt(processor, row, system_prompt, n_videos=len(videos))
        else:
            prompt = encode_prompt(tokenizer, row, system_prompt)
        if len(prompt) >= max_len - 1:
            continue
        ends = first_diff_line_ends(row["chosen"], row["rejected"]) if scope == "first_diff_line" else (None, None)
        chosen = encode_response(tokenizer, prompt, row["chosen"], max_len, ends[0])
        rejected = encode_response(tokenizer, prompt, row["rejected"], max_len, ends[1])
        if images or videos:
            chosen, rejected = ((*seq[:2], seq[2] if len(seq) > 2 else {}, images, *([videos] if videos else []))
                                for seq in (chosen, rejected))
        pairs.append((chosen, rejected))
    return pairs


def pack_documents(tokenizer: Any, texts: list[str], seq_len: int, seed: int) -> list[list[int]]:
    """Pretraining blocks: documents joined by the end-of-text token, cut into `seq_len` blocks.

    Documents are shuffled first so a block mixes sources; attention crosses document borders,
    as in standard packed causal-LM pretraining.
    """
    order = list(range(len(texts)))
    random.Random(seed).shuffle(order)
    sep = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    encoded = tokenizer([texts[i] for i in order], add_special_tokens=False)["input_ids"]
    stream: list[int] = []
    for ids in encoded:
        stream.extend(ids)
        stream.append(sep)
    return [stream[i : i + seq_len] for i in range(0, len(stream) - seq_len + 1, seq_len)]


def vl_prompt_messages(row: dict, system_prompt: str | None = None, hint: str | None = None,
                       n_videos: int | None = None) -> list[dict]:
    """`prompt_messages` of a row with `images` / `videos`: one image part per image, then one video part per
    video item (`n_videos`, default one per video; a SlowFast plan sends a video as two items) open the first
    user turn (before its text, as Qwen-VL and InternVL are trained), unless the row's messages already place
    their parts themselves (list contents)."""
    n_videos = len(row.get("videos") or []) if n_videos is None else n_videos
    return _with_image_parts(prompt_messages(row, system_prompt, hint), len(row.get("images") or []), n_videos)


def _with_image_parts(messages: list[dict], n_images: int, n_videos: int = 0) -> list[dict]:
    """`n_images` image parts, then `n_videos` video parts open the first user turn, unless the messages hold
    list contents already."""
    if (n_images or n_videos) and not any(isinstance(m["content"], list) for m in messages):
        user = next(i for i, m in enumerate(messages) if m["role"] == "user")
        messages[user]["content"] = [{"type": "image"} for _ in range(n_images)] + [
            {"type": "video"} for _ in range(n_videos)] + [{"type": "text", "text": messages[user]["content"]}]
    return messages


def encode_vl_prompt(processor: Any, row: dict, system_prompt: str | None = None, hint: str | None = None,
                     n_videos: int | None = None) -> list[int]:
    """Prompt token ids of a row with `images` / `videos` for vLLM: the chat template of `processor` (an HF
    processor, or a tokenizer carrying the VL template) renders ONE placeholder per image and per video item
    (`n_videos`, default one per video), which the engine expands. Send the ids with the row's images
    (`GroupRequest.images`) and video items (`GroupRequest.videos`)."""
    text = processor.apply_chat_template(vl_prompt_messages(row, system_prompt, hint, n_videos), tokenize=False,
                                         add_generation_prompt=True)
    tokenizer = getattr(processor, "tokenizer", processor)
    ids = _ids(tokenizer, text)
    n_videos = len(row.get("videos") or []) if n_videos is None else n_videos
    for what, n in (("image", len(row.get("images") or [])), ("video", n_videos)):
        token_id = getattr(processor, f"{what}_token_id", None)
        if token_id is not None and ids.count(token_id) != n:
            raise ValueError(f"row {row.get('id')!r}: the chat template rendered {ids.count(token_id)} {what} "
                             f"placeholders for {n} {what}s")
    return ids

"""Prompt lengths, checked when a sampling or RL stage loads its rows, before any rollout.

A prompt longer than the engine takes fails its rollout request mid-run, and since sampling is
deterministic a resumed run meets the same row again. `check_prompt_lengths` measures every row's
chat-templated prompt once against a limit (`data.max_prompt_tokens`, by default
`rollout.max_model_len` minus the answer length, so a full answer still fits) and treats an over-long
prompt as a bad row (`data.on_bad_row`): "error" stops, naming the file, line, row id, token count and
limit; "skip" drops the row and counts it (`data/too_long_dropped`).

With progressive hints the prompt also carries a hint, up to the highest level. A row whose plain prompt
fits but whose longest hinted prompt does not stays, with its hints capped at the highest level whose
hinted prompts all fit (`data/hint_level_capped`; level 0 = no hints for that row). Only hints the row
holds are measured: a hint generator's text is not known before the run.

A row with `images` is measured as the engine sees it: its VL prompt (`encode_vl_prompt`, one placeholder per
image) with each placeholder counted as the tokens its image expands to (`image_tokens`, from the model's
processor: rlsys.learner.vl_inputs.image_token_count); a row with `videos` likewise, each video item as the
rollout sends it (`data.video_sampling`: every frame, or the SlowFast streams) counted with its timestamps
(`video_tokens`: rlsys.learner.vl_inputs.video_token_count).

Rows carry no field saying where they came from (rewards get the row's fields and stages write rows out
again); `RowOrigins` maps a loaded row, by identity, to its "path line N".
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from rlsys.data.encode import encode_prompt, encode_vl_prompt
from rlsys.data.loading import ON_BAD_ROW
from rlsys.data.schema import DataError

log = logging.getLogger(__name__)

TOO_LONG = "data/too_long_dropped"
HINT_CAPPED = "data/hint_level_capped"
_MAX_REPORTED = 5

# (row, level) -> the hint text shown at that level, or None (no hint).
HintText = Callable[[dict, int], str | None]
# image path -> the number of tokens its placeholder expands to in the engine.
ImageTokens = Callable[[str], int]
# Row -> its video items as the rollout sends them (`rlsys.data.videos.RowVideoItems`) and the tokens each
# item's placeholder expands to; rows with `videos` need one (`VideoTokens`).
VideoTokens = Callable[[dict], list[int]]


class RowOrigins:
    """Where loaded rows came from ("data/train.jsonl line 3"), by row identity.

    Rows are matched by `is`: a copy of a row has no origin. The rows are held, so an id is never reused.
    """

    def __init__(self) -> None:
        self._by_id: dict[int, tuple[dict, str]] = {}

    def add(self, rows: Sequence[dict], origins: Sequence[str]) -> None:
        if len(rows) != len(origins):
            raise ValueError(f"{len(rows)} rows but {len(origins)} origins")
        for row, origin in zip(rows, origins):
            self._by_id[id(row)] = (row, origin)

    def of(self, row: dict) -> str | None:
        hit = self._by_id.get(id(row))
        return hit[1] if hit is not None and hit[0] is row else None


@dataclass
class PromptCheck:
    """The rows whose prompts fit, in their order, and what the check found."""

    rows: list[dict]
    # Index of each kept row among the rows checked.
    kept: list[int]
    # Prompt tokens of each kept row (no hint), as sent to the engine (a row with images: its VL prompt).
    prompt_ids: list[list[int]]
    # Position in `rows` -> highest hint level whose prompts fit, for rows capped below the max level.
    hint_caps: dict[int, int] = field(default_factory=dict)
    # One message per dropped row.
    dropped: list[str] = field(default_factory=list)

    @property
    def metrics(self) -> dict[str, float]:
        return {TOO_LONG: float(len(self.dropped)), HINT_CAPPED: float(len(self.hint_caps))}


def check_prompt_lengths(
    tokenizer: Any, rows: Sequence[dict], limit: int, limit_text: str, on_bad_row: str, *,
    system_prompt: str | None = None, origins: RowOrigins | None = None, hint_text: HintText | None = None,
    max_level: int = 0, where: str = "data", image_tokens: ImageTokens | None = None,
    video_tokens: VideoTokens | None = None,
) -> PromptCheck:
    """Check every row's prompt against `limit` tokens (`limit_text` says where the limit comes from).

    With `hint_text` and `max_level` > 0, the hinted prompt with the longest hint text of levels
    1..max_level is checked too; when it does not fit, every level is measured and the row's hints are
    capped below the first level that does not fit. Over-long plain prompts: a DataError naming the first
    (`on_bad_row="error"`), or dropped and counted ("skip"). Every row dropped is a DataError either way.
    Rows with `images` need `image_tokens`, rows with `videos` `video_tokens` (a ValueError naming the row
    otherwise).
    """
    if on_bad_row not in ON_BAD_ROW:
        raise ValueError(f"on_bad_row must be one of {ON_BAD_ROW}, got {on_bad_row!r}")
    out = PromptCheck([], [], [])
    capped: list[str] = []
    media = _Media(image_tokens, video_tokens)
    for i, row in enumerate(rows):
        label = _label(row, i, origins, where)
        if row.get("images") and image_tokens is None:
            raise ValueError(f"{label}: the row has images but no image token counter was given")
        if row.get("videos") and video_tokens is None:
            raise ValueError(f"{label}: the row has videos but no video token counter was given")
        ids, size = _measure(tokenizer, row, system_prompt, None, media)
        if size > limit:
            out.dropped.append(f"{label}: prompt has {size} tokens, more than the {limit} allowed ({limit_text})")
            continue
        cap = _hint_cap(tokenizer, row, limit, system_prompt, hint_text, max_level, media) if hint_text else None
        if cap is not None:
            level, tokens = cap
            out.hint_caps[len(out.rows)] = level
            capped.append(f"{label}: with its level-{level + 1} hint the prompt has {tokens} tokens, so its hints "
                          f"stop at level {level}")
        out.rows.append(row)
        out.kept.append(i)
        out.prompt_ids.append(ids)
    if out.dropped and (on_bad_row == "error" or not out.rows):
        more = f" ({len(out.dropped)} of {len(rows)} rows are over the limit)" if len(out.dropped) > 1 else ""
        raise DataError(
            f"{out.dropped[0]}{more}. Shorten or remove the row, raise rollout.max_model_len or set "
            "data.max_prompt_tokens" + (", or set data.on_bad_row=skip to drop such rows and count them"
                                        if on_bad_row == "error" else "; every row was dropped")
        )
    if out.dropped:
        log.warning("%s: dropped %d of %d rows whose prompt is longer than %d tokens (%s; %s), e.g. %s", where,
                    len(out.dropped), len(rows), limit, limit_text, TOO_LONG, "; ".join(out.dropped[:_MAX_REPORTED]))
    if capped:
        log.warning("%s: %d rows' hinted prompts are longer than %d tokens (%s; %s), e.g. %s", where, len(capped),
                    limit, limit_text, HINT_CAPPED, "; ".join(capped[:_MAX_REPORTED]))
    return out


def _label(row: dict, index: int, origins: RowOrigins | None, where: str) -> str:
    origin = origins.of(row) if origins is not None else None
    return f"{origin or f'{where} row {index + 1}'} (row id {row.get('id')!r})"


@dataclass
class _Media:
    """The counters a row's pictures and video items are measured with."""

    image_tokens: ImageTokens | None = None
    video_tokens: VideoTokens | None = None


def prompt_size(tokenizer: Any, row: dict, system_prompt: str | None = None, *,
                image_tokens: ImageTokens | None = None, video_tokens: VideoTokens | None = None) -> int:
    """The row's prompt length as the engine sees it (`check_prompt_lengths` measures rows the same way)."""
    return _measure(tokenizer, row, system_prompt, None, _Media(image_tokens, video_tokens))[1]


def _measure(tokenizer: Any, row: dict, system_prompt: str | None, hint: str | None,
             media: _Media) -> tuple[list[int], int]:
    """The row's prompt ids as sent to the engine and its length there (image and video placeholders expanded)."""
    images = row.get("images") or []
    videos = media.video_tokens(row) if row.get("videos") and media.video_tokens is not None else []
    if not images and not videos:
        ids = encode_prompt(tokenizer, row, system_prompt, hint)
        return ids, len(ids)
    ids = encode_vl_prompt(tokenizer, row, system_prompt, hint, len(videos))
    extra = sum(media.image_tokens(str(p)) - 1 for p in images) if images and media.image_tokens else 0
    return ids, len(ids) + extra + sum(n - 1 for n in videos)


def _hint_cap(tokenizer: Any, row: dict, limit: int, system_prompt: str | None, hint_text: HintText,
              max_level: int, media: _Media) -> tuple[int, int] | None:
    """None when the longest hinted prompt fits; else (highest level whose prompts all fit, the token
    count of the first level that does not)."""
    texts = {level: hint_text(row, level) for level in range(1, max_level + 1)}
    texts = {level: text for level, text in texts.items() if text}
    if not texts:
        return None
    sizes: dict[str, int] = {}

    def size(text: str) -> int:
        if text not in sizes:
            sizes[text] = _measure(tokenizer, row, system_prompt, text, media)[1]
        return sizes[text]

    longest = max(texts, key=lambda level: (len(texts[level]), level))
    if size(texts[longest]) <= limit:
        return None
    for level in range(1, max_level + 1):
        if level in texts and size(texts[level]) > limit:
            return level - 1, size(texts[level])
    return None

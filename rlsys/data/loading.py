"""Reading and writing row files (JSON Lines / parquet) and rendering prompts with a chat template.

`load_rows` validates every row against its kind (rlsys.data.schema) and names the file, the 1-based row
and the field of the first problem (`on_bad_row="error"`), or drops bad rows and counts them
(`on_bad_row="skip"`; counts in the returned stats and a logged warning per file, never silent).

JSON Lines files are scanned line by line with `json.loads` first: datasets' own error for a broken line
does not say which line, and mixed value types across rows would be silently re-typed by its loader. The
valid, normalised rows then go through `datasets.load_dataset("json")` (one arrow cache for all jsonl
inputs); parquet files go straight through `load_dataset("parquet")`. For JSON Lines the row number is
the line number.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from rlsys.data.schema import DataError, drop_nulls, validate_row

log = logging.getLogger(__name__)

HINT_PREFIX = "\n\nHint: "
ON_BAD_ROW = ("error", "skip")
JSON_SUFFIXES = (".jsonl", ".json")
PARQUET_SUFFIXES = (".parquet",)
_MAX_REPORTED = 20


def default_cache_dir() -> str:
    return os.path.join(tempfile.gettempdir(), "rlsys-datasets-cache")


def file_format(path: str) -> str:
    suffix = Path(path).suffix.lower()
    if suffix in JSON_SUFFIXES:
        return "json"
    if suffix in PARQUET_SUFFIXES:
        return "parquet"
    raise DataError(f"{path}: unsupported file type {suffix!r} (use .jsonl, .json or .parquet)")


class _Tally:
    """Counts and first messages of bad rows; raises at the first one in error mode."""

    def __init__(self, on_bad_row: str) -> None:
        if on_bad_row not in ON_BAD_ROW:
            raise ValueError(f"on_bad_row must be one of {ON_BAD_ROW}, got {on_bad_row!r}")
        self.on_bad_row = on_bad_row
        self.files: dict[str, dict[str, int]] = {}
        self.messages: list[str] = []

    def bad(self, path: str, message: str) -> None:
        if self.on_bad_row == "error":
            raise DataError(message)
        self.files[path]["skipped"] += 1
        if len(self.messages) < _MAX_REPORTED:
            self.messages.append(message)

    def good(self, path: str) -> None:
        self.files[path]["rows"] += 1


def _scan_json(path: str, kind: str, tally: _Tally, origins: list[str]) -> list[dict]:
    """Parse and validate a JSON Lines file (or a .json array of objects); each valid row's origin
    ("path line N", "path row N" in a .json array) is appended to `origins`."""
    text = Path(path).read_text(encoding="utf-8-sig")
    rows: list[dict] = []
    where = "line"
    if path.lower().endswith(".json") and text.lstrip().startswith("["):
        try:
            items = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path} line {exc.lineno}: malformed JSON ({exc.msg})") from exc
        numbered: Iterable[tuple[int, Any, str]] = ((i + 1, item, "row") for i, item in enumerate(items))
        where = "row"
    else:
        numbered = _json_lines(path, text, tally)
    for number, item, unit in numbered:
        try:
            rows.append(_with_images(validate_row(kind, item, f"{path} {unit} {number}"), path,
                                     f"{path} {unit} {number}"))
            origins.append(f"{path} {where} {number}")
            tally.good(path)
        except DataError as exc:
            tally.bad(path, str(exc))
    return rows


def _with_images(row: dict, path: str, where: str, cache_dir: str | None = None) -> dict:
    """The row with its `images` resolved against its data file and checked (rlsys.data.images): absolute
    paths of readable files; a missing or unreadable image is a bad row naming file, row and field. `videos`
    are resolved the same way (rlsys.data.videos)."""
    if "videos" in row:
        from rlsys.data.videos import resolve_videos

        row = resolve_videos(row, path, where)
    if "images" not in row:
        return row
    from rlsys.data.images import resolve_images

    return resolve_images(row, path, where, cache_dir or default_cache_dir())


def _json_lines(path: str, text: str, tally: _Tally) -> Iterable[tuple[int, Any, str]]:
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            tally.bad(path, f"{path} line {lineno}: malformed JSON ({exc.msg} at column {exc.colno})")
            continue
        yield lineno, item, "row"


def _load_dataset(fmt: str, files: list[str], cache_dir: str) -> list[dict]:
    import datasets

    quiet = datasets.is_progress_bar_enabled()
    if quiet:
        datasets.disable_progress_bars()
    try:
        ds = datasets.load_dataset(fmt, data_files=files, split="train", cache_dir=cache_dir)
    finally:
        if quiet:
            datasets.enable_progress_bars()
    # Columnar loading fills absent fields with null; dropping them gives back the rows as written.
    return [drop_nulls(dict(r)) for r in ds]


def _through_datasets(rows: list[dict], cache_dir: str) -> list[dict]:
    """Round-trip validated JSON rows through datasets' JSON loader (content-addressed cache file)."""
    if not rows:
        return []
    blob = "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in rows).encode()
    staged = Path(cache_dir) / "rlsys-rows" / f"{hashlib.sha256(blob).hexdigest()[:24]}.jsonl"
    if not staged.exists():
        staged.parent.mkdir(parents=True, exist_ok=True)
        tmp = staged.with_suffix(f".tmp{os.getpid()}")
        tmp.write_bytes(blob)
        tmp.replace(staged)
    return _load_dataset("json", [str(staged)], cache_dir)


def load_rows(
    paths: list[str] | str, kind: str, on_bad_row: str = "error", cache_dir: str | None = None,
    require_rows: bool = False,
) -> tuple[list[dict], dict]:
    """Load and validate rows of `kind` from jsonl/json/parquet files, in file order.

    Returns `(rows, stats)`; stats = {"kind", "rows", "skipped", "files": {path: {"rows", "skipped"}},
    "bad_rows": [first messages], "origins": [where each returned row is: "path line N" (JSON Lines) or
    "path row N"]}. Extra fields are kept; null fields are treated as absent. With
    `require_rows` a file that gives no valid row (empty, or every row bad and skipped) is a DataError naming it.
    """
    paths = [paths] if isinstance(paths, str) else list(paths)
    if not paths:
        raise DataError(f"no {kind} data files given")
    cache_dir = cache_dir or default_cache_dir()
    tally = _Tally(on_bad_row)
    rows: list[dict] = []
    origins: list[str] = []
    for path in paths:
        if not Path(path).is_file():
            raise DataError(f"{path}: file not found")
        tally.files[path] = {"rows": 0, "skipped": 0}
        fmt = file_format(path)
        if fmt == "json":
            rows.extend(_through_datasets(_scan_json(path, kind, tally, origins), cache_dir))
        else:
            rows.extend(_load_parquet(path, kind, tally, cache_dir, origins))
        if require_rows and not tally.files[path]["rows"]:
            skipped = tally.files[path]["skipped"]
            raise DataError(f"{path}: no {kind} rows in the file" + (
                f" (all {skipped} rows were bad and skipped)" if skipped else " (it is empty)"))
        if tally.files[path]["skipped"]:
            log.warning(
                "%s: skipped %d bad %s rows (kept %d)",
                path,
                tally.files[path]["skipped"],
                kind,
                tally.files[path]["rows"],
            )
    stats = {
        "kind": kind,
        "rows": sum(f["rows"] for f in tally.files.values()),
        "skipped": sum(f["skipped"] for f in tally.files.values()),
        "files": tally.files,
        "bad_rows": tally.messages,
        "origins": origins,
    }
    return rows, stats


def _load_parquet(path: str, kind: str, tally: _Tally, cache_dir: str, origins: list[str]) -> list[dict]:
    try:
        raw = _load_dataset("parquet", [path], cache_dir)
    except Exception as exc:  # datasets / arrow raise many types for an unreadable file
        raise DataError(f"{path}: cannot read parquet file ({type(exc).__name__}: {exc})") from exc
    rows = []
    for i, item in enumerate(raw):
        try:
            rows.append(_with_images(validate_row(kind, item, f"{path} row {i + 1}"), path, f"{path} row {i + 1}",
                                     cache_dir))
            origins.append(f"{path} row {i + 1}")
            tally.good(path)
        except DataError as exc:
            tally.bad(path, str(exc))
    return rows


def write_rows(path: str, rows: list[dict], cache_dir: str | None = None) -> str:
    """Write rows as JSON Lines or parquet (by suffix). Parquet goes through datasets' JSON loader so
    free-form nested fields (constraint params of different shapes) keep their exact contents."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    if file_format(path) == "json":
        out.write_text(lines, encoding="utf-8")
        return str(out)
    import datasets

    with tempfile.TemporaryDirectory() as tmp:
        staged = Path(tmp) / (out.stem + ".jsonl")
        staged.write_text(lines, encoding="utf-8")
        quiet = datasets.is_progress_bar_enabled()
        if quiet:
            datasets.disable_progress_bars()
        try:
            ds = datasets.load_dataset(
                "json",
                data_files=[str(staged)],
                split="train",
                cache_dir=cache_dir or str(Path(tmp) / "cache"),
            )
            ds.to_parquet(str(out))
        finally:
            if quiet:
                datasets.enable_progress_bars()
    return str(out)


def prompt_messages(row: dict, system_prompt: str | None = None, hint: str | None = None) -> list[dict]:
    """Chat messages for a prompt row: its `messages`, or one user turn holding `prompt`.

    With `hint`, the last user turn becomes `query + "\\n\\nHint: " + hint` (HINT_PREFIX), i.e. the hint
    comes after the query inside the same user message. `system_prompt` is added as a first system turn
    unless the row already starts with one.
    """
    if row.get("messages"):
        messages = [{"role": m["role"], "content": m["content"]} for m in row["messages"]]
    else:
        messages = [{"role": "user", "content": row["prompt"]}]
    if hint:
        last_user = max(i for i, m in enumerate(messages) if m["role"] == "user")
        messages[last_user]["content"] = with_hint(messages[last_user]["content"], hint)
    if system_prompt and messages[0]["role"] != "system":
        messages.insert(0, {"role": "system", "content": system_prompt})
    return messages


def with_hint(query: str, hint: str) -> str:
    return query + HINT_PREFIX + hint


def hint_sft_rows(rows: list[dict], share: float, seed: int) -> tuple[list[dict], int]:
    """SFT rows, a `share` of those with `hints` carrying one of them (uniform level) after the query, exactly
    as progressive hint sampling writes an RL prompt: the model learns to read a hint before RL relies on it.
    Which rows and levels is decided per row id and `seed`, so it does not depend on row order. The chosen
    level is kept as `hint_level`; `hints` is dropped from every row. Returns (rows, rows hinted)."""
    import random

    out, hinted = [], 0
    for row in rows:
        hints = row.get("hints")
        if not hints:
            out.append(row)
            continue
        row = {k: v for k, v in row.items() if k != "hints"}
        rng = random.Random(f"sft-hint|{seed}|{row.get('id')}")
        if rng.random() < share:
            level = rng.randrange(len(hints)) + 1
            if row.get("messages"):
                messages = [dict(m) for m in row["messages"]]
                last_user = max(i for i, m in enumerate(messages) if m["role"] == "user")
                messages[last_user]["content"] = with_hint(messages[last_user]["content"], hints[level - 1])
                row["messages"] = messages
            else:
                row["prompt"] = with_hint(row["prompt"], hints[level - 1])
            row["hint_level"] = level
            hinted += 1
        out.append(row)
    return out, hinted


def sft_messages(row: dict, system_prompt: str | None = None) -> list[dict]:
    """Full conversation of an SFT row (loss goes on the assistant turns)."""
    if row.get("messages"):
        messages = [{"role": m["role"], "content": m["content"]} for m in row["messages"]]
    else:
        messages = [
            {"role": "user", "content": row["prompt"]},
            {"role": "assistant", "content": row["response"]},
        ]
    if system_prompt and messages[0]["role"] != "system":
        messages.insert(0, {"role": "system", "content": system_prompt})
    return messages


def render_prompt(
    tokenizer: Any, row: dict, system_prompt: str | None = None, hint: str | None = None
) -> str:
    """The row's prompt through the tokenizer's chat template, ending with the assistant turn opened."""
    messages = prompt_messages(row, system_prompt, hint)
    return tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)

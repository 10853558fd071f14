"""Row schemas of the data kinds rlsys reads, and the validator that names file, row and field.

Kinds (docs/DATA.md has examples):
- `rl`: prompt-only rows for online RL. `id` str; `prompt` non-empty str or `messages` (chat turns ending
  with a user turn); `data_source` str (default "user"); `task` str (default "math" when `answer` is
  given, "ifeval" when `constraints` are, else "generic"); `answer` str (required when task is math; a
  JSON number is accepted and turned into text); `hints` list[str] (optional, level 1 first);
  `constraints` list of {"type": str, "params": dict}.
- `ifeval`: an `rl` row whose `constraints` list is required and non-empty.
- `sft`: `id` str and either `prompt` + `response` (non-empty str) or `messages` with an assistant turn.
- `preference`: `id`, `prompt`, `chosen`, `rejected` (non-empty str, chosen != rejected).
- `pretrain`: `id` str, `text` non-empty str.

Every kind may carry `images`: a non-empty list of image paths relative to the data file (or absolute), or
of image bytes / `{"bytes", "path"}` structs / PIL images (a `datasets` Image column); the loader resolves
them to absolute paths of readable files (rlsys.data.images).
Every kind may carry `videos`: a non-empty list whose entries are a folder of frame images (read in file-name
order) or a list of frame paths, relative to the data file; `fps` (a positive number) is then required. The
loader resolves each video to the absolute paths of its frames (rlsys.data.videos).

Unknown extra fields are kept untouched (reward functions receive them as keyword arguments). A null
value counts as an absent field: columnar formats (parquet, and datasets' JSON loader) fill every
missing column with null.
"""

from __future__ import annotations

from typing import Any

KINDS = ("rl", "ifeval", "sft", "preference", "pretrain")
ROLES = ("system", "user", "assistant")


class DataError(ValueError):
    """A data file or row that does not match its schema; the message names file, row and field."""


def _fail(where: str, message: str) -> DataError:
    return DataError(f"{where}: {message}")


def _nonempty_str(row: dict, name: str, where: str) -> str:
    value = row.get(name)
    if not isinstance(value, str) or not value.strip():
        raise _fail(where, f"field '{name}' must be a non-empty string")
    return value


def _opt_str(row: dict, name: str, where: str) -> None:
    if name in row and not isinstance(row[name], str):
        raise _fail(where, f"field '{name}' must be a string, got {type(row[name]).__name__}")


def _messages(row: dict, where: str, need_assistant: bool, end_with_user: bool) -> None:
    msgs = row.get("messages")
    if not isinstance(msgs, list) or not msgs:
        raise _fail(where, "field 'messages' must be a non-empty list of {role, content} objects")
    for i, msg in enumerate(msgs):
        if not isinstance(msg, dict):
            raise _fail(where, f"field 'messages[{i}]' must be an object with 'role' and 'content'")
        if msg.get("role") not in ROLES:
            raise _fail(
                where, f"field 'messages[{i}].role' must be one of {list(ROLES)}, got {msg.get('role')!r}"
            )
        if not isinstance(msg.get("content"), str):
            raise _fail(where, f"field 'messages[{i}].content' must be a string")
    if need_assistant and not any(m["role"] == "assistant" and m["content"].strip() for m in msgs):
        raise _fail(where, "field 'messages' needs at least one non-empty assistant turn")
    if end_with_user and msgs[-1]["role"] != "user":
        raise _fail(where, "field 'messages' must end with a user turn (the model answers it)")


def _constraints(row: dict, where: str, required: bool) -> None:
    if "constraints" not in row:
        if required:
            raise _fail(where, "field 'constraints' must be a non-empty list of {type, params} objects")
        return
    value = row["constraints"]
    if not isinstance(value, list) or (required and not value):
        raise _fail(where, "field 'constraints' must be a non-empty list of {type, params} objects")
    for i, entry in enumerate(value):
        if not isinstance(entry, dict) or not isinstance(entry.get("type"), str):
            raise _fail(where, f"field 'constraints[{i}].type' must be a string")
        if not isinstance(entry.get("params", {}), dict):
            raise _fail(where, f"field 'constraints[{i}].params' must be an object")


def _is_image_entry(value: Any) -> bool:
    if isinstance(value, str):
        return bool(value.strip())
    if isinstance(value, (bytes, bytearray)):
        return bool(value)
    if isinstance(value, dict):  # datasets' Image storage: {"bytes": b"..." or None, "path": "..." or None}
        return isinstance(value.get("bytes"), (bytes, bytearray)) or (
            isinstance(value.get("path"), str) and bool(value["path"].strip()))
    return type(value).__module__.startswith("PIL.")  # a decoded datasets Image value (PIL.Image.Image)


def _images(row: dict, where: str) -> None:
    if "images" not in row:
        return
    value = row["images"]
    if not isinstance(value, list) or not value:
        raise _fail(where, "field 'images' must be a non-empty list of image paths (relative to the data file)")
    for i, entry in enumerate(value):
        if not _is_image_entry(entry):
            raise _fail(where, f"field 'images[{i}]' must be an image path, image bytes or a PIL image, "
                        f"got {type(entry).__name__}")


def _videos(row: dict, where: str) -> None:
    if "videos" not in row:
        return
    value = row["videos"]
    if not isinstance(value, list) or not value:
        raise _fail(where, "field 'videos' must be a non-empty list of frame folders or lists of frame paths")
    for i, entry in enumerate(value):
        ok = isinstance(entry, str) and bool(entry.strip()) or isinstance(entry, list) and bool(entry) and all(
            isinstance(p, str) and p.strip() for p in entry)
        if not ok:
            raise _fail(where, f"field 'videos[{i}]' must be a frame folder path or a non-empty list of frame paths")
    fps = row.get("fps")
    if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not fps > 0:
        raise _fail(where, f"field 'fps' must be a positive number (frames per second of the videos), got {fps!r}")


def drop_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [drop_nulls(v) for v in value]
    return value


def validate_row(kind: str, row: Any, where: str) -> dict:
    """Check `row` against `kind`; return a normalised copy (nulls dropped, defaults filled).

    Raises `DataError("<where>: field '<name>' ...")`; `where` is e.g. "data/train.jsonl row 17".
    """
    if kind not in KINDS:
        raise ValueError(f"unknown data kind {kind!r}; expected one of {list(KINDS)}")
    if not isinstance(row, dict):
        raise _fail(where, f"row must be a JSON object, got {type(row).__name__}")
    row = drop_nulls(row)
    _nonempty_str(row, "id", where)
    _images(row, where)
    _videos(row, where)
    if kind in ("rl", "ifeval"):
        _validate_rl(row, where, constraints_required=kind == "ifeval")
    elif kind == "sft":
        if "messages" in row:
            _messages(row, where, need_assistant=True, end_with_user=False)
        else:
            _nonempty_str(row, "prompt", where)
            _nonempty_str(row, "response", where)
        _opt_str(row, "data_source", where)
        row.setdefault("data_source", "user")
    elif kind == "preference":
        for name in ("prompt", "chosen", "rejected"):
            _nonempty_str(row, name, where)
        if row["chosen"] == row["rejected"]:
            raise _fail(where, "fields 'chosen' and 'rejected' must differ")
        _opt_str(row, "data_source", where)
        row.setdefault("data_source", "user")
    else:
        _nonempty_str(row, "text", where)
    return row


def _validate_rl(row: dict, where: str, constraints_required: bool) -> None:
    if "messages" in row and "prompt" not in row:
        _messages(row, where, need_assistant=False, end_with_user=True)
    else:
        _nonempty_str(row, "prompt", where)
    answer = row.get("answer")
    if isinstance(answer, (int, float)) and not isinstance(answer, bool):
        # A bare JSON number is the obvious way to write an integer answer; math-verify wants text.
        row["answer"] = str(answer)
    for name in ("data_source", "task", "answer", "solution"):
        _opt_str(row, name, where)
    _constraints(row, where, required=constraints_required)
    if "task" not in row:
        row["task"] = "math" if "answer" in row else "ifeval" if row.get("constraints") else "generic"
    if row["task"] == "math" and not (isinstance(row.get("answer"), str) and row["answer"].strip()):
        raise _fail(where, "field 'answer' must be a non-empty string when task is 'math'")
    if "hints" in row:
        hints = row["hints"]
        # At most one hint per level (1-5), and every level named in an error so a bad row is easy to find.
        if not isinstance(hints, list) or len(hints) > 5:
            raise _fail(where, "field 'hints' must be a list of at most 5 non-empty strings (level 1 first)")
        for level, hint in enumerate(hints, 1):
            if not isinstance(hint, str) or not hint.strip():
                raise _fail(where, f"field 'hints' level {level} must be a non-empty string, got {hint!r}")
    row.setdefault("data_source", "user")

"""Format rewards: think/answer tag discipline plus JSON, markdown and code-block checkers."""

from __future__ import annotations

import json
import re
from collections.abc import Callable

from rewards._common import THINK_CLOSE, THINK_OPEN

_FENCE_RE = re.compile(r"^```[\w+-]*[ \t]*\n(.*)\n```$", re.DOTALL)
_HEADING_RE = re.compile(r"^[ \t]{0,3}#{1,6}[ \t]+\S", re.MULTILINE)
_LIST_ITEM_RE = re.compile(r"^[ \t]*(?:[-*+]|\d+[.)])[ \t]+\S", re.MULTILINE)
_CODE_BLOCK_RE = re.compile(r"^[ \t]*```[ \t]*([\w+-]*)[ \t]*\n(.*?)\n[ \t]*```[ \t]*$", re.DOTALL | re.MULTILINE)
MODES = ("think", "no_think", "auto")


def valid_json(text: str) -> bool:
    """The whole text is one JSON object or array (a surrounding ``` fence is allowed)."""
    text = text.strip()
    fenced = _FENCE_RE.match(text)
    if fenced:
        text = fenced.group(1)
    try:
        return isinstance(json.loads(text), (dict, list))
    except ValueError:
        return False


def markdown_structure(text: str, min_headings: int = 1, min_list_items: int = 1) -> bool:
    """At least `min_headings` ATX headings (`# ...`) and `min_list_items` list items."""
    return (
        len(_HEADING_RE.findall(text)) >= min_headings
        and len(_LIST_ITEM_RE.findall(text)) >= min_list_items
    )


def fenced_code_block(text: str, language: str | None = None) -> bool:
    """At least one ``` fenced block with a non-empty body (tagged `language` when one is given)."""
    for lang, body in _CODE_BLOCK_RE.findall(text):
        if body.strip() and (language is None or lang.lower() == language.lower()):
            return True
    return False


FORMAT_CHECKERS: dict[str, Callable[[str], bool]] = {
    "json": valid_json,
    "markdown": markdown_structure,
    "code": fenced_code_block,
}


def _think_ok(prompt: str, completion: str) -> bool:
    # Some chat templates end the prompt with `<think>`, so the completion legitimately lacks the opener.
    opened_by_prompt = prompt.rstrip().endswith(THINK_OPEN)
    text = completion.lstrip()
    if not opened_by_prompt:
        if not text.startswith(THINK_OPEN):
            return False
        text = text[len(THINK_OPEN) :]
    if THINK_OPEN in text or text.count(THINK_CLOSE) != 1:
        return False
    reasoning, answer = text.split(THINK_CLOSE)
    return bool(reasoning.strip()) and bool(answer.strip())


def _no_think_ok(completion: str) -> bool:
    return THINK_OPEN not in completion and THINK_CLOSE not in completion and bool(completion.strip())


def think_format_ok(prompt: str, completion: str, mode: str = "think") -> bool:
    """Tag discipline for `mode`: "think" needs `<think>reasoning</think>answer`, "no_think" needs no
    tags at all, "auto" accepts either; every mode needs a non-empty answer."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if mode == "think":
        return _think_ok(prompt, completion)
    if mode == "no_think":
        return _no_think_ok(completion)
    return _think_ok(prompt, completion) or _no_think_ok(completion)


def format_reward(prompt: str, completion: str, mode: str = "think", **fields: object) -> dict:
    """1.0 when the tags follow `mode` and, if the row has a `format` field (json / markdown / code),
    the answer after the reasoning block passes that checker; else 0.0."""
    tags = think_format_ok(prompt, completion, mode)
    out: dict = {"tags": float(tags)}
    score = tags
    wanted = fields.get("format")
    if wanted == "think":
        # A think row asks for the tags themselves: judge it in think mode whatever `mode` says.
        tags = think_format_ok(prompt, completion, "think")
        return {"score": float(tags), "tags": float(tags)}
    if wanted:
        if wanted not in FORMAT_CHECKERS:
            raise ValueError(f"unknown format {wanted!r}; expected one of {sorted(FORMAT_CHECKERS)}")
        answer = completion.rsplit(THINK_CLOSE, 1)[-1]
        content = FORMAT_CHECKERS[str(wanted)](answer)
        out[str(wanted)] = float(content)
        score = score and content
    out["score"] = float(score)
    return out

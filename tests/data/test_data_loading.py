"""load_rows / validate_row / render_prompt on user-written files (jsonl and parquet)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from rlsys.data.loading import (
    HINT_PREFIX,
    load_rows,
    prompt_messages,
    render_prompt,
    sft_messages,
    write_rows,
)
from rlsys.data.schema import DataError, validate_row

GOOD = {"id": "r1", "prompt": "What is 2 + 3?", "answer": "5"}


def _jsonl(path: Path, rows: list) -> str:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return str(path)


def test_bad_row_error_names_file_row_and_field_jsonl(tmp_path: Path) -> None:
    rows = [GOOD, {**GOOD, "id": "r2"}, {"id": "r3", "prompt": "", "answer": "1"}]
    path = _jsonl(tmp_path / "train.jsonl", rows)
    with pytest.raises(DataError, match=r"train\.jsonl row 3: field 'prompt' must be a non-empty string"):
        load_rows([path], "rl", cache_dir=str(tmp_path / "cache"))


def test_bad_row_error_names_file_row_and_field_parquet(tmp_path: Path) -> None:
    rows = [GOOD, {**GOOD, "id": "r2", "answer": None, "task": "math"}]
    path = write_rows(str(tmp_path / "train.parquet"), rows)
    with pytest.raises(DataError, match=r"train\.parquet row 2: field 'answer' must be a non-empty string"):
        load_rows([path], "rl", cache_dir=str(tmp_path / "cache"))


def test_broken_json_line_is_reported_with_its_line(tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "d.jsonl", [GOOD, "", '{"id": "r2", "prompt": "x"', {**GOOD, "id": "r4"}])
    with pytest.raises(DataError, match=r"d\.jsonl line 3: malformed JSON"):
        load_rows([path], "rl", cache_dir=str(tmp_path / "cache"))


def test_skip_mode_counts_every_bad_row(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = _jsonl(
        tmp_path / "d.jsonl",
        [
            GOOD,
            "{not json",
            {"id": "r3", "prompt": "Solve it.", "task": "math"},  # math without an answer
            [1, 2],  # not an object
            {**GOOD, "id": "r5", "hints": ["a", 3]},
            {**GOOD, "id": "r6", "meta": {"source": "mine"}},
        ],
    )
    rows, stats = load_rows([path], "rl", on_bad_row="skip", cache_dir=str(tmp_path / "cache"))
    assert [r["id"] for r in rows] == ["r1", "r6"]
    assert stats["rows"] == 2 and stats["skipped"] == 4 and stats["files"][path] == {"rows": 2, "skipped": 4}
    assert any("line 2: malformed JSON" in m for m in stats["bad_rows"])
    assert any("row 3: field 'answer'" in m for m in stats["bad_rows"])
    assert any("row 5: field 'hints'" in m for m in stats["bad_rows"])
    assert "skipped 4 bad rl rows" in caplog.text
    # Extra fields survive (they reach reward functions as keyword arguments); defaults are filled.
    assert (
        rows[1]["meta"] == {"source": "mine"}
        and rows[0]["data_source"] == "user"
        and rows[0]["task"] == "math"
    )


def test_parquet_skip_mode_and_nested_fields(tmp_path: Path) -> None:
    rows = [
        {"id": "a", "prompt": "Write a note.", "constraints": [{"type": "no_commas", "params": {}}]},
        {
            "id": "b",
            "prompt": "Write.",
            "constraints": [
                {"type": "word_count", "params": {"relation": "at least", "n": 5}},
                {"type": "starts_with", "params": {"phrase": "Hi"}},
            ],
        },
        {"id": "c", "prompt": "Write.", "constraints": []},
    ]
    path = write_rows(str(tmp_path / "if.parquet"), rows)
    loaded, stats = load_rows([path], "ifeval", on_bad_row="skip", cache_dir=str(tmp_path / "cache"))
    assert stats["skipped"] == 1 and "if.parquet row 3: field 'constraints'" in stats["bad_rows"][0]
    # Constraint params of different shapes come back exactly as written (no null-filled keys).
    assert loaded[0]["constraints"] == rows[0]["constraints"]
    assert loaded[1]["constraints"] == rows[1]["constraints"] and loaded[1]["task"] == "ifeval"


def test_several_files_keep_order_and_json_arrays(tmp_path: Path) -> None:
    first = _jsonl(tmp_path / "a.jsonl", [{"id": "1", "text": "one"}, {"id": "2", "text": "two"}])
    second = tmp_path / "b.json"
    second.write_text(json.dumps([{"id": "3", "text": "three"}]))
    rows, stats = load_rows([first, str(second)], "pretrain", cache_dir=str(tmp_path / "cache"))
    assert [r["text"] for r in rows] == ["one", "two", "three"] and stats["rows"] == 3
    with pytest.raises(DataError, match="file not found"):
        load_rows([str(tmp_path / "missing.jsonl")], "pretrain")
    (tmp_path / "x.csv").write_text("id,text\n1,one\n")
    with pytest.raises(DataError, match="unsupported file type"):
        load_rows([str(tmp_path / "x.csv")], "pretrain")
    with pytest.raises(ValueError, match="on_bad_row"):
        load_rows([first], "pretrain", on_bad_row="ignore")


@pytest.mark.parametrize(
    ("kind", "row", "message"),
    [
        ("sft", {"id": "s", "prompt": "p"}, "field 'response'"),
        ("sft", {"id": "s", "messages": [{"role": "user", "content": "hi"}]}, "assistant turn"),
        ("sft", {"id": "s", "messages": [{"role": "bot", "content": "hi"}]}, "messages[0].role"),
        ("preference", {"id": "p", "prompt": "q", "chosen": "a", "rejected": "a"}, "must differ"),
        ("preference", {"id": "p", "prompt": "q", "chosen": "a"}, "field 'rejected'"),
        ("pretrain", {"id": "t", "text": 5}, "field 'text'"),
        ("rl", {"prompt": "q"}, "field 'id'"),
        ("rl", {"id": "x", "messages": [{"role": "assistant", "content": "a"}]}, "end with a user turn"),
        ("ifeval", {"id": "x", "prompt": "q"}, "field 'constraints'"),
        ("rl", "just text", "JSON object"),
    ],
)
def test_validate_row_messages(kind: str, row: object, message: str) -> None:
    with pytest.raises(DataError, match=r"f\.jsonl row 4: .*" + re.escape(message)):
        validate_row(kind, row, "f.jsonl row 4")


def test_validate_row_defaults_and_number_answer() -> None:
    row = validate_row("rl", {"id": "x", "prompt": "q", "answer": 7, "solver": None}, "w")
    assert row == {"id": "x", "prompt": "q", "answer": "7", "task": "math", "data_source": "user"}
    generic = validate_row("rl", {"id": "y", "prompt": "q", "data_source": "mine"}, "w")
    assert generic["task"] == "generic" and generic["data_source"] == "mine"


def _tiny_tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"[UNK]": 0, "<|im_start|>": 1, "<|im_end|>": 2}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    template = (
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", chat_template=template)


def test_render_prompt_with_hint_and_system_prompt() -> None:
    tok = _tiny_tokenizer()
    row = {"id": "x", "prompt": "What is 2 + 3?"}
    assert render_prompt(tok, row) == "<|im_start|>user\nWhat is 2 + 3?<|im_end|>\n<|im_start|>assistant\n"
    hinted = render_prompt(tok, row, system_prompt="Be brief.", hint="Count on from 3.")
    assert hinted == (
        "<|im_start|>system\nBe brief.<|im_end|>\n"
        "<|im_start|>user\nWhat is 2 + 3?\n\nHint: Count on from 3.<|im_end|>\n<|im_start|>assistant\n"
    )
    assert HINT_PREFIX == "\n\nHint: "
    chat = {
        "id": "c",
        "messages": [
            {"role": "system", "content": "S"},
            {"role": "user", "content": "a"},
            {"role": "assistant", "content": "b"},
            {"role": "user", "content": "c"},
        ],
    }
    msgs = prompt_messages(chat, system_prompt="ignored", hint="h")
    assert msgs[0] == {"role": "system", "content": "S"} and msgs[-1]["content"] == "c\n\nHint: h"
    assert msgs[1]["content"] == "a" and len(msgs) == 4
    assert render_prompt(tok, chat).endswith("<|im_start|>user\nc<|im_end|>\n<|im_start|>assistant\n")
    assert sft_messages({"id": "s", "prompt": "p", "response": "r"})[-1] == {
        "role": "assistant",
        "content": "r",
    }

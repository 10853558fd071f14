"""docs/CONFIG.md is generated from the schema and must match it."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from rlsys.config import doc


def test_config_md_is_current() -> None:
    assert doc.DOC_PATH.read_text() == doc.render(), "docs/CONFIG.md is stale: run `python -m rlsys.config.doc`"


def test_check_exits_1_when_stale(tmp_path: Path) -> None:
    out = tmp_path / "CONFIG.md"
    assert doc.main(["--check", "--out", str(out)]) == 1
    assert doc.main(["--out", str(out)]) == 0
    assert doc.main(["--check", "--out", str(out)]) == 0
    out.write_text(out.read_text().replace("Sampling temperature", "Temperature"))
    assert doc.main(["--check", "--out", str(out)]) == 1


@dataclasses.dataclass
class _Example:
    """An example.

    b: from the docstring,
        continued.
    """

    # First line
    # and second line.
    a: int = 1
    b: str = "x"

    c: bool = False  # a trailing comment is not the field's description


def test_comments_above_a_field_and_docstring_entries_are_read() -> None:
    assert doc.field_comments(_Example) == {"a": "First line and second line."}
    assert doc.docstring_entries(_Example) == {"b": "from the docstring, continued."}
    section = doc.render_section("ex", _Example)
    assert "| `ex.a` | `int` | `1` |  | First line and second line. |" in section
    assert "| `ex.c` | `bool` | `false` |  |  |" in section


def test_every_key_is_documented() -> None:
    text = doc.DOC_PATH.read_text()
    for key in ("rollout.group_size", "stages.<name>.rl.loss", "stages.<name>.sample.judge_reasoning",
                "learner.optim.grad_clip", "smoke.lr", "data.suite.format"):
        assert f"| `{key}` |" in text

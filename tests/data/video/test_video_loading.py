"""Video rows through the row loader: frame folders and frame lists, and bad videos named by file and row."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from rlsys.data.loading import load_rows
from rlsys.data.schema import DataError


def frame(path: Path, size: tuple[int, int] = (64, 64), value: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size[1], size[0], 3), value, np.uint8)).save(path)


def write(tmp: Path, row: dict) -> str:
    path = tmp / "rows.jsonl"
    base = {"id": "v1", "prompt": "How many?", "answer": "1", "fps": 2}
    path.write_text(json.dumps(base | row) + "\n")
    return str(path)


def load(path: str, tmp: Path) -> list[dict]:
    return load_rows(path, "rl", cache_dir=str(tmp / "cache"))[0]


def test_folder_and_list_resolve(tmp_path: Path) -> None:
    for i in (2, 0, 1):
        frame(tmp_path / "clip" / f"f{i}.png", value=i)
    (tmp_path / "clip" / "notes.txt").write_text("not a frame")
    frame(tmp_path / "b.png")
    rows = load(write(tmp_path, {"videos": ["clip", ["b.png", "clip/f0.png"]]}), tmp_path)
    videos = rows[0]["videos"]
    assert [Path(p).name for p in videos[0]] == ["f0.png", "f1.png", "f2.png"]
    assert videos[1] == [str(tmp_path / "b.png"), str(tmp_path / "clip" / "f0.png")]
    assert rows[0]["fps"] == 2


@pytest.mark.parametrize(
    ("setup", "videos", "message"),
    [
        (lambda t: None, ["gone"], r"videos\[1\]' names a missing video folder .*gone"),
        (lambda t: (t / "empty").mkdir(), ["empty"], r"videos\[1\]' folder .*empty holds no frame files"),
        (lambda t: frame(t / "a.png"), [["a.png", "b.png"]], r"videos\[1\]' frame 1 names a missing frame .*b.png"),
        (lambda t: (t / "c").mkdir() or (t / "c" / "x.png").write_bytes(b"\x89PNG broken"), ["c"],
         r"videos\[1\]' frame 0 is not a readable image: .*x.png"),
        (lambda t: frame(t / "d" / "0.png") or frame(t / "d" / "1.png", (32, 64)), ["d"],
         r"videos\[1\]' frame 1 \(.*1.png\) is 32x64 px but frame 0"),
    ],
)
def test_bad_videos_name_file_row_and_frame(tmp_path: Path, setup, videos: list, message: str) -> None:
    setup(tmp_path)
    frame(tmp_path / "ok" / "0.png")
    path = write(tmp_path, {"videos": ["ok", *videos]})
    with pytest.raises(DataError, match=f"rows.jsonl row 1: field '{message}"):
        load(path, tmp_path)
    rows, stats = load_rows(path, "rl", on_bad_row="skip", cache_dir=str(tmp_path / "cache"))
    assert rows == [] and stats["skipped"] == 1


@pytest.mark.parametrize(
    ("row", "message"),
    [({"videos": []}, "field 'videos' must be a non-empty list"),
     ({"videos": [3]}, r"field 'videos\[0\]' must be a frame folder"),
     ({"videos": [[]]}, r"field 'videos\[0\]' must be a frame folder"),
     ({"videos": ["x"], "fps": 0}, "field 'fps' must be a positive number"),
     ({"videos": ["x"], "fps": "2"}, "field 'fps' must be a positive number")],
)
def test_schema_errors(tmp_path: Path, row: dict, message: str) -> None:
    with pytest.raises(DataError, match=message):
        load(write(tmp_path, row), tmp_path)

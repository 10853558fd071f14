"""pref_sample on rows with images: each pair keeps its problem's images (absolute paths), and the written
data.jsonl loads back from anywhere with the same image files."""

from __future__ import annotations

from pathlib import Path

from rlsys.data.loading import load_rows
from rlsys.jobs.pref_sample import preference_pairs
from rlsys.stages.io import DATA_FILE, write_jsonl


def test_pairs_keep_the_problem_images_and_load_back(tmp_path: Path) -> None:
    from PIL import Image

    image = tmp_path / "images" / "scene-1.png"
    image.parent.mkdir()
    Image.new("RGB", (32, 32), "green").save(image)
    rows = [{"id": "v1", "prompt": "How many?", "data_source": "rlsys/visual", "images": [str(image)]},
            {"id": "t1", "prompt": "1 + 1?", "data_source": "rlsys/math"}]
    pairs = preference_pairs(rows, [["2", "3"], ["2", "5"]], [[True, False], [True, False]], 1, seed=0)
    assert pairs[0]["images"] == [str(image)] and "images" not in pairs[1]
    # The stage's artifact lives elsewhere: absolute paths resolve from any data file.
    path = write_jsonl(tmp_path / "artifact" / "stage" / DATA_FILE, pairs)
    loaded, stats = load_rows([str(path)], "preference", "error")
    assert stats["skipped"] == 0 and [r["id"] for r in loaded] == ["v1-pair0", "t1-pair0"]
    assert loaded[0]["images"] == [str(image)] and not loaded[1].get("images")
    assert loaded[0]["chosen"] == "2" and loaded[0]["rejected"] == "3"


def test_pairs_keep_the_problem_videos_and_fps_and_load_back(tmp_path: Path) -> None:
    from PIL import Image

    frames = []
    for j, colour in enumerate(["red", "blue", "blue"]):
        frames.append(tmp_path / "clip" / f"frame_{j}.png")
        frames[-1].parent.mkdir(exist_ok=True)
        Image.new("RGB", (32, 32), colour).save(frames[-1])
    rows = [{"id": "c1", "prompt": "When does it turn blue?", "data_source": "rlsys/video",
             "videos": [[str(f) for f in frames]], "fps": 2.0}]
    pairs = preference_pairs(rows, [["1", "2"]], [[True, False]], 1, seed=0)
    assert pairs[0]["videos"] == [[str(f) for f in frames]] and pairs[0]["fps"] == 2.0
    path = write_jsonl(tmp_path / "artifact" / DATA_FILE, pairs)
    loaded, stats = load_rows([str(path)], "preference", "error")
    assert stats["skipped"] == 0 and loaded[0]["videos"] == [[str(f) for f in frames]] and loaded[0]["fps"] == 2.0

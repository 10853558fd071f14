"""The visual suite: gold answers recomputed from the scene, images that show the scene, captions, Keye's
caption re-formatting, trap questions, determinism and caching; images in the data loader."""

from __future__ import annotations

import dataclasses
import io
import json
import os
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from datahelpers import read_jsonl
from PIL import Image

from rewards.ifeval import check_constraints
from rewards.math import math_reward
from rlsys.data.loading import load_rows, write_rows
from rlsys.data.schema import DataError
from rlsys.data.tasks.visual.captions import QA_LAYOUT, REVERSE_QA_LAYOUT, caption, shape_groups
from rlsys.data.tasks.visual.scene import ALL_COLORS, COLORS, GAP, PLURAL
from rlsys.data.tasks.visual.suite import (
    KINDS,
    MANIFEST,
    VisualSuiteSpec,
    build_visual_suite,
    generate_visual_suite,
)
from rlsys.data.tasks.visual.tasks import TASKS, split_of, task_rows

SPEC = VisualSuiteSpec(
    seed=7, n_train_per_task=12, n_eval_per_task=4, n_sft_per_task=6, n_trap_train=12, n_trap_eval=4
)
TIERS = {
    "arith": 1,
    "count": 1,
    "identify": 1,
    "chart_value": 2,
    "chart_diff": 2,
    "chart_max": 2,
    "chart_combo": 3,
    "rect_area": 3,
    "rect_perimeter": 3,
    "triangle_area": 3,
}


@pytest.fixture(scope="module")
def suite(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return build_visual_suite(str(tmp_path_factory.mktemp("visual")), SPEC)


@pytest.fixture(scope="module")
def rows(suite: dict[str, str]) -> dict[str, list[dict]]:
    return {name: read_jsonl(path) for name, path in suite.items()}


@pytest.fixture(scope="module")
def many_rows() -> list[dict]:
    """A few hundred task rows (both splits), generated in memory without images."""
    out = []
    for task in TASKS:
        out += task_rows(task, 30, "train", 11, 224) + task_rows(task, 8, "eval", 11, 224)
    return out


# ----------------------------------------------------------------------------- gold answers from the scene


def gold(row: dict) -> int:
    """The answer recomputed from `scene` and `query` alone (independently of the generators)."""
    scene, query, task = row["scene"], row["query"], row["task"]
    if task == "arith":
        a, b = scene["a"], scene["b"]
        return {"+": a + b, "-": a - b, "*": a * b}[scene["op"]]
    if task in ("count", "trap"):
        return sum(
            (query.get("color") in (None, o["color"])) and (query.get("shape") in (None, o["shape"]))
            for o in scene["objects"]
        )
    if task == "identify":
        (color,) = [o["color"] for o in scene["objects"] if o["shape"] == query["shape"]]
        return query["options"].index(color) + 1
    values = {b["label"]: b["value"] for b in scene["bars"]} if scene["kind"] == "bar_chart" else {}
    if task == "chart_value":
        return values[query["label"]]
    if task == "chart_diff":
        return values[query["big"]] - values[query["small"]]
    if task == "chart_max":
        return max(values.values())
    if task == "chart_combo":
        return values[query["a"]] + values[query["b"]] - values[query["c"]]
    if task == "rect_area":
        return scene["width"] * scene["height"]
    if task == "rect_perimeter":
        return 2 * (scene["width"] + scene["height"])
    if task == "triangle_area":
        return scene["legs"][0] * scene["legs"][1] // 2
    raise AssertionError(task)


def test_gold_answers_solutions_and_hints(many_rows: list[dict]) -> None:
    assert len(many_rows) > 300
    for r in many_rows:
        answer = gold(r)
        assert r["answer"] == str(answer) and answer >= 0, r["id"]
        assert r["tier"] == TIERS[r["task"]] and r["data_source"] == "rlsys/visual"
        assert r["images"] == [f"images/{r['id']}.png"]
        assert json.loads(json.dumps(r)) == r
        box = f"The answer is \\boxed{{{answer}}}."
        assert r["solution"].endswith(box)
        assert math_reward(prompt=r["prompt"], completion=r["solution"], answer=r["answer"])["score"] == 1.0
        hints = r["hints"]
        assert len(hints) == 5 and len(set(hints)) == 5 and all(h.strip() for h in hints)
        assert hints[3].startswith("First step: ") and hints[4] == r["solution"] and hints[4].endswith(box)
        # Levels 1-3 say what to do, never the result.
        assert not any(box in h for h in hints[:4])
        assert split_of(r["key"]) == r["id"].split("-")[-2]
    by_task = Counter(r["task"] for r in many_rows)
    assert set(by_task) == set(TASKS)
    # Geometry: the triangle's area is a whole number; charts: values on the tick grid, one tallest bar.
    for r in many_rows:
        s = r["scene"]
        if s["kind"] == "right_triangle":
            assert s["legs"][0] * s["legs"][1] % 2 == 0
        if s["kind"] == "bar_chart":
            values = [b["value"] for b in s["bars"]]
            assert all(v % s["y_step"] == 0 and 0 < v <= s["y_max"] for v in values)
            assert values.count(max(values)) == 1


def test_count_scenes_do_not_overlap(many_rows: list[dict]) -> None:
    for r in many_rows:
        if r["scene"]["kind"] != "shapes":
            continue
        objs, (w, h) = r["scene"]["objects"], r["scene"]["size"]
        for i, a in enumerate(objs):
            (x, y), rad = a["center"], a["radius"]
            assert rad <= x <= w - rad and rad <= y <= h - rad
            for b in objs[i + 1 :]:
                dist2 = (x - b["center"][0]) ** 2 + (y - b["center"][1]) ** 2
                assert dist2 >= (rad + b["radius"] + GAP) ** 2


def test_train_and_held_out_problems_are_disjoint(many_rows: list[dict]) -> None:
    train = {r["key"] for r in many_rows if "-train-" in r["id"]}
    held = {r["key"] for r in many_rows if "-eval-" in r["id"]}
    assert train and held and train.isdisjoint(held)
    # The split depends on the problem, not on the seed.
    other = task_rows("arith", 30, "eval", 99, 224)
    assert all(split_of(r["key"]) == "eval" for r in other)


# ----------------------------------------------------------------------------- the images show the scene


def _pixels(suite: dict[str, str], row: dict) -> np.ndarray:
    path = Path(suite["vl_train"]).parent / row["images"][0]
    return np.asarray(Image.open(path).convert("RGB"))


def _blobs(mask: np.ndarray) -> list[list[tuple[int, int]]]:
    """4-connected components of a boolean mask."""
    todo = set(zip(*np.nonzero(mask)))
    blobs = []
    while todo:
        stack = [todo.pop()]
        blob = []
        while stack:
            y, x = stack.pop()
            blob.append((y, x))
            for n in ((y + 1, x), (y - 1, x), (y, x + 1), (y, x - 1)):
                if n in todo:
                    todo.remove(n)
                    stack.append(n)
        blobs.append(blob)
    return blobs


def _shape_of(blob: list[tuple[int, int]]) -> str:
    ys, xs = zip(*blob)
    fill = len(blob) / ((max(ys) - min(ys) + 1) * (max(xs) - min(xs) + 1))
    return "square" if fill > 0.93 else "circle" if fill > 0.66 else "triangle"


def test_shape_images_show_each_object(suite: dict[str, str], rows: dict[str, list[dict]]) -> None:
    shape_rows = [r for r in rows["vl_train"] + rows["vl_trap_train"] if r["scene"]["kind"] == "shapes"]
    assert len(shape_rows) >= 20
    for r in shape_rows:
        pix = _pixels(suite, r)
        for color, rgb in COLORS.items():
            blobs = _blobs(np.all(pix == rgb, axis=-1))
            objs = [o for o in r["scene"]["objects"] if o["color"] == color]
            assert len(blobs) == len(objs), (r["id"], color)
            assert Counter(_shape_of(b) for b in blobs) == Counter(o["shape"] for o in objs), (r["id"], color)
        if r["task"] == "identify":  # the asked-for shape's colour, read off the pixels, is the answer's option
            (seen_color,) = [c for c in COLORS if any(_shape_of(b) == r["query"]["shape"]
                                                      for b in _blobs(np.all(pix == COLORS[c], axis=-1)))]
            assert r["query"]["options"][int(r["answer"]) - 1] == seen_color, r["id"]
            continue
        # The asked-for count, read off the pixels.
        color, shape = r["query"].get("color"), r["query"].get("shape")
        seen = sum(
            _shape_of(b) in (shape,) if shape else 1
            for c in ([color] if color else COLORS)
            for b in _blobs(np.all(pix == COLORS[c], axis=-1))
        )
        assert seen == int(r["answer"]), r["id"]


def test_chart_images_show_each_value(suite: dict[str, str], rows: dict[str, list[dict]]) -> None:
    charts = [r for r in rows["vl_train"] if r["scene"]["kind"] == "bar_chart"]
    assert len(charts) >= 40
    for r in charts:
        s, pix = r["scene"], _pixels(suite, r)
        mask = np.all(pix == COLORS[s["color"]], axis=-1)
        assert len(_blobs(mask)) == len(s["bars"])
        x0, y0, x1, y1 = s["plot"]
        slot = (x1 - x0) / len(s["bars"])
        for i, bar in enumerate(s["bars"]):
            column = mask[:, round(x0 + slot * (i + 0.5))]
            top = int(np.argmax(column))
            assert column.any() and round((y1 - top) * s["y_max"] / (y1 - y0)) == bar["value"], r["id"]
        # Tick labels and titles are drawn: dark text pixels above the plot and left of the y-axis.
        dark = pix.sum(axis=-1) < 200
        assert dark[:y0, :].sum() > 20 and dark[:, : x0 - 3].sum() > 20


def test_text_and_geometry_images(suite: dict[str, str], rows: dict[str, list[dict]]) -> None:
    for r in rows["vl_train"]:
        s, pix = r["scene"], _pixels(suite, r)
        background = np.array(ALL_COLORS[s["background"]])
        ink = np.any(pix != background, axis=-1)
        assert ink.sum() > 100, r["id"]  # never blank
        if s["kind"] == "expression":
            ys, xs = np.nonzero(ink)
            assert (
                abs((xs.min() + xs.max()) / 2 - s["center"][0]) < 6
                and abs((ys.min() + ys.max()) / 2 - s["center"][1]) < 0.5 * s["font_size"]
            )
        elif s["kind"] in ("rectangle", "right_triangle"):
            ys, xs = np.nonzero(np.all(pix == ALL_COLORS[s["color"]], axis=-1))
            points = [s["box"][:2], s["box"][2:]] if s["kind"] == "rectangle" else s["vertices"]
            px_, py_ = zip(*points)
            assert abs(xs.min() - min(px_)) <= 2 and abs(xs.max() - max(px_)) <= 2, r["id"]
            assert abs(ys.min() - min(py_)) <= 2 and abs(ys.max() - max(py_)) <= 2, r["id"]


# ----------------------------------------------------------------------------- captions, QA, IF, traps


def test_captions_come_from_the_scene(rows: dict[str, list[dict]]) -> None:
    for r in rows["vl_caption_train"] + rows["vl_caption_eval"]:
        assert r["response"] == r["caption"] == caption(r["scene"]) and r["caption"].endswith(".")
        s = r["scene"]
        if s["kind"] == "shapes":
            counts = Counter((o["color"], o["shape"]) for o in s["objects"])
            assert sum(n for n, _, _ in shape_groups(s)) == len(s["objects"])
            for (color, shape), n in counts.items():
                assert f"{color} {shape if n == 1 else PLURAL[shape]}" in r["caption"]
        elif s["kind"] == "bar_chart":
            assert all(f"{b['label']} {b['value']}" in r["caption"] for b in s["bars"])
        assert f"{s['background']} background" in r["caption"] or s["kind"] == "bar_chart"
    shapes = {
        "kind": "shapes",
        "size": [224, 224],
        "background": "white",
        "objects": [
            {"shape": "circle", "color": "red", "center": [20, 20], "radius": 12},
            {"shape": "square", "color": "blue", "center": [80, 20], "radius": 12},
            {"shape": "circle", "color": "red", "center": [150, 20], "radius": 12},
            {"shape": "circle", "color": "red", "center": [20, 90], "radius": 12},
            {"shape": "square", "color": "blue", "center": [80, 90], "radius": 12},
        ],
    }
    assert caption(shapes) == "Three red circles and two blue squares on a white background."


def test_qa_and_reverse_qa_layouts(rows: dict[str, list[dict]]) -> None:
    by_id = {r["id"]: r for r in rows["vl_sft_train"]}
    qa, rqa = rows["vl_caption_qa_train"], rows["vl_caption_rqa_train"]
    assert len(qa) == len(rqa) == len(by_id)
    for r, rev in zip(qa, rqa):
        task = by_id["sft-" + r["id"].removeprefix("capqa-")]
        assert r["layout"] == QA_LAYOUT == ["image", "caption", "eos", "question", "response"]
        assert rev["layout"] == REVERSE_QA_LAYOUT == ["image", "question", "response", "eos", "caption"]
        assert r["images"] == rev["images"] == task["images"]
        assert (
            r["question"] in task["prompt"]
            and r["response"] == task["response"]
            and r["answer"] == task["answer"]
        )
        assert [m["content"] for m in r["messages"]][1::2] == [r["caption"], r["response"]]
        assert [m["content"] for m in rev["messages"]][1::2] == [rev["response"], rev["caption"]]
        assert [m["role"] for m in r["messages"]] == ["user", "assistant"] * 2


def test_instruction_following_captions_pass_their_checks(rows: dict[str, list[dict]]) -> None:
    seen = Counter()
    for r in rows["vl_caption_if_train"]:
        assert all(check_constraints(r["response"], r["constraints"], r["prompt"])), r
        seen.update(c["type"] for c in r["constraints"])
        # The request shows a checkable instruction for each constraint.
        assert r["prompt"].startswith("Describe the picture")
    assert {"sentence_count", "starts_with", "all_lowercase", "word_count"} <= set(seen)


def test_trap_questions_ask_about_something_absent(rows: dict[str, list[dict]]) -> None:
    traps = rows["vl_trap_train"] + rows["vl_trap_eval"]
    assert len(traps) == SPEC.n_trap_train + SPEC.n_trap_eval
    kinds = Counter()
    for r in traps:
        assert gold(r) == 0 and r["answer"] == "0"
        assert r["response"].startswith(f"There are no {r['query']['things']} in the picture.")
        assert caption(r["scene"])[1:-1] in r["response"]  # names what is there
        assert math_reward(prompt=r["prompt"], completion=r["response"], answer="0")["score"] == 1.0
        kinds[tuple(sorted(k for k in r["query"] if k in ("color", "shape")))] += 1
    assert len(kinds) >= 2


# ----------------------------------------------------------------------------- build: schema, determinism, cache


def test_every_split_loads_with_its_kind(suite: dict[str, str]) -> None:
    assert set(suite) == set(KINDS)
    for name, path in suite.items():
        loaded, stats = load_rows([path], KINDS[name])
        assert stats["skipped"] == 0 and len(loaded) == len(read_jsonl(path)) > 0
        for r in loaded:
            assert all(os.path.isabs(p) and os.path.isfile(p) for p in r["images"])


def test_same_seed_same_bytes_and_reuse(tmp_path: Path, suite: dict[str, str]) -> None:
    a = build_visual_suite(str(tmp_path / "a"), SPEC)
    for name in a:
        assert Path(a[name]).read_bytes() == Path(suite[name]).read_bytes(), name
    images_a = sorted((tmp_path / "a" / "images").iterdir())
    images_b = sorted((Path(suite["vl_train"]).parent / "images").iterdir())
    assert [p.name for p in images_a] == [p.name for p in images_b]
    assert all(x.read_bytes() == y.read_bytes() for x, y in zip(images_a, images_b))
    manifest = json.loads((tmp_path / "a" / MANIFEST).read_text())
    assert (
        manifest["n_images"] == len(images_a) and manifest["counts"]["vl_train"] == len(TASKS) * SPEC.n_train_per_task
    )
    # A matching manifest means nothing is rewritten.
    stamp = os.stat(images_a[0]).st_mtime_ns
    assert build_visual_suite(str(tmp_path / "a"), SPEC) == a
    assert os.stat(images_a[0]).st_mtime_ns == stamp
    # Another seed: other content; a changed spec rebuilds in place, leaving no stale images.
    other = generate_visual_suite(dataclasses.replace(SPEC, seed=8, tasks=["count"]))
    assert other["vl_train"] != [r for r in read_jsonl(a["vl_train"]) if r["task"] == "count"]
    small = dataclasses.replace(SPEC, tasks=["arith"], n_sft_per_task=0, n_trap_train=0, n_trap_eval=0)
    build_visual_suite(str(tmp_path / "a"), small)
    assert {p.name.split("-")[1] for p in (tmp_path / "a" / "images").iterdir()} == {"arith"}


def test_ensure_visual_suite_is_cached_by_spec_and_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rlsys.data import embedded
    from rlsys.data.tasks.visual import suite as vsuite

    spec = dataclasses.replace(
        SPEC, tasks=["count", "rect_area"], n_sft_per_task=2, n_trap_train=2, n_trap_eval=1
    )
    first = Path(embedded.ensure_visual_suite(str(tmp_path), spec)["vl_train"]).parent
    assert first.parent.name == "data_visual"
    stamp = os.stat(first / MANIFEST).st_mtime_ns
    assert Path(vsuite.ensure_visual_suite(str(tmp_path), spec)["vl_train"]).parent == first
    assert os.stat(first / MANIFEST).st_mtime_ns == stamp
    assert (
        Path(vsuite.ensure_visual_suite(str(tmp_path), dataclasses.replace(spec, seed=3))["vl_train"]).parent
        != first
    )
    monkeypatch.setattr(vsuite, "visual_fingerprint", lambda: "edited-generator")
    assert Path(vsuite.ensure_visual_suite(str(tmp_path), spec)["vl_train"]).parent != first


def test_visual_code_is_outside_the_text_suite_key() -> None:
    """The text suite's key hashes rlsys/data/tasks/*.py only: the visual subpackage never moves it."""
    from rlsys.data import embedded
    from rlsys.data.tasks.visual import suite as vsuite

    assert not any("visual" in p.parts for p in embedded.generator_sources())
    names = {p.name for p in vsuite.visual_sources()}
    assert {"scene.py", "render.py", "tasks.py", "captions.py", "suite.py", "arith.py"} <= names


def test_spec_validation_and_from_config() -> None:
    with pytest.raises(ValueError, match="n_train_per_task"):
        VisualSuiteSpec(n_train_per_task=-1)
    with pytest.raises(ValueError, match="unknown task"):
        VisualSuiteSpec(tasks=["sudoku"])
    with pytest.raises(ValueError, match="image_size"):
        VisualSuiteSpec(image_size=16)
    spec = VisualSuiteSpec.from_config({"seed": 9, "tasks": ["count"], "image_size": 256})
    assert (spec.seed, spec.task_names, spec.image_size) == (9, ["count"], 256)
    assert VisualSuiteSpec.from_config({}).task_names == list(TASKS)


# ----------------------------------------------------------------------------- images in the data loader


def _png(path: Path, color: str = "red") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), color).save(path, format="PNG")
    return path


def _jsonl(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


ROW = {"id": "v1", "prompt": "How many red circles?", "answer": "2"}


def test_image_paths_resolve_relative_to_the_data_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _png(tmp_path / "data" / "images" / "a.png")
    absolute = _png(tmp_path / "elsewhere" / "b.png")
    path = _jsonl(
        tmp_path / "data" / "train.jsonl",
        [{**ROW, "images": ["images/a.png", str(absolute)]}, {**ROW, "id": "v2"}],
    )
    monkeypatch.chdir(tmp_path / "elsewhere")
    loaded, _ = load_rows([path], "rl", cache_dir=str(tmp_path / "cache"))
    assert loaded[0]["images"] == [str((tmp_path / "data" / "images" / "a.png").resolve()), str(absolute)]
    assert "images" not in loaded[1]


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (
            "images/missing.png",
            r"train\.jsonl row 2: field 'images\[1\]' names a missing image file .*missing\.png",
        ),
        (
            "images/broken.png",
            r"train\.jsonl row 2: field 'images\[1\]' is not a readable image: .*broken\.png",
        ),
        ("images/cut.png", r"train\.jsonl row 2: field 'images\[1\]' is not a readable image: .*cut\.png"),
    ],
)
def test_bad_image_names_file_row_and_field(tmp_path: Path, entry: str, message: str) -> None:
    good = _png(tmp_path / "images" / "ok.png")
    (tmp_path / "images" / "broken.png").write_bytes(b"not a png at all")
    (tmp_path / "images" / "cut.png").write_bytes(good.read_bytes()[:-20])
    path = _jsonl(
        tmp_path / "train.jsonl",
        [{**ROW, "images": ["images/ok.png"]}, {**ROW, "id": "v2", "images": ["images/ok.png", entry]}],
    )
    with pytest.raises(DataError, match=message):
        load_rows([path], "rl", cache_dir=str(tmp_path / "cache"))


def test_bad_image_rows_are_skipped_and_counted(tmp_path: Path) -> None:
    _png(tmp_path / "images" / "ok.png")
    path = _jsonl(
        tmp_path / "train.jsonl",
        [
            {**ROW, "images": ["images/ok.png"]},
            {**ROW, "id": "v2", "images": ["images/gone.png"]},
            {**ROW, "id": "v3", "images": "images/ok.png"},  # not a list
            {**ROW, "id": "v4", "images": [3]},
        ],
    )
    loaded, stats = load_rows([path], "rl", on_bad_row="skip", cache_dir=str(tmp_path / "cache"))
    assert [r["id"] for r in loaded] == ["v1"] and stats["skipped"] == 3
    assert any("row 2: field 'images[0]' names a missing image file" in m for m in stats["bad_rows"])
    assert any("row 3: field 'images' must be a non-empty list" in m for m in stats["bad_rows"])
    assert any("row 4: field 'images[0]' must be an image path" in m for m in stats["bad_rows"])


def test_datasets_image_column_is_accepted(tmp_path: Path) -> None:
    """A parquet file saved by `datasets` with an Image column: decoded PIL images become cached files."""
    import datasets

    buf = io.BytesIO()
    Image.new("RGB", (8, 8), "blue").save(buf, format="PNG")
    features = datasets.Features(
        {
            "id": datasets.Value("string"),
            "prompt": datasets.Value("string"),
            "answer": datasets.Value("string"),
            "images": datasets.Sequence(datasets.Image()),
        }
    )
    ds = datasets.Dataset.from_dict(
        {
            "id": ["p1"],
            "prompt": ["What colour?"],
            "answer": ["1"],
            "images": [[{"bytes": buf.getvalue(), "path": None}]],
        },
        features=features,
    )
    ds.to_parquet(str(tmp_path / "img.parquet"))
    loaded, _ = load_rows([str(tmp_path / "img.parquet")], "rl", cache_dir=str(tmp_path / "cache"))
    (path,) = loaded[0]["images"]
    assert path.startswith(str(tmp_path / "cache")) and Image.open(path).getpixel((0, 0)) == (0, 0, 255)
    # Plain rows written by rlsys (paths as strings) load from parquet too.
    _png(tmp_path / "images" / "a.png")
    pq = write_rows(str(tmp_path / "rows.parquet"), [{**ROW, "images": ["images/a.png"]}])
    assert load_rows([pq], "rl", cache_dir=str(tmp_path / "cache"))[0][0]["images"] == [
        str((tmp_path / "images" / "a.png").resolve())
    ]

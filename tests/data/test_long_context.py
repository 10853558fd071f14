"""Long rows for the long-context stage: packing, gold answers, media order, curriculum checks."""

from __future__ import annotations

import pytest

from rlsys.config.validate import ConfigError
from rlsys.data.long_context import (
    Phase,
    check_phases,
    compose_long_row,
    long_eval_rows,
    long_rows,
    phase_steps,
    row_kind,
)


def _text(i: int) -> dict:
    return {"id": f"t{i}", "prompt": f"Add {i} and 1.", "answer": str(i + 1), "response": f"{i} + 1 = {i + 1}.",
            "data_source": "rlsys/math", "task": "math", "tier": 1, "hints": ["h"] * 5}


def _image(i: int, n: int = 1) -> dict:
    return {"id": f"i{i}", "prompt": f"Count the dots ({i}).", "answer": str(i),
            "images": [f"/img/{i}_{k}.png" for k in range(n)], "data_source": "rlsys/visual"}


def _video(i: int, fps: float = 2.0) -> dict:
    return {"id": f"v{i}", "prompt": f"When does it move ({i})?", "answer": str(i), "fps": fps,
            "videos": [[f"/vid/{i}/frame_{k}.png" for k in range(3)]]}


def test_compose_text_row_asks_the_target_and_keeps_its_gold() -> None:
    row = compose_long_row([_text(1), _text(2), _text(3)], 1, "long-0")
    assert row["prompt"] == ("Below are 3 tasks. Answer only task 2; the others are there to be read past.\n\n"
                             "Task 1: Add 1 and 1.\n\nTask 2: Add 2 and 1.\n\nTask 3: Add 3 and 1.\n\n"
                             "Answer task 2.")
    assert (row["answer"], row["response"], row["long_items"], row["long_target"]) == ("3", "2 + 1 = 3.", 3, 2)
    assert row["long_kind"] == "text" and row["long_source"] == "t2" and "hints" not in row and "images" not in row


def test_compose_image_row_numbers_pictures_in_task_order() -> None:
    row = compose_long_row([_image(1), _image(2, n=2), _image(3)], 2, "long-1")
    assert row["images"] == ["/img/1_0.png", "/img/2_0.png", "/img/2_1.png", "/img/3_0.png"]
    assert "Task 1 (picture 1): " in row["prompt"] and "Task 2 (pictures 2-3): " in row["prompt"]
    assert "Task 3 (picture 4): Count the dots (3)." in row["prompt"] and row["answer"] == "3"


def test_compose_video_row_keeps_every_video_and_the_fps() -> None:
    row = compose_long_row([_video(4), _video(5)], 0, "long-2")
    assert row["videos"] == _video(4)["videos"] + _video(5)["videos"] and row["fps"] == 2.0
    assert "Task 2 (video 2): " in row["prompt"] and row["answer"] == "4" and row_kind(row) == "video"


def test_compose_refuses_mixed_kinds_fps_and_bad_targets() -> None:
    with pytest.raises(ValueError, match="mix kinds"):
        compose_long_row([_text(1), _image(2)], 0, "x")
    with pytest.raises(ValueError, match="different fps"):
        compose_long_row([_video(1, 2.0), _video(2, 4.0)], 0, "x")
    with pytest.raises(ValueError, match="target 3 outside"):
        compose_long_row([_text(1)] * 3, 3, "x")


def test_long_rows_pack_every_row_once_deterministically() -> None:
    rows = [_text(i) for i in range(20)] + [_image(i) for i in range(7)]
    a = long_rows(rows, (2, 4), seed=3, name="mix")
    assert a == long_rows(rows, (2, 4), seed=3, name="mix")
    assert a != long_rows(rows, (2, 4), seed=4, name="mix")
    assert all(2 <= r["long_items"] <= 4 and 1 <= r["long_target"] <= r["long_items"] for r in a)
    # Every row appears in some long row (a short remainder is filled with repeats, never left out).
    seen = {f"Add {i} and 1." for i in range(20)} | {f"Count the dots ({i})." for i in range(7)}
    assert all(any(s in r["prompt"] for r in a) for s in seen)
    assert {r["long_kind"] for r in a} == {"text", "image"} and len({r["id"] for r in a}) == len(a)
    # The gold is the asked row's: "Add n and 1." as task j -> n + 1.
    for r in (r for r in a if r["long_kind"] == "text"):
        asked = r["prompt"].split(f"Task {r['long_target']}: Add ")[1].split(" ")[0]
        assert r["answer"] == str(int(asked) + 1)


def test_long_eval_rows_have_exactly_k_items_and_distinct_targets() -> None:
    rows = [_text(i) for i in range(30)]
    out = long_eval_rows(rows, 8, 12, seed=0, name="math_eval")
    assert len(out) == 12 and all(r["long_items"] == 8 for r in out)
    assert len({r["long_source"] for r in out}) == 12
    assert {r["long_target"] for r in out} != {1}  # the target's position varies
    short = long_eval_rows(rows, 1, 3, seed=0, name="math_eval")
    assert [r["prompt"] for r in short] == [rows[int(r["long_source"][1:])]["prompt"] for r in short]
    assert all(r["long_items"] == 1 and r["answer"] == rows[int(r["long_source"][1:])]["answer"] for r in short)
    with pytest.raises(ValueError, match="needs at least 31 rows"):
        long_eval_rows(rows, 31, 2, seed=0, name="math_eval")


def test_check_phases_names_the_key_and_phase() -> None:
    ok = check_phases([{"seq_len": 512, "items": [1, 2], "share": 0.25}, {"seq_len": 1024, "items": [2, 8],
                                                                         "share": 0.75}], "k")
    assert ok == [Phase(512, (1, 2), 0.25), Phase(1024, (2, 8), 0.75)]
    with pytest.raises(ConfigError, match=r"'k': phase shares sum to 0.9"):
        check_phases([{"seq_len": 512, "items": [1, 2], "share": 0.9}], "k")
    with pytest.raises(ConfigError, match=r"'k\[0\]\.items' = \[3, 2\]"):
        check_phases([{"seq_len": 512, "items": [3, 2], "share": 1.0}], "k")
    with pytest.raises(ConfigError, match=r"'k\[0\]': needs exactly"):
        check_phases([{"seq_len": 512, "items": [1, 2], "share": 1.0, "lr": 1}], "k")
    with pytest.raises(ConfigError, match="at least one phase"):
        check_phases([], "k")


def test_phase_steps_split_by_share() -> None:
    phases = [Phase(1, (1, 1), 0.4), Phase(1, (1, 1), 0.3), Phase(1, (1, 1), 0.3)]
    assert phase_steps(phases, 60) == [24, 18, 18]
    assert phase_steps(phases, 7) == [3, 2, 2]  # 2.8, 2.1, 2.1: the largest remainder rounds up
    assert phase_steps(phases, 3) == [1, 1, 1]
    with pytest.raises(ValueError):
        phase_steps(phases, 2)

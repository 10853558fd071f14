"""Video task generators: gold answers recomputed from the frames each scene draws, determinism, splits."""

from __future__ import annotations

import pytest

from rlsys.data.tasks.video.scene import DIRECTIONS, clips_of, frames_of, name, shown_frames
from rlsys.data.tasks.video.tasks import TASKS, split_of, task_rows

SIZE, N_FRAMES = 96, 10


def names(frame: list[dict]) -> set[str]:
    return {name(o) for o in frame}


def first_change(frames: list[list[dict]], what: str, kind: str) -> int:
    """Index of the first frame where `what` appears (absent before) or leaves (present before)."""
    for t in range(1, len(frames)):
        before, now = what in names(frames[t - 1]), what in names(frames[t])
        if (kind == "appear" and now and not before) or (kind == "leave" and before and not now):
            return t
    raise AssertionError(f"{what} never does {kind}")


def recompute(row: dict) -> int:
    """The answer from the drawn frames alone (not from the event list the solver reads)."""
    scene, query, task = row["scene"], row["query"], row["task"]
    if task == "video_count":
        frames = frames_of(scene)
        appear = query["event"] == "appear"
        return sum(len(names(b) - names(a) if appear else names(a) - names(b)) for a, b in zip(frames, frames[1:]))
    if task in ("video_order", "video_when"):
        frames = frames_of(scene)
        picks = query["events"] if task == "video_order" else [query["event"]]
        times = [first_change(frames, name(scene["objects"][scene["events"][i]["object"]]),
                              scene["events"][i]["type"]) for i in picks]
        if task == "video_order":
            return 1 if times[0] < times[1] else 2
        return times[0] + 1 if query["unit"] == "frame" else times[0] // scene["fps"]
    if task == "video_motion":
        frames = frames_of(scene)
        first = next(o for o in frames[0] if name(o) == query["what"])["center"]
        last = next(o for o in frames[-1] if name(o) == query["what"])["center"]
        dx, dy = last[0] - first[0], last[1] - first[1]
        assert (dx == 0) != (dy == 0), "a mover moves along one axis"
        direction = ("right" if dx > 0 else "left") if dx else ("down" if dy > 0 else "up")
        return DIRECTIONS.index(direction) + 1
    if task == "video_frame_order":
        counts = [len(f) for f in shown_frames(scene)]
        return int("".join(str(p + 1) for p in sorted(range(len(counts)), key=counts.__getitem__)))
    if task == "video_related":
        sets = [set().union(*(names(f) for f in frames_of(c))) for c in clips_of(scene)]
        matches = [i for i in range(1, len(sets)) if sets[i] == sets[0]]
        assert len(matches) == 1
        return matches[0]
    raise AssertionError(task)


def no_overlap(frame: list[dict], size: int) -> bool:
    for i, a in enumerate(frame):
        x, y = a["center"]
        if not (a["radius"] <= x <= size - a["radius"] and a["radius"] <= y <= size - a["radius"]):
            return False
        for b in frame[i + 1:]:
            if (x - b["center"][0]) ** 2 + (y - b["center"][1]) ** 2 < (a["radius"] + b["radius"]) ** 2:
                return False
    return True


@pytest.mark.parametrize("task", list(TASKS))
def test_gold_answers_recomputed_from_frames(task: str) -> None:
    for split in ("train", "eval"):
        for row in task_rows(task, 25, split, seed=7, size=SIZE, n_frames=N_FRAMES):
            assert row["answer"] == str(recompute(row)), row["id"]
            assert row["solution"].endswith(f"\\boxed{{{row['answer']}}}.")
            assert len(row["hints"]) == 5 and row["hints"][4] == row["solution"]
            for clip in clips_of(row["scene"]):
                assert all(no_overlap(f, SIZE) for f in frames_of(clip)), row["id"]
                assert len(names(frames_of(clip)[0])) == len(frames_of(clip)[0])  # kinds are unique


def test_answer_spread() -> None:
    # Every option / count shows up: the generators are not stuck on one answer.
    spread = {t: {r["answer"] for r in task_rows(t, 40, "train", 3, SIZE, N_FRAMES)} for t in TASKS}
    assert spread["video_motion"] == {"1", "2", "3", "4"}
    assert spread["video_order"] == {"1", "2"}
    assert spread["video_related"] == {"1", "2", "3"}
    assert {"1", "2", "3"} <= spread["video_count"]


@pytest.mark.parametrize("task", list(TASKS))
def test_deterministic_and_split_disjoint(task: str) -> None:
    a = task_rows(task, 8, "train", 5, SIZE, N_FRAMES)
    assert a == task_rows(task, 8, "train", 5, SIZE, N_FRAMES)
    assert a != task_rows(task, 8, "train", 6, SIZE, N_FRAMES)
    evals = task_rows(task, 8, "eval", 5, SIZE, N_FRAMES)
    assert all(split_of(r["key"]) == "train" for r in a) and all(split_of(r["key"]) == "eval" for r in evals)
    assert not {r["key"] for r in a} & {r["key"] for r in evals}
    assert len({r["key"] for r in a}) == len(a)


def test_related_row_names_one_folder_per_clip() -> None:
    row = task_rows("video_related", 1, "train", 1, SIZE, N_FRAMES)[0]
    assert row["videos"] == [f"videos/{row['id']}-{k}" for k in range(4)]
    single = task_rows("video_count", 1, "train", 1, SIZE, N_FRAMES)[0]
    assert single["videos"] == [f"videos/{single['id']}"] and single["fps"] == 1


@pytest.mark.parametrize(("size", "n_frames"), [(64, 6), (128, 16)])
def test_other_frame_sizes_and_counts(size: int, n_frames: int) -> None:
    for task in TASKS:
        for row in task_rows(task, 10, "train", 2, size, n_frames):
            assert row["answer"] == str(recompute(row)), row["id"]
            clip = clips_of(row["scene"])[0]
            assert clip["size"] == [size, size]
            assert all(no_overlap(f, size) for f in frames_of(clip))
            if task != "video_frame_order":
                assert clip["n_frames"] == n_frames

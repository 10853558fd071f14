"""Video task types: scene sampling, question, worked solution and five hint levels per type.

Row schema (docs/DATA.md, "Video rows"): `{"id", "data_source": "rlsys/video", "task", "tier", "prompt",
"answer", "solution", "hints", "videos": ["videos/<id>"], "fps", "scene", "query", "key"}`; each entry of
`videos` is a folder of `frame_000.png`, `frame_001.png`, ... beside the jsonl (a `video_related` row names
four folders, `videos/<id>-0` .. `-3`). Answers are non-negative integers (options are numbered), so the math
reward scores them. Train vs held-out is decided by a salted hash of the canonical `key`, as for the visual
rows, so a problem never lands in both splits.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator

from rlsys.data.tasks.video.scene import clips_of
from rlsys.data.tasks.video.tasks_events import CountEvents, EventOrder, TemporalGrounding
from rlsys.data.tasks.video.tasks_motion import FrameOrder, MotionDirection, RelatedClip
from rlsys.data.tasks.visual.task_base import VisualTask, solution_text

DATA_SOURCE = "rlsys/video"
SPLITS = ("train", "eval")
SPLIT_SALT = "rlsys-video-v1"
EVAL_FRACTION = 0.2
VIDEO_DIR = "videos"
# Consecutive duplicate draws after which a task's problem space counts as used up for a split.
_EXHAUSTED_AFTER = 200

TASKS: dict[str, VisualTask] = {
    t.name: t
    for t in (CountEvents(), EventOrder(), TemporalGrounding(), MotionDirection(), FrameOrder(), RelatedClip())
}


def split_of(key: str) -> str:
    digest = hashlib.sha256(f"{SPLIT_SALT}\x00{key}".encode()).digest()
    return "eval" if int.from_bytes(digest[:8], "big") / 2**64 < EVAL_FRACTION else "train"


def iter_problems(
    task: str, split: str, seed: int, size: int, n_frames: int, stream: str = "rows"
) -> Iterator[tuple[dict, dict, str, str]]:
    """Endless (scene, query, key, prompt) of one task from one split, each key once while the problem
    space lasts. `stream` names an independent draw."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    spec = TASKS[task]
    rng = random.Random(f"video|{seed}|{task}|{split}|{stream}|{size}|{n_frames}")
    used: set[str] = set()
    misses = 0
    while True:
        scene, query = spec.sample(rng, size, n_frames)
        key = spec.key(scene, query)
        if split_of(key) != split:
            continue
        if key in used and misses < _EXHAUSTED_AFTER:
            misses += 1
            continue
        misses = 0
        used.add(key)
        yield scene, query, key, spec.prompt(scene, query, rng)


def video_dirs(row_id: str, scene: dict) -> list[str]:
    """Folders (relative to the jsonl) of a row's videos: one per clip."""
    clips = clips_of(scene)
    if len(clips) == 1:
        return [f"{VIDEO_DIR}/{row_id}"]
    return [f"{VIDEO_DIR}/{row_id}-{k}" for k in range(len(clips))]


def task_row(task: str, scene: dict, query: dict, key: str, prompt: str, row_id: str) -> dict:
    spec = TASKS[task]
    lines, answer = spec.solve(scene, query)
    return {
        "id": row_id,
        "data_source": DATA_SOURCE,
        "task": task,
        "tier": spec.tier,
        "prompt": prompt,
        "answer": str(answer),
        "solution": solution_text(lines, answer),
        "hints": spec.hints(scene, query),
        "videos": video_dirs(row_id, scene),
        "fps": scene["fps"],
        "scene": scene,
        "query": query,
        "key": key,
    }


def task_rows(
    task: str, n: int, split: str, seed: int, size: int, n_frames: int, stream: str = "rows"
) -> list[dict]:
    """`n` rows of one task; ids look like `vid-video_count-train-000012` (or `...-train-sft-000012`)."""
    tag = "" if stream == "rows" else f"{stream}-"
    problems = iter_problems(task, split, seed, size, n_frames, stream)
    return [task_row(task, *next(problems), f"vid-{task}-{split}-{tag}{i:06d}") for i in range(n)]

"""Visual task types in three tiers: scene sampling, question, worked solution, five-level hints.

Row schema (docs/DATA.md, "Image rows"): `{"id", "data_source": "rlsys/visual", "task", "tier", "prompt",
"answer", "solution", "hints", "images": ["images/<id>.png"], "scene", "query", "key"}`. `scene` is what is
drawn (scene.py), `query` what is asked about it; answer, solution and hints are computed from the two.

Tiers: 1 = read an expression and work it (`arith`), count shapes of a named colour / shape (`count`), give
a named shape's colour by its number in a fixed colour list (`identify`: no digits or counting in the
picture); 2 = read a bar chart: one bar's value (`chart_value`), the difference of two bars (`chart_diff`),
the tallest bar's value (`chart_max`); 3 = a rectangle's area / perimeter and a right triangle's area from the
measures written beside them (`rect_area`, `rect_perimeter`, `triangle_area`), and two bars added minus a
third (`chart_combo`). Every answer is a non-negative integer, so the math reward scores it.

Splits work as for the math rows: a canonical `key` (the problem, not its layout or wording) and a salted
hash of it decide train vs held-out, so a problem never lands in both splits for any seed.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator

from rlsys.data.tasks.visual.task_base import VisualTask, solution_text
from rlsys.data.tasks.visual.tasks_charts import ChartCombo, ChartDiff, ChartMax, ChartValue
from rlsys.data.tasks.visual.tasks_geometry import RectArea, RectPerimeter, TriangleArea
from rlsys.data.tasks.visual.tasks_reading import Arith, Count, Identify

DATA_SOURCE = "rlsys/visual"
SPLITS = ("train", "eval")
SPLIT_SALT = "rlsys-visual-v1"
EVAL_FRACTION = 0.2
# Consecutive duplicate draws after which a task's problem space counts as used up for a split.
_EXHAUSTED_AFTER = 200


TASKS: dict[str, VisualTask] = {
    t.name: t
    for t in (
        Arith(),
        Count(),
        Identify(),
        ChartValue(),
        ChartDiff(),
        ChartMax(),
        RectArea(),
        RectPerimeter(),
        TriangleArea(),
        ChartCombo(),
    )
}


# ----------------------------------------------------------------------------- problem streams and rows


def split_of(key: str, salt: str = SPLIT_SALT, eval_fraction: float = EVAL_FRACTION) -> str:
    """Train or held-out for a canonical key; independent of the generation seed (as for the math rows)."""
    digest = hashlib.sha256(f"{salt}\x00{key}".encode()).digest()
    return "eval" if int.from_bytes(digest[:8], "big") / 2**64 < eval_fraction else "train"


def iter_problems(
    task: str, split: str, seed: int, size: int, stream: str = "rows"
) -> Iterator[tuple[dict, dict, str, str]]:
    """Endless (scene, query, key, prompt) of one task from one split, each key once while the problem
    space lasts (then keys repeat, still from the same split). `stream` names an independent draw."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    spec = TASKS[task]
    rng = random.Random(f"visual|{seed}|{task}|{split}|{stream}|{size}")
    used: set[str] = set()
    misses = 0
    while True:
        scene, query = spec.sample(rng, size)
        key = spec.key(scene, query)
        if split_of(key) != split:
            continue
        if key in used and misses < _EXHAUSTED_AFTER:
            misses += 1
            continue
        misses = 0
        used.add(key)
        yield scene, query, key, spec.prompt(scene, query, rng)


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
        "images": [f"images/{row_id}.png"],
        "scene": scene,
        "query": query,
        "key": key,
    }


def task_rows(task: str, n: int, split: str, seed: int, size: int, stream: str = "rows") -> list[dict]:
    """`n` rows of one task; ids look like `vl-count-train-000012` (or `vl-count-train-sft-000012`)."""
    tag = "" if stream == "rows" else f"{stream}-"
    problems = iter_problems(task, split, seed, size, stream)
    return [task_row(task, *next(problems), f"vl-{task}-{split}-{tag}{i:06d}") for i in range(n)]

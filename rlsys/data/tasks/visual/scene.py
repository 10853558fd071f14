"""Scene descriptions: the JSON-serialisable dicts every visual row is generated from.

A scene says exactly what is drawn (kind, canvas size, colours, positions, numbers); `render.py` draws it and
the tasks, solutions, hints and captions are computed from it, never from pixels. Kinds and fields:

- `shapes`: `objects` = [{"shape", "color", "center": [x, y], "radius"}], sorted in reading order; filled,
  non-overlapping (at least `GAP` pixels apart), fully inside the canvas.
- `expression`: the text `"{a} {op} {b}"` in `color`, `font_size` px, centred at `center`.
- `bar_chart`: `title`, `bars` = [{"label", "value"}] drawn in `color`, y-axis 0..`y_max` with a labelled
  tick and a gridline every `y_step` (every value is a multiple of `y_step`), inside `plot` = [x0, y0, x1, y1].
- `rectangle`: outline in `color` at `box` = [x0, y0, x1, y1]; `width` written under the bottom side and
  `height` right of the right side, each as "<n> <unit>" (the drawing is to scale unless clamped).
- `right_triangle`: `vertices` = [right-angle corner, end of the horizontal leg, end of the vertical leg];
  `legs` = [horizontal, vertical] lengths written beside the legs as "<n> <unit>".

Every scene has `kind`, `size` = [width, height] and `background` (a colour name).
"""

from __future__ import annotations

import random

# Fill colours of shapes and bars (name -> RGB); far apart so every pixel of a shape keeps its exact colour.
COLORS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "blue": (40, 80, 220),
    "green": (30, 150, 60),
    "yellow": (235, 195, 20),
    "purple": (140, 60, 180),
    "orange": (245, 130, 20),
}
# Dark colours for text and outlines.
INKS: dict[str, tuple[int, int, int]] = {
    "black": (0, 0, 0),
    "navy": (20, 30, 110),
    "maroon": (120, 20, 30),
    "dark green": (10, 80, 30),
}
BACKGROUNDS: dict[str, tuple[int, int, int]] = {
    "white": (255, 255, 255),
    "light grey": (232, 232, 232),
    "cream": (250, 244, 222),
}
# Light grey of chart gridlines (not a fill colour, so bar pixels stay unambiguous).
GRID = (205, 205, 205)
SHAPES = ("circle", "square", "triangle")
# Backgrounds of shape scenes, drawn uniformly from this list (white twice as often).
SHAPE_BACKGROUNDS = ("white", "white", "light grey", "cream")
PLURAL = {"circle": "circles", "square": "squares", "triangle": "triangles"}
ALL_COLORS = {**COLORS, **INKS, **BACKGROUNDS}
# Least distance in pixels between two shapes' bounding circles.
GAP = 6
# Reference canvas side: sizes and fonts are given for 224 px and scaled to the spec's image size.
REFERENCE = 224

# Bar chart themes: title and category labels (short, common words).
CHART_THEMES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Fruit sold", ("apples", "pears", "plums", "lemons", "grapes")),
    ("Books read", ("Ana", "Ben", "Mia", "Tom", "Lea")),
    ("Cups of tea", ("Mon", "Tue", "Wed", "Thu", "Fri")),
    ("Pets at school", ("cats", "dogs", "fish", "birds", "mice")),
    ("Toys in the box", ("cars", "balls", "dolls", "kites", "drums")),
)
# (y_max, y_step): a labelled tick every step, at most 10 steps.
CHART_SCALES: tuple[tuple[int, int], ...] = (
    (5, 1),
    (6, 1),
    (8, 1),
    (10, 1),
    (10, 2),
    (12, 2),
    (16, 2),
    (20, 2),
    (20, 5),
    (30, 5),
    (40, 5),
    (50, 10),
)
UNITS = ("cm", "m")


def scale(size: int) -> float:
    return size / REFERENCE


def px(value: float, size: int) -> int:
    """A length given for the 224 px reference canvas, on a canvas of side `size`."""
    return max(1, round(value * scale(size)))


def base(kind: str, size: int, background: str) -> dict:
    return {"kind": kind, "size": [size, size], "background": background}


# ----------------------------------------------------------------------------- positions in words

_ROWS = ("top", "middle", "bottom")
_COLS = ("left", "centre", "right")


def region(center: list[int], size: list[int]) -> tuple[int, int]:
    """(row, column) of a point in the canvas' 3 x 3 grid."""
    col = min(2, center[0] * 3 // size[0])
    row = min(2, center[1] * 3 // size[1])
    return row, col


def where(center: list[int], size: list[int]) -> str:
    """Where a point is, in words: "at the top left", "in the middle", "on the right", ..."""
    row, col = region(center, size)
    if row == 1:
        return "in the middle" if col == 1 else f"on the {_COLS[col]}"
    return f"at the {_ROWS[row]}" if col == 1 else f"at the {_ROWS[row]} {_COLS[col]}"


def reading_order(objects: list[dict], size: list[int]) -> list[dict]:
    """Objects sorted by grid row, then left to right (how the solutions list them)."""
    return sorted(objects, key=lambda o: (region(o["center"], size)[0], o["center"][0], o["center"][1]))


# ----------------------------------------------------------------------------- shape scenes


def place(rng: random.Random, wanted: list[tuple[str, str]], size: int, tries: int = 300) -> list[dict]:
    """Place one filled shape per (color, shape), non-overlapping and inside the canvas. A shape that finds
    no free spot in `tries` draws is left out (the scene, and so every answer, holds only placed shapes)."""
    lo, hi = px(11, size), px(17, size)
    objects: list[dict] = []
    for color, shape in wanted:
        radius = rng.randint(lo, hi)
        margin = radius + px(3, size)
        for _ in range(tries):
            x, y = rng.randint(margin, size - margin), rng.randint(margin, size - margin)
            if all(
                (x - o["center"][0]) ** 2 + (y - o["center"][1]) ** 2 >= (radius + o["radius"] + GAP) ** 2
                for o in objects
            ):
                objects.append({"shape": shape, "color": color, "center": [x, y], "radius": radius})
                break
    return objects


def shapes_scene(
    rng: random.Random, size: int, target: tuple[str, str] | None, n_target: int, n_other: int
) -> dict:
    """A shapes scene with `n_target` copies of `target` (color, shape) and `n_other` other shapes, about
    half of which share the target's colour or its shape (the confusers a counter must skip)."""
    wanted = [target] * n_target if target else []
    combos = [(c, s) for c in COLORS for s in SHAPES if (c, s) != target]
    for _ in range(n_other):
        if target and rng.random() < 0.5:
            near = [cs for cs in combos if cs[0] == target[0] or cs[1] == target[1]]
            wanted.append(rng.choice(near))
        else:
            wanted.append(rng.choice(combos))
    rng.shuffle(wanted)
    scene = base("shapes", size, rng.choice(SHAPE_BACKGROUNDS))
    scene["objects"] = reading_order(place(rng, wanted, size), scene["size"])
    return scene


def matches(obj: dict, color: str | None, shape: str | None) -> bool:
    return (color is None or obj["color"] == color) and (shape is None or obj["shape"] == shape)


def what(color: str | None, shape: str | None, n: int = 2) -> str:
    """ "red circles", "red shapes", "circles" (singular when n == 1)."""
    noun = shape or "shape"
    noun = noun if n == 1 else PLURAL.get(noun, noun + "s")
    return f"{color} {noun}" if color else noun

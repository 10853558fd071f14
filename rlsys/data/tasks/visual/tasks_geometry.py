"""Tier 3 visual tasks: a rectangle's area and perimeter, a right triangle's area, from the drawn measures."""

from __future__ import annotations

import random

from rlsys.data.tasks.arith import Calc, add, mul
from rlsys.data.tasks.visual.scene import (
    BACKGROUNDS,
    COLORS,
    UNITS,
    base,
    px,
)
from rlsys.data.tasks.visual.task_base import VisualTask

# ----------------------------------------------------------------------------- tier 3: geometry


UNIT_NAMES = {"cm": "centimetres", "m": "metres"}


def square(unit: str) -> str:
    return f"square {UNIT_NAMES[unit]}"


def _sides(rng: random.Random, even_product: bool = False) -> tuple[int, int]:
    """Two lengths, one of 2-19 and one of 2-9 (so every product is one column multiplication)."""
    while True:
        long, short = rng.randint(2, 19), rng.randint(2, 9)
        if not even_product or long * short % 2 == 0:
            return (long, short) if rng.random() < 0.5 else (short, long)


def rectangle_scene(rng: random.Random, size: int) -> dict:
    w, h = _sides(rng)
    k = min(size * 0.55 / w, size * 0.5 / h)
    dw, dh = max(px(16, size), round(w * k)), max(px(16, size), round(h * k))
    x0 = rng.randint(px(12, size), size - dw - px(52, size))
    y0 = rng.randint(px(12, size), size - dh - px(30, size))
    scene = base("rectangle", size, rng.choice(sorted(BACKGROUNDS)))
    scene.update(
        color=rng.choice(sorted(COLORS)),
        box=[x0, y0, x0 + dw, y0 + dh],
        width=w,
        height=h,
        unit=rng.choice(UNITS),
    )
    return scene


def triangle_scene(rng: random.Random, size: int) -> dict:
    h_leg, v_leg = _sides(rng, even_product=True)
    k = min(size * 0.55 / h_leg, size * 0.5 / v_leg)
    dh, dv = max(px(20, size), round(h_leg * k)), max(px(20, size), round(v_leg * k))
    cy = rng.randint(dv + px(12, size), size - px(30, size))
    if rng.random() < 0.5:  # right angle at the bottom left, the vertical leg's label on the left
        cx = rng.randint(px(52, size), size - dh - px(12, size))
        end_h = [cx + dh, cy]
    else:
        cx = rng.randint(dh + px(12, size), size - px(52, size))
        end_h = [cx - dh, cy]
    scene = base("right_triangle", size, rng.choice(sorted(BACKGROUNDS)))
    scene.update(
        color=rng.choice(sorted(COLORS)),
        vertices=[[cx, cy], end_h, [cx, cy - dv]],
        legs=[h_leg, v_leg],
        unit=rng.choice(UNITS),
    )
    return scene


class RectArea(VisualTask):
    name, tier, asks = "rect_area", 3, "area"
    prompts = (
        "What is the area of the rectangle in the picture?",
        "The picture shows a rectangle with its side lengths. What is its area in {square}?",
        "Find the area of the rectangle shown in the image.",
    )

    def sample(self, rng: random.Random, size: int) -> tuple[dict, dict]:
        scene = rectangle_scene(rng, size)
        return scene, {"type": self.asks, "unit": scene["unit"]}

    def prompt(self, scene: dict, query: dict, rng: random.Random) -> str:
        return rng.choice(self.prompts).format(square=square(query["unit"]), units=UNIT_NAMES[query["unit"]])

    def key(self, scene: dict, query: dict) -> str:
        return f"{self.name}:{min(scene['width'], scene['height'])}x{max(scene['width'], scene['height'])}"

    def sides_line(self, scene: dict) -> str:
        return f"The sides written in the picture are {scene['width']} {scene['unit']} and {scene['height']} {scene['unit']}."

    def solve(self, scene: dict, query: dict) -> tuple[list[str], int]:
        w, h = scene["width"], scene["height"]
        worked, area = mul(max(w, h), min(w, h), Calc())
        return [
            self.sides_line(scene),
            "Area of a rectangle = length * width.",
            *worked.lines,
            f"The area is {area} {square(scene['unit'])}.",
        ], area

    def concept_hints(self, scene: dict, query: dict) -> tuple[str, str, str]:
        return (
            "The area of a rectangle measures the space inside it, in square units.",
            "Read the two side lengths written beside the rectangle, then put them into the area formula.",
            "Area of a rectangle = length * width.",
        )


class RectPerimeter(RectArea):
    name, tier, asks = "rect_perimeter", 3, "perimeter"
    prompts = (
        "What is the perimeter of the rectangle in the picture?",
        "The picture shows a rectangle with its side lengths. What is its perimeter in {units}?",
        "Find the perimeter of the rectangle shown in the image.",
    )

    def solve(self, scene: dict, query: dict) -> tuple[list[str], int]:
        first, half = add(scene["width"], scene["height"], Calc())
        second, perimeter = mul(half, 2, Calc())
        return [
            self.sides_line(scene),
            "Perimeter of a rectangle = 2 * (length + width).",
            *first.lines,
            *second.lines,
            f"The perimeter is {perimeter} {scene['unit']}.",
        ], perimeter

    def concept_hints(self, scene: dict, query: dict) -> tuple[str, str, str]:
        return (
            "The perimeter is the distance all the way around the rectangle: two lengths and two widths.",
            "Read the two side lengths written beside the rectangle, add them, then double the sum.",
            "Perimeter of a rectangle = 2 * (length + width).",
        )

    def first_step(self, scene: dict, query: dict, lines: list[str]) -> str:
        w, h = scene["width"], scene["height"]
        return f"First step: the sides written in the picture are {w} {scene['unit']} and {h} {scene['unit']}; add them: {w} + {h}."


class TriangleArea(VisualTask):
    name, tier = "triangle_area", 3
    prompts = (
        "What is the area of the right triangle in the picture?",
        "The picture shows a right triangle with the lengths of its legs. What is its area in {square}?",
        "Find the area of the right triangle shown in the image.",
    )

    def sample(self, rng: random.Random, size: int) -> tuple[dict, dict]:
        scene = triangle_scene(rng, size)
        return scene, {"type": "area", "unit": scene["unit"]}

    def prompt(self, scene: dict, query: dict, rng: random.Random) -> str:
        return rng.choice(self.prompts).format(square=square(query["unit"]))

    def key(self, scene: dict, query: dict) -> str:
        return f"{self.name}:{min(scene['legs'])}x{max(scene['legs'])}"

    def solve(self, scene: dict, query: dict) -> tuple[list[str], int]:
        a, b = scene["legs"]
        worked, product = mul(max(a, b), min(a, b), Calc())
        area = product // 2
        unit = scene["unit"]
        return [
            f"The legs written in the picture are {a} {unit} and {b} {unit}.",
            "Area of a right triangle = leg * leg / 2.",
            *worked.lines,
            f"2 * {area} = {product}, so {product} / 2 = {area}.",
            f"The area is {area} {square(unit)}.",
        ], area

    def concept_hints(self, scene: dict, query: dict) -> tuple[str, str, str]:
        return (
            "A right triangle is half of the rectangle that its two legs (the sides at the right angle) span.",
            "Read the two leg lengths written beside the legs, multiply them, then halve the product.",
            "Area of a right triangle = leg * leg / 2.",
        )



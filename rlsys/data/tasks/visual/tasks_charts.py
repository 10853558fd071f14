"""Tiers 2-3 visual tasks on bar charts: one value, a difference, the largest, two added minus a third."""

from __future__ import annotations

import random

from rlsys.data.tasks.arith import Calc, add, sub
from rlsys.data.tasks.visual.scene import (
    CHART_SCALES,
    CHART_THEMES,
    COLORS,
    base,
    px,
)
from rlsys.data.tasks.visual.task_base import VisualTask, _join, ordinal

# ----------------------------------------------------------------------------- tiers 2-3: bar charts


def chart_scene(rng: random.Random, size: int) -> dict:
    """3-5 labelled bars, every value a positive multiple of the tick step, one tallest bar."""
    title, pool = rng.choice(CHART_THEMES)
    n = rng.randint(3, 5)
    labels = [pool[i] for i in sorted(rng.sample(range(len(pool)), n))]
    y_max, y_step = rng.choice(CHART_SCALES)
    while True:
        values = [y_step * rng.randint(1, y_max // y_step) for _ in labels]
        if values.count(max(values)) == 1 and len(set(values)) >= 3:
            break
    scene = base("bar_chart", size, rng.choice(["white", "white", "cream"]))
    scene.update(
        title=title,
        color=rng.choice(sorted(COLORS)),
        y_max=y_max,
        y_step=y_step,
        bars=[{"label": label, "value": v} for label, v in zip(labels, values)],
        plot=[px(34, size), px(26, size), size - px(10, size), size - px(24, size)],
    )
    return scene


def bar_values(scene: dict) -> dict[str, int]:
    return {b["label"]: b["value"] for b in scene["bars"]}


class _Chart(VisualTask):
    def key(self, scene: dict, query: dict) -> str:
        bars = ",".join(f"{b['label']}={b['value']}" for b in scene["bars"])
        asked = ",".join(f"{k}={query[k]}" for k in sorted(query))
        return f"{self.name}:{scene['title']}:{bars}:{asked}"

    @staticmethod
    def axis(scene: dict) -> str:
        return f"The y-axis goes from 0 to {scene['y_max']} in steps of {scene['y_step']}."

    @staticmethod
    def reach(scene: dict, label: str) -> str:
        return f"The bar for {label} reaches {bar_values(scene)[label]}."


class ChartValue(_Chart):
    name, tier = "chart_value", 2
    prompts = (
        "What is the value of the bar for {label} in the chart?",
        "According to the bar chart, what is the value for {label}?",
        "Read the bar chart. What value does the bar labelled {label} show?",
    )

    def sample(self, rng: random.Random, size: int) -> tuple[dict, dict]:
        scene = chart_scene(rng, size)
        return scene, {"type": "bar_value", "label": rng.choice(scene["bars"])["label"]}

    def solve(self, scene: dict, query: dict) -> tuple[list[str], int]:
        label = query["label"]
        index = [b["label"] for b in scene["bars"]].index(label)
        value = bar_values(scene)[label]
        return [
            self.axis(scene),
            f"The bar for {label} is the {ordinal(index + 1)} bar from the left; its top "
            f"is level with {value} on the y-axis.",
        ], value

    def concept_hints(self, scene: dict, query: dict) -> tuple[str, str, str]:
        return (
            "A bar's value is how high it reaches, measured on the numbers of the y-axis.",
            f"Find the bar labelled {query['label']} under the x-axis, then look across from its top to the y-axis.",
            "Reading a bar chart: the value is the y-axis number level with the top of the bar; the gridlines "
            "mark the labelled ticks.",
        )

    def first_step(self, scene: dict, query: dict, lines: list[str]) -> str:
        index = [b["label"] for b in scene["bars"]].index(query["label"])
        return (
            f"First step: the y-axis goes from 0 to {scene['y_max']} in steps of {scene['y_step']}, and "
            f"the bar for {query['label']} is the {ordinal(index + 1)} bar from the left."
        )


class ChartDiff(_Chart):
    name, tier = "chart_diff", 2
    prompts = (
        "How much greater is the value for {big} than the value for {small} in the bar chart?",
        "In the bar chart, what is the difference between {big} and {small}?",
        "By how much does the bar for {big} exceed the bar for {small}?",
    )

    def sample(self, rng: random.Random, size: int) -> tuple[dict, dict]:
        scene = chart_scene(rng, size)
        while True:
            x, y = rng.sample(scene["bars"], 2)
            if x["value"] != y["value"]:
                big, small = (x, y) if x["value"] > y["value"] else (y, x)
                return scene, {"type": "bar_difference", "big": big["label"], "small": small["label"]}

    def solve(self, scene: dict, query: dict) -> tuple[list[str], int]:
        values = bar_values(scene)
        worked, answer = sub(values[query["big"]], values[query["small"]], Calc())
        return [
            self.axis(scene),
            self.reach(scene, query["big"]),
            self.reach(scene, query["small"]),
            *worked.lines,
        ], answer

    def concept_hints(self, scene: dict, query: dict) -> tuple[str, str, str]:
        return (
            "The difference between two bars is how much higher one reaches than the other.",
            f"Read the values of the bars for {query['big']} and {query['small']} on the y-axis, then subtract "
            "the smaller value from the larger.",
            "Difference = larger value - smaller value; a bar's value is the y-axis number level with its top.",
        )

    def first_step(self, scene: dict, query: dict, lines: list[str]) -> str:
        return f"First step: the bar for {query['big']} reaches {bar_values(scene)[query['big']]}."


class ChartMax(_Chart):
    name, tier = "chart_max", 2
    prompts = (
        "What is the value of the tallest bar in the chart?",
        "What is the largest value shown in the bar chart?",
        "Look at the bar chart. What value does its highest bar show?",
    )

    def sample(self, rng: random.Random, size: int) -> tuple[dict, dict]:
        return chart_scene(rng, size), {"type": "max_bar_value"}

    def solve(self, scene: dict, query: dict) -> tuple[list[str], int]:
        top = max(scene["bars"], key=lambda b: b["value"])
        listed = _join([f"{b['label']} {b['value']}" for b in scene["bars"]])
        return [
            self.axis(scene),
            f"Bar values: {listed}.",
            f"The tallest bar is {top['label']}, at {top['value']}.",
        ], top["value"]

    def concept_hints(self, scene: dict, query: dict) -> tuple[str, str, str]:
        return (
            "The largest value in a bar chart belongs to its tallest bar.",
            "Compare the heights of all the bars, pick the tallest, then read its value on the y-axis.",
            "A bar's value is the y-axis number level with the top of the bar.",
        )

    def first_step(self, scene: dict, query: dict, lines: list[str]) -> str:
        top = max(scene["bars"], key=lambda b: b["value"])
        return f"First step: the chart has {len(scene['bars'])} bars, and the tallest is the one for {top['label']}."


class ChartCombo(_Chart):
    name, tier = "chart_combo", 3
    prompts = (
        "In the bar chart, add the values for {a} and {b}, then subtract the value for {c}. What is the result?",
        "Using the bar chart, what is {a} plus {b} minus {c}?",
        "What is the sum of the bars for {a} and {b} minus the bar for {c}?",
    )

    def sample(self, rng: random.Random, size: int) -> tuple[dict, dict]:
        scene = chart_scene(rng, size)
        picked = rng.sample(scene["bars"], 3)
        # The subtracted bar is never the largest of the three, so the result is never negative.
        largest = max(picked, key=lambda b: b["value"])
        minus = rng.choice([b for b in picked if b is not largest])
        a, b = (x["label"] for x in picked if x is not minus)
        return scene, {"type": "bars_plus_minus", "a": a, "b": b, "c": minus["label"]}

    def solve(self, scene: dict, query: dict) -> tuple[list[str], int]:
        values = bar_values(scene)
        first, total = add(values[query["a"]], values[query["b"]], Calc())
        second, answer = sub(total, values[query["c"]], Calc())
        return [
            self.axis(scene),
            *(self.reach(scene, query[k]) for k in "abc"),
            *first.lines,
            *second.lines,
        ], answer

    def concept_hints(self, scene: dict, query: dict) -> tuple[str, str, str]:
        return (
            "The question combines three bar values: two are added and one is subtracted.",
            "Read the three bars one at a time on the y-axis, add the first two values, then subtract the third.",
            f"Work in order: (value of {query['a']} + value of {query['b']}) - value of {query['c']}.",
        )

    def first_step(self, scene: dict, query: dict, lines: list[str]) -> str:
        values = bar_values(scene)
        va, vb = values[query["a"]], values[query["b"]]
        return (
            f"First step: the bar for {query['a']} reaches {va} and the bar for {query['b']} reaches {vb}, "
            f"so add {va} + {vb}."
        )



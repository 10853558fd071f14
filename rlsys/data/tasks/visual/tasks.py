"""Visual task types in three tiers: scene sampling, question, worked solution, five-level hints.

Row schema (docs/DATA.md, "Image rows"): `{"id", "data_source": "rlsys/visual", "task", "tier", "prompt",
"answer", "solution", "hints", "images": ["images/<id>.png"], "scene", "query", "key"}`. `scene` is what is
drawn (scene.py), `query` what is asked about it; answer, solution and hints are computed from the two.

Tiers: 1 = read an expression and work it (`arith`), count shapes of a named colour / shape (`count`);
2 = read a bar chart: one bar's value (`chart_value`), the difference of two bars (`chart_diff`), the
tallest bar's value (`chart_max`); 3 = a rectangle's area / perimeter and a right triangle's area from the
measures written beside them (`rect_area`, `rect_perimeter`, `triangle_area`), and two bars added minus a
third (`chart_combo`). Every answer is a non-negative integer, so the math reward scores it.

Splits work as for the math rows: a canonical `key` (the problem, not its layout or wording) and a salted
hash of it decide train vs held-out, so a problem never lands in both splits for any seed.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator

from rlsys.data.tasks.arith import Calc, add, box, mul, sub
from rlsys.data.tasks.visual.render import text_width
from rlsys.data.tasks.visual.scene import (
    BACKGROUNDS,
    CHART_SCALES,
    CHART_THEMES,
    COLORS,
    INKS,
    SHAPES,
    UNITS,
    base,
    matches,
    px,
    shapes_scene,
    what,
    where,
)

DATA_SOURCE = "rlsys/visual"
SPLITS = ("train", "eval")
SPLIT_SALT = "rlsys-visual-v1"
EVAL_FRACTION = 0.2
# Consecutive duplicate draws after which a task's problem space counts as used up for a split.
_EXHAUSTED_AFTER = 200


def ordinal(n: int) -> str:
    return {1: "1st", 2: "2nd", 3: "3rd"}.get(n, f"{n}th")


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


class VisualTask:
    """One task type. Subclasses sample a scene and a query and compute everything else from them."""

    name = ""
    tier = 0
    prompts: tuple[str, ...] = ()

    def sample(self, rng: random.Random, size: int) -> tuple[dict, dict]:
        raise NotImplementedError

    def key(self, scene: dict, query: dict) -> str:
        raise NotImplementedError

    def prompt(self, scene: dict, query: dict, rng: random.Random) -> str:
        return rng.choice(self.prompts).format(**query)

    def solve(self, scene: dict, query: dict) -> tuple[list[str], int]:
        """Solution lines (the final boxed line excluded) and the integer answer."""
        raise NotImplementedError

    def concept_hints(self, scene: dict, query: dict) -> tuple[str, str, str]:
        """Levels 1-3 (concept, strategy, formula / tool): no numbers read from the picture."""
        raise NotImplementedError

    def first_step(self, scene: dict, query: dict, lines: list[str]) -> str:
        """Level 4: the first concrete step, with its numbers (default: the solution's first line)."""
        return "First step: " + lines[0][:1].lower() + lines[0][1:]

    def hints(self, scene: dict, query: dict) -> list[str]:
        """The five hint levels of Keye-VL 1.5 Table 9; level 5 is the full solution."""
        lines, answer = self.solve(scene, query)
        return [
            *self.concept_hints(scene, query),
            self.first_step(scene, query, lines),
            solution_text(lines, answer),
        ]


def solution_text(lines: list[str], answer: int) -> str:
    return "\n".join([*lines, box(answer)])


# ----------------------------------------------------------------------------- tier 1: arithmetic


def _operand(rng: random.Random, lo: int, hi: int) -> int:
    # The digit count first, so one-digit numbers are as common as two-digit ones.
    width = rng.randint(len(str(lo)), len(str(hi)))
    return rng.randint(max(lo, 10 ** (width - 1) if width > 1 else 0), min(hi, 10**width - 1))


class Arith(VisualTask):
    name, tier = "arith", 1
    prompts = (
        "What is the result of the expression in the image?",
        "Compute the value of the expression shown in the picture.",
        "The image shows a calculation. What is its result?",
        "Work out the expression written in the image.",
    )
    _OPS = {"+": add, "-": sub, "*": mul}

    def sample(self, rng: random.Random, size: int) -> tuple[dict, dict]:
        op = rng.choices(("+", "-", "*"), weights=(45, 35, 20))[0]
        if op == "+":
            a, b = _operand(rng, 1, 99), _operand(rng, 1, 99)
        elif op == "-":
            a = _operand(rng, 3, 99)
            b = _operand(rng, 1, a - 1)
        else:
            a, b = rng.randint(2, 12), rng.randint(2, 9)
            a, b = (a, b) if rng.random() < 0.5 else (b, a)
        scene = base("expression", size, rng.choice(sorted(BACKGROUNDS)))
        font_size = px(rng.randint(30, 44), size)
        half = text_width(f"{a} {op} {b}", font_size) // 2
        dx = max(0, size // 2 - half - px(8, size))
        dy = max(0, size // 2 - font_size)
        scene.update(
            color=rng.choice(sorted(INKS)),
            font_size=font_size,
            a=a,
            op=op,
            b=b,
            center=[size // 2 + rng.randint(-dx, dx), size // 2 + rng.randint(-dy, dy)],
        )
        return scene, {"type": "value"}

    def key(self, scene: dict, query: dict) -> str:
        a, b = scene["a"], scene["b"]
        if scene["op"] in "+*":
            a, b = sorted((a, b))
        return f"arith:{a}{scene['op']}{b}"

    def solve(self, scene: dict, query: dict) -> tuple[list[str], int]:
        a, op, b = scene["a"], scene["op"], scene["b"]
        worked, answer = self._OPS[op](a, b, Calc())
        return [f"The image shows {a} {op} {b}.", *worked.lines], answer

    def concept_hints(self, scene: dict, query: dict) -> tuple[str, str, str]:
        a, op, b = scene["a"], scene["op"], scene["b"]
        columns = max(a, b) >= 10 and op != "*"
        if op == "+":
            return (
                "The image shows two numbers joined by a + sign, so the question asks for their sum.",
                "Read each number carefully from the image, then add them"
                + (", one column at a time starting from the ones." if columns else "."),
                "Column addition: add the digits of a column plus any carry; if the sum is 10 or more, write "
                "its last digit and carry 1 to the next column."
                if columns
                else "Addition can be done in either order: a + b = b + a.",
            )
        if op == "-":
            return (
                "The image shows two numbers joined by a - sign, so the question asks for their difference.",
                "Read each number carefully from the image, then subtract the second from the first"
                + (", one column at a time starting from the ones." if columns else "."),
                "Column subtraction: if the top digit (minus any borrow) is smaller than the bottom digit, add 10 "
                "to it and borrow 1 from the next column."
                if columns
                else "Subtraction undoes addition: a - b is the number that gives a when it is added to b.",
            )
        return (
            "The image shows two numbers joined by a * sign, so the question asks for their product.",
            "Read both numbers carefully from the image, then multiply them with the times table.",
            "a * b means a groups of b; the times table gives the product.",
        )

    def first_step(self, scene: dict, query: dict, lines: list[str]) -> str:
        a, op, b = scene["a"], scene["op"], scene["b"]
        shown = f"First step: the image shows {a} {op} {b}"
        if len(lines) > 2:
            return f"{shown}. {lines[1]}"
        if op == "+":
            return f"{shown}; start at {max(a, b)} and count on {min(a, b)} more."
        if op == "-":
            return f"{shown}; find the number that makes {a} when it is added to {b}."
        return f"{shown}, that is {a} groups of {b}."


# ----------------------------------------------------------------------------- tier 1: counting


class Count(VisualTask):
    name, tier = "count", 1
    prompts = (
        "How many {things} are in the picture?",
        "Count the {things} in the image.",
        "How many {things} can you see in the image?",
        "The picture shows some shapes. How many of them are {things}?",
    )

    def sample(self, rng: random.Random, size: int) -> tuple[dict, dict]:
        while True:
            target = (rng.choice(sorted(COLORS)), rng.choice(SHAPES))
            n_target = rng.choices(range(1, 7), weights=(3, 4, 4, 3, 2, 2))[0]
            scene = shapes_scene(rng, size, target, n_target, rng.randint(2, 7))
            mode = rng.random()
            color, shape = target if mode < 0.7 else (target[0], None) if mode < 0.85 else (None, target[1])
            query = {
                "type": "count",
                **({"color": color} if color else {}),
                **({"shape": shape} if shape else {}),
                "things": what(color, shape),
            }
            if count_of(scene, query):
                return scene, query

    def prompt(self, scene: dict, query: dict, rng: random.Random) -> str:
        return rng.choice(self.prompts).format(things=query["things"])

    def key(self, scene: dict, query: dict) -> str:
        present = ",".join(sorted(f"{o['color']} {o['shape']}" for o in scene["objects"]))
        return f"count:{query.get('color')}:{query.get('shape')}:{present}"

    def solve(self, scene: dict, query: dict) -> tuple[list[str], int]:
        color, shape = query.get("color"), query.get("shape")
        found = [o for o in scene["objects"] if matches(o, color, shape)]
        n = len(found)

        def item(o: dict) -> str:
            place = where(o["center"], scene["size"])
            if color and shape:
                return f"one {place}"
            if color:
                return f"a {o['shape']} {place}"
            return f"a {o['color']} one {place}"

        lines = [
            f"The picture shows {len(scene['objects'])} shapes.",
            f"{_cap(what(color, shape))}: {_join([item(o) for o in found])}.",
            f"Counting them: {', '.join(str(i) for i in range(1, n + 1))}, so there "
            f"{'is' if n == 1 else 'are'} {n} {what(color, shape, n)}.",
        ]
        return lines, n

    def concept_hints(self, scene: dict, query: dict) -> tuple[str, str, str]:
        color, shape = query.get("color"), query.get("shape")
        if color and shape:
            concept = (
                f"Only {what(color, shape)} count: a shape must be {color} and a {shape}; shapes of "
                "other colours or other kinds do not count."
            )
        elif color:
            concept = (
                f"Every {color} shape counts, whatever kind of shape it is; shapes of other colours do not."
            )
        else:
            concept = f"Every {shape} counts, whatever its colour; other kinds of shapes do not."
        return (
            concept,
            "Look over the picture row by row, from the top left to the bottom right, and count each "
            f"{what(color, shape, 1)} once.",
            "Counting: give each matching shape the next number, 1, 2, 3, ...; the last number given is how "
            "many there are.",
        )

    def first_step(self, scene: dict, query: dict, lines: list[str]) -> str:
        color, shape = query.get("color"), query.get("shape")
        first = next(o for o in scene["objects"] if matches(o, color, shape))
        return (
            f"First step: the picture shows {len(scene['objects'])} shapes; the first "
            f"{what(color, shape, 1)} is {where(first['center'], scene['size'])}."
        )


def count_of(scene: dict, query: dict) -> int:
    return sum(matches(o, query.get("color"), query.get("shape")) for o in scene["objects"])


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


TASKS: dict[str, VisualTask] = {
    t.name: t
    for t in (
        Arith(),
        Count(),
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

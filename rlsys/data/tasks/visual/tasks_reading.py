"""Tier 1 visual tasks: work the expression written in the image (`arith`), count named shapes (`count`), name a
shape's colour by its number in a fixed colour list (`identify`)."""

from __future__ import annotations

import random

from rlsys.data.tasks.arith import Calc, add, mul, sub
from rlsys.data.tasks.visual.render import text_width
from rlsys.data.tasks.visual.scene import (
    BACKGROUNDS,
    COLORS,
    INKS,
    SHAPE_BACKGROUNDS,
    SHAPES,
    base,
    matches,
    place,
    px,
    reading_order,
    shapes_scene,
    what,
    where,
)
from rlsys.data.tasks.visual.task_base import VisualTask, _cap, _join

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


# ----------------------------------------------------------------------------- tier 1: a shape's colour


class Identify(VisualTask):
    """The colour of the one shape of a named kind, answered by its number in the fixed colour legend the question
    lists (the palette's order, so a colour always has the same number): no digits and no counting in the picture,
    only a colour bound to a shape (blind, one answer in six)."""

    name, tier = "identify", 1
    prompts = (
        "What colour is the {shape} in the picture? Answer with its number: {legend}.",
        "Which colour does the {shape} have? Colours: {legend}. Give the colour's number.",
        "Look at the {shape} in the image. Which of {legend} is it? Answer with the number.",
    )

    def sample(self, rng: random.Random, size: int) -> tuple[dict, dict]:
        while True:  # one shape of each kind drawn, so "the {shape}" names exactly one; colours all differ
            kinds = rng.sample(SHAPES, rng.randint(1, len(SHAPES)))
            fills = rng.sample(sorted(COLORS), len(kinds))
            scene = base("shapes", size, rng.choice(SHAPE_BACKGROUNDS))
            scene["objects"] = reading_order(place(rng, list(zip(fills, kinds)), size), scene["size"])
            if len(scene["objects"]) == len(kinds):
                return scene, {"type": "identify", "shape": rng.choice(scene["objects"])["shape"], "options": list(COLORS)}

    def prompt(self, scene: dict, query: dict, rng: random.Random) -> str:
        legend = ", ".join(f"{i} {c}" for i, c in enumerate(query["options"], 1))
        return rng.choice(self.prompts).format(shape=query["shape"], legend=legend)

    def key(self, scene: dict, query: dict) -> str:
        present = ",".join(sorted(f"{o['color']} {o['shape']}" for o in scene["objects"]))
        return f"identify:{query['shape']}:{present}"

    def solve(self, scene: dict, query: dict) -> tuple[list[str], int]:
        target = named_shape(scene, query)
        answer = query["options"].index(target["color"]) + 1
        lines = [
            f"The {query['shape']} is {where(target['center'], scene['size'])}, and it is {target['color']}.",
            f"In the list of colours, {target['color']} is number {answer}.",
        ]
        return lines, answer

    def concept_hints(self, scene: dict, query: dict) -> tuple[str, str, str]:
        return (
            f"Only the {query['shape']}'s colour matters; the other shapes and their colours do not.",
            f"Find the {query['shape']} in the picture, note the colour it is filled with, then find that colour "
            "in the question's list.",
            "The answer is the number written just before the matching colour in the list.",
        )

    def first_step(self, scene: dict, query: dict, lines: list[str]) -> str:
        target = named_shape(scene, query)
        return f"First step: the {query['shape']} is {where(target['center'], scene['size'])}."


def named_shape(scene: dict, query: dict) -> dict:
    """The one object of the asked kind (an identify scene holds one shape of each kind drawn)."""
    return next(o for o in scene["objects"] if matches(o, None, query["shape"]))

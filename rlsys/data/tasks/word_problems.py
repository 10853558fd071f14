"""Tier 3 templates: order of operations with parentheses, small linear equations, 2- and 3-step stories.

Every multi-step solution names each step before doing it ("Parentheses first: ...", "Pens given away:
...") so the model learns to map words to operations, then reuses the same column text as tiers 1-2.
"""

from __future__ import annotations

import random

from rlsys.data.tasks.arith import TABLE_MAX, Calc, Worked, add, apply, div, mul, sub
from rlsys.data.tasks.lexicon import CONTAINERS, ITEMS, PLACES, SHOP_THINGS, person
from rlsys.data.tasks.template import Template


def _step(w: Worked, label: str, op: str, a: int, b: int, calc: Calc) -> int:
    """One labelled operation: a single line for a fact, else the label line and the column lines."""
    if op == "*" and a < 10 and b > TABLE_MAX:
        # Name the long factor first, as the column method will use it; saves a restating line.
        a, b = b, a
    inner, result = apply(op, a, b, calc)
    if len(inner.lines) == 1:
        w.add(f"{label}: {inner.lines[0]}", brief=True)
    else:
        w.add(f"{label}: {a} {op} {b}.")
        w.extend(inner)
    return result


_ORDER_FORMS = ("(a+b)*c", "(a-b)*c", "c*(a+b)", "a+b*c-d", "a*b-c*d")
_ORDER_PLAIN = (
    "What is {e}?",
    "Compute {e}.",
    "Evaluate {e}.",
    "Work out {e}.",
    "Find the value of {e}.",
    "Calculate {e}. Mind the order of operations.",
)


class Order(Template):
    """Order of operations: parentheses first, then multiplication, then addition / subtraction."""

    name, tier = "t3-order", 3

    def sample(self, rng: random.Random) -> dict:
        form = rng.choice(_ORDER_FORMS)
        if form in ("(a+b)*c", "c*(a+b)"):
            a = rng.randint(10, 60)
            return {"form": form, "a": a, "b": rng.randint(2, 99 - a), "c": rng.randint(2, 9)}
        if form == "(a-b)*c":
            a = rng.randint(20, 99)
            return {"form": form, "a": a, "b": rng.randint(2, a - 2), "c": rng.randint(2, 9)}
        if form == "a+b*c-d":
            a, b, c = rng.randint(10, 40), rng.randint(2, 9), rng.randint(2, 9)
            return {"form": form, "a": a, "b": b, "c": c, "d": rng.randint(2, min(99, a + b * c))}
        a, b, c, d = (rng.randint(2, 12) for _ in range(4))
        if a * b < c * d:
            a, b, c, d = c, d, a, b
        return {"form": form, "a": a, "b": b, "c": c, "d": d}

    def key(self, p: dict) -> str:
        return "order:" + p["form"] + ":" + ":".join(str(p[k]) for k in "abcd" if k in p)

    def expression(self, p: dict) -> str:
        text = p["form"]
        for k in "abcd":
            if k in p:
                text = text.replace(k, str(p[k]))
        return text.replace("+", " + ").replace("-", " - ").replace("*", " * ")

    def prompt(self, p: dict, rng: random.Random) -> str:
        return rng.choice(_ORDER_PLAIN).format(e=self.expression(p))

    def solve(self, p: dict, calc: Calc) -> tuple[Worked, int]:
        w, form = Worked(), p["form"]
        a, b, c = p["a"], p["b"], p["c"]
        if form in ("(a+b)*c", "(a-b)*c", "c*(a+b)"):
            op = "-" if form == "(a-b)*c" else "+"
            inner = _step(w, "Parentheses first", op, a, b, calc)
            left, right = (c, inner) if form == "c*(a+b)" else (inner, c)
            return w, _step(w, "Then multiply", "*", left, right, calc)
        d = p["d"]
        if form == "a+b*c-d":
            product = _step(w, "Multiply first", "*", b, c, calc)
            total = _step(w, "Then add", "+", a, product, calc)
            return w, _step(w, "Then subtract", "-", total, d, calc)
        first = _step(w, "Multiply first", "*", a, b, calc)
        second = _step(w, "Multiply next", "*", c, d, calc)
        return w, _step(w, "Then subtract", "-", first, second, calc)

    def concept_hints(self, p: dict) -> tuple[str, str, str]:
        if "(" in p["form"]:
            return (
                "Part of the expression is inside parentheses.",
                "Work out the part in parentheses on its own first, then use its value in the rest.",
                "Order of operations: parentheses first, then multiplication, then addition and subtraction.",
            )
        return (
            "The expression has multiplications mixed with an addition or a subtraction.",
            "Do every multiplication first, then go from left to right through the rest.",
            "Order of operations: multiplication before addition and subtraction; then left to right.",
        )


_LINEAR_PLAIN = (
    "Solve for x: {eq}.",
    "Find x if {eq}.",
    "What value of x makes {eq} true?",
    "If {eq}, what is x?",
)
_LINEAR_STORY = {
    "ax+b=c": "{name} thinks of a number, multiplies it by {a} and adds {b}. The result is {c}. "
    "What is the number?",
    "ax-b=c": "{name} thinks of a number, multiplies it by {a} and subtracts {b}. The result is {c}. "
    "What is the number?",
    "x/a+b=c": "{name} thinks of a number, divides it by {a} and adds {b}. The result is {c}. "
    "What is the number?",
}


class Linear(Template):
    """One-unknown linear equations with a whole-number solution; the answer is the value of x."""

    name, tier = "t3-linear", 3

    def sample(self, rng: random.Random) -> dict:
        form = rng.choice(sorted(_LINEAR_STORY))
        a = rng.randint(2, 9)
        if form == "ax+b=c":
            x, b = rng.randint(1, 12), rng.randint(1, 60)
            return {"form": form, "a": a, "b": b, "c": a * x + b}
        if form == "ax-b=c":
            x = rng.randint(2, 12)
            b = rng.randint(1, a * x - 1)
            return {"form": form, "a": a, "b": b, "c": a * x - b}
        q, b = rng.randint(2, 20), rng.randint(1, 40)
        return {"form": form, "a": a, "b": b, "c": q + b}

    def key(self, p: dict) -> str:
        return f"lin:{p['form']}:{p['a']}:{p['b']}:{p['c']}"

    def equation(self, p: dict) -> str:
        a, b, c = p["a"], p["b"], p["c"]
        return {
            "ax+b=c": f"{a}x + {b} = {c}",
            "ax-b=c": f"{a}x - {b} = {c}",
            "x/a+b=c": f"x / {a} + {b} = {c}",
        }[p["form"]]

    def prompt(self, p: dict, rng: random.Random) -> str:
        if rng.random() < 0.3:
            return _LINEAR_STORY[p["form"]].format(**person(rng), a=p["a"], b=p["b"], c=p["c"])
        return rng.choice(_LINEAR_PLAIN).format(eq=self.equation(p))

    def solve(self, p: dict, calc: Calc) -> tuple[Worked, int]:
        w, form, a, b, c = Worked(), p["form"], p["a"], p["b"], p["c"]
        w.add(f"Equation: {self.equation(p)}.", brief=True)
        if form == "ax+b=c":
            w.add(f"Subtract {b} from both sides: {a}x = {c} - {b}.", brief=True)
            inner, ax = sub(c, b, calc)
        elif form == "ax-b=c":
            w.add(f"Add {b} to both sides: {a}x = {c} + {b}.", brief=True)
            inner, ax = add(c, b, calc)
        else:
            w.add(f"Subtract {b} from both sides: x / {a} = {c} - {b}.", brief=True)
            inner, q = sub(c, b, calc)
            w.extend(inner)
            w.add(f"Multiply both sides by {a}: x = {q} * {a}.", brief=True)
            inner, x = mul(q, a, calc)
            w.extend(inner)
            return w, x
        w.extend(inner)
        w.add(f"Divide both sides by {a}: x = {ax} / {a}.", brief=True)
        inner, x = div(ax, a, calc)
        w.extend(inner)
        return w, x

    def concept_hints(self, p: dict) -> tuple[str, str, str]:
        return (
            "The unknown x has been changed by two operations, and the result is known.",
            "Undo the operations one at a time, in reverse order, until x stands alone.",
            "Balance rule: doing the same operation to both sides keeps an equation true; use the "
            "inverse operation (subtraction undoes addition, division undoes multiplication).",
        )

    def first_step(self, p: dict, worked: Worked) -> str:
        return "First step: " + worked.lines[1]


def _frame(rng: random.Random) -> dict[str, str]:
    box, boxes = rng.choice(CONTAINERS)
    things, thing = rng.choice(SHOP_THINGS)
    place, residents = rng.choice(PLACES)
    items = rng.choice(ITEMS)
    return {
        **person(rng),
        "items": items,
        "Items": items.capitalize(),
        "box": box,
        "boxes": boxes,
        "things": things,
        "thing": thing,
        "place": place,
        "residents": residents,
        "Residents": residents.capitalize(),
    }


class Story(Template):
    """Multi-step word problems. Each structure has a number sampler, story frames (wordings), a plan and
    hint levels 1-3. A plan step is (label, op, left, right); operands name a number ("a".."d") or the
    result of an earlier step ("#0", "#1", ...)."""

    def __init__(self, name: str, structures: dict[str, dict]) -> None:
        self.name, self.tier, self.structures = name, 3, structures

    def sample(self, rng: random.Random) -> dict:
        kind = rng.choice(sorted(self.structures))
        # The frame (names, objects) is part of the params but not of the key: same numbers and same
        # structure in another story is the same problem.
        return {"kind": kind, **self.structures[kind]["sample"](rng), "frame": _frame(rng)}

    def key(self, p: dict) -> str:
        return "word:" + p["kind"] + ":" + ":".join(str(p[k]) for k in "abcd" if k in p)

    def prompt(self, p: dict, rng: random.Random) -> str:
        numbers = {k: p[k] for k in "abcd" if k in p}
        return rng.choice(self.structures[p["kind"]]["frames"]).format(**p["frame"], **numbers)

    def solve(self, p: dict, calc: Calc) -> tuple[Worked, int]:
        w, results = Worked(), []
        for label, op, left, right in self.structures[p["kind"]]["plan"]:
            a, b = (results[int(x[1:])] if x.startswith("#") else p[x] for x in (left, right))
            results.append(_step(w, label.format(**p["frame"]), op, a, b, calc))
        return w, results[-1]

    def concept_hints(self, p: dict) -> tuple[str, str, str]:
        l1, l2, l3 = (h.format(**p["frame"]) for h in self.structures[p["kind"]]["hints"])
        return l1, l2, l3

    def first_step(self, p: dict, worked: Worked) -> str:
        label, op, left, right = self.structures[p["kind"]]["plan"][0]
        return f"First step: {label.format(**p['frame']).lower()}, {p[left]} {op} {p[right]}."


def _left(rng: random.Random) -> dict:
    b, c = rng.randint(2, 9), rng.randint(2, 12)
    return {"a": rng.randint(b * c + 1, b * c + 60), "b": b, "c": c}


def _cost(rng: random.Random) -> dict:
    return {"a": rng.randint(2, 9), "b": rng.randint(2, 12), "c": rng.randint(10, 99)}


def _share(rng: random.Random) -> dict:
    c, q = rng.randint(2, 9), rng.randint(2, 12)
    a = rng.randint(1, c * q - 1)
    return {"a": a, "b": c * q - a, "c": c}


def _boxes(rng: random.Random) -> dict:
    return {"a": rng.randint(2, 30), "b": rng.randint(2, 30), "c": rng.randint(2, 9)}


TWO_STEP = {
    "left": {
        "sample": _left,
        "frames": (
            "{name} has {a} {items}. {Pron} gives away {b} {boxes} with {c} {items} in each. "
            "How many {items} does {name} have left?",
            "A {box} holds {a} {items}. {b} children each take {c} {items}. How many {items} are still "
            "in the {box}?",
        ),
        "plan": (("{Items} taken", "*", "b", "c"), ("{Items} left", "-", "a", "#0")),
        "hints": (
            "Some {items} go away in equal groups, and the question asks what remains.",
            "First find how many {items} go away in total, then take that from the starting amount.",
            "Equal groups are counted with multiplication (groups * size); what remains is found with "
            "subtraction.",
        ),
    },
    "cost": {
        "sample": _cost,
        "frames": (
            "{name} buys {a} {things} at {b} dollars each and one {thing} for {c} dollars. How many "
            "dollars does {pron} spend in all?",
            "One of the {things} costs {b} dollars. {name} buys {a} of them and also pays {c} dollars for "
            "a {thing}. How much does {pron} pay in total?",
        ),
        "plan": (("Cost of the {things}", "*", "a", "b"), ("Total cost", "+", "#0", "c")),
        "hints": (
            "Several {things} cost the same amount each, and one more purchase is added.",
            "Find the cost of all the {things} together first, then add the other purchase.",
            "Total price of equal items = number of items * price of one; amounts spent are added.",
        ),
    },
    "share": {
        "sample": _share,
        "frames": (
            "{name} has {a} {items} and finds {b} more. {Pron} shares them equally among {c} friends. "
            "How many {items} does each friend get?",
            "One {box} has {a} {items} and another has {b}. The {items} are put into {c} equal groups. "
            "How many {items} are in each group?",
        ),
        "plan": (("All the {items}", "+", "a", "b"), ("Each share", "/", "#0", "c")),
        "hints": (
            "Two amounts are put together before anything is shared out equally.",
            "Find the total number of {items} first, then split it into the equal shares.",
            "Putting amounts together is addition; sharing equally is division (total / number of shares).",
        ),
    },
    "boxes": {
        "sample": _boxes,
        "frames": (
            "Each {box} has {a} big {items} and {b} small {items}. How many {items} are in {c} {boxes}?",
            "{name} packs {c} {boxes}. In every {box} {pron} puts {a} red {items} and {b} blue {items}. "
            "How many {items} does {pron} pack?",
        ),
        "plan": (("{Items} in one {box}", "+", "a", "b"), ("{Items} in all", "*", "#0", "c")),
        "hints": (
            "Every {box} is the same, and each one holds two kinds of {items}.",
            "Count what one {box} holds first, then count for all of the {boxes}.",
            "The amount in one group is a sum; the same group repeated is a multiplication.",
        ),
    },
}


def _rows(rng: random.Random) -> dict:
    a, b = rng.randint(2, 9), rng.randint(2, 9)
    return {"a": a, "b": b, "c": rng.randint(2, 18), "d": rng.randint(2, a * b)}


def _lend(rng: random.Random) -> dict:
    b, c = rng.randint(2, 9), rng.randint(2, 9)
    return {"a": rng.randint(b * c, 99), "b": b, "c": c, "d": rng.randint(2, 30)}


def _packs(rng: random.Random) -> dict:
    return {"a": rng.randint(2, 9), "b": rng.randint(2, 12), "c": rng.randint(2, 9), "d": rng.randint(2, 12)}


def _saves(rng: random.Random) -> dict:
    a, b, c = rng.randint(2, 9), rng.randint(2, 9), rng.randint(2, 6)
    return {"a": a, "b": b, "c": c, "d": rng.randint(2, min(60, (a + b) * c))}


THREE_STEP = {
    "rows": {
        "sample": _rows,
        "frames": (
            "A {place} has {a} rows of {b} {residents}. Then {c} more {residents} are added and {d} "
            "{residents} are taken away. How many {residents} are at the {place} now?",
            "At the {place} there are {a} groups of {b} {residents}. {c} {residents} arrive and later {d} "
            "leave. How many {residents} are there at the end?",
        ),
        "plan": (
            ("{Residents} in rows", "*", "a", "b"),
            ("After adding", "+", "#0", "c"),
            ("After taking away", "-", "#1", "d"),
        ),
        "hints": (
            "The starting amount is given as equal rows, and then the amount changes twice.",
            "Count the starting {residents} first, then apply the two changes in the order they happen.",
            "Rows of equal size are counted with multiplication; 'added' means addition and 'taken "
            "away' means subtraction.",
        ),
    },
    "lend": {
        "sample": _lend,
        "frames": (
            "A {place} has {a} {items}. It gives away {b} {boxes} of {c} {items} and then gets {d} new "
            "{items}. How many {items} does it have now?",
            "{name} has {a} {items}. {Pron} fills {b} {boxes} with {c} {items} each and gives them away. "
            "Then {pron} buys {d} more. How many {items} does {name} have?",
        ),
        "plan": (
            ("{Items} given away", "*", "b", "c"),
            ("After giving", "-", "a", "#0"),
            ("After getting more", "+", "#1", "d"),
        ),
        "hints": (
            "Some {items} leave in equal groups and later new {items} come in.",
            "Find how many {items} leave, take them away from the start, then add the new ones.",
            "Equal groups are counted with multiplication; leaving is subtraction and arriving is addition.",
        ),
    },
    "packs": {
        "sample": _packs,
        "frames": (
            "{name} buys {a} {boxes} of {b} {items} and {c} {boxes} of {d} {items}. How many {items} "
            "does {pron} buy in all?",
            "There are {a} {boxes} with {b} {items} each and {c} {boxes} with {d} {items} each. How many "
            "{items} are there altogether?",
        ),
        "plan": (
            ("First {boxes}", "*", "a", "b"),
            ("Second {boxes}", "*", "c", "d"),
            ("All {items}", "+", "#0", "#1"),
        ),
        "hints": (
            "There are two different kinds of {boxes}, each kind with its own size.",
            "Count the {items} in each kind of {box} separately, then put the two counts together.",
            "Each kind is groups * size (multiplication); the two counts are combined by addition.",
        ),
    },
    "saves": {
        "sample": _saves,
        "frames": (
            "Each week {name} saves {a} dollars and gets {b} dollars from a job. After {c} weeks "
            "{pron} spends {d} dollars. How many dollars are left?",
            "Every day {name} picks {a} {items} in the morning and {b} in the evening. After {c} days "
            "{pron} gives {d} away. How many {items} does {pron} keep?",
        ),
        "plan": (
            ("Each time", "+", "a", "b"),
            ("After all of them", "*", "#0", "c"),
            ("What is left", "-", "#1", "d"),
        ),
        "hints": (
            "The same two amounts come in every time, and at the end some go out.",
            "Find what comes in each time, scale it up to all the times, then remove what goes out.",
            "One period is a sum; repeating it is multiplication; what goes out is subtracted.",
        ),
    },
}


TIER3: tuple[Template, ...] = (Order(), Linear(), Story("t3-word2", TWO_STEP), Story("t3-word3", THREE_STEP))

"""Tier 1 (one-step arithmetic) and tier 2 (multi-digit, mixed operations) problem templates."""

from __future__ import annotations

import random

from rlsys.data.tasks.arith import Calc, Worked, add, apply, div, mul, sub
from rlsys.data.tasks.lexicon import CONTAINERS, ITEMS, person
from rlsys.data.tasks.template import Template


def _operand(rng: random.Random, lo: int, hi: int) -> int:
    # Draw the digit count first so short numbers are as common as long ones (uniform draws would make
    # almost every operand two-digit and the model would rarely see the one-line fact form).
    width = rng.randint(len(str(lo)), len(str(hi)))
    return rng.randint(max(lo, 10 ** (width - 1) if width > 1 else 0), min(hi, 10**width - 1))


def _story(rng: random.Random, text: str, **numbers: int) -> str:
    box, boxes = rng.choice(CONTAINERS)
    return text.format(**person(rng), items=rng.choice(ITEMS), box=box, boxes=boxes, **numbers)


class _Binary(Template):
    """a OP b with several plain wordings and a few one-step stories."""

    op = "+"
    commutative = True
    plain: tuple[str, ...] = ()
    stories: tuple[str, ...] = ()

    def key(self, p: dict) -> str:
        a, b = sorted((p["a"], p["b"])) if self.commutative else (p["a"], p["b"])
        return f"{self.op}:{a}:{b}"

    def prompt(self, p: dict, rng: random.Random) -> str:
        # Stories read wrong with 0 or 1 ("1 boxes", "gives away 0"), so those stay plain.
        if self.stories and min(p["a"], p["b"]) >= 2 and rng.random() < 0.3:
            return _story(rng, rng.choice(self.stories), a=p["a"], b=p["b"])
        return rng.choice(self.plain).format(a=p["a"], b=p["b"])

    def solve(self, p: dict, calc: Calc) -> tuple[Worked, int]:
        return apply(self.op, p["a"], p["b"], calc)

    # Level 4 for a one-line (single fact) solution: the first move with its numbers, not the result,
    # since here the first line of the solution would already be the answer.
    fact_step = ""

    def first_step(self, p: dict, worked: Worked) -> str:
        if len(worked.lines) > 1 or not self.fact_step:
            return super().first_step(p, worked)
        big, small = max(p["a"], p["b"]), min(p["a"], p["b"])
        return "First step: " + self.fact_step.format(a=p["a"], b=p["b"], big=big, small=small)


_ADD_PLAIN = (
    "What is {a} + {b}?",
    "Compute {a} + {b}.",
    "Add {a} and {b}.",
    "What is the sum of {a} and {b}?",
    "Find {a} plus {b}.",
    "Work out {a} + {b}.",
)
_ADD_STORIES = (
    "{name} has {a} {items} and gets {b} more. How many {items} does {pron} have now?",
    "There are {a} {items} in one {box} and {b} in another. How many {items} are there in all?",
)
_SUB_PLAIN = (
    "What is {a} - {b}?",
    "Compute {a} - {b}.",
    "Subtract {b} from {a}.",
    "What is {a} minus {b}?",
    "Take {b} away from {a}. What is left?",
    "Find the difference {a} - {b}.",
)
_SUB_STORIES = (
    "{name} has {a} {items} and gives away {b}. How many {items} are left?",
    "A {box} holds {a} {items}. {name} takes out {b}. How many {items} stay in the {box}?",
)

_ADD_COLUMN_HINTS = (
    "Each number is made of digits in columns: ones, tens, hundreds. A column can add up to 10 or more.",
    "Add one column at a time, starting from the ones, and keep track of anything carried over.",
    "Column addition: add the two digits of a column plus any carry; if the sum is 10 or more, "
    "write its last digit and carry 1 to the next column.",
)
_SUB_COLUMN_HINTS = (
    "Each number is made of digits in columns. A top digit can be smaller than the digit below it.",
    "Subtract one column at a time, starting from the ones, borrowing when a column is too small.",
    "Column subtraction: if the top digit (minus any borrow) is smaller than the bottom digit, add 10 to "
    "it and borrow 1 from the next column.",
)


class Add(_Binary):
    op, commutative = "+", True
    fact_step = "start at {big} and count on {small} more."
    plain, stories = _ADD_PLAIN, _ADD_STORIES

    def __init__(self, name: str, tier: int, a_range: tuple[int, int], b_range: tuple[int, int]) -> None:
        self.name, self.tier, self.a_range, self.b_range = name, tier, a_range, b_range

    def sample(self, rng: random.Random) -> dict:
        a, b = _operand(rng, *self.a_range), _operand(rng, *self.b_range)
        return {"a": a, "b": b} if rng.random() < 0.5 else {"a": b, "b": a}

    def concept_hints(self, p: dict) -> tuple[str, str, str]:
        if p["a"] < 10 and p["b"] < 10:
            return (
                f"Both {p['a']} and {p['b']} are single digits, so this is one addition fact.",
                "Start from the larger number and count on by the smaller one.",
                "Addition can be done in either order: a + b = b + a.",
            )
        return _ADD_COLUMN_HINTS


class Sub(_Binary):
    op, commutative = "-", False
    fact_step = "find the number that makes {a} when it is added to {b}."
    plain, stories = _SUB_PLAIN, _SUB_STORIES

    def __init__(self, name: str, tier: int, a_range: tuple[int, int], b_range: tuple[int, int]) -> None:
        self.name, self.tier, self.a_range, self.b_range = name, tier, a_range, b_range

    def sample(self, rng: random.Random) -> dict:
        a = _operand(rng, *self.a_range)
        b = _operand(rng, min(self.b_range[0], a), min(self.b_range[1], a))
        return {"a": a, "b": b}

    def concept_hints(self, p: dict) -> tuple[str, str, str]:
        if p["a"] <= 18 and p["b"] < 10:
            return (
                f"{p['b']} is a single digit and {p['a']} is at most 18, so this is one subtraction fact.",
                f"Think of the number that you add to {p['b']} to reach {p['a']}.",
                "Subtraction undoes addition: if b + c = a then a - b = c.",
            )
        return _SUB_COLUMN_HINTS


class Mul(_Binary):
    op, commutative = "*", True
    fact_step = "think of {small} groups of {big} and recall that row of the times table."
    plain = (
        "What is {a} * {b}?",
        "Compute {a} * {b}.",
        "Multiply {a} by {b}.",
        "What is {a} times {b}?",
        "What is the product of {a} and {b}?",
        "Work out {a} * {b}.",
    )
    stories = (
        "There are {a} {boxes} with {b} {items} in each. How many {items} are there?",
        "{name} buys {a} {boxes} of {items}. Each one has {b} {items}. How many {items} does {pron} get?",
    )

    def __init__(self, name: str, tier: int, a_range: tuple[int, int], b_range: tuple[int, int]) -> None:
        self.name, self.tier, self.a_range, self.b_range = name, tier, a_range, b_range

    def sample(self, rng: random.Random) -> dict:
        a, b = rng.randint(*self.a_range), rng.randint(*self.b_range)
        return {"a": a, "b": b} if rng.random() < 0.5 else {"a": b, "b": a}

    def concept_hints(self, p: dict) -> tuple[str, str, str]:
        a, b = p["a"], p["b"]
        if a <= 12 and b <= 12:
            return (
                f"Both {a} and {b} are in the times table.",
                f"Think of {max(a, b)} added {min(a, b)} times, or recall the times table.",
                "Multiplication can be done in either order: a * b = b * a.",
            )
        return (
            f"One factor has one digit; the other, {max(a, b)}, has several digits.",
            "Multiply the long number one digit at a time, from the ones, carrying what does not fit.",
            "Column multiplication: multiply each digit by the one-digit factor, add the carry from the "
            "column before, write the last digit and carry the rest.",
        )


class Div(_Binary):
    op, commutative = "/", False
    fact_step = "find the number that gives {a} when multiplied by {b}."
    plain = (
        "What is {a} / {b}?",
        "Compute {a} / {b}.",
        "Divide {a} by {b}.",
        "What is {a} divided by {b}?",
        "How many times does {b} go into {a}?",
    )
    stories = (
        "{name} shares {a} {items} equally among {b} friends. How many {items} does each friend get?",
        "{a} {items} are packed into {b} {boxes} with the same number in each. How many are in one {box}?",
    )
    name, tier = "t1-div", 1

    def sample(self, rng: random.Random) -> dict:
        b, q = rng.randint(2, 12), rng.randint(1, 12)
        return {"a": b * q, "b": b}

    def solve(self, p: dict, calc: Calc) -> tuple[Worked, int]:
        return div(p["a"], p["b"], calc)

    def concept_hints(self, p: dict) -> tuple[str, str, str]:
        return (
            f"{p['a']} is a multiple of {p['b']}, so the division comes out exact.",
            f"Look for the number of times {p['b']} fits into {p['a']} using the times table.",
            "Division undoes multiplication: if b * q = a then a / b = q.",
        )


_MIX_FORMS = {
    # form: (expression, order in which the operations are carried out)
    "a+b*c": "{a} + {b} * {c}",
    "a*b+c": "{a} * {b} + {c}",
    "a-b*c": "{a} - {b} * {c}",
    "a*b-c": "{a} * {b} - {c}",
}
_MIX_PLAIN = (
    "What is {e}?",
    "Compute {e}.",
    "Evaluate {e}.",
    "Work out {e}.",
    "Find the value of {e}.",
    "Calculate {e}, using the usual order of operations.",
)


class Mixed(Template):
    """Two operations where the multiplication must come first (precedence)."""

    name, tier = "t2-mixed", 2

    def sample(self, rng: random.Random) -> dict:
        form = rng.choice(sorted(_MIX_FORMS))
        x, y = rng.randint(2, 12), rng.randint(2, 9)
        product = x * y
        if form in ("a+b*c", "a*b+c"):
            other = rng.randint(10, 99)
        elif form == "a-b*c":
            other = rng.randint(product, 150)
        else:
            other = rng.randint(1, product)
        if form in ("a+b*c", "a-b*c"):
            return {"form": form, "a": other, "b": x, "c": y}
        return {"form": form, "a": x, "b": y, "c": other}

    def key(self, p: dict) -> str:
        return f"mix:{p['form']}:{p['a']}:{p['b']}:{p['c']}"

    def expression(self, p: dict) -> str:
        return _MIX_FORMS[p["form"]].format(a=p["a"], b=p["b"], c=p["c"])

    def prompt(self, p: dict, rng: random.Random) -> str:
        return rng.choice(_MIX_PLAIN).format(e=self.expression(p))

    def solve(self, p: dict, calc: Calc) -> tuple[Worked, int]:
        w = Worked()
        form, a, b, c = p["form"], p["a"], p["b"], p["c"]
        factors, other, op = ((b, c), a, form[1]) if form[1] in "+-" else ((a, b), c, form[3])
        prod_w, product = mul(*factors, calc)
        w.add(
            f"Multiply first: {prod_w.lines[0]}" if len(prod_w.lines) == 1 else "Multiply first.", brief=True
        )
        if len(prod_w.lines) > 1:
            w.extend(prod_w)
        if op == "+":
            left, right = (other, product) if form == "a+b*c" else (product, other)
            w.add(f"Then add: {left} + {right}.")
            rest, result = add(left, right, calc)
        else:
            left, right = (other, product) if form == "a-b*c" else (product, other)
            w.add(f"Then subtract: {left} - {right}.")
            rest, result = sub(left, right, calc)
        w.extend(rest)
        return w, result

    def concept_hints(self, p: dict) -> tuple[str, str, str]:
        return (
            "The expression mixes a multiplication with an addition or a subtraction.",
            "Decide which operation has to be done first, do it, then finish with the other one.",
            "Order of operations: multiplication comes before addition and subtraction.",
        )

    def first_step(self, p: dict, worked: Worked) -> str:
        factors = (p["b"], p["c"]) if p["form"][1] in "+-" else (p["a"], p["b"])
        return f"First step: multiply first, {factors[0]} * {factors[1]} = {factors[0] * factors[1]}."


# Tier 1 keeps one operand to a single digit (at most one carry or borrow); tier 2 has two multi-digit
# operands, so carries and borrows chain across columns.
TIER1: tuple[Template, ...] = (
    Add("t1-add", 1, (0, 99), (0, 9)),
    Sub("t1-sub", 1, (0, 99), (0, 9)),
    Mul("t1-mul", 1, (0, 12), (0, 12)),
    Div(),
)
TIER2: tuple[Template, ...] = (
    Add("t2-add", 2, (10, 999), (10, 999)),
    Sub("t2-sub", 2, (20, 999), (10, 999)),
    Mul("t2-mul", 2, (13, 99), (2, 9)),
    Mixed(),
)

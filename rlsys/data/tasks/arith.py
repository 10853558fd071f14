"""Step-by-step arithmetic text shared by every math template.

A tiny model learns arithmetic far more reliably from one-digit facts written out column by column than
from whole results, so every multi-digit operation is rendered as a fixed, regular sequence of lines:

    Ones: 7 + 5 = 12, write 2, carry 1.
    Tens: 2 + 3 + 1 = 6.
    So 27 + 35 = 62.

Every one-digit fact goes through a `Calc`. A `Calc` built with `slip_at` gets exactly that fact wrong and
the error propagates through the remaining columns and steps, which is how the preference generator makes
plausible wrong solutions (a slip, not a random number).
"""

from __future__ import annotations

from dataclasses import dataclass, field

COLUMNS = ("Ones", "Tens", "Hundreds", "Thousands", "Ten thousands", "Hundred thousands", "Millions")

# Results of one-digit facts that the model is expected to know by heart (the times table to 12 and
# additions / subtractions within 20) are written as one line instead of columns.
TABLE_MAX = 12


@dataclass
class Calc:
    """Counts one-digit facts; the `slip_at`-th one (0-based) comes out `slip_delta` off."""

    slip_at: int | None = None
    slip_delta: int = 1
    count: int = 0
    slipped: bool = False

    def fact(self, value: int, lo: int = 0, hi: int | None = None) -> int:
        index = self.count
        self.count += 1
        if index != self.slip_at:
            return value
        # Keep the wrong value inside the range the step can produce (a column digit stays 0-9) so the
        # slip reads like a real mistake; flip the sign when one direction would leave that range.
        for delta in (self.slip_delta, -self.slip_delta):
            wrong = value + delta
            if wrong >= lo and (hi is None or wrong <= hi):
                self.slipped = True
                return wrong
        return value


@dataclass
class Worked:
    """Solution lines; `brief` marks the lines that state a result (used for the short rendering)."""

    lines: list[str] = field(default_factory=list)
    brief: list[bool] = field(default_factory=list)

    def add(self, line: str, brief: bool = False) -> None:
        self.lines.append(line)
        self.brief.append(brief)

    def extend(self, other: Worked) -> None:
        self.lines.extend(other.lines)
        self.brief.extend(other.brief)

    def brief_lines(self) -> list[str]:
        return [line for line, keep in zip(self.lines, self.brief) if keep]


def digits_low_first(n: int) -> list[int]:
    return [int(c) for c in reversed(str(n))]


def add(a: int, b: int, calc: Calc) -> tuple[Worked, int]:
    """a + b: one line for one-digit operands, else column addition with carries."""
    w = Worked()
    if a < 10 and b < 10:
        s = calc.fact(a + b, 0, 18)
        w.add(f"{a} + {b} = {s}.", brief=True)
        return w, s
    da, db = digits_low_first(a), digits_low_first(b)
    width = max(len(da), len(db))
    carry, written = 0, ""
    for i in range(width):
        x = da[i] if i < len(da) else 0
        y = db[i] if i < len(db) else 0
        expr = f"{x} + {y}" + (f" + {carry}" if carry else "")
        s = calc.fact(x + y + carry, 0, 19)
        if i == width - 1:
            # The last column is written whole, so "write" would only repeat it.
            w.add(f"{COLUMNS[i]}: {expr} = {s}.")
            written = str(s) + written
        else:
            digit, carry = s % 10, s // 10
            tail = f", carry {carry}." if carry else "."
            w.add(f"{COLUMNS[i]}: {expr} = {s}, write {digit}{tail}")
            written = str(digit) + written
    result = int(written)
    w.add(f"So {a} + {b} = {result}.", brief=True)
    return w, result


def sub(a: int, b: int, calc: Calc) -> tuple[Worked, int]:
    """a - b for a >= b: one line for facts within 20, else column subtraction with borrows."""
    if a < b:
        raise ValueError(f"sub expects a >= b, got {a} - {b}")
    w = Worked()
    if a <= 18 and b < 10:
        d = calc.fact(a - b, 0, 18)
        w.add(f"{a} - {b} = {d}.", brief=True)
        return w, d
    da, db = digits_low_first(a), digits_low_first(b)
    borrow, written = 0, ""
    for i, x in enumerate(da):
        y = db[i] if i < len(db) else 0
        top = x - borrow
        lead = f"{x} - {borrow}" if borrow else f"{x}"
        if top >= y:
            d = calc.fact(top - y, 0, 9)
            w.add(f"{COLUMNS[i]}: {lead} - {y} = {d}.")
            borrow = 0
        else:
            lead = f"{x + 10} - {borrow}" if borrow else f"{x + 10}"
            d = calc.fact(top + 10 - y, 0, 9)
            w.add(f"{COLUMNS[i]}: {lead} - {y} = {d}, borrow 1.")
            borrow = 1
        written = str(d) + written
    result = int(written)
    w.add(f"So {a} - {b} = {result}.", brief=True)
    return w, result


def mul(a: int, b: int, calc: Calc) -> tuple[Worked, int]:
    """a * b where one factor has one digit (or both are within the times table)."""
    w = Worked()
    if a <= TABLE_MAX and b <= TABLE_MAX:
        p = calc.fact(a * b, 0)
        w.add(f"{a} * {b} = {p}.", brief=True)
        return w, p
    if b >= 10 and a < 10:
        # The column method multiplies the long number by the one-digit number, so say that first.
        w.add(f"{a} * {b} = {b} * {a}.")
        inner, p = mul(b, a, calc)
        w.extend(inner)
        return w, p
    if b >= 10:
        raise ValueError(f"mul supports one one-digit factor, got {a} * {b}")
    da = digits_low_first(a)
    carry, written = 0, ""
    for i, x in enumerate(da):
        last = i == len(da) - 1
        p = calc.fact(x * b, 0, 81)
        if carry:
            total = calc.fact(p + carry, 0, 89)
            step = f"{x} * {b} = {p}, {p} + {carry} = {total}"
        else:
            total = p
            step = f"{x} * {b} = {p}"
        if last:
            w.add(f"{COLUMNS[i]}: {step}.")
            written = str(total) + written
        else:
            digit, carry = total % 10, total // 10
            tail = f", carry {carry}." if carry else "."
            w.add(f"{COLUMNS[i]}: {step}, write {digit}{tail}")
            written = str(digit) + written
    result = int(written)
    w.add(f"So {a} * {b} = {result}.", brief=True)
    return w, result


def div(a: int, b: int, calc: Calc) -> tuple[Worked, int]:
    """Exact a / b with a quotient inside the times table, justified by the matching product."""
    if b == 0 or a % b or a // b > TABLE_MAX:
        raise ValueError(f"div expects an exact table quotient, got {a} / {b}")
    w = Worked()
    q = calc.fact(a // b, 0, TABLE_MAX + 1)
    w.add(f"{b} * {q} = {a}, so {a} / {b} = {q}.", brief=True)
    return w, q


OPS = {"+": add, "-": sub, "*": mul, "/": div}


def apply(op: str, a: int, b: int, calc: Calc) -> tuple[Worked, int]:
    return OPS[op](a, b, calc)


def count_facts(op: str, a: int, b: int) -> int:
    """How many one-digit facts `op` uses on these operands (the range a slip position is drawn from)."""
    calc = Calc()
    apply(op, a, b, calc)
    return calc.count


def box(answer: int | str) -> str:
    return f"The answer is \\boxed{{{answer}}}."


_ONES = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
    "sixteen seventeen eighteen nineteen"
).split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()


def number_words(n: int) -> str:
    """English words for 0 <= n < 1000000 (no hyphens, so each part is its own word)."""
    if n < 0 or n >= 1_000_000:
        raise ValueError(f"number_words supports 0..999999, got {n}")
    if n < 20:
        return _ONES[n]
    if n < 100:
        tens, ones = divmod(n, 10)
        return _TENS[tens] + (f" {_ONES[ones]}" if ones else "")
    if n < 1000:
        hundreds, rest = divmod(n, 100)
        return f"{_ONES[hundreds]} hundred" + (f" {number_words(rest)}" if rest else "")
    thousands, rest = divmod(n, 1000)
    return f"{number_words(thousands)} thousand" + (f" {number_words(rest)}" if rest else "")

"""Finding a completion's final answer, and rewriting answer strings into forms math-verify compares.

Which answer counts: the LAST explicit final-answer statement after the reasoning block, a `\\boxed{}` or
an answer line ("Answer: 7", "The final answer is 7"), whichever comes later in the text. Without one
there is no answer; the last number is taken only when a caller opts in (`fallback=True`).
"""

from __future__ import annotations

import re
from fractions import Fraction
from typing import NamedTuple

from rewards._common import answer_part

BOXED, ANSWER_LINE, FALLBACK, NONE, TRUNCATED = "boxed", "answer_line", "fallback", "none", "truncated"
# Every path, in the order the reward reports them (one 0/1 extra each).
PATHS = (BOXED, ANSWER_LINE, FALLBACK, NONE, TRUNCATED)

_BOXED_START_RE = re.compile(r"\\(?:boxed|fbox)\s*\{")
# "answer" (or "answer to the question") then `is` / `:` / `=`, markdown bold allowed around the colon.
_ANSWER_MARK_RE = re.compile(
    r"\banswers?(?:\s+to\s+[^\n.:]{1,40}?)?\s*\**\s*(?:\b(?:is|are)\b\s*:?|:|=)\s*\**", re.IGNORECASE
)
# Words between "the answer is" and the answer that say nothing about its value.
_FILLER_RE = re.compile(
    r"^(?:(?:therefore|thus|then|hence|so|simply|clearly|just|indeed|exactly|obviously|actually|now|about"
    r"|approximately|approx\.|around|roughly),?\s+)+",
    re.IGNORECASE,
)
# A heading line that is only "Final answer" / "**Answer**": the answer is on the next line.
_ANSWER_HEADING_RE = re.compile(r"^[#* \t]*(?:final[ \t]+)?answer[*: \t]*$", re.IGNORECASE | re.MULTILINE)
# Where a stated answer ends: a sentence end, a clause, a parenthetical or bracketed remark that starts
# with a word ("(check: ...)", "[since ...]"), a dash, or ", " before a word.
_ANSWER_END_RE = re.compile(
    r"\.(?:\s|$)|;|\s*[(\[](?=[A-Za-z]{2,}[\s:,.])|\s+[(\[](?=[A-Za-z]{2,}[)\]])|\s+(?:and|but)\s+(?=[A-Za-z]{2,})|\s+(?:[—–]|--?)\s*(?=[A-Za-z]{2,})|,\s+(?=[A-Za-z]{2,})"
    r"|\s+(?:because|since|as|so|which|where|when|from|after|if|check|verify|verified|i\.e\.|e\.g\.)\b",
    re.IGNORECASE,
)
# How far after an answer marker its answer may reach (a display-math block on the next lines).
_MAX_STATED_CHARS = 2000
_DISPLAY_OPEN = {"$$": "$$", "\\[": "\\]", "\\(": "\\)", "$": "$"}
# Thousands separators are only taken as part of a number when every group after them has 3 digits.
_NUMBER_RE = re.compile(r"-?\d+(?:,\d{3})*(?:\.\d+)?(?:\s*/\s*\d+)?")


class Extraction(NamedTuple):
    answer: str | None
    path: str


def _closing_braces(text: str) -> dict[int, int]:
    """Index of each `{` -> index of its matching `}` (one pass; unmatched ones are absent)."""
    closing, stack = {}, []
    for i, char in enumerate(text):
        if char == "{":
            stack.append(i)
        elif char == "}" and stack:
            closing[stack.pop()] = i
    return closing


def _last_box(text: str) -> tuple[int, str] | None:
    """Position and content of the last balanced, non-empty `\\boxed{...}`."""
    starts = list(_BOXED_START_RE.finditer(text))
    closing = _closing_braces(text) if starts else {}
    for match in reversed(starts):
        close = closing.get(match.end() - 1)
        if close is not None and text[match.end() : close].strip():
            return match.start(), text[match.end() : close].strip()
    return None


def _leading_math(text: str) -> str | None:
    """The math block `text` starts with (`$..$`, `$$..$$`, `\\(..\\)`, `\\[..\\]`), delimiters kept."""
    for opener in ("$$", "\\[", "\\(", "$"):
        if text.startswith(opener):
            closer = _DISPLAY_OPEN[opener]
            close = text.find(closer, len(opener))
            while close > 0 and closer == "$" and text[close - 1] == "\\":  # `\$` is a dollar sign inside
                close = text.find(closer, close + 1)
            return text[: close + len(closer)] if close > 0 else None
    return None


def _stated(rest: str) -> str | None:
    """The answer at the start of `rest` (the text after an answer marker), without trailing prose."""
    rest = rest.lstrip(" \t*:")
    if not rest.split("\n", 1)[0].strip(" *"):
        # The marker ended its line: the answer is the next non-empty line.
        rest = rest.lstrip(" \t*\n")
    math = _leading_math(rest)
    if math is not None:
        return math
    line = _FILLER_RE.sub("", rest.split("\n", 1)[0])
    math = _leading_math(line)
    if math is not None:
        return math
    line = _ANSWER_END_RE.split(line, maxsplit=1)[0]
    line = line.strip().strip("*").strip().rstrip(".;,!").strip()
    return line or None


def _last_answer_line(text: str, after: int) -> tuple[int, str] | None:
    """Position and answer of the last answer line that starts after `after` and states one."""
    marks = [(m.start(), m.end()) for m in _ANSWER_MARK_RE.finditer(text, after + 1)]
    marks += [(m.start(), m.end()) for m in _ANSWER_HEADING_RE.finditer(text, after + 1)]
    for start, end in sorted(marks, reverse=True):
        # The answer sits on the marker's line or the next ones: a bounded slice keeps this linear.
        stated = _stated(text[end : end + _MAX_STATED_CHARS])
        if stated and "\\boxed" not in stated:
            return start, stated
    return None


def _last_number(text: str, prompt: str) -> str | None:
    # Numbers the question already states say nothing about what the model concluded.
    given = {n.replace(",", "") for n in _NUMBER_RE.findall(prompt)}
    for number in reversed(_NUMBER_RE.findall(text)):
        number = number.replace(",", "").replace(" ", "")
        if number not in given:
            return number
    return None


def extract(completion: str, prompt: str = "", fallback: bool = False) -> Extraction:
    """The final answer and how it was found (`boxed`, `answer_line`, `fallback` or `none`)."""
    text = answer_part(completion)
    if text is None:
        return Extraction(None, NONE)
    box = _last_box(text)
    # "The answer is \\boxed{7}" is one statement, found as the box; a later answer line overrides it.
    line = _last_answer_line(text, box[0] if box else -1)
    if line is not None:
        return Extraction(line[1], ANSWER_LINE)
    if box is not None:
        return Extraction(box[1], BOXED)
    if fallback:
        number = _last_number(text, prompt)
        if number is not None:
            return Extraction(number, FALLBACK)
    return Extraction(None, NONE)


# ------------------------------------------------------------------------------------- normalisation

_UNICODE = {
    "\u2212": "-", "\u2013": "-", "×": "\\times ", "÷": "\\div ", "·": "\\cdot ", "≤": "\\le ", "≥": "\\ge ",
    "∞": "\\infty ", "π": "\\pi ", "°": "", "\u2009": " ", "\u202f": " ", "\u00a0": " ",
}
_SQRT_RE = re.compile(r"√\s*(\d+(?:\.\d+)?|[A-Za-z]|\([^()]*\)|\{[^{}]*\})")
_TEXT_CMD_RE = re.compile(r"\\(?:text|textrm|textup|textbf|mathrm|mathbf|mbox|operatorname)\s*\{([^{}]*)\}")
_DEGREE_RE = re.compile(r"\^\s*\{?\\circ\}?|\\circ|\\degree")
_CURRENCY_RE = re.compile(r"\\\$|\$|€|£|¥|\\euro|\\pounds")
# A digit-group separator: `\,` `\;` `\ ` `~` `{,}` or a (thin) space, before a group of exactly 3 digits.
_GROUP_SEP_RE = re.compile(r"(?<=\d)(?:\\[,;: ]|~|\{,\}|\s)(?=\d{3}(?!\d|\.\d|/))")
_SPACING_RE = re.compile(r"\\[,;:! ]|~|\\quad|\\qquad")
_E_NOTATION_RE = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)[eE]([+-]?\d+)(?![\w.])")
_UNITS_SHORT = "cm|mm|km|m|kg|g|mg|s|ms|ml|mL|L|l|h|hr|hrs|min|ft|in|yd|mi|lb|lbs|oz|mph|kmh"
# Trailing unit words: 3+ letters, or a short unit from the list; powers and "/h" style rates included.
# No bare digits: "5 and 6" is a second number, not a unit.
_UNIT_TAIL_RE = re.compile(
    rf"(?<=[\d}}\s])\s*(?:[A-Za-z]{{3,}}|(?:of|{_UNITS_SHORT})(?![A-Za-z]))[²³]?(?:[\s./]+[A-Za-z]+[²³]?|\s*\^\{{?-?\d+\}}?)*\.?$"
)
# Words that join a second value or negate: a tail holding one is no unit.
_NOT_UNIT_WORDS = frozenset({"and", "or", "plus", "minus", "than", "not", "but", "nor"})
# Words that change a number's value ("one half", "20 percent", "2 million", "3 dozen"): never dropped as
# units, so such answers stay unreadable rather than read as the bare number.
_NOT_UNIT_RE = re.compile(
    r"\b(?:half|halves|thirds?|quarters?|fourths?|fifths?|percent|per\s*cent|hundreds?|thousands?|millions?"
    r"|billions?|trillions?|dozens?)\b",
    re.IGNORECASE,
)
_ONES = "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
_ONES += "sixteen seventeen eighteen nineteen"
_TENS = "twenty thirty forty fifty sixty seventy eighty ninety"
_WORD_VALUE = {w: i for i, w in enumerate(_ONES.split())} | {w: 20 + 10 * i for i, w in enumerate(_TENS.split())}
_NUMBER_WORD_RE = re.compile(
    rf"^(?:(minus|negative)\s+)?({'|'.join(_WORD_VALUE)})(?:[-\s]({'|'.join(_ONES.split()[1:10])}))?\b",
    re.IGNORECASE,
)
_VAR_PREFIX_RE = re.compile(r"^[A-Za-z]\s*=\s*(?=[^=]+$)")
_INEQ_OPS = {"<": "<", ">": ">", "\\lt": "<", "\\gt": ">", "<=": "<=", ">=": ">=", "\\le": "<=", "\\leq": "<=",
             "\\leqslant": "<=", "\\ge": ">=", "\\geq": ">=", "\\geqslant": ">="}
_OP = r"(<=|>=|\\leqslant|\\geqslant|\\leq|\\geq|\\le|\\ge|\\lt|\\gt|<|>)"
_SIDE = r"([^<>=\\]*?|-?\\infty|-?\\frac\{[^{}]*\}\{[^{}]*\}|-?\\sqrt\{[^{}]*\})"
_ONE_SIDED_RE = re.compile(rf"^([A-Za-z])\s*{_OP}\s*{_SIDE}$")
_ONE_SIDED_REV_RE = re.compile(rf"^{_SIDE}\s*{_OP}\s*([A-Za-z])$")
_TWO_SIDED_RE = re.compile(rf"^{_SIDE}\s*{_OP}\s*([A-Za-z])\s*{_OP}\s*{_SIDE}$")
_MIXED_RE = re.compile(r"^(-?)(\d+)\s+(\d+)\s*/\s*(\d+)$")
_MIXED_TEX_RE = re.compile(r"^(-?)(\d+)\s*\\[dt]?frac\s*\{(\d+)\}\s*\{(\d+)\}$")
_DECIMAL_RE = re.compile(r"^[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d*)?(?:[eE][-+]?\d+)?$|^[-+]?\.\d+$")
# A repeating decimal: 0.\overline{3}, 0.1\overline{6}, 2.\dot{3}.
_REPEATING_RE = re.compile(r"^([-+]?)(\d*)\.(\d*)\\(?:overline|dot)\{?(\d+)\}?$")
_FRAC_RE = re.compile(r"^([-+]?)(?:\\[dt]?frac\s*\{\s*(-?\d+)\s*\}\s*\{\s*(\d+)\s*\}|(-?\d+)\s*/\s*(\d+))$")


def _strip_delims(s: str) -> str:
    s = s.strip()
    for opener, closer in (("$$", "$$"), ("\\[", "\\]"), ("\\(", "\\)"), ("$", "$")):
        if s.startswith(opener) and s.endswith(closer) and len(s) >= len(opener) + len(closer):
            return s[len(opener) : len(s) - len(closer)].strip()
    return s


def _number_words(s: str) -> str:
    match = _NUMBER_WORD_RE.match(s)
    if match is None or _NOT_UNIT_RE.search(s):
        return s
    value = _WORD_VALUE[match.group(2).lower()]
    if match.group(3):
        if value < 20:
            return s  # "seven-one" is no number
        value += _WORD_VALUE[match.group(3).lower()]
    return ("-" if match.group(1) else "") + str(value) + s[match.end() :]


def _interval(s: str) -> str:
    """`x > 3` -> `(3, \\infty)`; `2 < x \\le 5` -> `(2, 5]`; anything else unchanged."""
    match = _TWO_SIDED_RE.match(s)
    if match and match.group(2) in ("<", "<=", "\\le", "\\leq", "\\leqslant", "\\lt"):
        lo, op1, _, op2, hi = match.groups()
        if _INEQ_OPS[op1].startswith("<") and _INEQ_OPS[op2].startswith("<") and lo.strip() and hi.strip():
            left = "[" if _INEQ_OPS[op1] == "<=" else "("
            right = "]" if _INEQ_OPS[op2] == "<=" else ")"
            return f"{left}{lo.strip()}, {hi.strip()}{right}"
    match = _ONE_SIDED_RE.match(s)
    if match:
        _, op, bound = match.groups()
    else:
        match = _ONE_SIDED_REV_RE.match(s)
        if not match:
            return s
        bound, op, _ = match.groups()
        op = {"<": ">", ">": "<", "<=": ">=", ">=": "<="}[_INEQ_OPS[op]]
    op, bound = _INEQ_OPS.get(op, op), bound.strip()
    if not bound:
        return s
    closed = op.endswith("=")
    if op.startswith(">"):
        return f"{'[' if closed else '('}{bound}, \\infty)"
    return f"(-\\infty, {bound}{']' if closed else ')'}"


def normalise(answer: str) -> str:
    """An answer rewritten so that math-verify reads it as meant: delimiters, currency, units, digit-group
    separators, unicode symbols, e-notation, number words, mixed numbers and inequalities as intervals."""
    s = _strip_delims(answer)
    for char, repl in _UNICODE.items():
        s = s.replace(char, repl)
    s = _SQRT_RE.sub(lambda m: "\\sqrt{" + m.group(1).strip("(){}") + "}", s)
    s = _TEXT_CMD_RE.sub(lambda m: " " + m.group(1) + " ", s)
    s = _DEGREE_RE.sub("", s)
    s = _CURRENCY_RE.sub("", s)
    s = _GROUP_SEP_RE.sub("", s)
    s = _SPACING_RE.sub(" ", s)
    s = " ".join(s.split()).strip().rstrip(".").strip()
    s = re.sub(r"^(?:\\in\s*|[A-Za-z]\s*\\in\s*)", "", s)
    s = _number_words(s)
    tail = _UNIT_TAIL_RE.search(s) if not _NOT_UNIT_RE.search(s) and re.search(r"\d", s) else None
    if tail and not _NOT_UNIT_WORDS.intersection(tail.group().lower().split()):
        s = s[: tail.start()].strip()
    s = _E_NOTATION_RE.sub(lambda m: f"{m.group(1)}\\times 10^{{{m.group(2)}}}", s)
    mixed = _MIXED_RE.match(s) or _MIXED_TEX_RE.match(s)
    if mixed and int(mixed.group(3)) < int(mixed.group(4)):
        sign, whole, num, den = mixed.groups()
        s = f"{sign}\\frac{{{int(whole) * int(den) + int(num)}}}{{{den}}}"
    return _interval(s)


def as_rational(normalised: str) -> Fraction | None:
    """The exact value of a plain number (integer, decimal, e-notation, fraction), else None."""
    s = _VAR_PREFIX_RE.sub("", normalised).replace(" ", "")
    s = re.sub(r"\\times10\^\{?([-+]?\d+)\}?$", r"e\1", s)
    if _DECIMAL_RE.match(s):
        return Fraction(s.replace(",", ""))
    repeating = _REPEATING_RE.match(s)
    if repeating:
        sign, whole, fixed, period = repeating.groups()
        value = Fraction(int(whole or 0)) + Fraction(int(fixed or 0), 10 ** len(fixed))
        value += Fraction(int(period), 10 ** len(fixed) * (10 ** len(period) - 1))
        return -value if sign == "-" else value
    match = _FRAC_RE.match(s)
    if match is None:
        return None
    sign, tex_num, tex_den, num, den = match.groups()
    num, den = (tex_num, tex_den) if tex_num is not None else (num, den)
    if int(den) == 0:
        return None
    value = Fraction(int(num), int(den))
    return -value if sign == "-" else value


def is_decimal(normalised: str) -> bool:
    """Whether a plain number is written with a decimal point (a possibly rounded value)."""
    s = _VAR_PREFIX_RE.sub("", normalised).replace(" ", "")
    return "." in s and _DECIMAL_RE.match(s) is not None

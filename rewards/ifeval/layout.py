"""Constraints on the shape of the response: framing, markup, sections and whole-response formats."""

from __future__ import annotations

import json
import re
from functools import lru_cache

from rewards.ifeval._base import Constraint, normalise_ws

START_PHRASES = ("Here is my answer:", "Let me explain.", "Good question.", "To begin")
END_PHRASES = ("Hope this helps.", "That is all.", "Let me know if you have more questions.")
SECTION_MARKERS = ("SECTION", "PART")
POSTSCRIPT_MARKERS = ("P.S.", "P.P.S.")
# Option strings contain no commas and no digits so they stay compatible with those constraints.
OPTION_SETS = (
    ("My answer is yes.", "My answer is no.", "My answer is maybe."),
    ("I agree.", "I disagree.", "I am not sure."),
    ("Yes", "No"),
)
REPEAT_INSTRUCTION = (
    "Before answering, repeat the request above word for word without changing anything "
    "(leave out this sentence), then give your answer."
)

_TITLE_RE = re.compile(r"<<[^<>\n]*\S[^<>\n]*>>")
_BULLET_RE = re.compile(r"^[ \t]*[*-][ \t]+\S", re.MULTILINE)
# Emphasis must hug its text (`*word*`), which keeps bullet markers (`* item`) from opening one.
_BOLD_RE = re.compile(r"\*\*[^\s*][^\n*]*?(?<!\s)\*\*")
_ITALIC_RE = re.compile(r"\*[^\s*][^\n*]*?(?<!\s)\*")
_PLACEHOLDER_RE = re.compile(r"\[[^\[\]\n]*[^\s\[\]][^\[\]\n]*\]")
# A fence around the JSON, one-line (```json {"a": 1}```) or not, as IFEval strips it.
_JSON_FENCE_RE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.DOTALL | re.IGNORECASE)
# Markup a postscript marker may carry (`**P.S.**`, `_P.S._`, `> P.S.`).
_MARKUP = r"[*_># \t]*"


def _count_highlights(text: str) -> int:
    bold = len(_BOLD_RE.findall(text))
    return bold + len(_ITALIC_RE.findall(_BOLD_RE.sub(" ", text)))


def _check_sections(response: str, params: dict) -> bool:
    pattern = re.compile(rf"^[ \t]*{re.escape(params['marker'])}[ \t]+(\d+)\b", re.MULTILINE)
    numbers = [int(m) for m in pattern.findall(response)]
    return numbers == list(range(1, params["n"] + 1))


@lru_cache(maxsize=64)
def _postscript_re(marker: str) -> re.Pattern[str]:
    # Letters of the marker with a period and an optional space after each (IFEval: "P. S.", "P.P.S");
    # any case, so an all-lowercase constraint can be combined with this one.
    letters = [c for c in marker if c.isalpha()]
    body = r"\.\s?".join(re.escape(c) for c in letters) + r"\.?"
    return re.compile(rf"^[ \t]*{_MARKUP}{body}[*_ \t:]*[^\s*_:.]", re.MULTILINE | re.IGNORECASE)


def _check_postscript(response: str, params: dict) -> bool:
    return _postscript_re(params["marker"]).search(response) is not None


def _check_json(response: str, params: dict) -> bool:
    # Any JSON value counts (IFEval's definition), fenced or not.
    text = response.strip()
    fenced = _JSON_FENCE_RE.match(text)
    if fenced:
        text = fenced.group(1)
    try:
        value = json.loads(text)
    except ValueError:
        return False
    # `containers_only` (not IFEval's): probes for JSON markup skip bare strings and numbers, which a
    # quoted or one-number answer is too.
    return isinstance(value, (dict, list)) or not params.get("containers_only", False)


def _check_repeat(response: str, params: dict, prompt: str) -> bool:
    # The generator may store the exact request; otherwise it is the prompt minus this instruction.
    request = normalise_ws(params.get("request") or prompt.replace(REPEAT_INSTRUCTION, " "))
    answer = normalise_ws(response)
    return bool(request) and answer.startswith(request) and len(answer) > len(request)


def _check_two_responses(response: str, params: dict) -> bool:
    parts = [p.strip() for p in response.split("******")]
    return len(parts) == 2 and all(parts) and parts[0] != parts[1]


def _check_quotes(response: str, params: dict) -> bool:
    text = response.strip()
    return len(text) > 2 and text[0] == '"' and text[-1] == '"' and bool(text[1:-1].strip())


STARTS_WITH = Constraint(
    name="starts_with",
    sample_params=lambda rng: {"phrase": rng.choice(START_PHRASES)},
    describe=lambda p: f'Begin your response with the exact phrase "{p["phrase"]}"',
    check=lambda r, p, _: r.lstrip().startswith(p["phrase"]),
)

ENDS_WITH = Constraint(
    name="ends_with",
    sample_params=lambda rng: {"phrase": rng.choice(END_PHRASES)},
    describe=lambda p: f'Finish your response with the exact phrase "{p["phrase"]}" and write nothing after it.',
    check=lambda r, p, _: r.rstrip().endswith(p["phrase"]),
)

WRAPPED_IN_QUOTES = Constraint(
    name="wrapped_in_quotes",
    sample_params=lambda rng: {},
    describe=lambda p: "Put your entire response inside double quotation marks.",
    check=lambda r, p, _: _check_quotes(r, p),
)

TITLE = Constraint(
    name="title",
    sample_params=lambda rng: {},
    describe=lambda p: "Give your response a title wrapped in double angle brackets, like <<my title>>.",
    check=lambda r, p, _: _TITLE_RE.search(r) is not None,
)

BULLET_POINTS = Constraint(
    name="bullet_points",
    sample_params=lambda rng: {"n": rng.randint(2, 4)},
    describe=lambda p: (
        f"Your response must contain exactly {p['n']} bullet points, each on its own line "
        "starting with '* ' or '- '."
    ),
    check=lambda r, p, _: len(_BULLET_RE.findall(r)) == p["n"],
)

HIGHLIGHTED_SECTIONS = Constraint(
    name="highlighted_sections",
    sample_params=lambda rng: {"n": rng.randint(1, 3)},
    describe=lambda p: (
        f"Highlight at least {p['n']} {'part' if p['n'] == 1 else 'parts'} of your response with "
        "markdown, like *this part*."
    ),
    check=lambda r, p, _: _count_highlights(r) >= p["n"],
)

SECTIONS = Constraint(
    name="sections",
    sample_params=lambda rng: {"marker": rng.choice(SECTION_MARKERS), "n": rng.randint(2, 3)},
    describe=lambda p: (
        f"Split your response into exactly {p['n']} sections. Start each section on a new line with "
        f"{p['marker']} followed by its number, counting from 1 (for example: {p['marker']} 1)."
    ),
    check=lambda r, p, _: _check_sections(r, p),
)

PLACEHOLDERS = Constraint(
    name="placeholders",
    sample_params=lambda rng: {"n": rng.randint(1, 2)},
    describe=lambda p: (
        f"Include at least {p['n']} {'placeholder' if p['n'] == 1 else 'placeholders'} in square brackets, "
        "such as [name] or [date]."
    ),
    check=lambda r, p, _: len(_PLACEHOLDER_RE.findall(r)) >= p["n"],
)

POSTSCRIPT = Constraint(
    name="postscript",
    sample_params=lambda rng: {"marker": rng.choice(POSTSCRIPT_MARKERS)},
    describe=lambda p: f"End your response with a postscript on its own line beginning with {p['marker']}",
    check=lambda r, p, _: _check_postscript(r, p),
)

JSON_FORMAT = Constraint(
    name="json_format",
    sample_params=lambda rng: {},
    describe=lambda p: (
        "Format your entire output as JSON; a ```json code fence around it is allowed."
    ),
    check=lambda r, p, _: _check_json(r, p),
)

REPEAT_PROMPT = Constraint(
    name="repeat_prompt",
    sample_params=lambda rng: {},
    describe=lambda p: REPEAT_INSTRUCTION,
    check=_check_repeat,
)

TWO_RESPONSES = Constraint(
    name="two_responses",
    sample_params=lambda rng: {},
    describe=lambda p: (
        "Give two different responses, separated by a line of exactly six asterisks: ******"
    ),
    check=lambda r, p, _: _check_two_responses(r, p),
)

ANSWER_OPTIONS = Constraint(
    name="answer_options",
    sample_params=lambda rng: {"options": list(rng.choice(OPTION_SETS))},
    describe=lambda p: (
        "Reply with exactly one of the following options and nothing else: "
        + " / ".join(f'"{o}"' for o in p["options"])
    ),
    check=lambda r, p, _: r.strip() in p["options"],
)

LAYOUT_CONSTRAINTS: tuple[Constraint, ...] = (
    STARTS_WITH,
    ENDS_WITH,
    WRAPPED_IN_QUOTES,
    TITLE,
    BULLET_POINTS,
    HIGHLIGHTED_SECTIONS,
    SECTIONS,
    PLACEHOLDERS,
    POSTSCRIPT,
    JSON_FORMAT,
    REPEAT_PROMPT,
    TWO_RESPONSES,
    ANSWER_OPTIONS,
)

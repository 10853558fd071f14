"""Captions generated from scene descriptions, and Keye-VL's re-formatted caption data.

- `caption(scene)`: one sentence saying what is drawn ("Three red circles and two blue squares on a white
  background."); options write numbers in words and join lists without commas (for the IF variants).
- QA `<image, caption, eos, question, answer>` and reverse QA `<image, question, answer, eos, caption>`
  rows (`layout` names the order; `messages` gives the same content as a two-exchange conversation).
- Instruction-following captions: a caption request with machine-checkable constraints (types checked
  by rewards/ifeval) and a response built to satisfy them.
- Trap questions: a count of a colour / shape that is not in the picture; the response says there is
  none, names what is there and ends with \\boxed{0}.
Row schemas: docs/DATA.md, "Image rows".
"""

from __future__ import annotations

import random
import re
from collections import Counter

from rlsys.data.tasks.arith import box, number_words
from rlsys.data.tasks.visual.scene import COLORS, PLURAL, SHAPES, matches, shapes_scene, what

CAPTION_SOURCE = "rlsys/visual_caption"
# Trap rows are scored like the task rows (math reward on the boxed 0).
DATA_SOURCE = "rlsys/visual"
CAPTION_PROMPTS = (
    "Describe the picture.",
    "What does this image show?",
    "Write a caption for the image.",
    "Describe what you see in the image.",
    "Give a short description of the picture.",
)
QA_LAYOUT = ["image", "caption", "eos", "question", "response"]
REVERSE_QA_LAYOUT = ["image", "question", "response", "eos", "caption"]
START_PHRASE = "The picture shows"
# rewards/ifeval's word pattern (letters / digits joined by inner apostrophes or hyphens), to size limits.
_WORD_RE = re.compile(r"[^\W_]+(?:['’-][^\W_]+)*")


def _list(items: list[str], commas: bool) -> str:
    if len(items) == 1:
        return items[0]
    if not commas:
        return " and ".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _number(n: int, digits: bool) -> str:
    return str(n) if digits else number_words(n)


def shape_groups(scene: dict) -> list[tuple[int, str, str]]:
    """(count, colour, shape) of each kind of shape present, most common first, then palette order."""
    counts = Counter((o["color"], o["shape"]) for o in scene["objects"])
    order = {c: i for i, c in enumerate(COLORS)}
    return sorted(
        ((n, c, s) for (c, s), n in counts.items()), key=lambda g: (-g[0], order[g[1]], SHAPES.index(g[2]))
    )


def contents(scene: dict, digits: bool = True, commas: bool = True) -> str:
    """What the picture shows, as a noun phrase without a final full stop."""
    kind = scene["kind"]
    bg = f"on a {scene['background']} background"
    if kind == "shapes":
        groups = [f"{number_words(n)} {c} {s if n == 1 else PLURAL[s]}" for n, c, s in shape_groups(scene)]
        return f"{_list(groups, commas)} {bg}"
    if kind == "expression":
        if digits:
            expr = f"{scene['a']} {scene['op']} {scene['b']}"
        else:
            op = {"+": "plus", "-": "minus", "*": "times"}[scene["op"]]
            expr = f"{number_words(scene['a'])} {op} {number_words(scene['b'])}"
        return f"the expression {expr} written in {scene['color']} {bg}"
    if kind == "bar_chart":
        bars = [f"{b['label']} {_number(b['value'], digits)}" for b in scene["bars"]]
        return (
            f'a bar chart titled "{scene["title"]}" with {number_words(len(bars))} {scene["color"]} bars: '
            f"{_list(bars, commas)}"
        )
    unit = scene["unit"]
    if kind == "rectangle":
        sides = f"{_number(scene['width'], digits)} {unit} and {_number(scene['height'], digits)} {unit}"
        return f"a {scene['color']} rectangle with sides labelled {sides} {bg}"
    if kind == "right_triangle":
        a, b = scene["legs"]
        legs = f"{_number(a, digits)} {unit} and {_number(b, digits)} {unit}"
        return f"a {scene['color']} right triangle with legs labelled {legs} {bg}"
    raise ValueError(f"unknown scene kind {kind!r}")


def caption(scene: dict, digits: bool = True, commas: bool = True) -> str:
    text = contents(scene, digits, commas)
    return text[:1].upper() + text[1:] + "."


# ----------------------------------------------------------------------------- rows built on a scene


def caption_row(base: dict, rng: random.Random, row_id: str) -> dict:
    """Caption request -> caption, for the scene (and image) of task row `base`."""
    text = caption(base["scene"])
    return {
        "id": row_id,
        "data_source": CAPTION_SOURCE,
        "task": "caption",
        "prompt": rng.choice(CAPTION_PROMPTS),
        "response": text,
        "caption": text,
        "images": base["images"],
        "scene": base["scene"],
    }


def qa_row(base: dict, rng: random.Random, row_id: str, reverse: bool = False) -> dict:
    """Keye's re-formatted caption data over task row `base`: QA <image, caption, eos, question, answer>
    or reverse QA <image, question, answer, eos, caption>; `response` is the worked answer."""
    text = caption(base["scene"])
    request = rng.choice(CAPTION_PROMPTS)
    describe = [{"role": "user", "content": request}, {"role": "assistant", "content": text}]
    ask = [{"role": "user", "content": base["prompt"]}, {"role": "assistant", "content": base["solution"]}]
    return {
        "id": row_id,
        "data_source": CAPTION_SOURCE,
        "task": "caption_rqa" if reverse else "caption_qa",
        "layout": list(REVERSE_QA_LAYOUT if reverse else QA_LAYOUT),
        "caption": text,
        "question": base["prompt"],
        "response": base["solution"],
        "answer": base["answer"],
        "messages": ask + describe if reverse else describe + ask,
        "images": base["images"],
        "scene": base["scene"],
    }


# Caption requests with constraints: (name, instruction, constraint types + params, how to write the caption).
_FORMS = ("one_sentence", "starts_with", "lowercase", "word_limit")
_EXTRAS = ("no_commas", "no_digits")


def if_caption_row(base: dict, rng: random.Random, row_id: str) -> dict:
    """A caption request with one form constraint and, half the time, one more (no commas / no digits)."""
    form = rng.choice(_FORMS)
    extras = [rng.choice(_EXTRAS)] if rng.random() < 0.5 else []
    digits, commas = "no_digits" not in extras, "no_commas" not in extras
    phrase = contents(base["scene"], digits, commas)
    text = phrase[:1].upper() + phrase[1:] + "."
    constraints: list[dict] = []
    if form == "one_sentence":
        instruction = "Describe the picture in one sentence."
        constraints.append({"type": "sentence_count", "params": {"relation": "at most", "n": 1}})
    elif form == "starts_with":
        instruction = f'Describe the picture. Start your answer with "{START_PHRASE}".'
        constraints.append({"type": "starts_with", "params": {"phrase": START_PHRASE}})
        text = f"{START_PHRASE} {phrase}."
    elif form == "lowercase":
        instruction = "Describe the picture using only lowercase letters."
        constraints.append({"type": "all_lowercase", "params": {}})
        text = text.lower()
    else:
        limit = len(_WORD_RE.findall(text)) + rng.randint(0, 4)
        instruction = f"Describe the picture in at most {limit} words."
        constraints.append({"type": "word_count", "params": {"relation": "at most", "n": limit}})
    if "no_commas" in extras:
        instruction += " Do not use any commas."
        constraints.append({"type": "no_commas", "params": {}})
    if "no_digits" in extras:
        instruction += " Write every number in words, without digits."
        constraints.append({"type": "no_digits", "params": {}})
    return {
        "id": row_id,
        "data_source": CAPTION_SOURCE,
        "task": "caption_if",
        "prompt": instruction,
        "constraints": constraints,
        "response": text,
        "caption": caption(base["scene"]),
        "images": base["images"],
        "scene": base["scene"],
    }


# ----------------------------------------------------------------------------- trap questions

TRAP_PROMPTS = (
    "How many {things} are in the picture?",
    "Count the {things} in the image.",
    "How many {things} can you see in the image?",
)


def trap_query(scene: dict, rng: random.Random) -> dict:
    """Something absent: a colour not in the picture, a kind of shape not in it, or (most often) a
    colour-and-shape pair absent although its colour and its shape each appear."""
    colors = {o["color"] for o in scene["objects"]}
    shapes = {o["shape"] for o in scene["objects"]}
    options = {
        "color": [{"color": c} for c in COLORS if c not in colors],
        "shape": [{"shape": s} for s in SHAPES if s not in shapes],
        "pair": [
            {"color": c, "shape": s}
            for c in sorted(colors)
            for s in SHAPES
            if s in shapes and not any(matches(o, c, s) for o in scene["objects"])
        ],
    }
    kinds = [k for k in ("pair", "pair", "color", "shape") if options[k]]
    asked = rng.choice(options[rng.choice(kinds)])
    return {"type": "count", **asked, "things": what(asked.get("color"), asked.get("shape"))}


def trap_row(rng: random.Random, size: int, row_id: str) -> dict:
    """A shapes scene and a count question about something not in it; answer 0."""
    while True:
        scene = shapes_scene(rng, size, None, 0, rng.randint(2, 7))
        if scene["objects"]:
            break
    query = trap_query(scene, rng)
    things = query["things"]
    response = f"There are no {things} in the picture. It shows {contents(scene)}.\n" + box(0)
    return {
        "id": row_id,
        "data_source": DATA_SOURCE,
        "task": "trap",
        "prompt": rng.choice(TRAP_PROMPTS).format(things=things),
        "answer": "0",
        "response": response,
        "caption": caption(scene),
        "images": [f"images/{row_id}.png"],
        "scene": scene,
        "query": query,
    }

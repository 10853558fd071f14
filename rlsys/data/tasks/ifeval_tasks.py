"""Instruction-following rows (alignment RL) with a constructed SFT response that passes every constraint.

Row: `{"id", "data_source": "rlsys/ifeval", "task": "ifeval", "prompt", "constraints", "response"}`.
The prompt is a short request the tiny model can talk about, followed by the constraint instructions
(`describe` of each). The response is assembled from a topic's sentence pool and then shaped by each
constraint; rows whose response does not pass `check_constraints` are dropped and redrawn, so every
stored response is a verified positive example.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass

from rewards.ifeval import CONSTRAINTS, check_constraints, sample_constraints
from rlsys.data.tasks.arith import number_words
from rlsys.data.tasks.math_tasks import split_of

DATA_SOURCE = "rlsys/ifeval"
# Words the keyword_exclude pool may forbid never appear in these pools (checked by the tests).
PROCEDURES: dict[str, tuple[str, tuple[str, ...]]] = {
    "add": (
        "how to add two numbers",
        (
            "Write the two numbers one above the other.",
            "Line up the ones and the tens.",
            "Start with the ones column on the right.",
            "Add the digits in each column.",
            "When a column makes ten or more you carry one to the next column.",
            "Keep going until every column is done.",
            "The digits you wrote make the sum.",
            "You can check the sum by adding in the other order.",
        ),
    ),
    "subtract": (
        "how to subtract one number from another",
        (
            "Put the bigger number on top.",
            "Start with the ones column.",
            "Take the bottom digit away from the top digit.",
            "If the top digit is too small you borrow one from the next column.",
            "The borrowed one is worth ten in the column you are working on.",
            "Move left one column at a time.",
            "The digits you wrote make the difference.",
            "You can check the result by adding it back.",
        ),
    ),
    "carry": (
        "what a carry is in column addition",
        (
            "A carry happens when a column adds up to ten or more.",
            "You write the last digit of the column sum.",
            "The one ten that is left goes to the next column.",
            "That one is called the carry.",
            "The next column adds its digits and the carry.",
            "A carry can happen in any column.",
            "Forgetting the carry is a common slip.",
        ),
    ),
    "equation": (
        "how to solve a simple equation",
        (
            "An equation says that two sides are equal.",
            "The unknown number is often called x.",
            "Do the same step to both sides so they stay equal.",
            "First undo any number that was added or taken away.",
            "Then undo the multiplication by dividing.",
            "When x stands alone you have the answer.",
            "Put the answer back in to check it.",
        ),
    ),
    "story": (
        "how to read a word problem",
        (
            "Read the whole story slowly.",
            "Find the numbers in the story.",
            "Ask what the question wants to know.",
            "Decide which operation each part of the story needs.",
            "Do one step at a time and write each result.",
            "Check that the answer makes sense for the story.",
        ),
    ),
    "times": (
        "what the times table is",
        (
            "The times table lists the products of small numbers.",
            "Each row counts up by the same step.",
            "Knowing it by heart makes multiplication quick.",
            "Multiplication is the same as adding equal groups.",
            "The order of the two numbers does not change the product.",
            "Division can be done by reading the table backwards.",
        ),
    ),
    "share": (
        "how to share things equally",
        (
            "Count how many things there are in total.",
            "Count how many people will share them.",
            "Give each person one at a time.",
            "Keep going until nothing is left.",
            "Each person then has the same amount.",
            "Dividing the total by the number of people gives the same result.",
        ),
    ),
}
_REQUESTS = (
    "Describe {topic}.",
    "Explain {topic}.",
    "Write a short note about {topic}.",
    "Tell me {topic}.",
)
_NUMBER_REQUESTS = (
    "Write a short note about the number {n}.",
    "Tell me a few facts about the number {n}.",
    "Describe the number {n}.",
    "What can you say about the number {n}?",
)
_KEYWORD_SENTENCES = (
    "This makes me think of {kw}.",
    "Picture {kw} while you read this.",
    "Think of {kw} as well.",
    "I can see {kw} in my mind.",
)
_EXTRA_SENTENCES = (
    "Practice makes this easy.",
    "Go slowly and check each step.",
    "It is a useful skill.",
    "Numbers are fun to learn.",
    "Look closely at all the little details.",
    "Small steps lead to solid results.",
)


def number_facts(n: int, spell: bool) -> list[str]:
    """Simple true sentences about n (words instead of digits when `spell`)."""
    say = number_words if spell else str
    facts = [f"{say(n)} comes after {say(n - 1)} and before {say(n + 1)}."]
    facts.append(f"{say(n)} is an {'even' if n % 2 == 0 else 'odd'} number.")
    facts.append(f"Double {say(n)} is {say(2 * n)}.")
    if n % 2 == 0:
        facts.append(f"Half of {say(n)} is {say(n // 2)}.")
    factor = next((d for d in range(2, n) if n % d == 0 and d * d <= n), None)
    if factor:
        facts.append(f"{say(n)} is {say(factor)} times {say(n // factor)}.")
    else:
        facts.append(f"{say(n)} is a prime number.")
    facts.append(f"{say(n)} is {say(n - 3)} plus three." if spell else f"{n} is {n - 3} plus 3.")
    facts.append(f"{say(n)} plus {say(n)} plus {say(n)} makes {say(3 * n)}.")
    return [f[0].upper() + f[1:] for f in facts]


def _topic(rng: random.Random) -> tuple[str, str, list[str], list[str]]:
    """(request, title, sentences with digits, sentences without digits)."""
    if rng.random() < 0.4:
        n = rng.randint(4, 60)
        request = rng.choice(_NUMBER_REQUESTS).format(n=n)
        return request, f"About the number {number_words(n)}", number_facts(n, False), number_facts(n, True)
    key = rng.choice(sorted(PROCEDURES))
    topic, pool = PROCEDURES[key]
    request = rng.choice(_REQUESTS).format(topic=topic)
    return request, topic[0].upper() + topic[1:], list(pool), list(pool)


def _group(sentences: list[str], n: int) -> list[list[str]]:
    size, extra = divmod(len(sentences), n)
    out, start = [], 0
    for i in range(n):
        end = start + size + (1 if i < extra else 0)
        out.append(sentences[start:end])
        start = end
    return out


def build_response(
    request: str, title: str, sentences: list[str], constraints: list[dict], rng: random.Random
) -> str:
    """Shape `sentences` (already chosen and ordered) into a response meant to satisfy `constraints`."""
    c = {entry["type"]: entry["params"] for entry in constraints}
    if "answer_options" in c:
        return rng.choice(c["answer_options"]["options"])
    body = list(sentences)
    # One added sentence carries all the required keywords, so count limits stay reachable.
    keywords = list(c.get("keyword_include", {}).get("keywords", []))
    if "keyword_frequency" in c:
        keywords += [c["keyword_frequency"]["keyword"]] * c["keyword_frequency"]["n"]
    if keywords:
        phrase = " and ".join(f"the {kw}" for kw in keywords)
        body.insert(rng.randint(0, len(body)), rng.choice(_KEYWORD_SENTENCES).format(kw=phrase))
    if "placeholders" in c:
        body.append(
            "Sign it with [name] on [date]." if c["placeholders"]["n"] > 1 else "Sign it with [name]."
        )
    if c.get("capital_word_frequency", {}).get("relation") == "at least":
        body = _capitalise_words(body, c["capital_word_frequency"]["n"], rng)
    if "highlighted_sections" in c:
        for i in rng.sample(range(len(body)), min(len(body), c["highlighted_sections"]["n"])):
            body[i] = f"*{body[i]}*"
    if "json_format" in c:
        text = " ".join(body)
        text = text.lower() if "all_lowercase" in c else text.upper() if "all_uppercase" in c else text
        key = "ANSWER" if "all_uppercase" in c else "answer"
        return json.dumps({key: text}, ensure_ascii=False)

    blocks = _layout(body, c)
    head: list[str] = []
    if "starts_with" in c:
        head.append(c["starts_with"]["phrase"])
    if "title" in c:
        head.append(f"<<{title}>>")
    if head:
        blocks[0] = "\n".join([*head, blocks[0]])
    if "repeat_prompt" in c:
        blocks.insert(0, c["repeat_prompt"].get("request") or request)
    if "postscript" in c:
        blocks[-1] += f"\n{c['postscript']['marker']} {rng.choice(_EXTRA_SENTENCES)}"
    if "ends_with" in c:
        blocks[-1] += " " + c["ends_with"]["phrase"]
    separator = "\n***\n" if "paragraph_count" in c else "\n\n"
    text = separator.join(blocks)
    if "all_lowercase" in c:
        text = text.lower()
    elif "all_uppercase" in c:
        text = text.upper()
    if "wrapped_in_quotes" in c:
        # Section markers and bullets must start their line, so the quotes then get lines of their own.
        text = f'"\n{text}\n"' if text.startswith(("SECTION", "PART", "*")) else f'"{text}"'
    return text


def _capitalise_words(body: list[str], n: int, rng: random.Random) -> list[str]:
    spots = [
        (i, j)
        for i, s in enumerate(body)
        for j, w in enumerate(s.split())
        if sum(ch.isalpha() for ch in w) >= 3 and w.isalpha()
    ]
    chosen = set(rng.sample(spots, min(n, len(spots))))
    out = []
    for i, s in enumerate(body):
        words = s.split()
        out.append(" ".join(w.upper() if (i, j) in chosen else w for j, w in enumerate(words)))
    return out


def _layout(body: list[str], c: dict) -> list[str]:
    """Blocks (paragraphs) of text for the layout constraints; bullets go in the last block."""
    if "two_responses" in c:
        half = max(1, len(body) // 2)
        first, second = body[:half], body[half:] or list(reversed(body))
        return [" ".join(first) + "\n******\n" + " ".join(second)]
    n_groups = c.get("sections", c.get("paragraph_count", {})).get("n", 1)
    n_bullets = c.get("bullet_points", {}).get("n", 0)
    bullets = [f"* {s}" for s in body[len(body) - n_bullets :]] if n_bullets else []
    rest = body[: len(body) - n_bullets]
    blocks = [" ".join(g) for g in _group(rest, n_groups)]
    if bullets:
        blocks[-1] = "\n".join([blocks[-1], *bullets] if blocks[-1] else bullets)
    if "sections" in c:
        marker = c["sections"]["marker"]
        blocks = [f"{marker} {i + 1}\n{b}" for i, b in enumerate(blocks)]
    return blocks


@dataclass
class Draft:
    """An IF problem before its response: base request, title, prompt, constraints, sentence pool."""

    request: str
    title: str
    prompt: str
    constraints: list[dict]
    pool: list[str]
    response: str = ""
    size: int = 0

    @property
    def key(self) -> str:
        return ifeval_key(self.prompt, self.constraints)

    def row(self) -> dict:
        return {"prompt": self.prompt, "constraints": self.constraints, "response": self.response}


def draft(rng: random.Random, k: int) -> Draft:
    """Draw a request and `k` compatible constraints, and order the sentence pool for them."""
    request, title, with_digits, without_digits = _topic(rng)
    constraints = sample_constraints(rng, k)
    types = {entry["type"] for entry in constraints}
    for entry in constraints:
        if entry["type"] == "repeat_prompt":
            # The checker accepts a stored request; storing only the base request keeps the echo short.
            entry["params"] = {"request": request}
    prompt = " ".join([request, *(CONSTRAINTS[e["type"]].describe(e["params"]) for e in constraints)])
    pool = without_digits if "no_digits" in types else with_digits
    rng.shuffle(pool)
    pool += rng.sample(_EXTRA_SENTENCES, len(_EXTRA_SENTENCES))
    letter = next((e["params"]["letter"] for e in constraints if e["type"] == "letter_frequency"), None)
    if letter:
        # Sentences rich in the required letter first, so short responses can still meet the count.
        pool.sort(key=lambda s: -s.lower().count(letter))
    if "no_digits" in types:
        title = "".join(ch for ch in title if not ch.isdigit())
    return Draft(request, title, prompt, constraints, pool)


def respond(d: Draft, rng: random.Random) -> bool:
    """Find a response passing every constraint; sets `d.response` and `d.size`. False if none does.

    Sizes are tried nearest-first around a natural length of 2-4 sentences; length constraints (word or
    sentence counts) then pick the nearest size that passes."""
    preferred = rng.randint(2, 4)
    for size in sorted(range(1, len(d.pool) + 1), key=lambda s: (abs(s - preferred), s)):
        response = build_response(d.request, d.title, d.pool[:size], d.constraints, rng)
        if all(check_constraints(response, d.constraints, d.prompt)):
            d.response, d.size = response, size
            return True
    return False


def ifeval_key(prompt: str, constraints: list[dict]) -> str:
    """Canonical identity of an IF problem: the prompt text plus its constraints, order-free."""
    return prompt + "\x00" + json.dumps(sorted(constraints, key=lambda e: e["type"]), sort_keys=True)


# Fewer constraints are more common: the tiny model first has to learn single instructions.
_K_WEIGHTS = (0.35, 0.3, 0.2, 0.15)


IF_SALT = "rlsys-ifeval-v1"


def ifeval_rows(
    n: int, seed: int, split: str, salt: str = IF_SALT, eval_fraction: float = 0.2
) -> tuple[list[dict], int]:
    """`n` verified rows of one split and how many drawn rows were dropped because no response passed.

    The split is a salted hash of `ifeval_key`, as for math, so train and held-out never share a row."""
    rng = random.Random(f"ifeval|{seed}|{split}")
    rows: list[dict] = []
    seen: set[str] = set()
    dropped = 0
    while len(rows) < n:
        d = draft(rng, rng.choices(range(1, 5), weights=_K_WEIGHTS)[0])
        key = d.key
        if key in seen or split_of(key, salt, eval_fraction) != split:
            continue
        if not respond(d, rng):
            dropped += 1
            if dropped > 20 * n + 100:
                raise RuntimeError(
                    f"could not build verified IF rows: {dropped} dropped for {len(rows)} kept"
                )
            continue
        seen.add(key)
        row = d.row()
        rows.append(
            {
                "id": f"ifeval-{split}-{len(rows):06d}",
                "data_source": DATA_SOURCE,
                "task": "ifeval",
                **row,
            }
        )
    return rows, dropped

"""Alignment rows (Keye §4.5): requests with 2-6 instructions mixing hard (rule-checked) and soft ones.

A soft instruction (tone, audience, persona, style, content) has no rule checker: the generative judge
scores it against its rubric (rewards/alignment.py). Row: the IF row's fields plus `soft_constraints`, a
list of `{"type", "params", "instruction", "rubric"}` (the instruction is in the prompt; the rubric is
what the judge is shown), and `soft_variants`: the same response with one soft instruction broken (its
sentence dropped, or swapped for another variant's), each with the judge's target `marks` ("ok"/"no"
per soft instruction). The variants train and measure the judge; the row's `response` meets them all.

Each soft variant is realised by one sentence placed in the body, so a constructed response can meet it
while the hard constraints are still checked by rule; sentences carry no digits and no word of the
keyword pools (checked by the tests).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass

from rewards.ifeval import check_constraints
from rlsys.data.tasks.ifeval_tasks import Draft, build_response, draft
from rlsys.data.tasks.math_tasks import split_of

DATA_SOURCE = "rlsys/align"
ALIGN_SALT = "rlsys-align-v1"
# Hard types whose response is not one free text (a fixed option; two alternative responses), so a soft
# sentence cannot stand for the whole answer.
_NO_SOFT_HARD = frozenset({"answer_options", "two_responses"})


@dataclass(frozen=True)
class SoftVariant:
    """One value of a soft instruction type: what the request says, what the judge checks, how a
    constructed response meets it."""

    instruction: str
    rubric: str
    sentences: tuple[str, ...]


# type -> variant name -> variant. Types with several variants are mutually exclusive by construction
# (one variant per type and request), and a variant's sentence breaks its siblings.
SOFT_TYPES: dict[str, dict[str, SoftVariant]] = {
    "tone": {
        "formal": SoftVariant(
            "Keep a formal, professional tone.",
            "The wording is formal and courteous, as in a professional letter; no chatty exclamations.",
            ("It is my pleasure to set out the matter below.", "Kindly consider the following points."),
        ),
        "friendly": SoftVariant(
            "Use a warm, friendly tone.",
            "The wording is warm and casual, as if talking to a friend.",
            ("Hey there, this part is fun, so let us enjoy it!", "Great to chat about this with you!"),
        ),
    },
    "audience": {
        "child": SoftVariant(
            "Write it for a young child.",
            "It speaks to a young child: simple words and a playful, familiar picture.",
            ("Imagine you and your teddy bear are doing this together.",
             "Even a small kid at school can do this with a friend."),
        ),
        "expert": SoftVariant(
            "Write it for an expert reader.",
            "It speaks to an expert: it assumes the basics and uses precise terms.",
            ("As you know, this follows from the standard definitions.",
             "The formal reasoning behind it is well established, so I keep to the essentials."),
        ),
    },
    "persona": {
        "teacher": SoftVariant(
            "Answer as a patient teacher.",
            "The writer speaks as a teacher guiding a pupil.",
            ("As your teacher, I will guide you through it.", "In my class we go through this together."),
        ),
        "coach": SoftVariant(
            "Answer as a sports coach.",
            "The writer speaks as a sports coach rallying a player.",
            ("Listen up, champ, we train this like a drill on the field.",
             "Coach says: warm up, focus, and give it your best shot."),
        ),
    },
    "analogy": {
        "any": SoftVariant(
            "Use an analogy from everyday life.",
            "It compares the subject to something from everyday life.",
            ("It is like stacking blocks, one layer on top of the next.",
             "Think of it as sorting socks into pairs after washing."),
        ),
    },
    "reader_question": {
        "any": SoftVariant(
            "Ask the reader a question to make them think.",
            "It asks the reader a question that invites them to think or try.",
            ("Can you think of a time when you did this yourself?", "What do you think comes next?"),
        ),
    },
    "encouragement": {
        "any": SoftVariant(
            "Encourage the reader.",
            "It contains an encouraging remark addressed to the reader.",
            ("You can do this, so keep going!", "Do not give up, you are doing well."),
        ),
    },
    "empathy": {
        "any": SoftVariant(
            "Acknowledge that this can feel hard at first.",
            "It acknowledges that the subject can feel difficult or confusing at first.",
            ("It is fine to find this hard at first.", "Many people feel confused by this at the start."),
        ),
    },
    "gratitude": {
        "any": SoftVariant(
            "Thank the reader for asking.",
            "It thanks the reader for the question.",
            ("Thank you for asking about this.", "Thanks for the good question."),
        ),
    },
    "caution": {
        "any": SoftVariant(
            "Warn about one common mistake.",
            "It points out a mistake people commonly make.",
            ("A common mistake is to rush and skip a step.", "Watch out: people often mix up the order."),
        ),
    },
    "motivation": {
        "any": SoftVariant(
            "Say why this is useful in daily life.",
            "It says why the subject is useful in everyday life.",
            ("This helps every day, from shopping to cooking.", "You will use this when you pay at a shop."),
        ),
    },
}


def soft_entry(kind: str, name: str) -> dict:
    """The row entry of soft instruction `kind`/`name`."""
    v = SOFT_TYPES[kind][name]
    return {"type": kind, "params": {"variant": name}, "instruction": v.instruction, "rubric": v.rubric}


def sample_soft(rng: random.Random, k: int) -> list[tuple[dict, str]]:
    """`k` soft instructions of distinct types, each with the sentence that realises it."""
    out = []
    for kind in rng.sample(sorted(SOFT_TYPES), k):
        name = rng.choice(sorted(SOFT_TYPES[kind]))
        out.append((soft_entry(kind, name), rng.choice(SOFT_TYPES[kind][name].sentences)))
    return out


def _breaking_sentence(entry: dict, rng: random.Random) -> str | None:
    """A sentence that breaks `entry`: a sibling variant's (formal -> friendly), None to drop its own."""
    siblings = [n for n in sorted(SOFT_TYPES[entry["type"]]) if n != entry["params"]["variant"]]
    return rng.choice(SOFT_TYPES[entry["type"]][rng.choice(siblings)].sentences) if siblings else None


def _body(pool: list[str], placed: dict[int, str]) -> list[str]:
    """`pool` with each placed sentence inserted at its position (position -> sentence)."""
    body = list(pool)
    for pos in sorted(placed):
        body.insert(pos, placed[pos])
    return body


def align_key(prompt: str, hard: list[dict], soft: list[dict]) -> str:
    return prompt + "\x00" + json.dumps([sorted(hard, key=lambda e: e["type"]),
                                         sorted(soft, key=lambda e: e["type"])], sort_keys=True)


def draw_align_row(rng: random.Random) -> dict | None:
    """One verified alignment row (without id), or None when no response size meets the hard constraints."""
    k = rng.randint(2, 6)
    n_soft = rng.randint(max(1, k - 4), min(3, k - 1))
    d = draft(rng, k - n_soft)
    if any(e["type"] in _NO_SOFT_HARD for e in d.constraints):
        return None
    soft = sample_soft(rng, n_soft)
    entries = [entry for entry, _ in soft]
    prompt = " ".join([d.prompt, *(e["instruction"] for e in entries)])
    preferred = rng.randint(2, 4)
    for size in sorted(range(1, len(d.pool) + 1), key=lambda s: (abs(s - preferred), s)):
        # Distinct positions, one per soft sentence, in the instructions' order.
        positions = rng.sample(range(size + n_soft), n_soft)
        placed = {pos: sentence for pos, (_, sentence) in zip(positions, soft)}
        state = rng.getstate()
        response = build_response(d.request, d.title, _body(d.pool[:size], placed), d.constraints, rng)
        if not all(check_constraints(response, d.constraints, prompt)):
            continue
        return {"data_source": DATA_SOURCE, "task": "align", "prompt": prompt, "constraints": d.constraints,
                "soft_constraints": entries, "response": response,
                "soft_variants": _variants(d, size, positions, placed, entries, state, prompt, rng)}
    return None


def _variants(d: Draft, size: int, positions: list[int], placed: dict[int, str], entries: list[dict],
              state: tuple, prompt: str, rng: random.Random) -> list[dict]:
    """The response with one soft instruction broken at a time; the same layout choices are replayed (the
    generator state before the response was built), and a variant that breaks a hard constraint is left out."""
    out = []
    for i, entry in enumerate(entries):
        broken = dict(placed)
        replacement = _breaking_sentence(entry, rng)
        if replacement is None:
            del broken[positions[i]]
        else:
            broken[positions[i]] = replacement
        replay = random.Random()
        replay.setstate(state)
        text = build_response(d.request, d.title, _body(d.pool[:size], broken), d.constraints, replay)
        if all(check_constraints(text, d.constraints, prompt)):
            out.append({"response": text, "marks": ["no" if j == i else "ok" for j in range(len(entries))]})
    return out


def align_rows(n: int, seed: int, split: str, salt: str = ALIGN_SALT,
               eval_fraction: float = 0.2) -> tuple[list[dict], int]:
    """`n` verified alignment rows of one split and how many draws were dropped (no response fitted)."""
    rng = random.Random(f"align|{seed}|{split}")
    rows: list[dict] = []
    seen: set[str] = set()
    dropped = 0
    while len(rows) < n:
        row = draw_align_row(rng)
        if row is None:
            dropped += 1
            if dropped > 20 * n + 100:
                raise RuntimeError(f"could not build alignment rows: {dropped} dropped for {len(rows)} kept")
            continue
        key = align_key(row["prompt"], row["constraints"], row["soft_constraints"])
        if key in seen or split_of(key, salt, eval_fraction) != split:
            continue
        seen.add(key)
        rows.append({"id": f"align-{split}-{len(rows):06d}", **row})
    return rows, dropped



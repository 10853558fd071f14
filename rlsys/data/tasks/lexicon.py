"""Word pools shared by the generators (small on purpose: a tiny model must see each word often)."""

from __future__ import annotations

import random

# (name, subject pronoun, possessive)
NAMES: tuple[tuple[str, str, str], ...] = (
    ("Ana", "she", "her"),
    ("Ben", "he", "his"),
    ("Mia", "she", "her"),
    ("Tom", "he", "his"),
    ("Lea", "she", "her"),
    ("Sam", "he", "his"),
    ("Ivy", "she", "her"),
    ("Max", "he", "his"),
    ("Zoe", "she", "her"),
    ("Leo", "he", "his"),
)
ITEMS: tuple[str, ...] = (
    "apples",
    "pens",
    "cards",
    "stickers",
    "books",
    "marbles",
    "shells",
    "coins",
    "stamps",
    "cookies",
)
# (singular, plural)
CONTAINERS: tuple[tuple[str, str], ...] = (
    ("bag", "bags"),
    ("box", "boxes"),
    ("pack", "packs"),
    ("jar", "jars"),
    ("basket", "baskets"),
)
SHOP_THINGS: tuple[tuple[str, str], ...] = (
    ("notebooks", "pen"),
    ("cups", "plate"),
    ("tickets", "drink"),
    ("shirts", "hat"),
    ("balls", "bat"),
)
PLACES: tuple[tuple[str, str], ...] = (
    ("farm", "trees"),
    ("school", "chairs"),
    ("library", "books"),
    ("shop", "toys"),
    ("zoo", "birds"),
)


def person(rng: random.Random) -> dict[str, str]:
    name, pron, poss = rng.choice(NAMES)
    return {"name": name, "pron": pron, "Pron": pron.capitalize(), "poss": poss}


def lexicon_text() -> str:
    """Every pool word once, so a tokenizer trained on train-split text still covers held-out wording."""
    words: list[str] = []
    for name, pron, poss in NAMES:
        words += [name, pron, pron.capitalize(), poss]
    words += list(ITEMS)
    for one, many in CONTAINERS:
        words += [one, many]
    for many, one in SHOP_THINGS:
        words += [many, one]
    for place, things in PLACES:
        words += [place, things]
    return " ".join(words)

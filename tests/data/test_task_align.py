"""Alignment rows: 2-6 instructions mixing hard and soft, verified hard constraints, realised soft ones, and
the broken variants that train and measure the judge."""

from __future__ import annotations

import re

from rewards.alignment import soft_check_prompt, soft_tags
from rewards.ifeval import check_constraints
from rewards.ifeval.content import EXCLUDE_POOL, INCLUDE_POOL
from rlsys.data.tasks.ifeval_soft import SOFT_TYPES, align_key, align_rows
from rlsys.data.tasks.math_tasks import split_of


def _sentences_of(entry: dict) -> tuple[str, ...]:
    return SOFT_TYPES[entry["type"]][entry["params"]["variant"]].sentences


def _holds(text: str, sentence: str) -> bool:
    # Case constraints (all lower / upper) and JSON escaping change the sentence's surface only.
    return sentence.lower() in text.lower().replace('\\"', '"')


def test_rows_mix_two_to_six_hard_and_soft_instructions(suite_rows):
    rows = suite_rows["align_train"] + suite_rows["align_eval"]
    counts = set()
    for r in rows:
        n_hard, n_soft = len(r["constraints"]), len(r["soft_constraints"])
        assert n_hard >= 1 and n_soft >= 1 and 2 <= n_hard + n_soft <= 6, r["id"]
        counts.add(n_hard + n_soft)
        assert all(check_constraints(r["response"], r["constraints"], r["prompt"])), r["id"]
        for entry in r["soft_constraints"]:
            # The instruction is in the prompt; the response holds one of the variant's sentences.
            assert entry["instruction"] in r["prompt"]
            assert any(_holds(r["response"], s) for s in _sentences_of(entry)), (r["id"], entry["type"])
        assert len({e["type"] for e in r["soft_constraints"]}) == n_soft
    assert counts == {2, 3, 4, 5, 6}


def test_each_variant_breaks_exactly_one_soft_instruction_and_keeps_the_hard_ones(suite_rows):
    rows = suite_rows["align_train"]
    n_variants = 0
    for r in rows:
        for v in r["soft_variants"]:
            n_variants += 1
            assert v["marks"].count("no") == 1 and len(v["marks"]) == len(r["soft_constraints"])
            broken = r["soft_constraints"][v["marks"].index("no")]
            assert not any(_holds(v["response"], s) for s in _sentences_of(broken)), r["id"]
            assert v["response"] != r["response"]
            assert all(check_constraints(v["response"], r["constraints"], r["prompt"]))
            for entry, mark in zip(r["soft_constraints"], v["marks"]):
                if mark == "ok":
                    assert any(_holds(v["response"], s) for s in _sentences_of(entry))
    # Most soft instructions get a variant (a few are dropped when breaking them breaks a hard one).
    assert n_variants >= 0.8 * sum(len(r["soft_constraints"]) for r in rows)


def test_splits_are_disjoint_and_deterministic(suite_rows):
    keys = {s: {align_key(r["prompt"], r["constraints"], r["soft_constraints"]) for r in suite_rows[s]}
            for s in ("align_train", "align_eval")}
    assert keys["align_train"].isdisjoint(keys["align_eval"])
    assert all(split_of(k, "rlsys-align-v1") == "eval" for k in keys["align_eval"])
    again, _ = align_rows(10, 7, "train")
    assert again == suite_rows["align_train"][:10]


def test_soft_sentences_stay_clear_of_digits_and_the_keyword_pools():
    pools = set(INCLUDE_POOL) | set(EXCLUDE_POOL)
    for kind, variants in SOFT_TYPES.items():
        for name, v in variants.items():
            for s in v.sentences:
                assert not re.search(r"\d", s), (kind, name)
                assert pools.isdisjoint(w.lower() for w in re.findall(r"[A-Za-z]+", s)), (kind, name, s)
            # A sibling variant's sentence never realises this one.
            for other, w in variants.items():
                if other != name:
                    assert set(v.sentences).isdisjoint(w.sentences)


def test_judge_prompts_name_every_soft_instruction(suite_rows):
    r = suite_rows["align_eval"][0]
    prompt = soft_check_prompt(r["prompt"], r["response"], r["soft_constraints"])
    for tag, entry in zip(soft_tags(r["soft_constraints"]), r["soft_constraints"]):
        assert f"- {tag}: {entry['rubric']}" in prompt

"""IF and format rows: constraints sampled by the reward module, responses that really pass them."""

from __future__ import annotations

import json
import random
from collections import Counter

from rewards.format import FORMAT_CHECKERS, think_format_ok
from rewards.ifeval import CONSTRAINTS, check_constraints
from rewards.ifeval.content import EXCLUDE_POOL
from rlsys.data.tasks import ifeval_tasks
from rlsys.data.tasks.ifeval_tasks import draft, ifeval_key, ifeval_rows, respond
from rlsys.data.tasks.math_tasks import split_of


def test_sft_responses_pass_all_their_constraints(suite_rows: dict[str, list[dict]]) -> None:
    rows = suite_rows["ifeval_train"] + suite_rows["ifeval_eval"]
    assert len(rows) == 250
    for r in rows:
        assert r["task"] == "ifeval" and r["data_source"] == "rlsys/ifeval"
        assert 1 <= len(r["constraints"]) <= 4
        assert all(check_constraints(r["response"], r["constraints"], r["prompt"])), r
        # The prompt carries each constraint's own instruction text.
        for c in r["constraints"]:
            assert CONSTRAINTS[c["type"]].describe(c["params"]) in r["prompt"]


def test_many_constraint_types_are_covered_and_few_rows_dropped() -> None:
    rows, dropped = ifeval_rows(600, seed=11, split="train")
    types = Counter(c["type"] for r in rows for c in r["constraints"])
    assert set(types) == {name for name, c in CONSTRAINTS.items() if c.sampled}
    assert dropped < 0.05 * len(rows)
    assert Counter(len(r["constraints"]) for r in rows)[4] > 0


def test_if_splits_disjoint_and_deterministic() -> None:
    train, _ = ifeval_rows(150, seed=3, split="train")
    held_out, _ = ifeval_rows(60, seed=3, split="eval")
    train_keys = {ifeval_key(r["prompt"], r["constraints"]) for r in train}
    assert train_keys.isdisjoint(ifeval_key(r["prompt"], r["constraints"]) for r in held_out)
    assert all(split_of(k, ifeval_tasks.IF_SALT) == "train" for k in train_keys)
    assert ifeval_rows(40, seed=3, split="train") == ifeval_rows(40, seed=3, split="train")
    assert ifeval_rows(40, seed=3, split="train") != ifeval_rows(40, seed=4, split="train")


def test_sentence_pools_never_use_words_a_constraint_may_forbid() -> None:
    texts = [s for _, pool in ifeval_tasks.PROCEDURES.values() for s in pool]
    texts += list(ifeval_tasks._EXTRA_SENTENCES) + list(ifeval_tasks._KEYWORD_SENTENCES)
    texts += ifeval_tasks.number_facts(24, False) + ifeval_tasks.number_facts(37, True)
    words = {w.strip(".,").lower() for t in texts for w in t.split()}
    assert words.isdisjoint(EXCLUDE_POOL)
    assert not any("," in t for t in texts)
    assert not any(ch.isdigit() for t in ifeval_tasks.number_facts(37, True) for ch in t)


def test_respond_builds_layouts_that_pass() -> None:
    rng = random.Random(0)
    built = 0
    for _ in range(200):
        d = draft(rng, 3)
        if respond(d, rng):
            built += 1
            assert all(check_constraints(d.response, d.constraints, d.prompt))
            assert d.pool[: d.size]
    assert built > 190


def test_format_rows(suite_rows: dict[str, list[dict]]) -> None:
    rows = suite_rows["format_train"] + suite_rows["format_eval"]
    assert Counter(r["format"] for r in rows) == Counter(
        {"json": 13, "markdown": 13, "code": 13, "think": 13}
    )
    for r in rows:
        assert r["task"] == "format" and r["data_source"] == "rlsys/format"
        if r["format"] == "think":
            assert think_format_ok(r["prompt"], r["response"], "think")
            assert "\\boxed{" in r["response"].split("</think>")[1]
        else:
            assert FORMAT_CHECKERS[r["format"]](r["response"]), r
        if r["format"] == "json":
            assert set(json.loads(r["response"])) == {"question", "answer"}

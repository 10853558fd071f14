"""Suite build: files, manifest, determinism, reuse, parquet, corpus hygiene, tokenizer texts."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pytest
from datahelpers import SMALL, read_jsonl

from rlsys.data.loading import HINT_PREFIX, load_rows
from rlsys.data.tasks.corpus import pretrain_rows
from rlsys.data.tasks.math_tasks import math_rows, split_of
from rlsys.data.tasks.suite import GENERATOR_VERSION, MANIFEST, SuiteSpec, build_task_suite, corpus_texts

TINY = SuiteSpec(
    seed=3,
    n_train_per_tier=20,
    n_eval_per_tier=10,
    n_if_train=20,
    n_if_eval=8,
    n_align_train=10,
    n_align_eval=5,
    n_pref_train=20,
    n_pref_eval=8,
    n_pretrain_docs=40,
    n_format_train=8,
    n_format_eval=4,
)
NAMES = {
    "math_train",
    "math_eval",
    "math_chain_train",
    "math_chain_eval",
    "ifeval_train",
    "ifeval_eval",
    "align_train",
    "align_eval",
    "format_train",
    "format_eval",
    "sft_train",
    "pref_train",
    "pref_eval",
    "pretrain",
}


def test_files_and_manifest(small_suite: dict[str, str], suite_rows: dict[str, list[dict]]) -> None:
    assert set(small_suite) == NAMES
    out = Path(small_suite["math_train"]).parent
    manifest = json.loads((out / MANIFEST).read_text())
    assert (
        manifest["spec"] == dataclasses.asdict(SMALL) and manifest["generator_version"] == GENERATOR_VERSION
    )
    assert manifest["files"] == {n: Path(p).name for n, p in small_suite.items()}
    assert manifest["counts"] == {n: len(r) for n, r in suite_rows.items()}
    assert manifest["counts"]["math_train"] == 600 and manifest["counts"]["pretrain"] == 600
    assert manifest["counts"]["sft_train"] == 600 + 200 + 60 + 40
    assert manifest["counts"]["align_train"] == 60 and manifest["counts"]["align_eval"] == 20


def test_every_file_loads_with_its_schema(small_suite: dict[str, str]) -> None:
    kinds = {
        "math_train": "rl",
        "math_eval": "rl",
        "math_chain_train": "rl",
        "math_chain_eval": "rl",
        "ifeval_train": "ifeval",
        "ifeval_eval": "ifeval",
        "align_train": "ifeval",
        "align_eval": "ifeval",
        "format_train": "rl",
        "format_eval": "rl",
        "sft_train": "sft",
        "pref_train": "preference",
        "pref_eval": "preference",
        "pretrain": "pretrain",
    }
    for name, kind in kinds.items():
        rows, stats = load_rows([small_suite[name]], kind)
        assert stats["skipped"] == 0 and len(rows) == stats["rows"] > 0


def test_sft_rows(suite_rows: dict[str, list[dict]]) -> None:
    rows = suite_rows["sft_train"]
    assert {r["task"] for r in rows} == {"math", "ifeval", "align", "format"}
    math = [r for r in rows if r["task"] == "math"]
    # Hints travel with the rows, unapplied: the SFT stage puts them in (data.sft_hint_share).
    assert all(len(r["hints"]) == 5 and HINT_PREFIX not in r["prompt"] for r in math)
    assert all(r["response"].endswith("}.") for r in math)
    # SFT math problems are train-split problems.
    keys = {r["key"] for r in math_rows(SMALL.n_train_per_tier, "train", SMALL.seed, stream="sft")}
    assert all(split_of(k) == "train" for k in keys)


def test_same_seed_same_bytes_and_reuse(tmp_path: Path) -> None:
    a = build_task_suite(str(tmp_path / "a"), TINY)
    b = build_task_suite(str(tmp_path / "b"), TINY)
    for name in a:
        assert Path(a[name]).read_bytes() == Path(b[name]).read_bytes(), name
    hash_a = json.loads((tmp_path / "a" / MANIFEST).read_text())["content_hash"]
    assert hash_a == json.loads((tmp_path / "b" / MANIFEST).read_text())["content_hash"]
    # A matching manifest means nothing is rewritten.
    stamp = os.stat(a["pretrain"]).st_mtime_ns
    assert build_task_suite(str(tmp_path / "a"), TINY) == a
    assert os.stat(a["pretrain"]).st_mtime_ns == stamp
    # Another seed gives other content; a changed spec rebuilds in place.
    c = build_task_suite(str(tmp_path / "c"), dataclasses.replace(TINY, seed=4))
    assert json.loads((tmp_path / "c" / MANIFEST).read_text())["content_hash"] != hash_a
    assert Path(c["math_train"]).read_bytes() != Path(a["math_train"]).read_bytes()
    build_task_suite(str(tmp_path / "a"), dataclasses.replace(TINY, n_pretrain_docs=41))
    assert len(read_jsonl(a["pretrain"])) == 41


def test_parquet_suite_holds_the_same_rows(tmp_path: Path) -> None:
    spec = dataclasses.replace(TINY, format="parquet")
    pq_files = build_task_suite(str(tmp_path / "pq"), spec)
    js_files = build_task_suite(str(tmp_path / "js"), TINY)
    assert all(p.endswith(".parquet") for p in pq_files.values())
    for name, kind in (("ifeval_train", "ifeval"), ("math_eval", "rl")):
        pq_rows, _ = load_rows([pq_files[name]], kind)
        js_rows, _ = load_rows([js_files[name]], kind)
        assert pq_rows == js_rows
    hashes = {d: json.loads((tmp_path / d / MANIFEST).read_text())["content_hash"] for d in ("pq", "js")}
    assert hashes["pq"] == hashes["js"]


def test_spec_validation_and_from_config() -> None:
    with pytest.raises(ValueError, match="format"):
        SuiteSpec(format="csv")
    with pytest.raises(ValueError, match="n_if_train"):
        SuiteSpec(n_if_train=-1)
    spec = SuiteSpec.from_config({"seed": 9, "n_train_per_tier": 5})
    assert spec.seed == 9 and spec.n_train_per_tier == 5 and spec.n_if_eval == SuiteSpec().n_if_eval


def test_pretrain_corpus_never_contains_held_out_problems(suite_rows: dict[str, list[dict]]) -> None:
    docs = [d["text"] for d in suite_rows["pretrain"]]
    corpus = "\n".join(docs)
    held_out = suite_rows["math_eval"] + math_rows(300, "eval", SMALL.seed, stream="extra")
    for r in held_out:
        assert r["prompt"] not in corpus, r["prompt"]
    for r in suite_rows["ifeval_eval"]:
        assert r["prompt"] not in corpus
    _, keys = pretrain_rows(600, SMALL.seed, suite_rows["ifeval_train"], suite_rows["format_train"])
    assert keys and all(split_of(k) == "train" for k in keys)
    assert keys.isdisjoint(r["key"] for r in held_out)
    kinds = {d.split(":", 1)[0].split(" ", 1)[0] for d in docs}
    assert {"Question", "Problem", "Q", "Request", "The", "Adding"} <= kinds


def test_corpus_texts_cover_everything_but_held_out(small_suite: dict[str, str]) -> None:
    out = str(Path(small_suite["math_train"]).parent)
    texts = list(corpus_texts(out_dir=out))
    blob = "\n".join(texts)
    assert "<think>" in blob and "Hint:" in blob and "assistant" in blob
    math_train = read_jsonl(small_suite["math_train"])
    assert math_train[0]["prompt"] in texts and math_train[0]["hints"][0] in texts
    eval_prompts = {r["prompt"] for r in read_jsonl(small_suite["math_eval"])}
    assert eval_prompts.isdisjoint(texts)
    in_memory = list(corpus_texts(TINY))
    assert len(in_memory) > 100 and in_memory[:2] == texts[:2]


def test_changed_generator_code_builds_a_new_suite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The cache key holds the generator's code hash, so stale data is never reused after an edit."""
    from rlsys.data import embedded

    spec = dataclasses.asdict(TINY)
    first = Path(embedded.ensure_task_suite(str(tmp_path), TINY)["math_train"]).parent
    assert Path(embedded.ensure_task_suite(str(tmp_path), TINY)["math_train"]).parent == first
    assert embedded.suite_identity(TINY) == spec | {"generator": embedded.generator_fingerprint()}
    monkeypatch.setattr(embedded, "generator_fingerprint", lambda: "edited-generator")
    second = Path(embedded.ensure_task_suite(str(tmp_path), TINY)["math_train"]).parent
    assert second != first and second.parent == first.parent


def test_generator_hash_covers_the_if_checkers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The suite's IF responses are verified by the checkers in content.py / layout.py, so an edit there
    changes the suite's key; the judge-only recover.py does not."""
    from rlsys.data import embedded

    names = {p.name for p in embedded.generator_sources() if p.parent.name == "ifeval"}
    assert {"__init__.py", "_base.py", "content.py", "layout.py"} <= names
    assert "recover.py" not in names
    before = embedded.generator_fingerprint()
    edited = tmp_path / "layout.py"
    edited.write_text(next(p for p in embedded.generator_sources() if p.name == "layout.py").read_text() + "\n# edit\n")
    sources = [edited if p.name == "layout.py" else p for p in embedded.generator_sources()]
    monkeypatch.setattr(embedded, "generator_sources", lambda: sources)
    assert embedded.generator_fingerprint() != before

"""Judge rows for IF pairs: the request's constraints checked on both responses (rlsys/jobs/judge.py)."""

from __future__ import annotations

import pytest

from rlsys.jobs.judge import constraint_tag, if_rationale, judge_rows

REQUEST = ('Tell me about rain. Make sure your response mentions "melody". Write your whole response in capital '
           'letters only; do not use any lowercase letter. Use the word "garden" at least 2 times.')
GOOD = "THE MELODY OF RAIN FALLS ON THE GARDEN AND THE GARDEN."
MISSES_KEYWORD = "RAIN FALLS ON THE GARDEN AND THE GARDEN."


def test_constraint_tags_keep_short_parameters_only():
    assert constraint_tag({"type": "keyword_frequency", "params": {"keyword": "garden", "n": 2}}) == \
        "keyword frequency garden 2"
    assert constraint_tag({"type": "keyword_include", "params": {"keywords": ["melody", "orbit"]}}) == \
        "keyword include melody orbit"
    # A phrase the response must end with stays in the request.
    assert constraint_tag({"type": "ends_with", "params": {"phrase": "Let me know if you have more questions."}}) == \
        "ends with"


def test_if_reasoning_checks_each_constraint_on_both_responses_in_request_order():
    assert if_rationale(REQUEST, MISSES_KEYWORD, GOOD) == (
        "keyword include melody: A no, B ok.\n"
        "all uppercase: A ok, B ok.\n"
        "keyword frequency garden 2: A ok, B ok.")
    assert if_rationale(REQUEST, MISSES_KEYWORD, GOOD, "response") == (
        "A: keyword include melody no, all uppercase ok, keyword frequency garden 2 ok.\n"
        "B: keyword include melody ok, all uppercase ok, keyword frequency garden 2 ok.")
    assert if_rationale("What is 2 + 2?", "4", "5") is None
    with pytest.raises(ValueError, match="layout"):
        if_rationale(REQUEST, GOOD, GOOD, "diagonal")


def test_if_pairs_reason_with_constraint_checks_only_when_asked():
    pairs = [{"id": "i", "data_source": "rlsys/ifeval", "prompt": REQUEST, "chosen": GOOD, "rejected": MISSES_KEYWORD},
             {"id": "m", "data_source": "rlsys/math", "prompt": "Find 2 + 3.",
              "chosen": "2 + 3 = 5.\nThe answer is \\boxed{5}.", "rejected": "2 + 3 = 6.\nThe answer is \\boxed{6}."}]
    a_first, b_first, math_a, _ = judge_rows(pairs, seed=0, think=True, both_orders=True, reasoning="recheck",
                                             if_checks="constraint")
    assert a_first["response"] == ("<think>\nkeyword include melody: A ok, B no.\nall uppercase: A ok, B ok.\n"
                                   "keyword frequency garden 2: A ok, B ok.\n</think>\nBetter: A")
    assert b_first["response"].startswith("<think>\nkeyword include melody: A no, B ok.") and b_first["label"] == "B"
    assert math_a["response"] == "<think>\nA: 2 + 3 = 5 ok.\nB: 2 + 3 = 6 no.\n</think>\nBetter: A"
    plain = judge_rows(pairs[:1], seed=0, think=True, both_orders=True, reasoning="recheck")
    assert plain[0]["response"].startswith("<think>\nA: no equations.")


def test_more_pairs_extend_the_suites_own_rows_from_its_generator(tmp_path):
    from omegaconf import OmegaConf

    from rlsys.config.schema import Config, StageConfig
    from rlsys.config.validate import ConfigError
    from rlsys.data.tasks.preference import preference_rows
    from rlsys.jobs.judge import more_pairs
    from rlsys.stages.context import StageContext

    cfg = OmegaConf.structured(Config)
    stage = OmegaConf.merge(OmegaConf.structured(StageConfig), {"kind": "judge_data", "sample": {"eval_if_pairs": 30}})
    ctx = StageContext(cfg, "judge_data", stage, "", tmp_path)
    suite_eval = preference_rows(50, cfg.data.suite.seed, "eval")
    extra = more_pairs(ctx, suite_eval, "eval", 30, "sample.eval_if_pairs", "rlsys/ifeval")
    assert len(extra) == 30 and all(r["data_source"] == "rlsys/ifeval" for r in extra)
    assert not {r["id"] for r in extra} & {r["id"] for r in suite_eval}
    # Train pairs of every kind, continuing the suite's own draw.
    suite_train = preference_rows(40, cfg.data.suite.seed, "train")
    assert more_pairs(ctx, suite_train, "train", 60, "sample.train_pairs") == \
        preference_rows(100, cfg.data.suite.seed, "train")[40:]
    assert more_pairs(ctx, suite_train, "train", 0, "sample.train_pairs") == []
    with pytest.raises(ConfigError, match="stages.judge_data.sample.eval_if_pairs"):
        more_pairs(ctx, preference_rows(50, cfg.data.suite.seed + 1, "eval"), "eval", 5, "sample.eval_if_pairs")


def test_judge_pairs_extend_the_suite_then_select_by_where(tmp_path, monkeypatch):
    from omegaconf import OmegaConf

    from rlsys.config.schema import Config, StageConfig
    from rlsys.data.tasks.preference import preference_rows
    from rlsys.jobs.judge import judge_pairs
    from rlsys.stages.context import StageContext

    cfg = OmegaConf.structured(Config)
    seed = cfg.data.suite.seed
    suite = {"pref_train": preference_rows(40, seed, "train"), "pref_eval": preference_rows(20, seed, "eval")}
    def suite_rows(ctx, kind, split=None, select=True):
        # As the real one: the stage's `where` applies unless the caller asks for every row.
        rows = suite[split or ctx.stage.data]
        return [r for r in rows if r["data_source"] in ctx.stage.where.data_source] if select else list(rows)

    monkeypatch.setattr("rlsys.jobs.judge.stage_rows", suite_rows)
    stage = OmegaConf.merge(OmegaConf.structured(StageConfig), {
        "kind": "judge_data", "data": "pref_train", "where": {"data_source": ["rlsys/ifeval"]},
        "sample": {"train_pairs": 400, "eval_if_pairs": 12}})
    train, held_out = judge_pairs(StageContext(cfg, "judge_data", stage, "", tmp_path))
    every = preference_rows(400, seed, "train")
    assert train == [r for r in every if r["data_source"] == "rlsys/ifeval"]
    assert len(train) > 50 and len(held_out) >= 12
    assert all(r["data_source"] == "rlsys/ifeval" for r in held_out)
    assert held_out[: len(held_out) - 12] == [r for r in suite["pref_eval"] if r["data_source"] == "rlsys/ifeval"]


def test_an_unknown_if_layout_fails_naming_the_key(tmp_path):
    from omegaconf import OmegaConf

    from rlsys.config.schema import Config, StageConfig
    from rlsys.config.validate import ConfigError, validate_config
    from rlsys.jobs.judge import run_judge_data
    from rlsys.stages.context import StageContext

    # Checked at start-up, before anything is built.
    bad = OmegaConf.merge(OmegaConf.structured(Config), {"stages": {"judge_data": {
        "kind": "judge_data", "sample": {"judge_if_checks": True, "judge_if_layout": "diagonal"}}}})
    with pytest.raises(ConfigError, match=r"stages.judge_data.sample.judge_if_layout.*'diagonal'"):
        validate_config(bad)
    both = OmegaConf.merge(OmegaConf.structured(StageConfig), {"kind": "judge_data", "input": "sft",
                                                                "sample": {"judge_solve": True, "judge_pointwise": True}})
    with pytest.raises(ConfigError, match=r"stages.judge_data.sample.judge_solve.*pointwise"):
        run_judge_data(StageContext(OmegaConf.structured(Config), "judge_data", both, "", tmp_path))


def test_check_rows_mark_each_response_of_an_if_pair_and_skip_others():
    from rlsys.jobs.judge import check_rows

    pairs = [{"id": "i", "data_source": "rlsys/ifeval", "prompt": REQUEST, "chosen": GOOD, "rejected": MISSES_KEYWORD},
             {"id": "m", "data_source": "rlsys/math", "prompt": "Find 2 + 3.", "chosen": "5", "rejected": "6"}]
    rows, skipped = check_rows(pairs)
    assert skipped == 1 and [r["role"] for r in rows] == ["chosen", "rejected"]
    chosen, rejected = rows
    assert chosen["marks"] == ["ok", "ok", "ok"] and rejected["marks"] == ["no", "ok", "ok"]
    assert rejected["response"] == "keyword include melody: no.\nall uppercase: ok.\nkeyword frequency garden 2: ok."
    assert MISSES_KEYWORD in rejected["prompt"] and GOOD not in rejected["prompt"]
    assert rejected["pair_id"] == chosen["pair_id"] == "i"


def test_check_accuracy_by_hand():
    """Two pairs. Pair p: both responses marked right, the rejected one fails -> picks the chosen (1).
    Pair q: the judge fails both (chosen wrongly) -> tie (0.5). Marks right: 4 of 4 in p, 1 of 2 in q;
    "ok" marks in the targets: 3 in p, 1 in q."""
    from rlsys.eval.judge import check_accuracy

    rows = [{"pair_id": "p", "role": "chosen", "tags": ["t1", "t2"], "marks": ["ok", "ok"]},
            {"pair_id": "p", "role": "rejected", "tags": ["t1", "t2"], "marks": ["ok", "no"]},
            {"pair_id": "q", "role": "chosen", "tags": ["t1"], "marks": ["ok"]},
            {"pair_id": "q", "role": "rejected", "tags": ["t1"], "marks": ["no"]}]
    texts = ["t1: ok.\nt2: ok.", "t1: ok.\nt2: no.", "t1: no.", "t1: no."]
    assert check_accuracy(rows, texts) == {"eval/judge_pair_acc": 0.75, "eval/judge_decided": 0.5,
                                           "eval/judge_mark_acc": 5 / 6, "eval/judge_mark_prior": 4 / 6}


def test_voted_check_accuracy_breaks_greedy_ties_by_mean_fail_counts():
    """Pair q of the greedy test above, with two samples per response: chosen fails 0 then 1 times (mean
    0.5), rejected 1 and 1 (mean 1.0) -> the vote picks the chosen where greedy tied. Pair p: both samples
    of both responses fail 1 mark (means equal) -> 0.5. Marks right over single samples: p chosen 1+1 of 4,
    p rejected 2+2 of 4, q chosen 1 of 2, q rejected 2 of 2 -> 9 of 12."""
    from rlsys.eval.judge import vote_points, voted_check_accuracy

    rows = [{"id": "a", "pair_id": "p", "role": "chosen", "tags": ["t1", "t2"], "marks": ["ok", "ok"]},
            {"id": "b", "pair_id": "p", "role": "rejected", "tags": ["t1", "t2"], "marks": ["ok", "no"]},
            {"id": "c", "pair_id": "q", "role": "chosen", "tags": ["t1"], "marks": ["ok"]},
            {"id": "d", "pair_id": "q", "role": "rejected", "tags": ["t1"], "marks": ["no"]}]
    samples = [["t1: ok.\nt2: no.", "t1: no.\nt2: ok."], ["t1: ok.\nt2: no.", "t1: ok.\nt2: no."],
               ["t1: ok.", "t1: no."], ["t1: no.", "t1: no."]]
    assert vote_points(rows, samples) == {"p": 0.5, "q": 1.0}
    assert voted_check_accuracy(rows, samples) == {"eval/judge_vote_pair_acc": 0.75, "eval/judge_vote_decided": 0.5,
                                                   "eval/judge_vote_mark_acc": 9 / 12}
    from rlsys.eval.judge import pair_mark_accuracy

    assert pair_mark_accuracy(rows, samples) == {"p": 6 / 8, "q": 3 / 4}
    with pytest.raises(ValueError, match="'d' got no sampled answer"):
        vote_points(rows, samples[:3] + [[]])


def test_table_notes_name_the_pointwise_scores_not_the_pairwise_ones():
    from rlsys.stages.tables import stage_notes

    pointwise = {"eval": {"eval/judge_pair_acc": 0.79, "eval/judge_decided": 0.59, "eval/judge_mark_acc": 0.82,
                          "eval/judge_mark_prior": 0.83}}
    assert stage_notes("judge_sft", pointwise) == "pointwise checks: pairs decided 0.590, marks right 0.820 (all ok: 0.830)"
    pairwise = {"eval": {"eval/judge_pair_acc": 0.5, "eval/judge_pair_consistent": 0.1, "eval/judge_parse_rate": 1.0,
                         "eval/judge_picked_a": 0.7}}
    assert stage_notes("judge_sft", pairwise) == "judge consistent 0.100, parsed 1.000, picked A 0.700"

"""Rejection-sampling fine-tuning between RL rounds (Keye-VL 1.5 §4.4.3): SFT -> RL -> RFT-SFT -> RFT-RL.

Two data stages:
- `rft_sample`: the RL policy (the stage's input) answers each cold-start SFT prompt `sample.num_samples`
  times; the reward workers score the samples and the stored answer alike; a stored answer is replaced
  by the best sample only when that sample ranks strictly higher. Writes the whole updated SFT set.
- `pass_filter`: the input model answers each RL problem `sample.num_samples` times; problems whose pass
  rate lies in the keep range (Keye: (0, 1)) are written out for the next RL round.

Gold answers for the suite's SFT rows: the SFT split carries no `answer` / `constraints` / `format`.
IF and format rows are joined back to `ifeval_train` / `format_train` by id (`sft-<id>`); math SFT rows
come from their own problem stream, so their gold answer is the boxed answer of the stored worked
solution (the generator computes it, so it is correct by construction). User SFT rows may carry these
fields themselves. A row with no gold is scored under data source `rft/unverified`: point a reward
model entry at that source (the verifiers cannot score it).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rlsys.algorithms.filtering import pass_rate_in_range
from rlsys.stages.builders import build_reward_pool
from rlsys.stages.context import StageContext
from rlsys.stages.io import DATA_FILE, pick_rows, stage_rows, write_jsonl
from rlsys.stages.sampling import reward_sample, sample_and_judge, sample_rows, sampling_prompts, score_all

log = logging.getLogger(__name__)

UNVERIFIED_SOURCE = "rft/unverified"
GOLD_FIELDS = ("answer", "constraints", "format")
# Suite splits whose rows hold the gold fields of the SFT rows derived from them.
GOLD_SPLITS = ("ifeval_train", "format_train", "math_train")
_EXAMPLES = 50
KEY_DECIMALS = 4

RankKey = tuple[float, float]


# ----------------------------------------------------------------------------------- pure parts
def choose_replacements(stored: Sequence[RankKey], sampled: Sequence[Sequence[RankKey | None]]) -> list[int | None]:
    """Per row, the index of the sampled answer that replaces the stored one, or None.

    A sample replaces the stored answer only when its key ranks strictly above the stored answer's key
    (keys compare as tuples: verifier score first, tie-break score second). Among samples the highest
    key wins, the first one on ties. None entries (truncated or failed samples) never win.
    """
    if len(stored) != len(sampled):
        raise ValueError(f"{len(stored)} stored answers but {len(sampled)} sample lists")
    out: list[int | None] = []
    for own, keys in zip(stored, sampled):
        best: int | None = None
        for j, key in enumerate(keys):
            if key is not None and (best is None or key > keys[best]):
                best = j
        out.append(best if best is not None and keys[best] > own else None)
    return out


def rank_keys(scores: Sequence[float], extras: Sequence[dict], weights: dict[str, float],
              tie_break: Sequence[str]) -> list[RankKey]:
    """(primary, tie-break) per sample: the tie-break entries' weighted scores are moved out of the
    combined score into the second element. Both are rounded to `KEY_DECIMALS`: float noise (the
    subtraction, a model's batch-dependent logits) must not make an answer "strictly better"."""
    keys = []
    for score, extra in zip(scores, extras):
        second = sum(weights[name] * float(extra[name]) for name in tie_break if isinstance(extra.get(name), float))
        keys.append((round(score - second, KEY_DECIMALS), round(second, KEY_DECIMALS)))
    return keys


def keep_by_pass_rate(pass_rates: Sequence[float], low: float, high: float, inclusive: bool) -> list[int]:
    """Indices of the problems whose pass rate lies in the keep range (Keye: 0 < p < 1)."""
    return [i for i, p in enumerate(pass_rates) if pass_rate_in_range(p, low, high, inclusive)]


def pass_rate_histogram(n_correct: Sequence[int], k: int) -> dict[str, int]:
    """Problems per number of correct answers out of `k` ("0/8" ... "8/8"), every bin present."""
    counts = Counter(n_correct)
    return {f"{c}/{k}": counts.get(c, 0) for c in range(k + 1)}


def has_gold(row: dict) -> bool:
    return any(row.get(f) for f in GOLD_FIELDS)


def attach_gold(rows: list[dict], index: dict[str, dict]) -> Counter:
    """Fill missing gold fields of SFT rows in place (see the module doc); returns counts by source."""
    from rewards.math import extract_answer

    counts: Counter = Counter()
    for row in rows:
        if has_gold(row):
            counts["own"] += 1
            continue
        source = index.get(str(row["id"]).removeprefix("sft-")) or index.get(row.get("prompt", ""))
        if source is not None and has_gold(source):
            row.update({f: source[f] for f in GOLD_FIELDS if source.get(f)})
            counts["joined"] += 1
        elif row.get("task") == "math" and row.get("response") and extract_answer(row["response"]):
            row["answer"] = extract_answer(row["response"])
            counts["stored_boxed"] += 1
        else:
            counts["none"] += 1
    return counts


# ----------------------------------------------------------------------------------- stages
def suite_gold_index(ctx: StageContext) -> dict[str, dict]:
    """Gold rows of the suite by id and by prompt (empty when the rows come from elsewhere)."""
    from rlsys.data.embedded import ensure_task_suite
    from rlsys.data.loading import load_rows

    if ctx.stage.data_from or ctx.cfg.data.sft_files:
        return {}
    files = ensure_task_suite(ctx.cfg.artifacts_dir, ctx.cfg.data.suite)
    index: dict[str, dict] = {}
    for split in GOLD_SPLITS:
        rows, _ = load_rows(files[split], "rl")
        for r in rows:
            index[str(r["id"])] = r
            index.setdefault(r["prompt"], r)
    return index


def _spec_weights(rewards: Any) -> dict[str, float]:
    return {spec.name: spec.weight for spec in rewards.specs}


def run_rft_sample(ctx: StageContext) -> dict[str, Any]:
    from transformers import AutoTokenizer

    from rlsys.rollout.pool import RolloutPool

    stage, k = ctx.stage, ctx.stage.sample.num_samples
    rows = stage_rows(ctx, "sft")
    gold = attach_gold(rows, suite_gold_index(ctx))
    single_turn = [i for i, r in enumerate(rows) if r.get("prompt") and r.get("response") and not r.get("messages")]
    chosen = [single_turn[i] for i in pick_rows(len(single_turn), stage.sample.max_rows, stage.seed)]
    picked = [rows[i] for i in chosen]
    tokenizer = AutoTokenizer.from_pretrained(ctx.input_model)
    prompts = sampling_prompts(ctx, tokenizer, picked)  # before anything starts: an over-long prompt fails here
    rewards = build_reward_pool(ctx)
    unknown = [n for n in stage.sample.tie_break if n not in _spec_weights(rewards)]
    if unknown:
        rewards.close()
        raise KeyError(f"config key 'stages.{ctx.name}.sample.tie_break': no reward entry named {unknown}")
    pool = RolloutPool.from_config(ctx.cfg.rollout, ctx.input_model)
    try:
        results = sample_rows(ctx, pool, tokenizer, picked, k, prompts=prompts)
        pool.shutdown()
        samples, owners = [], []
        for j, (row, res) in enumerate(zip(picked, results)):
            src = {} if has_gold(row) else {"data_source": UNVERIFIED_SOURCE}
            samples.append(reward_sample(row, row["response"], len(tokenizer(row["response"])["input_ids"]), **src))
            owners.append((j, -1))
            for s_i, s in enumerate(res.samples if res.ok else []):
                samples.append(reward_sample(row, s.text, len(s.token_ids), **src))
                owners.append((j, s_i))
        scores, extras, metrics = score_all(rewards, samples)
        keys = rank_keys(scores, extras, _spec_weights(rewards), list(stage.sample.tie_break))
    finally:
        pool.shutdown()
        rewards.close()

    stored: list[RankKey] = [(0.0, 0.0)] * len(picked)
    sampled: list[list[RankKey | None]] = [[None] * k for _ in picked]
    for (j, s_i), key in zip(owners, keys):
        if s_i < 0:
            stored[j] = key
        else:
            sample = results[j].samples[s_i]
            # A truncated, empty or word-for-word copy of the stored answer is no replacement.
            usable = sample.finish_reason != "length" and sample.text.strip() and sample.text.strip() != picked[j]["response"].strip()
            sampled[j][s_i] = key if usable else None
    choice = choose_replacements(stored, sampled)

    replaced: Counter = Counter()
    by_tie_break = 0
    examples = []
    for j, best in enumerate(choice):
        row = picked[j]
        row["rft_replaced"] = best is not None
        if best is None:
            continue
        new_text = results[j].samples[best].text
        by_tie_break += sampled[j][best][0] == stored[j][0]
        replaced[row.get("task", "generic")] += 1
        if len(examples) < _EXAMPLES:
            examples.append({"id": row["id"], "stored": row["response"], "sampled": new_text,
                             "stored_key": stored[j], "sampled_key": sampled[j][best]})
        row["response"] = new_text
    write_jsonl(Path(ctx.out_dir) / DATA_FILE, rows)
    write_jsonl(Path(ctx.out_dir) / "replacements.jsonl", examples)
    n_replaced = sum(replaced.values())
    best_primary = [max((key[0] for key in keys_ if key), default=0.0) for keys_ in sampled]
    summary = {
        "rows": len(rows),
        "sampled_rows": len(picked),
        "samples_per_row": k,
        "failed_requests": sum(not r.ok for r in results),
        "truncated_samples": sum(s.finish_reason == "length" for r in results for s in r.samples),
        "copies_of_stored": sum(s.text.strip() == row["response"].strip()
                                for row, r in zip(picked, results) for s in r.samples),
        "replaced": n_replaced,
        "replaced_share": n_replaced / max(1, len(picked)),
        "replaced_by_task": dict(replaced),
        "replaced_on_tie_break": by_tie_break,
        "stored_primary_mean": sum(key[0] for key in stored) / max(1, len(stored)),
        "best_sample_primary_mean": sum(best_primary) / max(1, len(best_primary)),
        "gold_sources": dict(gold),
        "reward_metrics": {k_: v for k_, v in metrics.items() if not k_.endswith("time_s")},
        "data_file": DATA_FILE,  # in the stage's artifact directory
    }
    log.info("rft_sample %s: replaced %d of %d sampled rows (%s)", ctx.name, n_replaced, len(picked), dict(replaced))
    return summary


def run_pass_filter(ctx: StageContext) -> dict[str, Any]:

    stage, k = ctx.stage, ctx.stage.sample.num_samples
    rows = stage_rows(ctx, "rl")
    picked = [rows[i] for i in pick_rows(len(rows), stage.sample.max_rows, stage.seed)]
    ok, _, correct = sample_and_judge(ctx, picked, k)
    n_correct = [sum(c) for c in correct]
    rates = [c / len(flags) for c, flags in zip(n_correct, correct)]
    s = stage.sample
    kept = [ok[i] for i in keep_by_pass_rate(rates, s.keep_low, s.keep_high, s.keep_inclusive)]
    rate_of = dict(zip(ok, rates))
    hist = pass_rate_histogram(n_correct, k)
    if not kept:
        # An empty problem set would only fail later, inside the next RL stage, less clearly.
        raise RuntimeError(f"no problem had a pass rate in the keep range (pass-rate histogram {hist}); widen "
                           f"stages.{ctx.name}.sample.keep_* or raise sample.max_rows / num_samples")
    out_rows = [picked[j] | {"pass_rate": rate_of[j]} for j in kept]
    write_jsonl(Path(ctx.out_dir) / DATA_FILE, out_rows)
    summary = {
        "problems": len(ok),
        "failed_requests": len(picked) - len(ok),
        "kept": len(kept),
        "kept_share": len(kept) / max(1, len(ok)),
        "pass_hist": hist,
        "mean_pass_rate": sum(rates) / max(1, len(rates)),
        "share_all_fail": hist[f"0/{k}"] / max(1, len(ok)),
        "share_all_pass": hist[f"{k}/{k}"] / max(1, len(ok)),
        "keep_range": [s.keep_low, s.keep_high, "inclusive" if s.keep_inclusive else "exclusive"],
        "data_file": DATA_FILE,  # in the stage's artifact directory
    }
    log.info("pass_filter %s: kept %d of %d problems; pass-rate histogram %s", ctx.name, len(kept), len(ok), hist)
    return summary

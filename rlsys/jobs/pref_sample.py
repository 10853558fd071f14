"""On-policy preference pairs for MPO (InternVL3.5's MPO data, MMPR, is sampled from the model itself).

`pref_sample` draws `sample.num_samples` answers per problem from its input model, scores them with the
stage's reward workers (the run's `reward.fns` when the stage names none), and for each problem with
both correct and wrong answers writes up to `sample.pairs_per_prompt` preference rows (chosen: a correct
answer, rejected: a wrong one; seeded choice; answers cut at max_tokens left out unless
`sample.drop_truncated` is false). An `mpo` stage trains on them with
`data_from: pref_sample`. The pairs are in the model's own style, unlike hand-made pairs whose
chosen side may be in a style the model was never trained on.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rlsys.config.validate import ConfigError
from rlsys.jobs.rft import pass_rate_histogram
from rlsys.stages.context import StageContext
from rlsys.stages.io import DATA_FILE, pick_rows, stage_rows, write_jsonl
from rlsys.stages.sampling import sample_and_judge

log = logging.getLogger(__name__)


def preference_pairs(
    rows: Sequence[dict],
    texts: Sequence[Sequence[str]],
    correct: Sequence[Sequence[bool]],
    pairs_per_prompt: int,
    seed: int,
) -> list[dict]:
    """Preference rows from scored samples: per row, up to `pairs_per_prompt` (correct, wrong) pairs.

    rows:    [N] problems (id, prompt, data_source; `images`, `videos` and `fps` are carried into their pairs)
    texts:   [N][k_i] finished sampled answers of each problem
    correct: [N][k_i] whether each answer was judged correct
    Distinct answers only; each chosen and each rejected answer is used at most once per problem.
    """
    if pairs_per_prompt < 1:
        raise ValueError(f"pairs_per_prompt must be >= 1, got {pairs_per_prompt}")
    out = []
    for row, row_texts, row_ok in zip(rows, texts, correct, strict=True):
        good = list(dict.fromkeys(t for t, ok in zip(row_texts, row_ok, strict=True) if ok and t.strip()))
        bad = list(dict.fromkeys(t for t, ok in zip(row_texts, row_ok, strict=True) if not ok and t.strip()))
        rng = random.Random(f"pref|{seed}|{row['id']}")
        rng.shuffle(good)
        rng.shuffle(bad)
        for n, (chosen, rejected) in enumerate(zip(good, bad)):
            if n == pairs_per_prompt:
                break
            pair = {"id": f"{row['id']}-pair{n}", "task": "preference", "data_source": row.get("data_source", ""),
                    "prompt": row["prompt"], "chosen": chosen, "rejected": rejected}
            # The loaded rows' absolute image and frame paths: the pairs file loads from any directory.
            out.append(pair | ({"images": list(row["images"])} if row.get("images") else {})
                       | ({"videos": row["videos"], "fps": row.get("fps")} if row.get("videos") else {}))
    return out


def run_pref_sample(ctx: StageContext) -> dict[str, Any]:

    stage, k = ctx.stage, ctx.stage.sample.num_samples
    if stage.sample.pairs_per_prompt < 1:
        raise ConfigError(f"config key 'stages.{ctx.name}.sample.pairs_per_prompt' = {stage.sample.pairs_per_prompt!r}: "
                          "must be >= 1")
    rows = stage_rows(ctx, "rl")
    picked = [rows[i] for i in pick_rows(len(rows), stage.sample.max_rows, stage.seed)]
    ok, samples, correct = sample_and_judge(ctx, picked, k)
    usable = [[not (stage.sample.drop_truncated and s.finish_reason == "length") for s in ss] for ss in samples]
    texts = [[s.text for s, u in zip(ss, us) if u] for ss, us in zip(samples, usable)]
    flags = [[c for c, u in zip(cs, us) if u] for cs, us in zip(correct, usable)]
    pairs = preference_pairs([picked[j] for j in ok], texts, flags, stage.sample.pairs_per_prompt, stage.seed)
    hist = pass_rate_histogram([sum(c) for c in correct], k)
    if not pairs:
        raise RuntimeError(f"no problem had both a correct and a wrong finished answer (correct-count histogram "
                           f"{hist}); raise stages.{ctx.name}.sample.max_rows / num_samples")
    write_jsonl(Path(ctx.out_dir) / DATA_FILE, pairs)
    summary = {
        "problems": len(ok),
        "failed_requests": len(picked) - len(ok),
        "truncated_samples": sum(s.finish_reason == "length" for ss in samples for s in ss),
        "pairs": len(pairs),
        "problems_with_pairs": len({p["id"].rsplit("-pair", 1)[0] for p in pairs}),
        "correct_hist": hist,
        "data_file": DATA_FILE,  # in the stage's artifact directory
    }
    log.info("pref_sample %s: %d pairs from %d problems; correct-count histogram %s", ctx.name, len(pairs), len(ok), hist)
    return summary

"""Held-out accuracy by input length: the long-context stage's before/after measurement.

Each split of `stages.<name>.long_context.eval_splits` (held-out rows with gold answers: math_eval, vl_eval,
video_eval, ...) is packed into long rows of k rows for every k of `eval_items` (rlsys/data/long_context.py;
k = 1 is the plain short question), `eval_rows` per bucket, and answered greedily by a vLLM actor whose
`max_model_len` is the stage's context. A bucket reports its accuracy (the math verifier against the target
row's gold) and its mean prompt length in tokens as the engine sees it (pictures and video items expanded):

    eval/long/<split>_k<k>          accuracy
    eval/long/<split>_k<k>_tokens   mean prompt tokens
    eval/long/<split>_k<k>_too_long rows left out because prompt + answer exceed the context (counted, not scored)

A split the model cannot read (pictures or videos on a text-only model) is skipped with a warning.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

from rlsys.data.long_context import long_eval_rows, row_kind

log = logging.getLogger(__name__)


def _one_fps(rows: list[dict]) -> list[dict]:
    """Video rows at the split's most common fps (one long row's videos share one fps)."""
    if not rows or not rows[0].get("videos"):
        return rows
    fps = Counter(r.get("fps") for r in rows).most_common(1)[0][0]
    return [r for r in rows if r.get("fps") == fps]


class PromptTokens:
    """A row's prompt length as the engine sees it: chat-templated text, each image and video item expanded (the
    stages' prompt-length check, rlsys/data/prompt_length.py, with the same counters)."""

    def __init__(self, model_dir: str, cfg: Any) -> None:
        from transformers import AutoTokenizer

        from rlsys.learner.worker import is_vision_language
        from rlsys.stages.sampling import image_token_counter, video_token_counter

        self.system = cfg.data.system_prompt
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        vl = is_vision_language(model_dir)
        self.images = image_token_counter(model_dir, "long-context eval") if vl else None
        self.videos = video_token_counter(cfg, model_dir, "long-context eval") if vl else None

    def __call__(self, row: dict) -> int:
        from rlsys.data.prompt_length import prompt_size

        return prompt_size(self.tokenizer, row, self.system, image_tokens=self.images, video_tokens=self.videos)


def long_eval_buckets(cfg: Any, lc: Any, model_dir: str, seed: int) -> dict[str, list[dict]]:
    """Bucket name (`<split>_k<k>`) -> its held-out long rows, for the splits `model_dir` can read."""
    from rlsys.data.loading import load_rows
    from rlsys.learner.worker import is_vision_language
    from rlsys.stages.io import suite_files

    vl = is_vision_language(model_dir)
    buckets: dict[str, list[dict]] = {}
    for split in lc.eval_splits:
        rows, _ = load_rows([suite_files(cfg, [split])[split]], "rl")
        rows = _one_fps([r for r in rows if r.get("answer") is not None])
        if not rows:
            log.warning("long-context eval: split %s has no rows with an answer; skipped", split)
            continue
        if not vl and row_kind(rows[0]) != "text":
            log.warning("long-context eval: %s has %s rows and %s is text-only; skipped", split,
                        row_kind(rows[0]), model_dir)
            continue
        for k in lc.eval_items:
            if int(k) <= len(rows):
                buckets[f"{split}_k{int(k)}"] = long_eval_rows(rows, int(k), int(lc.eval_rows), seed, split)
    return buckets


def long_context_eval(cfg: Any, lc: Any, model_dir: str, context: int, seed: int,
                      short: bool = False) -> dict[str, float]:
    """`eval/long/...` metrics of `model_dir` (served with max_model_len = `context`) on the held-out buckets;
    with `short`, also the usual held-out evaluation (`evaluate_model`'s metrics), answered by the same engine."""
    from omegaconf import OmegaConf

    from rlsys.eval.scoring import eval_prompts, greedy_completions, held_out_rows, held_out_scores
    from rlsys.eval.visual import visual_hits

    buckets = long_eval_buckets(cfg, lc, model_dir, seed)
    measure = PromptTokens(model_dir, cfg)
    limit = context - int(cfg.eval.max_tokens)
    asked: list[tuple[str, dict, int]] = []
    out: dict[str, float] = {}
    for name, rows in buckets.items():
        sizes = [measure(r) for r in rows]
        kept = [(r, s) for r, s in zip(rows, sizes) if s <= limit]
        out[f"eval/long/{name}_tokens"] = sum(sizes) / len(sizes)
        out[f"eval/long/{name}_too_long"] = float(len(rows) - len(kept))
        asked += [(name, r, s) for r, s in kept]
    short_rows = held_out_rows(cfg, model_dir) if short else None
    prompts = [r for _, r, _ in asked] + (eval_prompts(short_rows) if short_rows is not None else [])
    served = OmegaConf.merge(cfg, {"rollout": {"max_model_len": int(context)}})
    # One engine start per model for both evaluations (each start costs ~15 s on CPU).
    texts = greedy_completions(served, model_dir, prompts) if prompts else []
    if short_rows is not None:
        out |= held_out_scores(model_dir, short_rows, texts[len(asked):])
    texts = texts[: len(asked)]
    hits = visual_hits([r for _, r, _ in asked], texts) if asked else []
    for name in buckets:
        got = [h for (n, _, _), h in zip(asked, hits) if n == name]
        out[f"eval/long/{name}"] = sum(got) / len(got) if got else float("nan")
    log.info("long-context eval of %s: %s", model_dir,
             {k: round(v, 3) for k, v in out.items() if not k.endswith(("_tokens", "_too_long"))})
    return out


def long_table(before: dict[str, float], after: dict[str, float]) -> str:
    """A markdown table of every bucket: mean prompt tokens, accuracy before and after."""
    names = sorted({k[len("eval/long/"):] for k in after
                    if k.startswith("eval/long/") and not k.endswith(("_tokens", "_too_long"))},
                   key=lambda n: (n.rsplit("_k", 1)[0], int(n.rsplit("_k", 1)[1])))
    lines = ["| split | items | prompt tokens | before | after | left out (too long) |", "|---|---|---|---|---|---|"]
    for name in names:
        split, k = name.rsplit("_k", 1)
        b = before.get(f"eval/long/{name}", float("nan"))
        lines.append(f"| {split} | {k} | {after.get(f'eval/long/{name}_tokens', float('nan')):.0f} | {b:.3f} | "
                     f"{after[f'eval/long/{name}']:.3f} | {after.get(f'eval/long/{name}_too_long', 0):.0f} |")
    return "\n".join(lines) + "\n"

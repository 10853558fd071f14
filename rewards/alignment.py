"""Alignment reward (Keye-VL 1.5 §4.5): hard instructions checked by rule, soft ones by a generative judge.

A row names its hard instructions in `constraints` (rewards/ifeval types) and its soft ones in
`soft_constraints`: each `{"instruction": str, "rubric": str (optional), "type": str (optional)}`. A soft
instruction (tone, audience, persona, style) has no rule; the judge reads the request, the response and
a rubric line per soft instruction, and writes one `name: ok.` / `name: no.` line each — the same line
format as the trained pointwise checker (rewards/pairwise_judge.py), so `model_path: stage:<judge>`
serves a checker trained on soft checks (`judge_data` with `sample.soft_checks`), and `base_url` any
OpenAI-compatible model.

    score = (w_h * hard_passed + w_s * soft_met) / (w_h * n_hard + w_s * n_soft)

A soft mark the judge leaves out or garbles counts as not met (no free credit) and is counted in
`soft_unread`. Extras: `hard_pass`, `soft_pass` (shares; 1.0 where a row has none of that kind),
`all_pass`, `soft_unread`, `soft/<name>` (0/1 per soft mark the judge wrote), and the judge's `judge_error` / `fallback` / `parse_error`.
"""

from __future__ import annotations

from rewards._common import answer_part
from rewards.ifeval import check_constraints
from rewards.pairwise_judge import PairwiseJudgeReward, check_target, parse_marks

SOFT_TEMPLATE = (
    "Request:\n{query}\n\nResponse:\n{response}\n\n"
    "Judge whether the response meets each of these instructions:\n{rubric}\n"
    "Write one line per instruction, in this order: the name, then ok or no (e.g. `{example}: ok.`)."
)


def soft_tags(soft: list[dict]) -> list[str]:
    """The name each soft instruction gets in the judge's lines: its type (plus variant), else `soft N`."""
    tags = []
    for i, entry in enumerate(soft):
        kind, variant = entry.get("type"), (entry.get("params") or {}).get("variant")
        tag = f"{kind} {variant}" if kind and variant and variant != "any" else kind or f"soft {i + 1}"
        tags.append(tag.replace("_", " "))
    if len(set(tags)) != len(tags):
        raise ValueError(f"soft instructions need distinct names, got {tags}")
    return tags


def check_soft(soft: object, where: str = "soft_constraints") -> list[dict]:
    """`soft` as a list of entries with an instruction; a ValueError naming `where` otherwise."""
    if not isinstance(soft, list) or not all(
        isinstance(e, dict) and isinstance(e.get("instruction"), str) and e["instruction"].strip() for e in soft
    ):
        raise ValueError(f"{where} must be a list of {{'instruction': str, 'rubric'?: str, 'type'?: str}}, "
                         f"got {soft!r:.200}")
    return soft


def soft_check_prompt(query: str, response: str, soft: list[dict]) -> str:
    """The judge's user message: the request, the response and a rubric line per soft instruction."""
    tags = soft_tags(soft)
    rubric = "\n".join(f"- {tag}: {e.get('rubric') or e['instruction']}" for tag, e in zip(tags, soft))
    return SOFT_TEMPLATE.format(query=query.strip(), response=response.strip(), rubric=rubric, example=tags[0])


def soft_check_target(soft: list[dict], marks: list[str]) -> str:
    """The judge's answer: a `name: ok.` / `name: no.` line per soft instruction."""
    return check_target(soft_tags(soft), marks)


class AlignmentReward(PairwiseJudgeReward):
    """Hard + soft instruction reward; `model_path` (a judge checkpoint served in the reward worker) or
    `base_url` + `model` (any OpenAI-compatible endpoint). One judge request per sample with soft
    instructions; none for a row without them. See the module docstring for the score."""

    def __init__(self, model_path: str | None = None, base_url: str | None = None, model: str | None = None,
                 hard_weight: float = 1.0, soft_weight: float = 1.0, soft_field: str = "soft_constraints",
                 max_tokens: int = 96, max_concurrency: int = 8, timeout_s: float = 120.0, max_retries: int = 2,
                 fallback_score: float = 0.0, max_model_len: int | None = 1024, kv_cache_bytes: int = 128 << 20,
                 api_key_env: str | None = None) -> None:
        self.validate_static({"model_path": model_path, "base_url": base_url, "model": model,
                              "hard_weight": hard_weight, "soft_weight": soft_weight, "timeout_s": timeout_s,
                              "max_retries": max_retries})
        super().__init__(model_path=model_path, base_url=base_url, model=model, mode="pointwise", think=False,
                         max_tokens=max_tokens, max_concurrency=max_concurrency, timeout_s=timeout_s,
                         max_retries=max_retries, fallback_score=fallback_score, max_model_len=max_model_len,
                         kv_cache_bytes=kv_cache_bytes, api_key_env=api_key_env)
        self.hard_weight = hard_weight
        self.soft_weight = soft_weight
        self.soft_field = soft_field

    @classmethod
    def validate_static(cls, kwargs: dict) -> None:
        super().validate_static({k: v for k, v in kwargs.items() if k not in ("hard_weight", "soft_weight")})
        hard, soft = kwargs.get("hard_weight", 1.0), kwargs.get("soft_weight", 1.0)
        if hard < 0 or soft < 0 or hard + soft <= 0:
            raise ValueError(f"hard_weight and soft_weight must be >= 0 with a positive sum, got {hard}, {soft}")

    @classmethod
    def time_budget_s(cls, kwargs: dict) -> float | None:
        """One request per sample against an endpoint; None for a checkpoint it serves itself."""
        from rewards.judge import time_budget_s
        from rewards.pairwise_judge import _BACKOFF_BASE_S, _BACKOFF_MAX_S

        if kwargs.get("model_path"):
            return None
        return time_budget_s(kwargs.get("max_retries", 2), kwargs.get("timeout_s", 120.0), _BACKOFF_BASE_S,
                             _BACKOFF_MAX_S)

    def __repr__(self) -> str:
        return f"AlignmentReward(model_path={self.model_path!r}, base_url={self.base_url!r})"

    def _verdicts(self, prompt: str, completion: str, fields: dict) -> dict:
        hard = fields.get("constraints") or []
        soft = check_soft(fields.get(self.soft_field) or [], self.soft_field)
        if not hard and not soft:
            raise ValueError(f"the alignment reward needs a row with 'constraints' or {self.soft_field!r}; "
                             "route other rows elsewhere with the entry's data_sources")
        answer = answer_part(completion)
        per_soft: dict[str, float] = {}
        if answer is None:
            # Reasoning never closed: no answer to check, every instruction unmet.
            hard_ok, soft_ok, unread = [False] * len(hard), [False] * len(soft), 0
        else:
            hard_ok = check_constraints(answer, hard, prompt) if hard else []
            soft_ok, unread = [], 0
            if soft:
                marks = parse_marks(self._ask(soft_check_prompt(prompt, answer, soft))[0], soft_tags(soft))
                soft_ok, unread = [m == "ok" for m in marks], sum(m is None for m in marks)
                # Only marks the judge wrote: an unread one is not a "no".
                per_soft = {f"soft/{t}": float(m == "ok") for t, m in zip(soft_tags(soft), marks) if m is not None}
        total = self.hard_weight * len(hard) + self.soft_weight * len(soft)
        met = self.hard_weight * sum(hard_ok) + self.soft_weight * sum(soft_ok)
        return {
            "score": met / total if total else 0.0,
            "hard_pass": sum(hard_ok) / len(hard) if hard else 1.0,
            "soft_pass": sum(soft_ok) / len(soft) if soft else 1.0,
            "all_pass": float(all(hard_ok) and all(soft_ok)),
            "soft_unread": unread / len(soft) if soft else 0.0,
            "parse_error": float(bool(soft) and unread == len(soft)),
            **per_soft,
        }

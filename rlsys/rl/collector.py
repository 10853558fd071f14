"""One RL step's data: sample groups, score them, guide or rescue all-fail groups, filter by difficulty.

The step runs in flight (rlsys/rl/inflight.py): hint levels and refills are submitted as groups finish, and the
results ready at once share one reward call, so the pools stay busy however many groups need hints.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from hints.progressive import HintSource
from rlsys.data.encode import encode_completion, encode_prompt, encode_vl_prompt, row_video_items
from rlsys.data.videos import RowVideoItems
from rlsys.reward.workers import is_count_metric
from rlsys.rl.guide import reference_sample, wants_guide, with_reference
from rlsys.rl.inflight import LOSS_ROUNDS, InflightStep
from rlsys.rl.state import ProblemSampler, RLState
from rlsys.rollout.types import GroupRequest, GroupResult, Sample
from rlsys.stages.sampling import reward_sample, sample_seed

__all__ = ["LOSS_ROUNDS", "Group", "GroupCollector", "LostGroups", "merge_round_metrics"]


class LostGroups(RuntimeError):
    """More of a step's rollout groups failed than `rl.max_lost_group_share` tolerates."""


@dataclass
class Group:
    """G answers to one problem at one hint level, with their rewards."""

    row: dict
    row_index: int
    level: int
    prompt_ids: list[int]
    train_prompt_ids: list[int]
    samples: list[Sample]
    version: int
    scores: list[float] = field(default_factory=list)
    correct: list[bool] = field(default_factory=list)
    extras: list[dict] = field(default_factory=list)
    # False once the samples' logprobs no longer match the trained context: the hint was removed from
    # it (`hints.keep_hint_in_context: false`) or a reference answer was put in (off-policy guidance).
    # The learner then recomputes them before the update.
    rollout_logprobs_valid: bool = True
    # Video items the rollout sent (rlsys.data.videos.video_items, a SlowFast plan's frames and sizes included):
    # the learner rebuilds the same video inputs from them.
    videos: list[dict] = field(default_factory=list)

    @property
    def n_correct(self) -> int:
        return sum(self.correct)

    @property
    def pass_rate(self) -> float:
        return self.n_correct / max(1, len(self.correct))


class GroupCollector:
    """Builds a step's kept groups: sample -> score -> filter -> hints for all-fail groups -> refill."""

    def __init__(self, rows: list[dict], tokenizer: Any, pool: Any, rewards: Any, hint_source: HintSource,
                 cfg: Any, rl_cfg: Any, hint_caps: dict[int, int] | None = None) -> None:
        self.rows = rows
        # Row index -> highest hint level whose prompt fits the engine, for rows below hints.max_level
        # (checked at load: rlsys/data/prompt_length.py).
        self.hint_caps = dict(hint_caps or {})
        self.tokenizer = tokenizer
        self.pool = pool
        self.rewards = rewards
        self.hint_source = hint_source
        self.cfg = cfg
        self.rl = rl_cfg
        self.timings: Counter = Counter()
        # This step's group requests and the failures among them (dropped; `check_lost` bounds their share).
        self.requested = 0
        self.lost: list[str] = []
        self.reward_metrics: list[dict[str, float]] = []
        # Row -> the video items its requests send: every frame, or SlowFast streams (`data.video_sampling`; the
        # processor's patching is read from the model directory the tokenizer came from).
        self.video_items_of = (RowVideoItems.from_config(cfg.data, tokenizer.name_or_path)
                               if any(r.get("videos") for r in rows) else row_video_items)

    def max_level(self, row_index: int) -> int:
        """The highest hint level this row is sampled at: hints.max_level, or its cap."""
        return min(self.cfg.hints.max_level, self.hint_caps.get(row_index, self.cfg.hints.max_level))

    def hintable(self, row_index: int) -> bool:
        hints = self.cfg.hints
        return hints.enabled and self.hint_source.available(self.rows[row_index]) and self.max_level(row_index) > 0

    # ------------------------------------------------------------------ sampling
    def _requests(self, step: int, rnd: int, todo: list[tuple[int, int]], n: int) -> list[GroupRequest]:
        r = self.cfg.rollout
        out = []
        for row_index, level in todo:
            row = self.rows[row_index]
            hint = self.hint_source.hint(row, level)
            videos = self.video_items_of(row) if row.get("videos") else []
            out.append(
                GroupRequest(
                    request_id=f"s{step}-r{rnd}-i{row_index}-L{level}",
                    prompt_token_ids=self.prompt_ids(row, hint, len(videos)), n=n, temperature=r.temperature,
                    top_p=r.top_p, max_tokens=r.max_tokens, stop=list(r.stop),
                    seed=sample_seed(self.cfg.seed, step, rnd, row_index, level),
                    meta={"row": row_index, "level": level}, images=list(row.get("images") or []), videos=videos,
                )
            )
        return out

    def prompt_ids(self, row: dict, hint: str | None = None, n_videos: int | None = None) -> list[int]:
        """The row's prompt tokens (with `hint` after its query): for a row with `images` / `videos`, one
        placeholder per image and per video item (`n_videos`) before the text (`encode_vl_prompt`; the tokenizer
        must carry a VL chat template), sent with them; a text row's exactly as before (`encode_prompt`)."""
        if row.get("images") or row.get("videos"):
            return encode_vl_prompt(self.tokenizer, row, self.cfg.data.system_prompt, hint, n_videos)
        return encode_prompt(self.tokenizer, row, self.cfg.data.system_prompt, hint)

    def _sample_and_score(self, step: int, rnd: int, todo: list[tuple[int, int]], n: int) -> list[Group]:
        if not todo:
            return []
        requests = self._requests(step, rnd, todo, n)
        started = time.perf_counter()
        results = self.pool.generate(requests)
        self.timings["rollout_s"] += time.perf_counter() - started
        groups = []
        self.requested += len(requests)
        for req, res in zip(requests, results):
            if not res.ok:  # dropped and counted
                self.lost.append(f"{req.request_id}: {res.error}")
                continue
            groups.append(self._group(req, res))
        if groups:
            self._score(groups)
        return groups

    def _group(self, req: GroupRequest, res: GroupResult) -> Group:
        """A finished request's group (not scored yet)."""
        row = self.rows[req.meta["row"]]
        train_ids = req.prompt_token_ids
        if not self.cfg.hints.keep_hint_in_context and req.meta["level"] > 0:
            train_ids = self.prompt_ids(row, n_videos=len(req.videos))
        return Group(row, req.meta["row"], req.meta["level"], req.prompt_token_ids, train_ids, res.samples,
                     res.policy_version, rollout_logprobs_valid=train_ids is req.prompt_token_ids,
                     videos=list(req.videos))

    def _score(self, groups: list[Group]) -> None:
        # finish_reason lets a reward fail a completion the length limit cut off (rewards.math does).
        samples = [reward_sample(g.row, s.text, len(s.token_ids), finish_reason=s.finish_reason)
                   for g in groups for s in g.samples]
        started = time.perf_counter()
        scores, extras, metrics = self.rewards.score(samples)
        self.timings["reward_s"] += time.perf_counter() - started
        self.reward_metrics.append(metrics)
        i = 0
        for g in groups:
            k = len(g.samples)
            g.scores, g.extras = scores[i : i + k], extras[i : i + k]
            g.correct = [bool(e.get("correct", False)) for e in g.extras]
            i += k

    # ------------------------------------------------------------------ one step
    def collect(self, step: int, state: RLState, sampler: ProblemSampler) -> tuple[list[Group], dict[str, float]]:
        """The step's kept groups (at most `rl.batch_groups`, in chain order) and its filter/hints/rollout/reward
        metrics; hint levels and refills go out as groups finish (InflightStep)."""
        self.timings = Counter()
        self.reward_metrics = []
        self.requested, self.lost = 0, []
        return InflightStep(self, step, state, sampler).run()

    def check_lost(self, step: int) -> None:
        """Stop when more of the step's group requests failed than `rl.max_lost_group_share` tolerates."""
        share = len(self.lost) / max(1, self.requested)
        if self.lost and share > self.rl.max_lost_group_share:
            raise LostGroups(
                f"RL step {step + 1}: {len(self.lost)} of {self.requested} rollout group requests failed "
                f"({share:.0%}), more than config key 'rl.max_lost_group_share' = {self.rl.max_lost_group_share} "
                f"tolerates; first failures: {'; '.join(self.lost[:3])}")

    def _guide(self, groups: list[Group], counts: Counter) -> list[Group]:
        """All-fail fresh groups that hints will not rescue get the row's reference answer (rl_guide.py)."""
        rl, hints = self.rl, self.cfg.hints
        if not rl.guide_field:
            return groups
        todo = [i for i, g in enumerate(groups)
                if g.level == 0 and g.pass_rate <= hints.hard_pass_rate
                and not self.hintable(g.row_index)
                and wants_guide(g.row, rl.guide_field, rl.guide_sources)]
        if not todo:
            return groups
        refs = []
        for i in todo:
            row = groups[i].row
            text = row[rl.guide_field]
            refs.append(reference_sample(encode_completion(self.tokenizer, row, text, self.cfg.data.system_prompt), text))
        started = time.perf_counter()
        # Scored apart from the sampled answers, so the step's reward metrics stay the policy's own.
        scores, extras, metrics = self.rewards.score([reward_sample(groups[i].row, ref.text, len(ref.token_ids)) for i, ref in zip(todo, refs)])
        self.timings["reward_s"] += time.perf_counter() - started
        # Its failures (errors, restarts) still count in the step's totals.
        self.reward_metrics.append({k: v for k, v in metrics.items() if is_count_metric(k)})
        out = list(groups)
        for i, ref, score, extra in zip(todo, refs, scores, extras):
            if not extra.get("correct", False):
                counts["guide_reference_failed"] += 1
                continue
            out[i] = with_reference(groups[i], ref, score, extra)
            counts["guided"] += 1
        return out

    def _first_round_metrics(self, groups: list[Group]) -> dict[str, float]:
        """Policy quality on the step's fresh problems, before any filtering or hints."""
        plain = [g for g in groups if g.level == 0] or groups
        if not plain:
            return {}
        scores = [s for g in plain for s in g.scores]
        lengths = [len(s.token_ids) for g in plain for s in g.samples]
        by_tier: dict[Any, list[Group]] = {}
        for g in plain:
            if "tier" in g.row:
                by_tier.setdefault(g.row["tier"], []).append(g)
        tiers = {f"rollout/accuracy_tier{t}": sum(g.n_correct for g in gs) / sum(len(g.correct) for g in gs)
                 for t, gs in sorted(by_tier.items())}
        return tiers | {
            "rollout/reward_mean": sum(scores) / len(scores),
            "rollout/accuracy": sum(g.n_correct for g in plain) / sum(len(g.correct) for g in plain),
            "rollout/all_fail_share": sum(g.n_correct == 0 for g in plain) / len(plain),
            "rollout/response_length": sum(lengths) / len(lengths),
            "rollout/truncated_share": sum(s.finish_reason == "length" for g in plain for s in g.samples) / len(lengths),
        }


def merge_round_metrics(rounds: list[dict[str, float]]) -> dict[str, float]:
    """One step's reward metrics from its reward calls (refill rounds, hint-level rounds, reference checks):
    counts (`is_count_metric`: errors per kind and per reward, unmatched samples, restarts) and times are
    summed; every other metric is the mean over the calls that reported it."""
    sums: dict[str, float] = {}
    means: dict[str, list[float]] = {}
    for metrics in rounds:
        for k, v in metrics.items():
            if is_count_metric(k) or k.endswith("time_s"):
                sums[k] = sums.get(k, 0.0) + v
            else:
                means.setdefault(k, []).append(v)
    return sums | {k: sum(vs) / len(vs) for k, vs in means.items()}

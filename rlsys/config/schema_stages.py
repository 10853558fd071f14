"""Structured configs of pipeline stages (`stages.<name>.*`): the stage itself, its `rl` and `sample` sections.

Imported into rlsys/config/schema.py, which is the place to import them from. Every field's allowed values
sit beside it (`setting(...)`, see rlsys/config/fields.py) and are checked at start-up for every stage.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rlsys.config.fields import setting

# judge_data's rule-written reasoning formats and IF-check layouts (rlsys/jobs/judge.py writes them).
JUDGE_REASONING = ("steps", "recheck", "recompute")
JUDGE_IF_LAYOUTS = ("constraint", "response")


@dataclass
class RLConfig:
    """Online RL with GSPO (the loop of rlsys/rl/loop.py) for one `rl` stage."""

    # Registered policy-gradient loss (gspo, gspo_token, grpo; rlsys/algorithms/losses_rl.py).
    loss: str = setting("gspo", choices="rlsys.algorithms.registry:list_policy_gradient_losses")
    # The loss's keyword arguments (eps_low, eps_high, kl_coef, aggregation, ...).
    loss_kwargs: dict[str, Any] = field(default_factory=dict)
    # Registered advantage estimator: grpo_group (per-group std) or group_mean_batch_std (one scale
    # for the step, so small-weight reward terms cannot decide a group on their own).
    advantage: str = setting("grpo_group", choices="rlsys.algorithms.advantages:list_advantages")
    # Data sources whose answers carry the KL term (loss_kwargs.kl_coef > 0); empty = every answer.
    # E.g. [rlsys/math] anchors only the reasoning rows (in align it did not hold held-out math: the IF
    # updates move facts the sampled math rows do not cover; docs/benchmarks/alignment.md).
    kl_sources: list[str] = field(default_factory=list)
    # Budget: RL steps (each: sample `batch_groups` groups, then train on them).
    steps: int = setting(20, ge=0)
    # Budget in wall seconds of the RL loop, stopping before `steps` when reached; 0 = no limit.
    max_wall_s: float = setting(0.0, ge=0.0)
    # Prompt groups per step after filtering (each group: rollout.group_size answers).
    batch_groups: int = setting(16, gt=0)
    # The rollout batch is split into this many optimizer steps (GSPO paper: 4).
    mini_batches: int = setting(4, gt=0)
    # Online difficulty filter: keep groups whose pass rate is in [filter_low, filter_high]; Keye (0, 1)
    # exclusive, InternVL3.5 [0.2, 0.8] inclusive. Groups rescued by hints are always kept.
    filter_low: float = setting(0.0, ge=0.0, le=1.0)
    # Upper end of the difficulty filter's pass-rate range.
    filter_high: float = setting(1.0, ge=0.0, le=1.0)
    # Whether the filter's range includes its ends (false: a group at exactly filter_low/high is dropped).
    filter_inclusive: bool = False
    # Refill budget: a group the filter drops (or left unsolved by hints) is replaced by a fresh problem, at most
    # this × batch_groups per step; refills go out as groups finish (rlsys/rl/inflight.py), not in rounds.
    max_refill_rounds: int = setting(3, ge=0)
    # Share of a step's group requests whose rollout failed (retries used up, no actor left) the step tolerates:
    # they are dropped, counted (filter/lost) and replaced by fresh problems; past it the stage stops with an error.
    max_lost_group_share: float = setting(0.25, ge=0.0, le=1.0)
    # Stop with an error (no artifact) once more than this share of the steps so far kept no group (1 = never).
    max_skipped_share: float = setting(0.5, ge=0.0, le=1.0)
    # Evaluate the policy every this many steps (0 = only before the first and after the last).
    eval_every: int = setting(10, ge=0)
    # Evaluate the input model before the first step too.
    eval_before: bool = True
    # Write a resumable checkpoint every this many steps and at the last one (0 = never).
    save_every: int = setting(10, ge=0)
    # Checkpoints kept on disk, newest first (0 = all).
    keep_checkpoints: int = setting(2, ge=0)
    # Recompute behaviour logprobs with the learner instead of using the rollout's (needed when
    # the trained context differs from the sampled one, e.g. hints dropped from the context).
    recompute_old_logprobs: bool = False
    # Asynchronous RL: the rollout of later steps runs while the learner trains, on a policy at most this
    # many versions behind the learner's (0 = the synchronous loop, exactly; 1 = one-step off-policy).
    # See rlsys/rl/overlap.py.
    max_staleness: int = setting(0, ge=0)
    # Credit assignment: "sequence" (one advantage per answer) or "error_tokens" (a failed answer's
    # negative advantage only on the tokens of the false results that `step_verifier` finds, plus
    # `step_penalty` on those tokens in every answer; needs a per-token loss such as gspo_token).
    # See rlsys/algorithms/credit.py.
    credit: str = setting("sequence", choices="rlsys.algorithms.credit:CREDIT_MODES")
    # Dotted path of the step verifier for credit=error_tokens: text -> [(start, end)] false-result spans.
    step_verifier: str = "rewards.steps.false_results"
    # Subtracted from the advantage of every false-result token, in every answer (credit=error_tokens).
    step_penalty: float = setting(0.0, ge=0.0)
    # Off-policy guidance (the idea of LUFFY, Yan et al. 2025): in a fresh group where no answer passes
    # (pass rate <= hints.hard_pass_rate), the row's verified reference answer (this field, e.g.
    # `response`) replaces the lowest-scoring answer when the reference itself passes, so a constraint
    # the policy never meets still has a positive example. Only rows of `guide_sources` (empty = every
    # row with the field); old log-probs are then recomputed by the learner. See rlsys/rl/guide.py.
    guide_field: str | None = None
    # Data sources whose rows get off-policy guidance (empty = every row with `guide_field`).
    guide_sources: list[str] = field(default_factory=list)


@dataclass
class LongContextConfig:
    """The long-context annealing stage (`kind: long_context`; Keye-VL 1.5's last pretraining stage, scaled down).

    The stage raises the model's RoPE base and context length, then trains on long rows packed from the
    stage's data parts (`data` + `mix_weights`, e.g. video:image:text 24:50:26) in `phases` of growing length:
    each phase packs every row of its parts into long rows of `items` rows each (rlsys/data/long_context.py)
    and trains its `share` of `max_steps` at its `seq_len`. Held-out long rows of `eval_items` rows each
    measure accuracy by input length before and after (rlsys/eval/long_context.py).
    """

    # RoPE base multiplier (Keye: 1M -> 8M, x8); 1 keeps the base.
    rope_theta_scale: float = setting(8.0, gt=0.0)
    # The model's new context (max_position_embeddings); 0 = the longest phase's seq_len.
    max_position_embeddings: int = setting(0, ge=0)
    # Curriculum, in order: [{seq_len: 1024, items: [2, 4], share: 0.5}, ...]; shares sum to 1.
    phases: list[Any] = field(default_factory=list)
    # Share of each part's rows also trained unpacked in every phase (keeps short inputs in the mix).
    keep_short: float = setting(0.2, ge=0.0, le=1.0)
    # Held-out long rows are packed from these splits (each measured alone; missing suites are built).
    eval_splits: list[str] = field(default_factory=lambda: ["math_eval", "vl_eval", "video_eval"])
    # Rows packed per held-out long row, one bucket each (1 = the short input).
    eval_items: list[int] = field(default_factory=lambda: [1, 4, 8, 16])
    # Held-out long rows per split and bucket.
    eval_rows: int = setting(16, gt=0)
    # Also score the input model on the held-out long rows (its context raised, its RoPE base kept).
    eval_before: bool = True


@dataclass
class OfflineSampleConfig:
    """Offline sampling stages: `rft_sample`, `pass_filter`, `pref_sample`, `sft_pass_filter`, `cold_start`, and
    the pairwise judge's data and eval.

    `rft_sample` draws `num_samples` answers per SFT prompt from its input model, scores them and
    the stored answer with the stage's reward workers, and keeps a sampled answer only when it
    ranks strictly higher (see rlsys/jobs/rft.py). `pass_filter` draws `num_samples` per RL
    problem and keeps those whose pass rate lies in the keep range (Keye: (0, 1) exclusive).
    `sft_pass_filter` and `cold_start` are rlsys/jobs/reasoning_data.py (pass-rate filtered SFT;
    multi-path cold-start data with answer and process checks and up-sampling by quality).
    """

    # Answers sampled per prompt (per problem for pass_filter; tries per request for judge_solve).
    num_samples: int = setting(4, gt=0)
    # Rows taken from the stage's data (seeded choice; 0 = all). rft_sample and sft_pass_filter keep the other
    # rows as they are; pass_filter, cold_start and judge_data only look at the chosen ones.
    max_rows: int = setting(0, ge=0)
    # Sampling temperature of these answers.
    temperature: float = setting(1.0, ge=0.0)
    # Answer length when sampling, and for judge stages when evaluating the judge; 0 = rollout.max_tokens.
    max_tokens: int = setting(0, ge=0)
    # rft_sample: names of reward entries that only break ties between answers the other entries
    # (the verifiers) score the same, e.g. a reward model behind a 0/1 verifier.
    tie_break: list[str] = field(default_factory=list)
    # pass_filter keep range on the pass rate, lower end (same semantics as rl.filter_*).
    keep_low: float = setting(0.0, ge=0.0, le=1.0)
    # pass_filter keep range, upper end.
    keep_high: float = setting(1.0, ge=0.0, le=1.0)
    # pass_filter: whether the keep range includes its ends.
    keep_inclusive: bool = False
    # sft_pass_filter: drop the SFT rows whose pass rate is at or above this (Keye §4.1; 1.0 = only rows solved every time).
    drop_pass_rate: float = setting(1.0, gt=0.0, le=1.0)
    # cold_start: a path passes the process check with no false statement and at least this many checked ones.
    min_steps: int = setting(1, ge=0)
    # cold_start: quality's length term, quality x (1 - length_weight x tokens / max tokens): shorter paths rank higher.
    length_weight: float = setting(0.1, ge=0.0, le=1.0)
    # cold_start: paths written per problem, best quality first (distinct texts; 0 = every path that passes).
    keep_paths: int = setting(1, ge=0)
    # cold_start: rows with quality >= up_sample_quality are written this many times (1 = no up-sampling).
    up_sample: int = setting(2, ge=1)
    # cold_start: the quality at and above which a row is up-sampled (the top band).
    up_sample_quality: float = setting(0.8, ge=0.0, le=1.0)
    # pref_sample: (correct, wrong) answer pairs written per problem (see rlsys/jobs/pref_sample.py).
    pairs_per_prompt: int = setting(1, gt=0)
    # pref_sample: leave answers cut at max_tokens out of the pairs.
    drop_truncated: bool = True
    # Pairwise judge rows: reason inside <think>...</think> before the verdict line.
    judge_think: bool = True
    # Judge rows: prompts longer than this many tokens are dropped.
    max_prompt_tokens: int = setting(448, gt=0)
    # judge_data: the input model solves each request whose two responses reach different final answers
    # (num_samples tries, the stage's reward workers verify); the judge's reasoning starts from that
    # solution. Needs an input model and a math reward entry.
    judge_solve: bool = False
    # judge_data's rule-written reasoning (rlsys/jobs/judge.py): "steps" (both final answers and
    # each response's first false step), "recheck" (each equation copied in order with ok / no, up to the
    # first false one) or "recompute" (each equation copied, its left side worked out again, then ok / no).
    judge_reasoning: str = setting("steps", choices=JUDGE_REASONING)
    # judge_data: on IF pairs the reasoning checks each of the request's constraints on both responses
    # ("keyword include melody: A no, B ok."); without it IF pairs get the math reasoning, which has
    # nothing to check there ("A: no equations.").
    judge_if_checks: bool = False
    # judge_data with judge_if_checks: their layout, "constraint" (a line per constraint, both responses on it)
    # or "response" (a line per response, every constraint on it).
    judge_if_layout: str = setting("constraint", choices=JUDGE_IF_LAYOUTS)
    # judge_data: this many more held-out IF pairs, drawn from the suite's preference generator past its own
    # eval rows (the default suite's pref_eval holds 13 IF pairs among 200).
    eval_if_pairs: int = setting(0, ge=0)
    # judge_data: train on this many pairs, the suite's pref_train rows first and more drawn from the same
    # generator after them (the suite's 2,000 pairs, seen for several epochs, are memorised, not learnt).
    train_pairs: int = setting(0, ge=0)
    # judge_data: pointwise check rows instead of pairwise ones: each IF pair gives two rows, one request and
    # one response each, the target a mark per constraint ("keyword include melody: no."); other pairs are
    # left out (counted). The judge stages then report the pair accuracy of preferring the response with
    # fewer failed marks (the tiny model learns this check, not the pairwise one: BENCHMARKS.md).
    judge_pointwise: bool = False
    # judge_data with judge_pointwise: this many alignment rows (align_train) add soft-instruction checks (the
    # response and its broken variants, a rubric line and a mark per soft instruction); the held-out
    # align_eval pairs are scored apart (eval/judge_pair_acc_align). 0 = none.
    soft_checks: int = setting(0, ge=0)


@dataclass
class StageConfig:
    """One stage of a pipeline (pretrain, sft, mpo, rm, merge, rl, rft_sample, pass_filter,
    pref_sample, judge_data, judge_sft, judge_rl, contrastive).

    A stage reads the model produced by `input` (another stage's name; null = the base model) and
    writes an HF checkpoint (data stages - rft_sample, pass_filter, pref_sample, judge_data - write a data file). Its artifact is cached under artifacts_dir by a hash of everything
    it depends on, and reused when nothing changed (`cache: false` always reruns it).
    """

    # What the stage does: a stage kind of rlsys/stages/runner.py STAGE_KINDS.
    kind: str = setting("sft", choices="rlsys.stages.runner:STAGE_KINDS")
    # The stage whose model this one starts from; null = the base model (`model`).
    input: str | None = None
    # Reuse the cached artifact when its key matches; false always rebuilds.
    cache: bool = True
    # Registered loss of the training stages (see rlsys/algorithms): ntp, sft, mpo, bradley_terry, ...
    loss: str = setting("sft", choices="rlsys.algorithms.registry:list_losses")
    # The loss's keyword arguments (e.g. sft's reduction, mpo's beta and weights).
    loss_kwargs: dict[str, Any] = field(default_factory=dict)
    # Task-suite split (e.g. "sft_train", "pretrain", "pref_train") or user files (data.*_files).
    # "a+b" joins splits; "math_train:600" takes a seeded 600 of that split's rows.
    data: str = "sft_train"
    # Keep only rows whose field holds one of the listed values, e.g. {tier: [3]} (RL on the hard
    # tier) or {data_source: [my/src]}; applied after loading, whatever the source.
    where: dict[str, list[Any]] = field(default_factory=dict)
    # sft/mpo: one weight > 0 per '+'-joined part of `data` (e.g. [24, 50, 26]) drawn per batch; [] = pooled.
    mix_weights: list[float] = setting(factory=list)
    # Held-out split the mpo, rm and judge stages evaluate on (null = pref_eval); contrastive stages: held-out
    # captions for image-text retrieval (null = vl_caption_eval).
    eval_data: str | None = None
    # Passes over the stage's data (fractions allowed); ignored when max_steps > 0.
    epochs: float = setting(1.0, ge=0.0)
    # > 0 caps the optimizer steps (overrides epochs); <= 0 = run `epochs`.
    max_steps: int = -1
    # Sequences (or pairs) per optimizer step, across all data-parallel ranks.
    batch_size: int = setting(32, gt=0)
    # Max tokens per training sequence; pretraining packs documents into blocks of this length.
    seq_len: int = setting(256, gt=0)
    # Training stages: the parameters that train, as globs over the model's parameter names (e.g.
    # [model.visual.*] trains only a vision tower); the rest stay frozen, byte-identical. Empty = all train.
    trainable: list[str] = field(default_factory=list)
    # Peak learning rate of this stage's learners (the stage owns its schedule; see Schedule).
    lr: float = setting(1e-4, ge=0.0)
    # Warm-up steps as a share of the stage's optimizer steps.
    warmup_ratio: float = setting(0.03, ge=0.0, le=1.0)
    # LR schedule after warm-up.
    schedule: str = setting("cosine", choices="rlsys.learner.schedule:LR_SCHEDULES")
    # Cosine floor as a share of lr.
    min_lr_ratio: float = setting(0.1, ge=0.0, le=1.0)
    # AdamW weight decay.
    weight_decay: float = setting(0.0, ge=0.0)
    # Share of the last steps run flat at lr * anneal_lr_ratio (Keye SFT annealing; 0 = none).
    anneal_fraction: float = setting(0.0, ge=0.0, le=1.0)
    # LR multiplier of the annealing tail.
    anneal_lr_ratio: float = setting(0.1, ge=0.0)
    # Reward model: drop pairs whose longer answer exceeds the shorter by this ratio; then one
    # extra annealing epoch on pairs whose chosen answer is the shorter one (Keye §4.2).
    max_length_ratio: float = setting(3.0, gt=0.0)
    # Reward model: epochs of that annealing pass on shorter-chosen pairs (0 = none).
    length_anneal_epochs: float = setting(0.0, ge=0.0)
    # Preference stages (dpo, bco_pair, mpo): the response tokens the preference terms score.
    # "full": whole responses. "first_diff_line": up to the end of the first line where chosen and
    # rejected differ (Step-DPO, arXiv 2406.18629). The shared lines before it cancel in DPO, and the
    # rejected answer's later lines (often right steps from a wrong premise) are not pushed down. MPO's
    # SFT term still covers the whole chosen response.
    pair_scope: str = setting("full", choices="rlsys.data.encode:PAIR_SCOPES")
    # Merge stage: task-vector merge of `experts` (stage names) into `input`.
    experts: list[str] = field(default_factory=list)
    # Merge stage: how the experts' task vectors combine.
    merge_method: str = setting("ties", choices="rlsys.algorithms.merging:MERGE_METHODS")
    # Merge stage: one weight per expert (empty = 1/n each for linear, 1 each for ties).
    merge_weights: list[float] = field(default_factory=list)
    # Merge stage (ties): share of each task vector's largest entries kept.
    merge_density: float = setting(0.5, gt=0.0, le=1.0)
    # Online RL settings (rl stages).
    rl: RLConfig = field(default_factory=RLConfig)
    # The stage's reward entries (same form as reward.fns); they replace reward.fns when non-empty.
    reward_fns: list[Any] = field(default_factory=list)
    # Evaluate the output on the held-out split (math accuracy per tier; preference accuracy).
    evaluate: bool = True
    # Training stages: log metrics every this many optimizer steps.
    log_every: int = setting(10, gt=0)
    # Seed of the stage's learners, data order and row sampling.
    seed: int = 0
    # Take the data rows from the data file (data.jsonl) another stage wrote (rft_sample's updated
    # SFT set, pass_filter's kept problems, pref_sample's pairs, judge_data's judge rows) instead of
    # `data`; that stage is built first and its hash is part of this stage's cache key.
    data_from: str | None = None
    # rl stages: set rl.max_wall_s to the summed build wall time of these stages (equal-wall-time
    # baselines, e.g. GSPO alone vs MPO + GSPO); they are built first.
    match_wall: list[str] = field(default_factory=list)
    # Run-config values this stage sees instead of the run's, e.g. {rollout: {max_tokens: 64},
    # hints: {enabled: false}}; part of the cache key. Reward kwargs (and these values) may name
    # another stage's model as "stage:<name>", e.g. {model_path: "stage:rm"}.
    overrides: dict[str, Any] = field(default_factory=dict)
    # Offline sampling settings (rft_sample, pass_filter, pref_sample, judge stages).
    sample: OfflineSampleConfig = field(default_factory=OfflineSampleConfig)
    # Long-context annealing settings (long_context stages).
    long_context: LongContextConfig = field(default_factory=LongContextConfig)

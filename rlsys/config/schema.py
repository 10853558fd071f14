"""Structured configs: one documented dataclass per component, composed by Hydra.

The root `Config` is registered as Hydra's schema, so a misspelt key or a value of the wrong
type fails at start-up with the key named (OmegaConf struct mode). Each `conf/<group>/*.yaml`
fills one of these sections; each `conf/exp/*.yaml` overrides any of them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from rlsys.data.tasks.suite import SuiteSpec


@dataclass
class TinyModelConfig:
    """Architecture of the embedded default model (Qwen3, untied embeddings).

    Used only when `model.path` is unset. The tokenizer is trained locally on the task
    corpus with `vocab_size` entries; digits are always single tokens.
    """

    vocab_size: int = 1024
    hidden_size: int = 256
    intermediate_size: int = 768
    num_layers: int = 4
    num_heads: int = 4
    num_kv_heads: int = 2
    # vLLM's CPU attention supports head sizes 32, 64, 80, ...; 64 is the smallest fast one.
    head_dim: int = 64
    max_position_embeddings: int = 1024
    rope_theta: float = 10000.0


@dataclass
class ModelConfig:
    """The policy model.

    `path` points at any HF causal-LM directory (e.g. a local Qwen3-8B); when it is null the
    embedded tiny model is built (deterministically from `seed`) under `artifacts_dir`.
    """

    path: str | None = None
    # Start the run from a named stage's artifact instead (e.g. "sft"); resolved by the stage
    # runner, which builds the stage first when its cached artifact is missing or stale.
    from_stage: str | None = None
    tiny: TinyModelConfig = field(default_factory=TinyModelConfig)
    seed: int = 0
    trust_remote_code: bool = False


# The task suite's sizes and seed: the data module's own documented dataclass, used as the
# config section so the two never drift apart.
SuiteConfig = SuiteSpec


@dataclass
class DataConfig:
    """Training and evaluation data.

    Empty file lists mean the embedded task suite. User files are jsonl/parquet in the schema
    of docs/DATA.md. `on_bad_row`: "error" stops at the first bad row (file and row named),
    "skip" drops it and counts it in the run's metrics.
    """

    train_files: list[str] = field(default_factory=list)
    eval_files: list[str] = field(default_factory=list)
    sft_files: list[str] = field(default_factory=list)
    pref_files: list[str] = field(default_factory=list)
    pretrain_files: list[str] = field(default_factory=list)
    on_bad_row: str = "error"
    system_prompt: str | None = None
    max_prompt_tokens: int = 256
    suite: SuiteConfig = field(default_factory=SuiteConfig)


@dataclass
class RolloutConfig:
    """vLLM rollout workers and sampling defaults."""

    num_actors: int = 1
    cpus_per_actor: float = 1.0
    gpus_per_actor: float = 0.0
    dtype: str = "float32"
    max_model_len: int = 512
    # KV cache size is set explicitly: vLLM-CPU otherwise sizes it from the whole NUMA node.
    kv_cache_bytes: int = 256 << 20
    gpu_memory_utilization: float = 0.5
    enforce_eager: bool = True
    # Chunked prefill off: vLLM-CPU cannot rewind a seeded sampler after a partial prefill, and
    # per-request seeds are what make rollouts reproducible (exact resume).
    chunked_prefill: bool = False
    max_num_batched_tokens: int = 8192
    # In-process engine (no engine subprocess): starts in seconds and allows in-place reload.
    in_process: bool = True
    group_size: int = 8
    temperature: float = 1.0
    top_p: float = 1.0
    max_tokens: int = 128
    stop: list[str] = field(default_factory=list)
    seed: int = 0
    # Weight sync: "object_store" (Ray object store, any hardware) or "nccl" (CUDA only).
    sync_backend: str = "object_store"
    sync_bucket_bytes: int = 64 << 20
    # Elastic pool policy.
    min_actors: int = 1
    max_actors: int = 1
    target_backlog: int = 8
    replace_dead: bool = True
    request_timeout_s: float = 600.0


@dataclass
class OptimConfig:
    """Optimizer and learning-rate schedule."""

    lr: float = 1e-5
    min_lr_ratio: float = 0.1
    weight_decay: float = 0.0
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-8
    warmup_steps: int = 0
    # "cosine" or "constant" after warm-up.
    schedule: str = "constant"
    total_steps: int = 1000
    grad_clip: float = 1.0
    # Annealing tail (Keye SFT): the last `anneal_fraction` of steps run at lr * anneal_lr_ratio.
    anneal_fraction: float = 0.0
    anneal_lr_ratio: float = 0.1


@dataclass
class LearnerConfig:
    """DeepSpeed learner workers (data parallel)."""

    num_actors: int = 1
    cpus_per_actor: float = 1.0
    gpus_per_actor: float = 0.0
    zero_stage: int = 0
    # "fp32" or "bf16".
    precision: str = "fp32"
    micro_batch_size: int = 8
    # Micro-batches are packed/length-grouped up to this many tokens.
    max_tokens_per_micro: int = 4096
    gradient_checkpointing: bool = False
    # torch threads per learner actor (CPU); null = max(1, cpus_per_actor). Rollout and learner
    # take turns in a synchronous RL step, so each may use every core while Ray counts fewer.
    num_threads: int | None = None
    # "auto" picks nccl on CUDA and gloo on CPU.
    dist_backend: str = "auto"
    optim: OptimConfig = field(default_factory=OptimConfig)
    seed: int = 0


def learner_settings(optim: dict[str, Any] | None = None, **overrides: Any) -> dict[str, Any]:
    """LearnerConfig's defaults as the plain dict a LearnerGroup takes, with overrides, for code that
    builds learners without Hydra (tests, benchmarks, probes). An unknown key fails, named."""
    cfg = asdict(LearnerConfig())
    for section, values, where in ((cfg, overrides, "learner"), (cfg["optim"], optim or {}, "learner.optim")):
        unknown = sorted(set(values) - set(section))
        if unknown:
            raise KeyError(f"unknown {where} keys {unknown}; known: {sorted(section)}")
        section.update(values)
    return cfg


@dataclass
class RewardConfig:
    """Reward functions and reward workers.

    `fns` entries: {_target_: dotted.path or built-in name, weight: 1.0, data_sources: [...],
    kwargs: {...}}. A failing call gets `on_error_score` and is counted unless
    `fail_on_error`.
    """

    fns: list[Any] = field(default_factory=list)
    num_workers: int = 1
    cpus_per_worker: float = 0.5
    timeout_s: float = 10.0
    on_error_score: float = 0.0
    fail_on_error: bool = False
    correct_threshold: float = 0.5
    # Per data source, the one term that decides pass/fail instead of the combined reward:
    # [{data_source: rlsys/ifeval, term: ifeval, threshold: 1.0}] (rlsys/reward/correct.py).
    correct_by: list[Any] = field(default_factory=list)


@dataclass
class HintsConfig:
    """Progressive hint sampling (Keye-VL 1.5 §4.4.2)."""

    enabled: bool = True
    max_level: int = 5
    rollouts_per_level: int = 4
    # A group is "hard" (gets hints) when its pass rate is at most this.
    hard_pass_rate: float = 0.0
    # Keep the hinted prompt in the context the learner scores (trained on what it sampled).
    keep_hint_in_context: bool = True
    # Start one level below the cached minimal level next time the problem comes up.
    fade: int = 1
    # Optional hint generator for data without hint fields: {_target_: ..., ...}.
    generator: Any = None
    # Only rows of these data sources get hints (null: every row with hints or a generator).
    data_sources: list[str] | None = None


@dataclass
class RayConfig:
    """Ray runtime: local by default; `address: auto` (or host:port) joins a cluster."""

    address: str | None = None
    num_cpus: int | None = None
    num_gpus: int | None = None
    include_dashboard: bool = False
    namespace: str = "rlsys"
    object_store_memory: int | None = None
    actor_timeout_s: float = 600.0


@dataclass
class LoggingConfig:
    """Metrics (always jsonl in the run dir), wandb (optional), progress bars and plots."""

    wandb: bool = False
    wandb_project: str = "rlsys"
    # Respected unless WANDB_MODE is already set in the environment.
    wandb_mode: str = "offline"
    progress: bool = True
    plots: bool = True
    log_level: str = "INFO"


@dataclass
class SmokeConfig:
    """The spine check: one rollout group, one train step, one weight sync."""

    prompt: str = "What is 3 + 4?"
    group_size: int = 4
    max_tokens: int = 24
    logprob_tol: float = 1e-4


@dataclass
class RLConfig:
    """Online RL with GSPO (the controller loop) for one `rl` stage."""

    # Registered loss (gspo, gspo_token, grpo) and its kwargs (eps_low, eps_high, kl_coef, ...).
    loss: str = "gspo"
    loss_kwargs: dict[str, Any] = field(default_factory=dict)
    # Registered advantage estimator: grpo_group (per-group std) or group_mean_batch_std (one scale
    # for the step, so small-weight reward terms cannot decide a group on their own).
    advantage: str = "grpo_group"
    # Data sources whose answers carry the KL term (loss_kwargs.kl_coef > 0); empty = every answer.
    # E.g. [rlsys/math] anchors only the reasoning rows (in align it did not hold held-out math: the IF
    # updates move facts the sampled math rows do not cover; BENCHMARKS.md "Session 18").
    kl_sources: list[str] = field(default_factory=list)
    # Budget: controller steps, and optionally wall seconds (0 = no limit).
    steps: int = 20
    max_wall_s: float = 0.0
    # Prompt groups per step after filtering (each group: rollout.group_size answers).
    batch_groups: int = 16
    # The rollout batch is split into this many optimizer steps (GSPO paper: 4).
    mini_batches: int = 4
    # Online difficulty filter: keep groups whose pass rate is in the range; Keye (0, 1)
    # exclusive, InternVL3.5 [0.2, 0.8] inclusive. Groups rescued by hints are always kept.
    filter_low: float = 0.0
    filter_high: float = 1.0
    filter_inclusive: bool = False
    # More problems are drawn until the batch is full, at most this many extra rounds.
    max_refill_rounds: int = 3
    eval_every: int = 10
    eval_before: bool = True
    save_every: int = 10
    keep_checkpoints: int = 2
    # Recompute behaviour logprobs with the learner instead of using the rollout's (needed when
    # the trained context differs from the sampled one, e.g. hints dropped from the context).
    recompute_old_logprobs: bool = False
    # Credit assignment: "sequence" (one advantage per answer) or "error_tokens" (a failed answer's
    # negative advantage only on the tokens of the false results that `step_verifier` finds, plus
    # `step_penalty` on those tokens in every answer; needs a per-token loss such as gspo_token).
    # See rlsys/algorithms/credit.py.
    credit: str = "sequence"
    step_verifier: str = "rewards.steps.false_results"
    step_penalty: float = 0.0
    # Off-policy guidance (the idea of LUFFY, Yan et al. 2025): in a fresh group where no answer passes
    # (pass rate <= hints.hard_pass_rate), the row's verified reference answer (this field, e.g.
    # `response`) replaces the lowest-scoring answer when the reference itself passes, so a constraint
    # the policy never meets still has a positive example. Only rows of `guide_sources` (empty = every
    # row with the field); old log-probs are then recomputed by the learner. See rlsys/controller/rl_guide.py.
    guide_field: str | None = None
    guide_sources: list[str] = field(default_factory=list)


@dataclass
class OfflineSampleConfig:
    """Offline sampling stages: `rft_sample`, `pass_filter`, `pref_sample`, and the pairwise judge's data and eval.

    `rft_sample` draws `num_samples` answers per SFT prompt from its input model, scores them and
    the stored answer with the stage's reward workers, and keeps a sampled answer only when it
    ranks strictly higher (see rlsys/controller/rft.py). `pass_filter` draws `num_samples` per RL
    problem and keeps those whose pass rate lies in the keep range (Keye: (0, 1) exclusive).
    """

    num_samples: int = 4
    # Rows taken from the stage's data (seeded choice; 0 = all). rft_sample keeps the other rows as
    # they are; pass_filter and judge_data only look at the chosen ones.
    max_rows: int = 0
    temperature: float = 1.0
    # Answer length when sampling, and for judge stages when evaluating the judge; 0 = rollout.max_tokens.
    max_tokens: int = 0
    # rft_sample: names of reward entries that only break ties between answers the other entries
    # (the verifiers) score the same, e.g. a reward model behind a 0/1 verifier.
    tie_break: list[str] = field(default_factory=list)
    # pass_filter keep range on the pass rate (same semantics as rl.filter_*).
    keep_low: float = 0.0
    keep_high: float = 1.0
    keep_inclusive: bool = False
    # pref_sample: (correct, wrong) answer pairs written per problem (see rlsys/controller/pref_sample.py),
    # and whether answers cut at max_tokens are left out of them.
    pairs_per_prompt: int = 1
    drop_truncated: bool = True
    # Pairwise judge rows: reason inside <think>...</think> before the verdict line; judge prompts
    # longer than this many tokens are dropped.
    judge_think: bool = True
    max_prompt_tokens: int = 448
    # judge_data: the input model solves each request whose two responses reach different final answers
    # (num_samples tries, the stage's reward workers verify); the judge's reasoning starts from that
    # solution. Needs an input model and a math reward entry.
    judge_solve: bool = False
    # judge_data's rule-written reasoning (rlsys/controller/judge_rm.py): "steps" (both final answers and
    # each response's first false step), "recheck" (each equation copied in order with ok / no, up to the
    # first false one) or "recompute" (each equation copied, its left side worked out again, then ok / no).
    judge_reasoning: str = "steps"
    # judge_data: on IF pairs the reasoning checks each of the request's constraints on both responses
    # ("keyword include melody: A no, B ok."); without it IF pairs get the math reasoning, which has
    # nothing to check there ("A: no equations.").
    judge_if_checks: bool = False
    # Their layout: "constraint" (a line per constraint, both responses on it) or "response" (a line per
    # response, every constraint on it).
    judge_if_layout: str = "constraint"
    # judge_data: this many more held-out IF pairs, drawn from the suite's preference generator past its own
    # eval rows (the default suite's pref_eval holds 13 IF pairs among 200).
    eval_if_pairs: int = 0
    # judge_data: train on this many pairs, the suite's pref_train rows first and more drawn from the same
    # generator after them (the suite's 2,000 pairs, seen for several epochs, are memorised, not learnt).
    train_pairs: int = 0
    # judge_data: pointwise check rows instead of pairwise ones: each IF pair gives two rows, one request and
    # one response each, the target a mark per constraint ("keyword include melody: no."); other pairs are
    # left out (counted). The judge stages then report the pair accuracy of preferring the response with
    # fewer failed marks (the tiny model learns this check, not the pairwise one: BENCHMARKS.md).
    judge_pointwise: bool = False


@dataclass
class StageConfig:
    """One stage of a pipeline (pretrain, sft, mpo, rm, merge, rl, rft_sample, pass_filter,
    pref_sample, judge_data, judge_sft, judge_rl).

    A stage reads the model produced by `input` (another stage's name; null = the base model) and
    writes an HF checkpoint (data stages - rft_sample, pass_filter, pref_sample, judge_data - write a data file). Its artifact is cached under artifacts_dir by a hash of everything
    it depends on, and reused when nothing changed (`cache: false` always reruns it).
    """

    kind: str = "sft"
    input: str | None = None
    cache: bool = True
    # Registered loss name and its keyword arguments (see rlsys/algorithms).
    loss: str = "sft"
    loss_kwargs: dict[str, Any] = field(default_factory=dict)
    # Task-suite split (e.g. "sft_train", "pretrain", "pref_train") or user files (data.*_files).
    # "a+b" joins splits; "math_train:600" takes a seeded 600 of that split's rows.
    data: str = "sft_train"
    # Keep only rows whose field holds one of the listed values, e.g. {tier: [3]} (RL on the hard
    # tier) or {data_source: [my/src]}; applied after loading, whatever the source.
    where: dict[str, list[Any]] = field(default_factory=dict)
    eval_data: str | None = None
    epochs: float = 1.0
    # > 0 caps the optimizer steps (overrides epochs).
    max_steps: int = -1
    # Sequences (or pairs) per optimizer step, across all data-parallel ranks.
    batch_size: int = 32
    # Max tokens per training sequence; pretraining packs documents into blocks of this length.
    seq_len: int = 256
    lr: float = 1e-4
    warmup_ratio: float = 0.03
    schedule: str = "cosine"
    min_lr_ratio: float = 0.1
    weight_decay: float = 0.0
    anneal_fraction: float = 0.0
    anneal_lr_ratio: float = 0.1
    # Reward model: drop pairs whose longer answer exceeds the shorter by this ratio; then one
    # extra annealing epoch on pairs whose chosen answer is the shorter one (Keye §4.2).
    max_length_ratio: float = 3.0
    length_anneal_epochs: float = 0.0
    # Preference stages (dpo, bco_pair, mpo): the response tokens the preference terms score.
    # "full": whole responses. "first_diff_line": up to the end of the first line where chosen and
    # rejected differ (Step-DPO, arXiv 2406.18629). The shared lines before it cancel in DPO, and the
    # rejected answer's later lines (often right steps from a wrong premise) are not pushed down. MPO's
    # SFT term still covers the whole chosen response.
    pair_scope: str = "full"
    # Merge stage: task-vector merge of `experts` (stage names) into `input`.
    experts: list[str] = field(default_factory=list)
    merge_method: str = "ties"
    merge_weights: list[float] = field(default_factory=list)
    merge_density: float = 0.5
    # Online RL settings (rl stages); reward fns override reward.fns when non-empty.
    rl: RLConfig = field(default_factory=RLConfig)
    reward_fns: list[Any] = field(default_factory=list)
    # Evaluate the output on the held-out split (math accuracy per tier; preference accuracy).
    evaluate: bool = True
    log_every: int = 10
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
    sample: OfflineSampleConfig = field(default_factory=OfflineSampleConfig)


@dataclass
class EvalConfig:
    """Held-out evaluation: greedy math accuracy per tier, IF pass rate, preference accuracy."""

    max_math: int = 300
    max_ifeval: int = 100
    max_pairs: int = 200
    max_tokens: int = 160
    # Also report avg@k math accuracy at `sample_temperature` (0 = greedy only). RL sharpens the
    # sampling distribution first; this shows it before greedy accuracy moves.
    sample_k: int = 0
    sample_temperature: float = 1.0


@dataclass
class Config:
    """Root config of every rlsys run."""

    exp_name: str = "default"
    # Which job runs: smoke, pretrain, sft, mpo, rm, merge, rl, pipeline.
    job: str = "smoke"
    seed: int = 0
    # Shared cache of built artifacts (tiny model, task suite, stage outputs), reused across runs.
    artifacts_dir: str = "artifacts"
    # Set by the launcher to the Hydra run directory.
    run_dir: str = ""
    resume: Any = False
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    learner: LearnerConfig = field(default_factory=LearnerConfig)
    reward: RewardConfig = field(default_factory=RewardConfig)
    hints: HintsConfig = field(default_factory=HintsConfig)
    ray: RayConfig = field(default_factory=RayConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    smoke: SmokeConfig = field(default_factory=SmokeConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    # Stage definitions by name, and the ordered list of stages a pipeline job runs.
    stages: dict[str, StageConfig] = field(default_factory=dict)
    pipeline: list[str] = field(default_factory=list)

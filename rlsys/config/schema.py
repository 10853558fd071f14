"""Structured configs: one documented dataclass per component, composed by Hydra.

The root `Config` is registered as Hydra's schema, so a misspelt key or a value of the wrong
type fails at start-up with the key named (OmegaConf struct mode). Each `conf/<group>/*.yaml`
fills one of these sections; each `conf/exp/*.yaml` overrides any of them. Every field has a
comment above it (what it is, its unit) and its allowed values beside it (`setting(...)`,
rlsys/config/fields.py), checked at start-up by rlsys/config/validate.py; docs/CONFIG.md is
generated from this file and rlsys/config/schema_stages.py (`python -m rlsys.config.doc`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from rlsys.config.fields import setting
from rlsys.config.schema_stages import OfflineSampleConfig, RLConfig, StageConfig
from rlsys.data.tasks.suite import SuiteSpec
from rlsys.data.tasks.video.suite import VideoSuiteSpec
from rlsys.data.tasks.visual.suite import VisualSuiteSpec
from rlsys.data.video.slowfast import SlowFastConfig
from rlsys.learner.schedule import Schedule
from rlsys.rollout.pool_policy import PoolPolicy

__all__ = [
    "Config", "DataConfig", "EvalConfig", "HintsConfig", "LearnerConfig", "LoggingConfig", "ModelConfig",
    "OfflineSampleConfig", "OptimConfig", "RLConfig", "RayConfig", "RewardConfig", "RolloutConfig", "SmokeConfig",
    "SlowFastConfig", "StageConfig", "SuiteConfig", "TinyModelConfig", "VideoSuiteConfig", "VisualSuiteConfig",
    "learner_settings",
]


@dataclass
class TinyModelConfig:
    """Architecture of the embedded default model (Qwen3, untied embeddings).

    Used only when `model.path` is unset. The tokenizer is trained locally on the task
    corpus with `vocab_size` entries; digits are always single tokens.
    """

    # Tokenizer and embedding entries (the tokenizer is trained to this size).
    vocab_size: int = setting(1024, gt=0)
    # Width of the residual stream.
    hidden_size: int = setting(256, gt=0)
    # Width of each MLP's hidden layer.
    intermediate_size: int = setting(768, gt=0)
    # Transformer blocks.
    num_layers: int = setting(4, gt=0)
    # Query heads per attention layer.
    num_heads: int = setting(4, gt=0)
    # Key/value heads (grouped-query attention; divides num_heads).
    num_kv_heads: int = setting(2, gt=0)
    # vLLM's CPU attention supports head sizes 32, 64, 80, ...; 64 is the smallest fast one.
    head_dim: int = setting(64, gt=0)
    # Longest sequence the position embeddings cover, in tokens.
    max_position_embeddings: int = setting(1024, gt=0)
    # RoPE base frequency.
    rope_theta: float = setting(10000.0, gt=0.0)


@dataclass
class ModelConfig:
    """The policy model.

    `path` points at any HF causal-LM or vision-language directory (e.g. a local Qwen3-8B or
    Qwen3-VL-2B; a `vision_config` in its config.json makes it a VLM); when it is null the embedded
    tiny model is built (deterministically from `seed`) under `artifacts_dir`, and `kind: vl`
    wraps it into a tiny Qwen3-VL (rlsys/model/tiny_vl.py: a seeded vision tower, the LM's weights).
    """

    # HF causal-LM or vision-language directory of the base model; null = the embedded tiny model.
    path: str | None = None
    # Architecture of the embedded tiny model (used when path is null).
    tiny: TinyModelConfig = field(default_factory=TinyModelConfig)
    # Seed of the tiny model's random initialisation.
    seed: int = 0
    # Embedded model kind (path null): "lm" the tiny Qwen3, "vl" a tiny Qwen3-VL built around it.
    kind: str = setting("lm", choices=("lm", "vl"))


# The task suite's sizes and seed: the data module's own documented dataclass, used as the
# config section so the two never drift apart.
SuiteConfig = SuiteSpec
# The same for the visual suite (rlsys/data/tasks/visual/suite.py), read by stages on its vl_* splits.
VisualSuiteConfig = VisualSuiteSpec
# The same for the video suite (rlsys/data/tasks/video/suite.py), read by stages on its video_* splits.
VideoSuiteConfig = VideoSuiteSpec


@dataclass
class DataConfig:
    """Training and evaluation data.

    Empty file lists mean the embedded task suite. User files are jsonl/parquet in the schema
    of docs/DATA.md. `on_bad_row`: "error" stops at the first bad row (file and row named),
    "skip" drops it and counts it in the run's metrics. A prompt longer than `max_prompt_tokens`
    is a bad row too, found when a sampling or RL stage loads its rows, before any rollout.
    """

    # RL problems (rl, pass_filter, pref_sample stages); empty = the suite's splits.
    train_files: list[str] = field(default_factory=list)
    # Held-out problems of the math/IF evaluation; empty = the suite's eval splits.
    eval_files: list[str] = field(default_factory=list)
    # SFT rows (sft, rft_sample stages).
    sft_files: list[str] = field(default_factory=list)
    # Preference pairs (mpo, rm, judge_data stages).
    pref_files: list[str] = field(default_factory=list)
    # Plain-text documents (pretrain stages).
    pretrain_files: list[str] = field(default_factory=list)
    # What a malformed row does: stop the run ("error") or be dropped and counted ("skip").
    on_bad_row: str = setting("error", choices="rlsys.data.loading:ON_BAD_ROW")
    # Longest prompt (chat-templated, with its highest hint) in tokens; null = rollout.max_model_len - the answer length.
    max_prompt_tokens: int | None = setting(None, gt=0)
    # System turn put before every prompt (null = none).
    system_prompt: str | None = None
    # Share of SFT rows with `hints` that carry one (uniform level) after the query, as RL prompts do
    # (at 0.15 the model learnt to misuse hints: docs/benchmarks/rl.md, "Unconditional hint table").
    sft_hint_share: float = setting(0.5, ge=0, le=1)
    # Sizes and seed of the embedded task suite (rlsys/data/tasks/suite.py SuiteSpec).
    suite: SuiteConfig = field(default_factory=SuiteConfig)
    # Sizes, seed and image size of the embedded visual suite, read by stages whose `data` names a vl_* split
    # (rlsys/data/tasks/visual/suite.py VisualSuiteSpec).
    visual: VisualSuiteConfig = field(default_factory=VisualSuiteConfig)
    # Sizes, seed, frame size and frame count of the embedded video suite, read by stages whose `data` names a
    # video_* split (rlsys/data/tasks/video/suite.py VideoSuiteSpec).
    video: VideoSuiteConfig = field(default_factory=VideoSuiteConfig)
    # How a video row's frames reach the model: "uniform" (every frame, one video input each) or "slowfast" (the
    # SlowFast plan's slow and fast streams under `slowfast.token_budget`; rlsys/data/videos.py).
    video_sampling: str = setting("uniform", choices="rlsys.data.videos:VIDEO_SAMPLING")
    # SlowFast frame planning when video_sampling is "slowfast" (rlsys/data/video/slowfast.py SlowFastConfig).
    slowfast: SlowFastConfig = field(default_factory=SlowFastConfig)


@dataclass
class RolloutConfig:
    """vLLM rollout workers and sampling defaults."""

    # Rollout actors started with the pool (one vLLM engine each).
    num_actors: int = setting(1, gt=0)
    # CPUs Ray reserves per rollout actor.
    cpus_per_actor: float = setting(1.0, ge=0.0)
    # GPUs Ray reserves per rollout actor (0 on CPU).
    gpus_per_actor: float = setting(0.0, ge=0.0)
    # vLLM weight/activation dtype.
    dtype: str = setting("float32", choices=("float32", "bfloat16", "float16", "auto"))
    # Longest prompt + answer the engine accepts, in tokens.
    max_model_len: int = setting(512, gt=0)
    # KV cache size is set explicitly: vLLM-CPU otherwise sizes it from the whole NUMA node (bytes; CPU only).
    kv_cache_bytes: int = setting(256 << 20, gt=0)
    # Share of GPU memory vLLM may take (CUDA only).
    gpu_memory_utilization: float = setting(0.5, gt=0.0, le=1.0)
    # No CUDA graphs (eager mode); on CPU always eager.
    enforce_eager: bool = True
    # Chunked prefill off: vLLM-CPU cannot rewind a seeded sampler after a partial prefill, and
    # per-request seeds are what make rollouts reproducible (exact resume).
    chunked_prefill: bool = False
    # Tokens the engine schedules per step (raised to max_model_len when smaller).
    max_num_batched_tokens: int = setting(8192, gt=0)
    # In-process engine (no engine subprocess): starts in seconds and allows in-place reload.
    in_process: bool = True
    # Answers sampled per prompt (one group; GRPO/GSPO's G).
    group_size: int = setting(8, gt=0)
    # Sampling temperature of RL rollouts (0 = greedy).
    temperature: float = setting(1.0, ge=0.0)
    # Nucleus sampling mass (1 = off).
    top_p: float = setting(1.0, gt=0.0, le=1.0)
    # Longest answer sampled, in tokens.
    max_tokens: int = setting(128, gt=0)
    # Strings that end an answer (besides EOS).
    stop: list[str] = field(default_factory=list)
    # Engine seed (per-request seeds come from the run's seed).
    seed: int = 0
    # A generation running when new weights arrive: "finish" it under the weights it started with, or
    # "continue" it under the new ones from the next chunk on (per-token versions recorded; rlsys/rollout/partial.py).
    partial_rollout: str = setting("finish", choices="rlsys.rollout.partial:PARTIAL_MODES")
    # Tokens per engine call with partial_rollout "continue": how long a sync waits at most, and how often
    # unfinished sequences are re-prefilled.
    partial_chunk_tokens: int = setting(64, ge=1)
    # Ray custom resources each rollout actor needs, e.g. {rollout_node: 1} for nodes started with
    # `ray start --resources='{"rollout_node": 1}'`; when no live node offers them (node lost), actors go anywhere.
    resources: dict[str, float] = field(default_factory=dict)
    # How an actor gets the model it starts from: "path" (same path on every node), "object_store" (files
    # shipped by Ray), "auto" (object_store when the run joined a cluster: ray.address set).
    model_transfer: str = setting("auto", choices=("auto", "path", "object_store"))
    # The pool's sizing, recovery and weight-sync policy: the rollout module's own dataclass, used as the
    # config section so the two never drift apart (ranges are checked by it at start-up).
    pool: PoolPolicy = field(default_factory=PoolPolicy)


@dataclass
class OptimConfig:
    """The optimizer's constants (AdamW), the same for every job. Each job's learning-rate schedule (lr,
    warm-up, decay, weight decay, annealing tail) is that job's own: `stages.<name>.lr`, ... for a stage,
    `smoke.lr` for the smoke check."""

    # AdamW (beta1, beta2).
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    # AdamW epsilon.
    eps: float = setting(1e-8, gt=0.0)
    # Gradient norm clip (0 = off).
    grad_clip: float = setting(1.0, ge=0.0)


@dataclass
class LearnerConfig:
    """DeepSpeed learner workers (data parallel)."""

    # Data-parallel learner actors (one DeepSpeed rank each).
    num_actors: int = setting(1, gt=0)
    # Ranks sharing each sequence (Ulysses sequence parallelism; 1 = off); must divide num_actors.
    sequence_parallel: int = setting(1, gt=0)
    # CPUs Ray reserves per learner actor.
    cpus_per_actor: float = setting(1.0, ge=0.0)
    # GPUs Ray reserves per learner actor (0 on CPU).
    gpus_per_actor: float = setting(0.0, ge=0.0)
    # DeepSpeed ZeRO stage (0 = plain data parallel; 3 = parameters sharded too).
    zero_stage: int = setting(0, choices=(0, 1, 2, 3))
    # "fp32" or "bf16".
    precision: str = setting("fp32", choices=("fp32", "bf16"))
    # Most sequences in one micro-batch (per rank).
    micro_batch_size: int = setting(8, gt=0)
    # Micro-batches are packed/length-grouped up to this many tokens.
    max_tokens_per_micro: int = setting(4096, gt=0)
    # Recompute activations in the backward pass (less memory, more compute).
    gradient_checkpointing: bool = False
    # torch threads per learner actor (CPU); null = max(1, cpus_per_actor). Rollout and learner
    # take turns in a synchronous RL step, so each may use every core while Ray counts fewer.
    num_threads: int | None = setting(None, gt=0)
    # "auto" picks nccl on CUDA and gloo on CPU.
    dist_backend: str = setting("auto", choices=("auto", "gloo", "nccl"))
    # Optimizer and LR schedule (stages replace the schedule: see OptimConfig).
    optim: OptimConfig = field(default_factory=OptimConfig)
    # Seed of the learners' torch and python RNGs (a stage sets its own `seed` here).
    seed: int = 0


def learner_settings(optim: dict[str, Any] | None = None, **overrides: Any) -> dict[str, Any]:
    """LearnerConfig's defaults as the plain dict a LearnerGroup takes, for code that builds learners without
    Hydra (tests, benchmarks, probes): `optim` sets optimizer constants and `Schedule` fields (lr,
    total_steps, ...; the learner's own defaults otherwise), `overrides` the learner keys. An unknown key
    fails, named."""
    cfg = asdict(LearnerConfig())
    cfg["optim"] |= asdict(Schedule())
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

    # Reward entries, summed by weight (docs/REWARDS.md).
    fns: list[Any] = field(default_factory=list)
    # Reward worker actors.
    num_workers: int = setting(1, gt=0)
    # CPUs Ray reserves per reward worker.
    cpus_per_worker: float = setting(0.5, ge=0.0)
    # Seconds one reward call may take on one sample before it counts as failed.
    timeout_s: float = setting(10.0, gt=0.0)
    # Score a failed (raised, timed-out, malformed) reward call gets.
    on_error_score: float = 0.0
    # Stop the run on the first failed reward call instead of scoring it on_error_score.
    fail_on_error: bool = False
    # A sample passes (counts as correct) when its combined reward is at least this.
    correct_threshold: float = 0.5
    # Per data source, the one term that decides pass/fail instead of the combined reward:
    # [{data_source: rlsys/ifeval, term: ifeval, threshold: 1.0}] (rlsys/reward/correct.py).
    correct_by: list[Any] = field(default_factory=list)


@dataclass
class HintsConfig:
    """Progressive hint sampling (Keye-VL 1.5 §4.4.2)."""

    # Sample hinted prompts for groups that failed (false = plain GSPO).
    enabled: bool = True
    # Highest hint level tried (1 concept ... 5 complete solution; hints/progressive.py).
    max_level: int = setting(5, ge=1, le=5)
    # Answers sampled per hinted prompt at each level.
    rollouts_per_level: int = setting(4, gt=0)
    # A group is "hard" (gets hints) when its pass rate is at most this.
    hard_pass_rate: float = setting(0.0, ge=0.0, le=1.0)
    # Keep the hinted prompt in the context the learner scores (trained on what it sampled).
    keep_hint_in_context: bool = True
    # Start this many levels below the cached minimal level next time the problem comes up.
    fade: int = setting(1, ge=0)
    # Optional hint generator for data without hint fields: {_target_: ..., ...}.
    generator: Any = None
    # Only rows of these data sources get hints (null: every row with hints or a generator).
    data_sources: list[str] | None = None


@dataclass
class RayConfig:
    """Ray runtime: local by default; `address: auto` (or host:port) joins a cluster."""

    # Cluster to join ("auto" or host:port); null = start a local Ray.
    address: str | None = None
    # CPUs the local Ray declares (null = all cores).
    num_cpus: int | None = setting(None, ge=0)
    # GPUs the local Ray declares (null = all detected).
    num_gpus: int | None = setting(None, ge=0)
    # Start Ray's web dashboard.
    include_dashboard: bool = False
    # Ray namespace of the run's actors.
    namespace: str = "rlsys"
    # Object store size of the local Ray, in bytes (null = Ray's default).
    object_store_memory: int | None = setting(None, gt=0)
    # Seconds to wait on an actor call (start-up, rollout, sync) before it fails.
    actor_timeout_s: float = setting(600.0, gt=0.0)
    # Ship this rlsys checkout (plug-ins, PYTHONPATH entries inside it) to every node as the job's Ray runtime_env
    # working_dir; null = when joining a cluster (address set). Off: every node must already import the same code.
    ship_code: bool | None = None
    # Paths (gitignore patterns) of the checkout never shipped: environments, outputs, model weights.
    code_excludes: list[str] = field(default_factory=lambda: [
        ".venv", ".git", "runs", "artifacts", "outputs", "multirun", "*.egg-info", "**/__pycache__", ".pytest_cache",
        ".ruff_cache", "*.safetensors", "*.bin", "*.pt"])


@dataclass
class LoggingConfig:
    """Metrics (always jsonl in the run dir), wandb (optional), progress bars and plots."""

    # Also log metrics to Weights & Biases.
    wandb: bool = False
    # wandb project name.
    wandb_project: str = "rlsys"
    # wandb mode (online, offline, disabled); respected unless WANDB_MODE is already set in the environment.
    wandb_mode: str = "offline"
    # Show progress bars of training loops.
    progress: bool = True
    # Write PNG metric curves when a run or stage ends.
    plots: bool = True


@dataclass
class SmokeConfig:
    """The spine check: one rollout group, one train step, one weight sync."""

    # The user prompt sampled.
    prompt: str = "What is 3 + 4?"
    # Answers sampled for it (one group; same meaning as rollout.group_size).
    group_size: int = setting(4, gt=0)
    # Longest answer, in tokens.
    max_tokens: int = setting(24, gt=0)
    # Largest allowed |vLLM logprob - learner logprob| per token (nats).
    logprob_tol: float = setting(1e-4, gt=0.0)
    # Learning rate of its one train step (large enough to move the logprobs measurably).
    lr: float = setting(1e-3, gt=0.0)


@dataclass
class EvalConfig:
    """Held-out evaluation: greedy math accuracy per tier, IF pass rate, preference accuracy."""

    # Held-out math problems scored (spread over the tiers).
    max_math: int = setting(300, ge=0)
    # Held-out instruction-following prompts scored.
    max_ifeval: int = setting(100, ge=0)
    # Held-out composed problems (math_chain_eval, tier 4) scored besides max_math; 0 = none.
    max_chain: int = setting(0, ge=0)
    # Held-out preference pairs scored.
    max_pairs: int = setting(200, ge=0)
    # Longest evaluated answer, in tokens.
    max_tokens: int = setting(160, gt=0)
    # Also report avg@k math accuracy at `sample_temperature` (0 = greedy only). RL sharpens the
    # sampling distribution first; this shows it before greedy accuracy moves.
    sample_k: int = setting(0, ge=0)
    # Sampling temperature of the avg@k evaluation.
    sample_temperature: float = setting(1.0, ge=0.0)
    # Also score held-out picture questions (vl_eval, vl_trap_eval; a vision-language model): eval/vl_acc*.
    visual: bool = setting(False)
    # Held-out visual rows scored (vl_eval spread over its tasks), and at most as many trap rows.
    max_visual: int = setting(100, ge=0)
    # Score the visual rows with their images removed (no placeholder, no image): the blind baseline.
    drop_images: bool = setting(False)
    # Also score held-out video questions (video_eval; a vision-language model): eval/video_acc*.
    video: bool = setting(False)
    # Held-out video rows scored (video_eval spread over its tasks).
    max_video: int = setting(100, ge=0)
    # Run the RL loop's periodic evaluations on a dedicated rollout actor in the background, on a snapshot of
    # the weights, logged against that policy version (eval/policy_version); the stage's first and last stay inline.
    background: bool = setting(False)


@dataclass
class Config:
    """Root config of every rlsys run."""

    # Name of the experiment; runs are written to runs/<exp_name>/<time>/.
    exp_name: str = "default"
    # Which job runs (rlsys/run.py JOBS): "smoke" (the spine check) or "pipeline" (the stages in `pipeline`).
    job: str = "smoke"
    # Seed of the run's sampling (rollout request seeds, evaluation).
    seed: int = 0
    # Shared cache of built artifacts (tiny model, task suite, stage outputs), reused across runs.
    artifacts_dir: str = "artifacts"
    # Set by the launcher to the Hydra run directory.
    run_dir: str = ""
    # RL stages: false, true (the newest run of this exp with a checkpoint of the stage) or a run directory.
    resume: Any = False
    # The base model.
    model: ModelConfig = field(default_factory=ModelConfig)
    # Training and evaluation data.
    data: DataConfig = field(default_factory=DataConfig)
    # vLLM rollout workers and sampling.
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    # DeepSpeed learner workers and optimizer.
    learner: LearnerConfig = field(default_factory=LearnerConfig)
    # Reward functions and workers.
    reward: RewardConfig = field(default_factory=RewardConfig)
    # Progressive hint sampling of RL stages.
    hints: HintsConfig = field(default_factory=HintsConfig)
    # Ray runtime.
    ray: RayConfig = field(default_factory=RayConfig)
    # Metrics, wandb, progress bars and plots.
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    # The smoke job's settings.
    smoke: SmokeConfig = field(default_factory=SmokeConfig)
    # Held-out evaluation of stages.
    eval: EvalConfig = field(default_factory=EvalConfig)
    # Stage definitions by name.
    stages: dict[str, StageConfig] = field(default_factory=dict)
    # The ordered stages a pipeline job runs (each builds what it depends on first).
    pipeline: list[str] = field(default_factory=list)

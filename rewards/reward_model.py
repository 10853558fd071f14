"""Scalar reward model as a reward: an HF sequence-classification model scores (prompt, completion).

The model directory is what `+exp=rm` writes: `AutoModelForSequenceClassification` weights with
`num_labels=1` (e.g. Qwen3ForSequenceClassification) plus the tokenizer and its chat template. The
prompt and completion are rendered as a user / assistant conversation through that template, scored in
padded batches, and the model's single logit is the reward (optionally squashed into (0, 1)).
"""

from __future__ import annotations

import inspect
import math
from pathlib import Path
from typing import Any

_DTYPES = ("float32", "bfloat16", "float16")


def _check_settings(model_path: str, batch_size: int, temperature: float, dtype: str) -> None:
    if not (Path(model_path) / "config.json").is_file():
        raise ValueError(f"model_path {str(model_path)!r} has no config.json (expected a save_pretrained directory)")
    if batch_size < 1 or temperature <= 0:
        raise ValueError(f"batch_size must be >= 1 and temperature > 0, got {batch_size} and {temperature}")
    if dtype not in _DTYPES:
        raise ValueError(f"dtype must be one of {list(_DTYPES)}, got {dtype!r}")


def _sigmoid(x: float) -> float:
    # Split by sign so exp never overflows for large |x|.
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    z = math.exp(x)
    return z / (1.0 + z)


class RewardModelReward:
    """Reward from a trained scalar reward model; `_target_: reward_model` with `kwargs.model_path`.

    The model is loaded once per worker process: in `setup()`, which the reward manager calls right
    after construction (under its load timeout), or on the first call otherwise. Nothing is loaded where
    the config is validated. Returns `{"score": s, "raw_score": logit}`; with `sigmoid: true`,
    `s = sigmoid(logit / temperature)`, else `s = logit`.

    Sequences are right-padded (so padding never shifts a real token's position) and truncated from
    the left to `max_length` tokens (the end of the completion, where the score is read, is kept).
    """

    def __init__(
        self,
        model_path: str,
        batch_size: int = 16,
        max_length: int | None = None,
        sigmoid: bool = False,
        temperature: float = 1.0,
        system_prompt: str | None = None,
        device: str = "auto",
        dtype: str = "float32",
        num_threads: int | None = None,
    ) -> None:
        _check_settings(model_path, batch_size, temperature, dtype)
        self.model_path = str(model_path)
        self.batch_size = batch_size
        self.max_length = max_length
        self.sigmoid = sigmoid
        self.temperature = temperature
        self.system_prompt = system_prompt
        self.device = device
        self.dtype = dtype
        self.num_threads = num_threads
        self._model: Any = None
        self._tokenizer: Any = None
        self._device: Any = None
        self._max_length: int | None = None

    @classmethod
    def validate_static(cls, kwargs: dict) -> None:
        """Cheap checks for start-up (no model load): the directory exists, the settings make sense."""
        bound = inspect.signature(cls).bind(**kwargs)
        bound.apply_defaults()
        args = bound.arguments
        _check_settings(args["model_path"], args["batch_size"], args["temperature"], args["dtype"])

    def __repr__(self) -> str:
        return f"RewardModelReward(model_path={self.model_path!r}, sigmoid={self.sigmoid})"

    def __getstate__(self) -> dict:
        # Ship the settings, not the weights; a copy loads its own model where it runs.
        return {**self.__dict__, "_model": None, "_tokenizer": None}

    def setup(self) -> None:
        """Load the tokenizer and model (idempotent)."""
        if self._model is not None:
            return
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        if self.num_threads:
            torch.set_num_threads(self.num_threads)
        tokenizer = AutoTokenizer.from_pretrained(self.model_path)
        if not getattr(tokenizer, "chat_template", None):
            raise ValueError(f"the tokenizer in {self.model_path!r} has no chat template")
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        tokenizer.padding_side = "right"
        tokenizer.truncation_side = "left"
        device = self.device
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        model = AutoModelForSequenceClassification.from_pretrained(self.model_path, dtype=getattr(torch, self.dtype))
        if model.config.num_labels != 1:
            raise ValueError(f"{self.model_path!r} has num_labels={model.config.num_labels}; a scalar reward "
                             "model has 1")
        # The score is read at the last non-pad token, which needs the pad id (the learner sets it the same way).
        if model.config.pad_token_id is None:
            model.config.pad_token_id = tokenizer.pad_token_id
        self._device = torch.device(device)
        self._model = model.to(self._device).eval().requires_grad_(False)
        self._tokenizer = tokenizer
        limits = [n for n in (self.max_length, getattr(model.config, "max_position_embeddings", None)) if n]
        self._max_length = min(limits) if limits else None

    def render(self, prompt: str, completion: str) -> str:
        """The conversation as the reward model reads it."""
        if self._tokenizer is None:
            self.setup()
        messages = [{"role": "user", "content": prompt}]
        if self.system_prompt:
            messages.insert(0, {"role": "system", "content": self.system_prompt})
        # Exactly what `+exp=rm` trains on (rlsys.data.encode.encode_response): the prompt with the
        # assistant turn opened, the answer, then the end-of-turn token, whose position is scored.
        opened = self._tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return opened + completion + self._tokenizer.eos_token

    def raw_scores(self, prompts: list[str], completions: list[str]) -> list[float]:
        """The model's logit per (prompt, completion), in input order."""
        import torch

        texts = [self.render(p, c) for p, c in zip(prompts, completions)]
        # Similar lengths together keep padding small; right padding makes the result order-independent.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = [0.0] * len(texts)
        with torch.inference_mode():
            for start in range(0, len(order), self.batch_size):
                idx = order[start : start + self.batch_size]
                enc = self._tokenizer(
                    [texts[i] for i in idx],
                    padding=True,
                    truncation=self._max_length is not None,
                    max_length=self._max_length,
                    add_special_tokens=False,  # the chat template already placed them
                    return_tensors="pt",
                ).to(self._device)
                logits = self._model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).logits
                for i, value in zip(idx, logits[:, 0].float().tolist()):
                    out[i] = value
        return out

    def _result(self, raw: float) -> dict:
        score = _sigmoid(raw / self.temperature) if self.sigmoid else raw
        return {"score": score, "raw_score": raw}

    def score_batch(self, prompts: list[str], completions: list[str], fields_list: list[dict]) -> list[dict]:
        """Batched scoring; `fields_list` (the rows' other fields) is not used by the model."""
        if not len(prompts) == len(completions) == len(fields_list):
            raise ValueError("prompts, completions and fields_list must have the same length")
        return [self._result(raw) for raw in self.raw_scores(list(prompts), list(completions))]

    def __call__(self, prompt: str, completion: str, **fields: object) -> dict:
        return self._result(self.raw_scores([prompt], [completion])[0])

"""Plain-text pretraining corpus drawn from the task generators (train split only).

Document kinds, mixed by `DOC_WEIGHTS`: worked problems (question + step-by-step solution), problems with
one hint, arithmetic fact tables, procedure prose, instruction-following responses and format examples.
Every math problem and every arithmetic fact comes from the train split (held-out keys are skipped), so a
model pretrained on this corpus has never seen a held-out problem.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

from rlsys.data.tasks.ifeval_tasks import PROCEDURES
from rlsys.data.tasks.math_tasks import (
    DEFAULT_EVAL_FRACTION,
    DEFAULT_SPLIT_SALT,
    Problem,
    hints_for,
    iter_problems,
    solution_text,
    split_of,
)

DOC_WEIGHTS = {"worked": 0.45, "hinted": 0.1, "facts": 0.2, "prose": 0.05, "ifeval": 0.12, "format": 0.08}
_QUESTION_STYLES = (("Question: ", "Answer:\n"), ("Problem: ", "Solution:\n"), ("Q: ", "A:\n"))


class CorpusBuilder:
    """Draws documents; `used_keys` records every canonical math key that went into the corpus."""

    def __init__(
        self,
        seed: int,
        if_rows: list[dict],
        format_rows: list[dict],
        salt: str = DEFAULT_SPLIT_SALT,
        eval_fraction: float = DEFAULT_EVAL_FRACTION,
    ) -> None:
        self.rng = random.Random(f"corpus|{seed}")
        self.salt, self.eval_fraction = salt, eval_fraction
        self.streams = {
            t: iter_problems(t, "train", seed, salt, eval_fraction, stream="corpus") for t in (1, 2, 3)
        }
        self.if_rows, self.format_rows = if_rows, format_rows
        self.used_keys: set[str] = set()

    def _problem(self) -> Problem:
        problem = next(self.streams[self.rng.choice((1, 1, 2, 2, 3))])
        self.used_keys.add(problem.key)
        return problem

    def _train_key(self, key: str) -> bool:
        if split_of(key, self.salt, self.eval_fraction) != "train":
            return False
        self.used_keys.add(key)
        return True

    def worked(self) -> str:
        q_tag, a_tag = self.rng.choice(_QUESTION_STYLES)
        parts = []
        for _ in range(self.rng.randint(1, 3)):
            p = self._problem()
            worked, answer = p.solve()
            parts.append(f"{q_tag}{p.prompt}\n{a_tag}{solution_text(worked.lines, answer)}")
        return "\n\n".join(parts)

    def hinted(self) -> str:
        p = self._problem()
        level = self.rng.randint(1, 4)
        worked, answer = p.solve()
        hint = hints_for(p)[level - 1]
        return f"Problem: {p.prompt}\n\nHint: {hint}\n\nSolution:\n{solution_text(worked.lines, answer)}"

    def facts(self) -> str:
        kind = self.rng.choice(("times", "add", "sub", "div"))
        k = self.rng.randint(0 if kind in ("add", "times") else 1, 12 if kind != "add" else 9)
        lines: list[str] = []
        if kind == "times":
            lines.append(f"The {k} times table:")
            lines += [
                f"{k} * {j} = {k * j}." for j in range(13) if self._train_key(f"*:{min(k, j)}:{max(k, j)}")
            ]
        elif kind == "add":
            lines.append(f"Adding to {k}:")
            lines += [
                f"{k} + {j} = {k + j}." for j in range(10) if self._train_key(f"+:{min(k, j)}:{max(k, j)}")
            ]
        elif kind == "sub":
            top = self.rng.randint(k, k + 9)
            lines.append(f"Taking away from {top}:")
            lines += [
                f"{top} - {j} = {top - j}." for j in range(min(top, 9) + 1) if self._train_key(f"-:{top}:{j}")
            ]
        else:
            lines.append(f"Dividing by {max(k, 2)}:")
            b = max(k, 2)
            lines += [f"{b * q} / {b} = {q}." for q in range(1, 13) if self._train_key(f"/:{b * q}:{b}")]
        return "\n".join(lines)

    def prose(self) -> str:
        topic, sentences = PROCEDURES[self.rng.choice(sorted(PROCEDURES))]
        return f"{topic[0].upper()}{topic[1:]}.\n" + " ".join(sentences)

    def ifeval(self) -> str:
        if not self.if_rows:
            return self.worked()
        row = self.rng.choice(self.if_rows)
        return f"Request: {row['prompt']}\n\nResponse:\n{row['response']}"

    def format(self) -> str:
        if not self.format_rows:
            return self.worked()
        row = self.rng.choice(self.format_rows)
        return f"Request: {row['prompt']}\n\nResponse:\n{row['response']}"

    def docs(self, n: int) -> Iterator[dict]:
        kinds, weights = zip(*DOC_WEIGHTS.items())
        for i in range(n):
            kind = self.rng.choices(kinds, weights=weights)[0]
            text = getattr(self, kind)()
            yield {"id": f"pretrain-{i:07d}", "text": text}


def pretrain_rows(
    n_docs: int, seed: int, if_rows: list[dict], format_rows: list[dict]
) -> tuple[list[dict], set[str]]:
    """`n_docs` documents and the set of math keys they contain (all train-split)."""
    builder = CorpusBuilder(seed, if_rows, format_rows)
    docs = list(builder.docs(n_docs))
    return docs, builder.used_keys

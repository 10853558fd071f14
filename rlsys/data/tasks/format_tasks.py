"""Format-adherence rows: the same small problems answered as JSON, markdown, a code block or with a
think block. Row: `{"id", "data_source": "rlsys/format", "task": "format", "format", "prompt", "response"}`.

`format` is one of json / markdown / code / think; `response` is the SFT target. Math-based rows draw
their problems from the requested split, so held-out problems never reach training text this way either.
"""

from __future__ import annotations

import json
import random

from rlsys.data.tasks.math_tasks import Problem, iter_problems, solution_text, split_of

DATA_SOURCE = "rlsys/format"
FORMATS = ("json", "markdown", "code", "think")

_JSON_ASKS = (
    'Answer with a JSON object that has the keys "question" and "answer". {q}',
    'Reply only with JSON: an object with "question" and "answer" keys. {q}',
)
_MARKDOWN_ASKS = (
    "Answer in markdown: start with a heading, then list the steps as bullet points. {q}",
    "Use markdown with a heading and a bullet list of steps to answer this. {q}",
)
_THINK_ASKS = (
    "Think step by step inside <think> and </think>, then give the final answer. {q}",
    "First reason inside <think> tags, then answer after the closing tag. {q}",
)
_CODE_ASKS = (
    "Write a Python function named {name} that {does}. Put the code in a code block.",
    "In a Python code block, write a function {name} that {does}.",
)
# (function name, what it does, parameters, body expression); {k} is filled with a small number.
_FUNCTIONS = (
    ("add", "returns the sum of two numbers", "a, b", "a + b"),
    ("difference", "returns the first number minus the second", "a, b", "a - b"),
    ("product", "returns the product of two numbers", "a, b", "a * b"),
    ("double", "returns twice a number", "x", "2 * x"),
    ("square", "returns a number times itself", "x", "x * x"),
    ("is_even", "tells whether a number is even", "n", "n % 2 == 0"),
    ("larger", "returns the larger of two numbers", "a, b", "a if a > b else b"),
    ("total", "returns the sum of a list of numbers", "numbers", "sum(numbers)"),
    ("add_k", "adds {k} to a number", "x", "x + {k}"),
    ("times_k", "multiplies a number by {k}", "x", "x * {k}"),
    ("minus_k", "takes {k} away from a number", "x", "x - {k}"),
)


def _code_row(rng: random.Random) -> tuple[str, str, str]:
    name, does, args, body = rng.choice(_FUNCTIONS)
    k = rng.randint(2, 12)
    name = name.replace("_k", f"_{k}")
    does, body = does.format(k=k), body.format(k=k)
    prompt = rng.choice(_CODE_ASKS).format(name=name, does=does)
    response = f"```python\ndef {name}({args}):\n    return {body}\n```"
    return f"code:{name}:{args}:{body}", prompt, response


def _math_row(fmt: str, problem: Problem, rng: random.Random) -> tuple[str, str]:
    worked, answer = problem.solve()
    q = problem.prompt
    if fmt == "json":
        prompt = rng.choice(_JSON_ASKS).format(q=q)
        return prompt, json.dumps({"question": q, "answer": answer})
    if fmt == "markdown":
        prompt = rng.choice(_MARKDOWN_ASKS).format(q=q)
        steps = "\n".join(f"- {line}" for line in worked.lines)
        return prompt, f"# Solution\n\n{steps}\n\nThe answer is **{answer}**."
    prompt = rng.choice(_THINK_ASKS).format(q=q)
    return prompt, f"<think>\n{chr(10).join(worked.lines)}\n</think>\n{solution_text([], answer)}"


def format_rows(
    n: int, seed: int, split: str, salt: str = "rlsys-format-v1", eval_fraction: float = 0.2
) -> list[dict]:
    """`n` rows cycling through the four formats; math-based ones use tier 1-2 problems of `split`."""
    rng = random.Random(f"format|{seed}|{split}")
    problems = {tier: iter_problems(tier, split, seed, stream="format") for tier in (1, 2)}
    rows: list[dict] = []
    seen: set[str] = set()
    attempts = 0
    while len(rows) < n:
        attempts += 1
        fmt = FORMATS[len(rows) % len(FORMATS)]
        if fmt == "code":
            key, prompt, response = _code_row(rng)
            # Code tasks are few; once a split's share is used up they may repeat rather than cross over.
            if split_of(key, salt, eval_fraction) != split or (key in seen and attempts < 50 * n):
                continue
        else:
            problem = next(problems[rng.choice((1, 2))])
            key = f"{fmt}:{problem.key}"
            prompt, response = _math_row(fmt, problem, rng)
        seen.add(key)
        rows.append(
            {
                "id": f"format-{split}-{len(rows):06d}",
                "data_source": DATA_SOURCE,
                "task": "format",
                "format": fmt,
                "prompt": prompt,
                "response": response,
            }
        )
    return rows

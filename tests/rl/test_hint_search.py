"""The minimal-level hint search inside GroupCollector, driven by a scripted policy that answers correctly only
when its prompt carries a hint of at least the problem's level, and scored by the real math reward."""

from __future__ import annotations

import random
import re

from omegaconf import OmegaConf

from hints.progressive import HintSource
from rewards.math import math_reward
from rlsys.config.schema import Config
from rlsys.config.schema_stages import RLConfig
from rlsys.data.loading import HINT_PREFIX
from rlsys.rl.collector import GroupCollector
from rlsys.rl.state import ProblemSampler, RLState
from rlsys.rollout.types import GroupResult, Sample

GROUP = 4


class CharTokenizer:
    """One token per character, so the scripted pool can read the prompt it was sent."""

    eos_token_id = 0

    def apply_chat_template(self, messages: list[dict], tokenize: bool = False,
                            add_generation_prompt: bool = False) -> str:
        text = "".join(f"<{m['role']}>{m['content']}</{m['role']}>" for m in messages)
        return text + ("<assistant>" if add_generation_prompt else "")

    def __call__(self, text: str, add_special_tokens: bool = False) -> dict:
        return {"input_ids": [ord(c) for c in text]}


class ScriptedPool:
    """Answers a problem correctly (half of the group) only from hint level `needs[id]` on (None: never; a negative
    level: every answer right, too easy for the filter).

    Both pool interfaces: `generate` (one call, results in request order) and `submit` / `iter_results` / `ready`,
    which deliver one queued result at a time in `order` ("fifo", "lifo" or "shuffle" with `seed`), the results of
    the problems in `hold` only once nothing else is queued. With `batch`, `ready` reports every queued result
    (so they share a reward call); else none (one call per result). `log` records ("submit" | "deliver", id, level).
    """

    def __init__(self, rows: list[dict], needs: dict[str, int | None], order: str = "fifo", seed: int = 0,
                 hold: tuple[str, ...] = (), batch: bool = False) -> None:
        self.rows, self.needs = rows, needs
        self.calls: list[list[tuple[str, int]]] = []
        self.prompts: dict[tuple[str, int], str] = {}
        self.order, self.rng, self.hold, self.batch = order, random.Random(seed), set(hold), batch
        self.queue: list[tuple[tuple[str, int], GroupResult]] = []
        self.log: list[tuple[str, str, int]] = []

    def _key(self, req) -> tuple[str, int]:
        row = self.rows[req.meta["row"]]
        prompt = "".join(chr(t) for t in req.prompt_token_ids)
        # The level is read from the prompt text, not from the request's metadata.
        found = re.search(re.escape(HINT_PREFIX) + r"level (\d) of", prompt)
        level = int(found.group(1)) if found else 0
        assert level == req.meta["level"]
        self.prompts[(row["id"], level)] = prompt
        return row["id"], level

    def _answer(self, req) -> GroupResult:
        pid, level = self._key(req)
        row = self.rows[req.meta["row"]]
        need = self.needs[pid]
        good = need is not None and level >= need
        texts = [f"So \\boxed{{{row['answer'] if good and (i % 2 == 0 or need < 0) else 'nope'}}}."
                 for i in range(req.n)]
        samples = [Sample([ord(c) for c in t], t, [0.0] * len(t), "stop") for t in texts]
        return GroupResult(req.request_id, req.prompt_token_ids, samples, 0)

    def generate(self, requests: list) -> list[GroupResult]:
        out = [self._answer(req) for req in requests]
        self.calls.append([self._key(req) for req in requests])
        return out

    def submit(self, requests: list) -> None:
        keys = [self._key(req) for req in requests]
        self.calls.append(keys)
        self.queue += [(key, self._answer(req)) for key, req in zip(keys, requests)]
        self.log += [("submit", *key) for key in keys]

    def _free(self) -> list[int]:
        free = [i for i, (key, _) in enumerate(self.queue) if key[0] not in self.hold]
        return free or list(range(len(self.queue)))

    def ready(self) -> int:
        return len(self._free()) if self.batch and self.queue else 0

    def iter_results(self):
        while self.queue:
            free = self._free()
            pick = free[0] if self.order == "fifo" else free[-1] if self.order == "lifo" else self.rng.choice(free)
            key, res = self.queue.pop(pick)
            self.log.append(("deliver", *key))
            yield res


class MathScorer:
    """The reward workers' contract, backed by the real math reward in-process."""

    def score(self, samples: list[dict]) -> tuple[list[float], list[dict], dict[str, float]]:
        results = [math_reward(s["prompt"], s["completion"], s["answer"]) for s in samples]
        scores = [float(r["score"]) for r in results]
        extras = [{"correct": s == 1.0} for s in scores]
        return scores, extras, {"reward/correct": sum(scores) / len(scores)}


def _rows(n: int = 4) -> list[dict]:
    return [{"id": f"p{i}", "prompt": f"What is {i} + {i}?", "answer": str(2 * i), "data_source": "rlsys/math",
             "hints": [f"level {k} of p{i}" for k in range(1, 6)]} for i in range(n)]


def _collector(needs: dict[str, int | None], fade: int = 1, pool: dict | None = None, n_rows: int = 4,
               batch_groups: int | None = None, refill_rounds: int = 0, **hints) -> tuple[GroupCollector, ScriptedPool]:
    rows = _rows(n_rows)
    cfg = OmegaConf.structured(Config)
    cfg.rollout.group_size = GROUP
    cfg.hints.rollouts_per_level = GROUP
    cfg.hints.fade = fade
    for key, value in hints.items():
        cfg.hints[key] = value
    rl = OmegaConf.structured(RLConfig)
    rl.batch_groups, rl.max_refill_rounds = batch_groups or len(rows), refill_rounds
    scripted = ScriptedPool(rows, needs, **(pool or {}))
    return GroupCollector(rows, CharTokenizer(), scripted, MathScorer(), HintSource(), cfg, rl), scripted


def _levels(pool: ScriptedPool, pid: str) -> list[int]:
    return [level for call in pool.calls for p, level in call if p == pid]


def _step(collector: GroupCollector, state: RLState, step: int) -> tuple[list, dict]:
    return collector.collect(step, state, ProblemSampler(len(collector.rows), seed=step))


def test_search_finds_the_minimal_level_and_leaves_solved_problems_alone() -> None:
    needs = {"p0": 0, "p1": 3, "p2": None, "p3": 1}
    collector, pool = _collector(needs)
    state = RLState()
    kept, metrics = _step(collector, state, 0)
    assert _levels(pool, "p0") == [0]
    assert _levels(pool, "p1") == [0, 1, 2, 3]
    assert _levels(pool, "p2") == [0, 1, 2, 3, 4, 5]
    assert _levels(pool, "p3") == [0, 1]
    # The four problems go out together; each next hint level goes out alone, as soon as the last one failed.
    assert [len(c) for c in pool.calls] == [4] + [1] * 9
    # The hint goes after the query, in the user turn; the solved-without-hint problem never saw one.
    assert "What is 1 + 1?" + HINT_PREFIX + "level 3 of p1</user>" in pool.prompts[("p1", 3)]
    assert HINT_PREFIX not in pool.prompts[("p0", 0)]
    # Kept: p0 in the filter's range at level 0, and the groups sampled at the minimal level.
    assert sorted((g.row["id"], g.level, g.n_correct) for g in kept) == [("p0", 0, 2), ("p1", 3, 2), ("p3", 1, 2)]
    assert state.hint_cache.levels == {"p1": 3, "p2": 5, "p3": 1}
    assert metrics["hints/min_level_3"] == 1.0 and metrics["hints/min_level_1"] == 1.0
    assert metrics["hints/min_level_unsolved"] == 1.0 and "hints/min_level_0" not in metrics
    assert metrics["filter/rescued"] == 2.0 and metrics["filter/unsolved"] == 1.0
    assert metrics["filter/in_range"] == 1.0 and metrics["filter/kept"] == 3.0
    # First-round quality is the policy's own (no hints): 3 of 4 groups failed, 2 of 16 answers right.
    assert metrics["rollout/all_fail_share"] == 0.75 and metrics["rollout/accuracy"] == 2 / 16
    # Every sampled (level, correct count) lands in the Table 9 statistics.
    assert {lv: sorted(c) for lv, c in state.hint_stats.attempts.items()} == {
        0: [0, 0, 0, 2], 1: [0, 0, 2], 2: [0, 0], 3: [0, 2], 4: [0], 5: [0]}


def test_cached_level_fades_as_the_policy_improves() -> None:
    needs: dict[str, int | None] = {"p0": 0, "p1": 4, "p2": 0, "p3": 0}
    collector, pool = _collector(needs, fade=1)
    state = RLState()
    _step(collector, state, 0)
    assert state.hint_cache.levels == {"p1": 4}
    # The policy got better: p1 now needs no hint. Each visit starts one level below the cached minimum,
    # is solved there, and the cache follows it down to no entry.
    needs["p1"] = 0
    starts = []
    for step in range(1, 5):
        pool.calls.clear()
        kept, _ = _step(collector, state, step)
        starts.append(_levels(pool, "p1"))
        assert [g.level for g in kept if g.row["id"] == "p1"] == [starts[-1][0]]
    assert starts == [[3], [2], [1], [0]]
    assert state.hint_cache.levels == {}


def test_cached_level_that_no_longer_suffices_climbs_back() -> None:
    needs: dict[str, int | None] = {"p0": 0, "p1": 3, "p2": 0, "p3": 0}
    collector, pool = _collector(needs, fade=2)
    state = RLState()
    _step(collector, state, 0)
    pool.calls.clear()
    # Started fade=2 below the cached 3: level 1 fails, the search goes on from 2 and stops at 3 again.
    kept, metrics = _step(collector, state, 1)
    assert _levels(pool, "p1") == [1, 2, 3]
    assert state.hint_cache.levels == {"p1": 3}
    assert metrics["hints/min_level_3"] == 1.0
    assert ("p1", 3) in [(g.row["id"], g.level) for g in kept]


def test_hints_off_or_capped() -> None:
    collector, pool = _collector({"p0": 0, "p1": 3, "p2": None, "p3": 0}, enabled=False)
    state = RLState()
    _, metrics = _step(collector, state, 0)
    assert [lv for call in pool.calls for _, lv in call] == [0, 0, 0, 0]
    assert state.hint_cache.levels == {} and not any(k.startswith("hints/") for k in metrics)

    collector, pool = _collector({"p0": 0, "p1": 3, "p2": None, "p3": 0}, max_level=2)
    state = RLState()
    _, metrics = _step(collector, state, 0)
    assert _levels(pool, "p1") == [0, 1, 2] and _levels(pool, "p2") == [0, 1, 2]
    assert state.hint_cache.levels == {"p1": 2, "p2": 2} and metrics["hints/min_level_unsolved"] == 2.0

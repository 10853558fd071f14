"""`rollout.stop` end to end: the RL collector's real path (config -> pool -> vLLM -> reward workers).

The stop string is not hard-coded: it is a whole word the tiny model emits greedily without a stop,
so the same greedy request with the stop must end exactly there, and the run without it goes past.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from hints.progressive import HintSource
from rlsys.config.schema import Config
from rlsys.reward.plugins import load_reward_fns
from rlsys.reward.workers import RewardActor
from rlsys.rl.collector import Group, GroupCollector

pytestmark = pytest.mark.slow

ROW = {"id": "m-1", "prompt": "What is 3 + 4?", "answer": "7", "data_source": "rlsys/math"}
MAX_TOKENS = 48


def record_completion(prompt: str, completion: str, record_path: str = "", **fields) -> float:
    """Test reward: appends what it was given to `record_path`; scores the completion's length."""
    with open(record_path, "a") as fh:
        fh.write(json.dumps({"completion": completion, "finish_reason": fields.get("finish_reason"),
                             "completion_tokens": fields.get("completion_tokens")}) + "\n")
    return float(len(completion))


@pytest.fixture(scope="module")
def run(pool, tiny_model_dir, tmp_path_factory):
    """`run(stop)`: one greedy group through the collector -> (its group, what the reward saw)."""
    from transformers import AutoTokenizer

    record = tmp_path_factory.mktemp("stop") / "seen.jsonl"
    specs = load_reward_fns([{"_target_": f"{__name__}.record_completion", "kwargs": {"record_path": str(record)}}])
    rewards = RewardActor(specs, {"fail_on_error": True}, list(sys.path))
    cfg = OmegaConf.structured(Config)
    cfg.rollout.temperature, cfg.rollout.max_tokens = 0.0, MAX_TOKENS
    cfg.hints.enabled = False
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    collector = GroupCollector([dict(ROW)], tok, pool, rewards, HintSource(), cfg, None)

    def sample(stop: list[str]) -> tuple[Group, dict]:
        cfg.rollout.stop = stop
        (group,) = collector._sample_and_score(0, 0, [(0, 0)], 1)
        return group, json.loads(Path(record).read_text().splitlines()[-1])

    yield tok, sample
    rewards.close()


@pytest.fixture(scope="module")
def free(run):
    """The run without a stop, and a stop string picked from it: the text of its first whole-word token
    (after the first) that first occurs in the text exactly where that token starts."""
    tok, sample = run
    group, seen = sample([])
    s = group.samples[0]
    for i in range(1, len(s.token_ids) - 1):
        piece = tok.decode([s.token_ids[i]], skip_special_tokens=True)
        word = piece.strip()
        start = len(tok.decode(s.token_ids[:i], skip_special_tokens=True))
        if len(word) >= 2 and word.isascii() and word.isalnum() and s.text.find(piece) == start:
            return group, seen, piece, i
    pytest.fail(f"no whole-word token to stop at in the greedy completion {s.text!r}")


def test_without_the_stop_greedy_generation_runs_past_it(free) -> None:
    group, seen, stop, i = free
    s = group.samples[0]
    assert s.finish_reason == "length" and len(s.token_ids) == MAX_TOKENS > i + 1
    assert stop in s.text and len(s.text) > s.text.index(stop) + len(stop)
    assert seen == {"completion": s.text, "finish_reason": "length", "completion_tokens": MAX_TOKENS}


def test_stop_string_ends_the_sample_and_the_reward_sees_the_text_before_it(run, free) -> None:
    tok, sample = run
    free_group, _, stop, i = free
    full = free_group.samples[0]
    group, seen = sample([stop])
    s = group.samples[0]
    assert s.finish_reason == "stop"
    # The text stops before the stop string (vLLM's include_stop_str_in_output is off) ...
    assert s.text == full.text[: full.text.index(stop)] and stop not in s.text
    # ... while tokens and logprobs run through the token that completed it, and no further.
    assert s.token_ids == full.token_ids[: i + 1]
    assert tok.decode(s.token_ids, skip_special_tokens=True) == s.text + stop
    assert len(s.logprobs) == len(s.token_ids)
    assert s.logprobs == pytest.approx(full.logprobs[: i + 1], abs=1e-4)
    assert seen == {"completion": s.text, "finish_reason": "stop", "completion_tokens": i + 1}
    assert group.scores == [float(len(s.text))]

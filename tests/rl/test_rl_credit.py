"""`rl.credit`: config checks, and the per-token advantages the controller hands to the learner."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from rlsys.config.schema import RLConfig
from rlsys.config.validate import ConfigError
from rlsys.rl.collector import Group
from rlsys.rl.loop import TokenCredit, build_credit, check_kl_sources, group_advantages, update_policy
from rlsys.rollout.types import Sample
from rlsys.stages.context import StageContext

PIECES = ["3", " *", " 5", " =", " 2", "1", " 15", ".", "<eos>"]


def decode(ids: list[int]) -> str:
    return "".join(PIECES[i] for i in ids if PIECES[i] != "<eos>")


def _ctx(**rl: object) -> StageContext:
    stage = SimpleNamespace(rl=RLConfig(**rl))
    return StageContext(cfg=None, name="rl", stage=stage, input_model="", out_dir=Path("."))


@pytest.mark.parametrize(("rl", "message"), [
    ({"credit": "tokens"}, "'stages.rl.rl.credit' = 'tokens'"),
    ({"credit": "error_tokens", "loss": "gspo"}, "'stages.rl.rl.loss' is 'gspo'"),
    ({"credit": "error_tokens", "loss": "gspo_token", "step_penalty": -0.1}, "'stages.rl.rl.step_penalty'"),
    ({"credit": "error_tokens", "loss": "gspo_token", "step_verifier": "rewards.steps.nope"}, "'stages.rl.rl.step_verifier'"),
])
def test_bad_credit_config_names_the_key(rl: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        build_credit(_ctx(**rl), tokenizer=None)


def test_sequence_credit_builds_nothing() -> None:
    assert build_credit(_ctx(), tokenizer=None) is None


class RecordingLearners:
    """Stands in for the learner group at the batch boundary: keeps what train_step is given."""

    def __init__(self) -> None:
        self.batches: list[dict] = []
        self.recomputed = 0

    def compute_logprobs(self, batch: dict) -> list[list[float]]:
        self.recomputed += 1
        return [[-9.0] * len(ids) for ids in batch["input_ids"]]

    def train_step(self, batch: dict, loss: str, kwargs: dict) -> dict[str, float]:
        self.batches.append(batch)
        return {"loss": 0.0}


def _group() -> Group:
    right = Sample(token_ids=[0, 1, 2, 3, 6, 7, 8], text="3 * 5 = 15.", logprobs=[-0.1] * 7, finish_reason="stop")
    wrong = Sample(token_ids=[0, 1, 2, 3, 4, 5, 7, 8], text="3 * 5 = 21.", logprobs=[-0.2] * 8, finish_reason="stop")
    return Group(row={"id": "p"}, row_index=0, level=0, prompt_ids=[9, 9], train_prompt_ids=[9, 9],
                 samples=[right, wrong], version=0, scores=[1.0, 0.0], correct=[True, False])


def test_update_policy_puts_the_failed_answers_advantage_on_its_false_result() -> None:
    from rewards.steps import false_results

    cfg = SimpleNamespace(seed=0, hints=SimpleNamespace(keep_hint_in_context=True))
    rl = RLConfig(loss="gspo_token", credit="error_tokens", mini_batches=1)
    learners = RecordingLearners()
    metrics, _ = update_policy(learners, [_group()], cfg, rl, step=0, credit=TokenCredit(decode, false_results))
    (batch,) = learners.batches
    right, wrong = batch["fields"]["advantages"]
    # Group of two with rewards (1, 0): mean 0.5, population std 0.5, so Â = ±1 (up to the 1e-6 in the std).
    assert right[:2] == [0.0, 0.0] and all(a == pytest.approx(1.0, rel=1e-5) for a in right[2:])
    assert wrong[:2] == [0.0, 0.0]
    # Tokens " 2" and "1" state the false 21; every other token of the failed answer gets 0.
    assert [a == pytest.approx(-1.0, rel=1e-5) for a in wrong[2:]] == [False, False, False, False, True, True, False, False]
    assert all(a == 0.0 for i, a in enumerate(wrong[2:]) if i not in (4, 5))
    assert metrics["train/credit_localised"] == 1.0
    assert metrics["train/credit_error_token_share"] == pytest.approx(2 / 15)


def test_group_advantages_see_the_whole_step() -> None:
    # Two groups of one step: a verifier split [1, 0] and a tie broken by a 0.1-weight term [0.1, 0].
    def group(scores: list[float]) -> Group:
        return Group(row={"id": "p"}, row_index=0, level=0, prompt_ids=[9], train_prompt_ids=[9],
                     samples=[], version=0, scores=scores)

    groups = [group([1.0, 0.0]), group([0.1, 0.0])]
    per_group = group_advantages(groups, "grpo_group")
    assert per_group[0] == pytest.approx([1.0, -1.0], abs=1e-4) and per_group[1] == pytest.approx([1.0, -1.0], abs=1e-3)
    # One scale for the step, sqrt(mean of the centred rewards squared) = sqrt(0.12625).
    batch = group_advantages(groups, "group_mean_batch_std")
    scale = 0.12625**0.5
    assert batch[0] == pytest.approx([0.5 / scale, -0.5 / scale], rel=1e-4)
    assert batch[1] == pytest.approx([0.05 / scale, -0.05 / scale], rel=1e-4)


def test_kl_sources_weight_only_the_named_rows() -> None:
    cfg = SimpleNamespace(seed=0, hints=SimpleNamespace(keep_hint_in_context=True))
    math, chat = _group(), _group()
    math.row, chat.row = {"id": "m", "data_source": "rlsys/math"}, {"id": "c", "data_source": "rlsys/ifeval"}
    math.train_prompt_ids = [5, 5]
    rl = RLConfig(mini_batches=1, kl_sources=["rlsys/math"], loss_kwargs={"kl_coef": 0.1})
    learners = RecordingLearners()
    update_policy(learners, [math, chat], cfg, rl, step=0)
    (batch,) = learners.batches
    assert batch["fields"]["kl_weights"] == [float(ids[0] == 5) for ids in batch["input_ids"]]
    assert sorted(batch["fields"]["kl_weights"]) == [0.0, 0.0, 1.0, 1.0]
    learners = RecordingLearners()
    update_policy(learners, [math, chat], cfg, RLConfig(mini_batches=1), step=0)
    assert "kl_weights" not in learners.batches[0]["fields"]
    with pytest.raises(ConfigError, match=r"stages.align.rl.kl_sources.*kl_coef"):
        check_kl_sources(RLConfig(kl_sources=["rlsys/math"]), "stages.align.rl")
    check_kl_sources(rl, "stages.align.rl")


def test_old_logprobs_are_recomputed_only_for_batches_holding_a_group_whose_rollout_logprobs_are_stale() -> None:
    cfg = SimpleNamespace(seed=0)
    learners = RecordingLearners()
    update_policy(learners, [_group(), _group()], cfg, RLConfig(mini_batches=1), step=0)
    assert learners.recomputed == 0 and learners.batches[0]["fields"]["old_logprobs"][0][2:] == [-0.1] * 7
    # A hint removed from the trained context (or a reference answer put in) makes the group's logprobs stale.
    stale = _group()
    stale.rollout_logprobs_valid = False
    learners = RecordingLearners()
    update_policy(learners, [_group(), stale], cfg, RLConfig(mini_batches=2), step=0)
    assert learners.recomputed == 1 and len(learners.batches) == 2
    assert sorted(b["fields"]["old_logprobs"][0][0] for b in learners.batches) == [-9.0, 0.0]
    learners = RecordingLearners()
    update_policy(learners, [_group()], cfg, RLConfig(mini_batches=1, recompute_old_logprobs=True), step=0)
    assert learners.recomputed == 1

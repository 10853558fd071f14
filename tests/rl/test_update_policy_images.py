"""`update_policy` on groups of rows with images: each sequence's batch entry carries its row's image paths, so the
learner scores (and recomputes old logprobs from) the same pixels; text-only steps build the batches they always did."""

from __future__ import annotations

from types import SimpleNamespace

from rlsys.config.schema import RLConfig
from rlsys.learner.batching import make_batch
from rlsys.rl.collector import Group
from rlsys.rl.loop import update_policy
from rlsys.rollout.types import Sample

CFG = SimpleNamespace(seed=0)


class RecordingLearners:
    """Stands in for the learner group: keeps every batch it is given."""

    def __init__(self) -> None:
        self.scored: list[dict] = []
        self.trained: list[dict] = []

    def compute_logprobs(self, batch: dict) -> list[list[float]]:
        self.scored.append(batch)
        return [[-1.0] * len(ids) for ids in batch["input_ids"]]

    def train_step(self, batch: dict, loss: str, kwargs: dict) -> dict[str, float]:
        self.trained.append(batch)
        return {"loss": 0.0}


def _group(row: dict, prompt: list[int], first_token: int) -> Group:
    right = Sample(token_ids=[first_token, 2], text="a", logprobs=[-0.1, -0.2], finish_reason="stop")
    wrong = Sample(token_ids=[first_token, 3, 4], text="b", logprobs=[-0.3, -0.4, -0.5], finish_reason="stop")
    empty = Sample(token_ids=[], text="", logprobs=[], finish_reason="length")  # skipped: nothing to train on
    return Group(row=row, row_index=0, level=0, prompt_ids=prompt, train_prompt_ids=prompt,
                 samples=[right, empty, wrong], version=0, scores=[1.0, 0.0, 0.0], correct=[True, False, False])


def test_visual_groups_send_each_sequences_images() -> None:
    two = {"id": "v2", "images": ["/d/a.png", "/d/b.png"]}
    one = {"id": "v1", "images": ["/d/c.png"]}
    text = {"id": "t"}
    learners = RecordingLearners()
    update_policy(learners, [_group(two, [7, 9, 9], 10), _group(text, [7, 8], 20), _group(one, [7, 9], 30)],
                  CFG, RLConfig(mini_batches=1, recompute_old_logprobs=True), step=0)
    (batch,) = learners.trained
    # The learner recomputed old logprobs on the very batch it trains on, images included.
    assert learners.scored == [batch]
    by_first = {ids[mask.index(1)]: imgs
                for ids, mask, imgs in zip(batch["input_ids"], batch["loss_mask"], batch["images"])}
    assert by_first == {10: two["images"], 20: [], 30: one["images"]}
    assert len(batch["images"]) == len(batch["input_ids"]) == 6
    # Exactly what make_batch builds from the same sequences and images.
    rebuilt = make_batch(batch["input_ids"], batch["loss_mask"], batch["fields"], images=batch["images"])
    assert rebuilt == batch


def test_text_only_steps_build_batches_without_images() -> None:
    learners = RecordingLearners()
    update_policy(learners, [_group({"id": "a"}, [7, 8], 20), _group({"id": "b", "images": []}, [7], 21)],
                  CFG, RLConfig(mini_batches=2), step=3)
    assert len(learners.trained) == 2
    assert all("images" not in b for b in learners.trained)
    # A mini-batch of text rows in a step that also has visual rows stays text-only.
    learners = RecordingLearners()
    update_policy(learners, [_group({"id": "a"}, [7, 8], 20), _group({"id": "v", "images": ["/d/a.png"]}, [9], 30)],
                  CFG, RLConfig(mini_batches=2), step=0)
    with_images = [b for b in learners.trained if "images" in b]
    assert len(learners.trained) == 2 and len(with_images) == 1
    assert with_images[0]["images"] == [["/d/a.png"]] * 2

"""Video inputs on the learner side: video items (uniform and SlowFast streams) rebuild the HF processor's own
inputs exactly, batches mix image, video and text rows, and bad items fail naming what is wrong."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from rlsys.data.video.slowfast import SlowFastConfig
from rlsys.data.videos import check_video_item, hf_video_metadata, load_video_item, plan_row, video_items


@pytest.fixture(scope="module")
def processor(tiny_vl_dir: str):
    from transformers import AutoProcessor

    return AutoProcessor.from_pretrained(tiny_vl_dir)


def _plans(row: dict) -> list[dict]:
    return json.loads(json.dumps(plan_row(row, 16, 2, 2, SlowFastConfig(token_budget=64))))


def test_video_items_uniform_and_slowfast(video_rows: list[dict]) -> None:
    row = next(r for r in video_rows if r["task"] == "video_count")
    (uniform,) = video_items(row)
    assert uniform["frames"] == row["videos"][0] and uniform["indices"] == list(range(len(row["videos"][0])))
    plans = _plans(row)
    slow, fast = video_items(row, plans)
    assert slow["indices"] + fast["indices"] == sorted(range(len(plans[0]["slow"])), key=lambda i: not plans[0]["slow"][i])
    assert slow["size"] == plans[0]["slow_size"] and fast["size"] == plans[0]["fast_size"]
    frames, meta = load_video_item(fast)
    assert frames.shape == (len(fast["indices"]), *fast["size"], 3) and frames.dtype.name == "uint8"
    assert meta["frames_indices"] == fast["indices"] and meta["total_num_frames"] == len(row["videos"][0])
    assert meta["do_sample_frames"] is False and "do_sample_frames" not in hf_video_metadata(meta)
    related = next(r for r in video_rows if r["task"] == "video_related")
    assert len(video_items(related)) == len(related["videos"]) == 4
    with pytest.raises(ValueError, match="plans for 4 videos"):
        video_items(related, plans)


def test_bad_video_items_name_the_problem(video_rows: list[dict], tmp_path: Path) -> None:
    (item,) = video_items(next(r for r in video_rows if r["task"] == "video_count"))
    with pytest.raises(ValueError, match="seq 3: a video item is a dict with keys"):
        check_video_item({"frames": item["frames"]}, "seq 3")
    with pytest.raises(ValueError, match="indices"):
        check_video_item({**item, "indices": item["indices"][::-1]})
    with pytest.raises(ValueError, match="nope.png"):
        load_video_item({**item, "frames": [str(tmp_path / "nope.png")], "indices": [0]})


@pytest.mark.parametrize("slowfast", [False, True])
def test_learner_inputs_equal_the_processor_call(processor, video_rows: list[dict], slowfast: bool) -> None:
    from rlsys.data.encode import encode_vl_prompt
    from rlsys.learner.vl_inputs import build_vl_inputs, video_token_count

    row = next(r for r in video_rows if r["task"] == "video_count")
    items = video_items(row, _plans(row) if slowfast else None)
    ids = encode_vl_prompt(processor, row, hint="count them", n_videos=len(items))
    assert ids.count(processor.video_token_id) == len(items) == (2 if slowfast else 1)
    completion = [40, 41, 2]
    inputs = build_vl_inputs(processor, ids, [], completion, videos=items)
    pairs = [load_video_item(it) for it in items]
    text = processor.tokenizer.decode(ids, skip_special_tokens=False)
    reference = processor(text=[text], videos=[f for f, _ in pairs], video_metadata=[hf_video_metadata(m) for _, m in pairs],
                          do_sample_frames=False, return_tensors="pt")
    n_prompt = reference["input_ids"].shape[1]
    assert inputs["input_ids"][0].tolist() == reference["input_ids"][0].tolist() + completion
    assert inputs["completion_start"] == n_prompt
    for key in ("pixel_values_videos", "video_grid_thw"):
        assert torch.equal(inputs[key], reference[key]), key
    assert "video_metadata" not in inputs
    assert (inputs["mm_token_type_ids"][0] == 2).sum().item() == (reference["input_ids"][0] == processor.video_token_id).sum().item()
    expanded = sum(video_token_count(processor, it) - 1 for it in items)
    assert n_prompt == len(ids) + expanded
    if slowfast:  # the slow stream at its plan size: one merged-patch grid per temporal group
        grid = reference["video_grid_thw"][0].tolist()
        assert grid[1:] == [s // 16 for s in items[0]["size"]]
    with pytest.raises(ValueError, match="video placeholders for"):
        build_vl_inputs(processor, ids, [], completion, videos=items[:1] * (len(items) + 1))


def test_mixed_batch_collates_and_scores_like_single_rows(tiny_vl_dir: str, processor, video_rows: list[dict]) -> None:
    """A micro-batch of a text row, a video row (SlowFast streams) and a 4-video row: loss masks move with their
    tokens and every row's logprobs equal its own single-row forward."""
    from transformers import AutoModelForImageTextToText

    from rlsys.data.encode import encode_prompt, encode_vl_prompt
    from rlsys.learner.batching import collate, has_images, make_batch, select
    from rlsys.learner.vl_inputs import build_vl_inputs, completion_logprobs
    from rlsys.learner.vl_passes import ImageTokens

    count = next(r for r in video_rows if r["task"] == "video_count")
    related = next(r for r in video_rows if r["task"] == "video_related")
    count_items, related_items = video_items(count, _plans(count)), video_items(related)
    prompts = [encode_prompt(processor.tokenizer, {"id": "t", "prompt": "What is 2 + 3?"}),
               encode_vl_prompt(processor, count, n_videos=len(count_items)),
               encode_vl_prompt(processor, related)]
    completion = [40, 41, 42, 2]
    videos = [[], count_items, related_items]
    batch = make_batch([p + completion for p in prompts], [[0] * len(p) + [1] * 4 for p in prompts],
                       {"old_logprobs": [[0.0] * len(p) + [-1.0] * 4 for p in prompts]}, videos=videos)
    assert has_images(batch) and not has_images(batch, [0]) and select(batch, [2])["videos"] == [related_items]
    extra = ImageTokens(processor).extra_tokens(batch)
    assert extra is not None and extra[0] == 0 and extra[1] > 0 and extra[2] > extra[1]
    mb = collate(batch, [0, 1, 2], processor.tokenizer.pad_token_id, torch.device("cpu"), processor)
    assert mb.model_inputs["video_grid_thw"].shape[0] == len(count_items) + len(related_items)
    assert "pixel_values" not in mb.model_inputs
    for row, p in enumerate(prompts):
        assert int(mb.attention_mask[row].sum()) == len(p) + extra[row] + 4
        assert mb.loss_mask[row].sum().item() == 4.0 and mb.fields["old_logprobs"][row].sum().item() == -4.0
    model = AutoModelForImageTextToText.from_pretrained(tiny_vl_dir, dtype=torch.float32).eval()
    with torch.no_grad():
        from rlsys.learner.batching import token_logprobs

        logp = token_logprobs(model(**mb.forward_inputs()).logits, mb.input_ids)
        for row, (p, vids) in enumerate(zip(prompts, videos)):
            got = mb.unexpand(logp, row, len(p) + 4)[-4:]
            alone = completion_logprobs(model, build_vl_inputs(processor, p, [], completion, videos=vids), 4)[0]
            assert torch.allclose(got, alone, atol=1e-5), row


def test_sft_rows_with_videos_encode_and_batch(processor, video_suite_files: dict[str, str],
                                                tmp_path_factory: pytest.TempPathFactory) -> None:
    """Video SFT rows give (ids, mask, {}, images, video items) with one placeholder per item, the trained span on
    the answer only; the SFT job's batch carries them (`seq_batch`) and collates through the processor."""
    from rlsys.data.encode import encode_sft_rows
    from rlsys.data.loading import load_rows
    from rlsys.jobs.train import seq_batch
    from rlsys.learner.batching import collate

    rows, _ = load_rows(video_suite_files["video_sft_train"], "sft",
                        cache_dir=str(tmp_path_factory.mktemp("cache-sft")))
    text_row = {"id": "t", "prompt": "What is 2 + 3?", "response": "5"}
    encoded = encode_sft_rows(processor.tokenizer, rows + [text_row], 1024, processor=processor)
    assert len(encoded) == len(rows) + 1 and len(encoded[-1]) == 2
    for (ids, mask, fields, images, videos), row in zip(encoded, rows):
        assert fields == {} and images == [] and videos == video_items(row)
        assert ids.count(processor.video_token_id) == len(row["videos"])
        assert ids.index(processor.video_token_id) < mask.index(1)
    with pytest.raises(ValueError, match="has videos, but no processor was given"):
        encode_sft_rows(processor.tokenizer, rows[:1], 1024)
    batch = seq_batch(encoded, 1)
    assert batch["videos"][-1] == [] and batch["videos"][0] == encoded[0][4] and "images" not in batch
    mb = collate(batch, list(range(len(encoded))), processor.tokenizer.pad_token_id, torch.device("cpu"), processor)
    assert mb.model_inputs["video_grid_thw"].shape[0] == sum(len(e[4]) for e in encoded[:-1])
    assert [int(m.sum()) for m in mb.loss_mask] == [sum(e[1]) for e in encoded]


def test_a_one_frame_stream_is_padded_to_one_temporal_patch(processor, tmp_path: Path) -> None:
    """A still video plans one slow frame (the rest fast); the processor refuses a 1-frame clip, so the slow
    stream repeats its frame (as the processor pads longer clips) and costs exactly the plan's tokens."""
    from PIL import Image

    from rlsys.data.encode import encode_vl_prompt
    from rlsys.learner.vl_inputs import build_vl_inputs

    paths = []
    for i in range(5):
        Image.new("RGB", (64, 64), "navy").save(tmp_path / f"f{i}.png")
        paths.append(str(tmp_path / f"f{i}.png"))
    row = {"id": "still", "prompt": "What happens?", "videos": [paths], "fps": 2.0}
    (plan,) = plan_row(row, 16, 2, 2, SlowFastConfig(token_budget=64))
    assert plan["slow"] == [True, False, False, False, False]
    slow, fast = video_items(row, [plan])
    assert slow["indices"] == [0, 0] and slow["frames"] == [paths[0]] * 2 and len(fast["indices"]) == 4
    inputs = build_vl_inputs(processor, encode_vl_prompt(processor, row, n_videos=2), [], [2], videos=[slow, fast])
    grids = inputs["video_grid_thw"].tolist()
    # One temporal group for the slow stream, two for the four fast frames: the plan's token count.
    assert sum(t * h * w // 4 for t, h, w in grids) == plan["total_tokens"]
    assert grids[0][0] == 1 and grids[1][0] == 2


def test_preference_pairs_on_a_video_row_carry_its_items(processor, video_rows: list[dict]) -> None:
    """MPO / DPO pairs of a video row share the prompt with one placeholder per video item (SlowFast streams when a
    planner is given); both sequences carry the items and batch through the processor like SFT rows."""
    from rlsys.data.encode import encode_pairs
    from rlsys.jobs.train import seq_batch
    from rlsys.learner.batching import collate

    row = next(r for r in video_rows if r["task"] == "video_count")
    pref = {**row, "chosen": "The answer is \\boxed{1}.", "rejected": "The answer is \\boxed{2}."}
    planned = video_items(row, _plans(row))
    ((chosen, rejected),) = encode_pairs(processor.tokenizer, [pref], 1024, processor=processor,
                                         video_items_of=lambda r: planned)
    assert chosen[3] == rejected[3] == [] and chosen[4] == rejected[4] == planned
    assert chosen[0].count(processor.video_token_id) == 2
    with pytest.raises(ValueError, match="has videos, but no processor was given"):
        encode_pairs(processor.tokenizer, [pref], 1024)
    batch = seq_batch([chosen, rejected], 2)
    mb = collate(batch, [0, 1], processor.tokenizer.pad_token_id, torch.device("cpu"), processor)
    assert mb.model_inputs["video_grid_thw"].shape[0] == 4

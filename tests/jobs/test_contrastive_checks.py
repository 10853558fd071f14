"""The contrastive stage's pure parts: caption rows -> learner units (bad rows named), top-1 retrieval within
eval batches, and the start-up checks of `validate_chain` (loss kind, ZeRO stage, a vision-language model)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from rlsys.config.schema import Config
from rlsys.config.validate import ConfigError
from rlsys.jobs.vision import caption_units, pair_batch, retrieval_accuracy
from rlsys.stages.context import StageContext
from rlsys.stages.validate import validate_chain


class WordTokenizer:
    """One id per word: enough to see which text the units hold."""

    def __call__(self, text: str, add_special_tokens: bool = True) -> dict:
        assert not add_special_tokens
        return {"input_ids": [len(word) for word in text.split()]}


def _ctx(tmp_path: Path, seq_len: int = 8) -> StageContext:
    cfg = OmegaConf.structured(Config)
    stage = OmegaConf.merge(cfg.stages, {"vit": {"kind": "contrastive", "loss": "siglip", "seq_len": seq_len}}).vit
    return StageContext(cfg, "vit", stage, "unused", tmp_path)


def test_caption_rows_become_caption_and_image_units(tmp_path: Path) -> None:
    rows = [{"id": "a", "prompt": "Describe.", "response": "Two red circles.", "images": ["/x/a.png"]},
            {"id": "b", "prompt": "Describe.", "response": " one two three four five six seven eight nine ",
             "images": ["/x/b.png"]}]
    units, captions, cut = caption_units(_ctx(tmp_path), WordTokenizer(), rows)
    assert captions == ["Two red circles.", "one two three four five six seven eight nine"] and cut == 1
    assert units[0] == [([3, 3, 8], [1, 1, 1], {}, ["/x/a.png"])]
    assert len(units[1][0][0]) == 8  # cut to seq_len
    batch = pair_batch(units)
    assert batch["images"] == [["/x/a.png"], ["/x/b.png"]] and batch["loss_mask"][0] == [1, 1, 1]


@pytest.mark.parametrize(("row", "message"), [
    ({"id": "r1", "response": "A cat.", "images": []}, "row 'r1' has 0 images; a contrastive stage pairs"),
    ({"id": "r2", "response": "A cat.", "images": ["/a.png", "/b.png"]}, "row 'r2' has 2 images"),
    ({"id": "r3", "response": "  ", "images": ["/a.png"]}, "row 'r3' has no caption"),
])
def test_a_bad_caption_row_is_named(tmp_path: Path, row: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=f"stage 'vit': {message}"):
        caption_units(_ctx(tmp_path), WordTokenizer(), [row])


def test_retrieval_is_top1_within_each_eval_batch() -> None:
    img = [[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]]
    # Captions 0 and 1 are swapped: images 0 and 1 pick the wrong caption; 2 and 3 are right.
    txt = [img[1], img[0], img[2], img[3]]
    names = ["a", "b", "c", "d"]
    whole = retrieval_accuracy(img, txt, names, batch_size=4)
    assert whole["i2t"] == whole["t2i"] == pytest.approx(0.5) and whole["chance"] == pytest.approx(0.25)
    # In batches of one, every image finds its own caption (the only candidate).
    assert retrieval_accuracy(img, txt, names, batch_size=1) == {"i2t": 1.0, "t2i": 1.0, "chance": 1.0}
    # Two scenes with the same caption: picking the other one's caption is right.
    same = retrieval_accuracy(img, txt, ["a", "a", "c", "d"], batch_size=4)
    assert same["i2t"] == pytest.approx(1.0) and same["chance"] == pytest.approx(0.375)
    # By cosine, not dot product: a long vector does not win by its length.
    assert retrieval_accuracy([[1.0, 0.0]] * 2, [[1.0, 1.0], [10.0, 0.0]], ["x", "y"], 2)["i2t"] == 0.5


def _model_dir(tmp_path: Path, vision: bool) -> str:
    path = tmp_path / ("vl" if vision else "lm")
    path.mkdir(exist_ok=True)
    (path / "config.json").write_text(json.dumps({"vision_config": {"depth": 2}} if vision else {}))
    return str(path)


def _cfg(tmp_path: Path, stages: dict, vision: bool = True, **top) -> object:
    cfg = OmegaConf.structured(Config)
    cfg.model.path = _model_dir(tmp_path, vision)
    cfg.pipeline = ["vit"]
    vit = {"kind": "contrastive", "loss": "siglip", "data": "vl_caption_train", "trainable": ["model.visual.*"]}
    return OmegaConf.merge(cfg, {"stages": {"vit": vit} | stages}, top)


def test_a_contrastive_stage_on_a_vision_language_model_passes(tmp_path: Path) -> None:
    validate_chain(_cfg(tmp_path, {}))
    # The embedded tiny VLM, or a text LM turned into one on the input chain.
    tiny_vl = _cfg(tmp_path, {}, model={"path": None, "kind": "vl"})
    validate_chain(tiny_vl)
    chain = {"lm": {"kind": "sft"}, "init": {"kind": "vision_init", "input": "lm"},
             "vit": {"kind": "contrastive", "loss": "siglip", "input": "init"}}
    validate_chain(_cfg(tmp_path, chain, vision=False))


def test_a_contrastive_stage_on_a_text_model_fails_naming_the_stage(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"stage 'vit' \(contrastive\) needs a vision-language model, but its "
                                          r"model comes from model\.path = .*lm' \(stage 'vit'\), a text-only model"):
        validate_chain(_cfg(tmp_path, {}, vision=False))
    chain = {"sft": {"kind": "sft"}, "vit": {"kind": "contrastive", "loss": "siglip", "input": "sft"}}
    with pytest.raises(ConfigError, match=r"stage 'vit' \(contrastive\).*model\.kind = 'lm' \(stage 'sft'\)"):
        validate_chain(_cfg(tmp_path, chain, model={"path": None}))


def test_contrastive_losses_and_stages_go_together(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"'stages\.vit\.loss' = 'sft': a contrastive stage trains a loss of kind "
                                          r"'contrastive' \(siglip\), not 'token_nll'"):
        validate_chain(_cfg(tmp_path, {"vit": {"kind": "contrastive", "loss": "sft"}}))
    with pytest.raises(ConfigError, match=r"'stages\.vit\.loss' = 'siglip': a contrastive loss trains on image-caption "
                                          r"pairs in a stage of kind 'contrastive', not 'sft'"):
        validate_chain(_cfg(tmp_path, {"vit": {"kind": "sft", "loss": "siglip"}}))


def test_zero3_is_refused_naming_its_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"'learner\.zero_stage' = 3: stage 'vit' \(contrastive\) runs on ZeRO 0-2"):
        validate_chain(_cfg(tmp_path, {}, learner={"zero_stage": 3}))
    overrides = {"vit": {"kind": "contrastive", "loss": "siglip", "overrides": {"learner": {"zero_stage": 3}}}}
    with pytest.raises(ConfigError, match=r"'stages\.vit\.overrides\.learner\.zero_stage' = 3"):
        validate_chain(_cfg(tmp_path, overrides))


def test_the_vit_pretrain_exp_composes_and_passes_the_start_up_checks() -> None:
    from rlsys.config.store import compose_config
    from rlsys.config.validate import validate_config

    cfg = compose_config(["+exp=vit_pretrain"])
    validate_config(cfg)
    validate_chain(cfg)
    stage = cfg.stages.vit_pretrain
    assert stage.kind == "contrastive" and stage.input is None and cfg.model.kind == "vl"
    assert list(stage.trainable) == ["model.visual.patch_embed.*", "model.visual.pos_embed.*", "model.visual.blocks.*"]
    with pytest.raises(ConfigError, match="stage 'vit_pretrain' \\(contrastive\\) needs a vision-language model"):
        validate_chain(compose_config(["+exp=vit_pretrain", "model=tiny"]))

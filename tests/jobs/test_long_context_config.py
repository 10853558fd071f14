"""The long-context stage's model rewrite (RoPE base and context) and its start-up checks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rlsys.jobs.long_context import scaled_config, write_scaled_model


def test_scaled_config_text_model_rope_parameters() -> None:
    cfg = {"max_position_embeddings": 1024, "rope_parameters": {"rope_theta": 10000.0, "rope_type": "default"}}
    out = scaled_config(cfg, 8.0, 4096)
    assert out == {"max_position_embeddings": 4096, "rope_parameters": {"rope_theta": 80000.0, "rope_type": "default"}}
    assert cfg["rope_parameters"]["rope_theta"] == 10000.0  # the input is not changed


def test_scaled_config_vlm_text_config_and_legacy_rope_theta() -> None:
    vl = {"vision_config": {"depth": 2}, "text_config": {
        "max_position_embeddings": 1024,
        "rope_parameters": {"rope_theta": 5e5, "rope_type": "default", "mrope_section": [8, 12, 12]}}}
    out = scaled_config(vl, 8.0, 8192)["text_config"]
    assert out["rope_parameters"] == {"rope_theta": 4e6, "rope_type": "default", "mrope_section": [8, 12, 12]}
    assert out["max_position_embeddings"] == 8192
    assert scaled_config({"rope_theta": 1e6, "max_position_embeddings": 8}, 2.0, 16) == {
        "rope_theta": 2e6, "max_position_embeddings": 16}


def test_scaled_config_refuses_no_base_and_other_rope_types() -> None:
    with pytest.raises(ValueError, match="names no rope_theta"):
        scaled_config({"max_position_embeddings": 8}, 8.0, 16)
    with pytest.raises(ValueError, match="'yarn' already rescales"):
        scaled_config({"rope_parameters": {"rope_theta": 1.0, "rope_type": "yarn"}}, 8.0, 16)


def test_write_scaled_model_links_weights_and_rewrites_config(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "model.safetensors").write_bytes(b"weights")
    (src / "config.json").write_text(json.dumps({"rope_theta": 10.0, "max_position_embeddings": 4}))
    (src / "tokenizer_config.json").write_text(json.dumps({"model_max_length": 4, "pad_token": "<pad>"}))
    dst = Path(write_scaled_model(str(src), tmp_path / "dst", 8.0, 32))
    assert json.loads((dst / "tokenizer_config.json").read_text()) == {"model_max_length": 32, "pad_token": "<pad>"}
    assert (dst / "model.safetensors").is_symlink() and (dst / "model.safetensors").read_bytes() == b"weights"
    assert json.loads((dst / "config.json").read_text()) == {"rope_theta": 80.0, "max_position_embeddings": 32}
    assert json.loads((src / "config.json").read_text())["rope_theta"] == 10.0


def test_long_table_lists_only_the_long_buckets_in_length_order() -> None:
    from rlsys.eval.long_context import long_table

    after = {"eval/long/math_eval_k16": 0.25, "eval/long/math_eval_k16_tokens": 900.0,
             "eval/long/math_eval_k16_too_long": 1.0, "eval/long/math_eval_k4": 0.5,
             "eval/long/math_eval_k4_tokens": 300.0, "eval/math_acc": 0.7, "eval/answer_chars": 80.0}
    table = long_table({"eval/long/math_eval_k4": 0.125}, after)
    assert table.splitlines()[2:] == ["| math_eval | 4 | 300 | 0.125 | 0.500 | 0 |",
                                      "| math_eval | 16 | 900 | nan | 0.250 | 1 |"]

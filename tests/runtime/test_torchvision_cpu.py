"""torchvision in the project's venv: imports beside the CPU torch, resizes, and serves the VL processors.

On CPU machines scripts/setup.sh installs the CUDA torchvision wheel pinned for torch 2.13 and patches
it to import without its C++ ops (scripts/fix_torchvision.py). Fast: no vLLM engine, no hub.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

torchvision = pytest.importorskip("torchvision", reason="torchvision is installed by scripts/setup.sh")

ROOT = Path(__file__).resolve().parents[2]
VL_TOKENS = ["<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"]
# Qwen3-VL geometry: 16-pixel patches, 2x2 merge, 2 frames per temporal patch.
PATCH, MERGE, TPATCH = 16, 2, 2


def _image(h: int, w: int, seed: int = 0):
    from PIL import Image

    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8))


def test_torchvision_matches_torch():
    from importlib.metadata import requires

    pins = [
        r for r in requires("torchvision") or [] if r.replace(" ", "").startswith(("torch(==", "torch=="))
    ]
    assert pins, requires("torchvision")
    assert torch.__version__.split("+")[0] in pins[0], (pins, torch.__version__)


def test_import_in_fresh_process():
    """A bare `import torchvision` (what transformers does) must not raise in a new interpreter."""
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import torchvision, transformers.utils as u; print(u.is_torchvision_available())",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith("True")


def test_patch_script_is_idempotent():
    """Running the set-up's patch step again changes nothing and succeeds."""
    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "fix_torchvision.py")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "patched /" not in out.stdout, out.stdout  # nothing left to patch after set-up


def test_resize_tensor_and_pil():
    from torchvision.transforms.v2 import functional as F

    x = torch.rand(3, 30, 40)
    y = F.resize(x, [15, 20], antialias=True)
    assert y.shape == (3, 15, 20)
    # Downscaling a constant image keeps it constant: the kernel really ran.
    c = F.resize(torch.full((3, 32, 32), 0.25), [8, 8], antialias=True)
    assert torch.allclose(c, torch.full_like(c, 0.25))
    b = F.resize(torch.randint(0, 256, (2, 3, 17, 23), dtype=torch.uint8), [34, 46])
    assert b.shape == (2, 3, 34, 46) and b.dtype == torch.uint8
    img = F.resize(_image(30, 40), [15, 20])
    assert img.size == (20, 15)
    t = F.pil_to_tensor(img)
    assert t.shape == (3, 15, 20)


def test_missing_cpp_ops_are_reported_not_crashing():
    """Without loadable C++ ops (the CPU case), nms fails at call time, not at import time."""
    if torchvision.extension._has_ops():
        pytest.skip("torchvision's C++ ops loaded (a build matching this torch)")
    from torchvision.ops import nms

    boxes = torch.tensor([[0.0, 0.0, 1.0, 1.0]])
    with pytest.raises((RuntimeError, AttributeError, NotImplementedError)):
        nms(boxes, torch.tensor([1.0]), 0.5)


def _image_processor():
    from transformers import Qwen2VLImageProcessor

    return Qwen2VLImageProcessor(
        patch_size=PATCH,
        merge_size=MERGE,
        temporal_patch_size=TPATCH,
        size={"shortest_edge": 32 * 32, "longest_edge": 512 * 512},
    )


def test_qwen3_vl_image_processor_grid():
    ip = _image_processor()
    out = ip(images=[_image(96, 128), _image(64, 64, seed=1)], return_tensors="pt")
    grid = out["image_grid_thw"].tolist()
    # Sides already multiples of patch*merge (32) keep their size: 96x128 -> 6x8 patches, 64x64 -> 4x4.
    assert grid == [[1, 6, 8], [1, 4, 4]]
    assert out["pixel_values"].shape == (6 * 8 + 4 * 4, 3 * TPATCH * PATCH * PATCH)
    assert out["pixel_values"].dtype == torch.float32
    assert torch.isfinite(out["pixel_values"]).all()


def test_qwen3_vl_processor_image_and_video():
    """The whole Qwen3-VL processor (tokenizer trained locally) expands image and video placeholders."""
    from PIL import Image
    from transformers import Qwen3VLProcessor
    from transformers.models.qwen3_vl.video_processing_qwen3_vl import Qwen3VLVideoProcessor

    from rlsys.model.tiny import train_tokenizer

    tok = train_tokenizer(["a picture and a video of 123 things"] * 20, vocab_size=300, max_length=4096)
    tok.add_special_tokens({"additional_special_tokens": VL_TOKENS})
    vp = Qwen3VLVideoProcessor(
        patch_size=PATCH,
        merge_size=MERGE,
        temporal_patch_size=TPATCH,
        size={"shortest_edge": 32 * 32, "longest_edge": 512 * 512 * 4},
    )
    proc = Qwen3VLProcessor(image_processor=_image_processor(), video_processor=vp, tokenizer=tok)

    out = proc(
        text=["see <|vision_start|><|image_pad|><|vision_end|>"],
        images=[_image(96, 128)],
        return_tensors="pt",
    )
    assert out["image_grid_thw"].tolist() == [[1, 6, 8]]
    assert int((out["input_ids"] == proc.image_token_id).sum()) == 6 * 8 // MERGE**2

    frames = [Image.fromarray(np.full((64, 96, 3), 40 * i, dtype=np.uint8)) for i in range(4)]
    meta = {"fps": 2.0, "duration": 2.0, "total_num_frames": 4, "frames_indices": [0, 1, 2, 3]}
    out = proc(
        text=["clip <|vision_start|><|video_pad|><|vision_end|>"],
        videos=[frames],
        videos_kwargs={"video_metadata": [meta], "do_sample_frames": False},
        return_tensors="pt",
    )
    assert out["video_grid_thw"].tolist() == [[4 // TPATCH, 4, 6]]
    assert out["pixel_values_videos"].shape == (2 * 4 * 6, 3 * TPATCH * PATCH * PATCH)
    assert int((out["input_ids"] == proc.video_token_id).sum()) == 2 * 4 * 6 // MERGE**2

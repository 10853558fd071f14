"""Videos named by data rows: resolve each entry of a row's `videos` to the absolute paths of its frames.

An entry is a folder (its files with an image suffix, in file-name order, are the frames) or a list of frame
paths, relative to the data file or absolute. Every frame must exist, be readable by PIL (`Image.verify()`) and
have the size of the video's first frame (the VL processors reject mixed sizes). A bad entry raises
`DataError("<file> row <n>: field 'videos[i]' ...")` naming the frame, which the loader reports or skips like
any other bad row. `load_frames` reads frames as RGB arrays; `plan_row` runs SlowFast planning on a row's
videos, giving the plain-dict plans stored beside its rollouts, and `plan_streams` turns frames and a plan into
the two video items (slow, fast) with the metadata vLLM and the HF processor both need, so the rollout worker
and the learner build exactly the same inputs from the stored plan.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from rlsys.data.schema import DataError
from rlsys.data.video.slowfast import SlowFastConfig, SlowFastPlan, plan_slowfast

FRAME_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


def _frame_size(path: Path, where: str, field: str) -> tuple[int, int]:
    from PIL import Image

    if not path.is_file():
        raise DataError(f"{where}: {field} names a missing frame file {path}")
    try:
        with Image.open(path) as image:
            size = image.size
            image.verify()
    except Exception as exc:  # PIL raises many types for a broken file
        raise DataError(f"{where}: {field} is not a readable image: {path} ({type(exc).__name__}: {exc})") from exc
    return size


def _frames_of(entry: str | list[str], base: Path, where: str, field: str) -> list[Path]:
    if isinstance(entry, list):
        return [Path(p) if Path(p).is_absolute() else base / p for p in entry]
    folder = Path(entry) if Path(entry).is_absolute() else base / entry
    if not folder.is_dir():
        raise DataError(f"{where}: {field} names a missing video folder {folder}")
    frames = sorted(p for p in folder.iterdir() if p.suffix.lower() in FRAME_SUFFIXES)
    if not frames:
        raise DataError(f"{where}: {field} folder {folder} holds no frame files ({', '.join(FRAME_SUFFIXES)})")
    return frames


def resolve_videos(row: dict, data_path: str, where: str) -> dict:
    """`row` with `videos` as lists of absolute frame paths, every frame checked (rows without videos
    unchanged)."""
    if "videos" not in row:
        return row
    base = Path(data_path).resolve().parent
    resolved = []
    for i, entry in enumerate(row["videos"]):
        frames = _frames_of(entry, base, where, f"field 'videos[{i}]'")
        first = None
        for j, frame in enumerate(frames):
            size = _frame_size(frame, where, f"field 'videos[{i}]' frame {j}")
            if first is None:
                first = size
            elif size != first:
                raise DataError(f"{where}: field 'videos[{i}]' frame {j} ({frame}) is {size[0]}x{size[1]} px but "
                                f"frame 0 ({frames[0]}) is {first[0]}x{first[1]}; a video's frames share one size")
        resolved.append([str(f) for f in frames])
    return {**row, "videos": resolved}


def load_frames(paths: list[str]) -> list[np.ndarray]:
    """Frames as (H, W, 3) uint8 RGB arrays."""
    from PIL import Image

    out = []
    for p in paths:
        with Image.open(p) as image:
            out.append(np.asarray(image.convert("RGB")))
    return out


def plan_row(
    row: dict, patch_size: int, merge_size: int, temporal_patch_size: int, cfg: SlowFastConfig | Any = None
) -> list[dict]:
    """SlowFast plan (`SlowFastPlan.to_dict()`) of each video of a resolved row; the budget applies per video."""
    cfg = cfg if isinstance(cfg, SlowFastConfig) or cfg is None else SlowFastConfig(**dict(cfg))
    return [
        plan_slowfast(load_frames(paths), patch_size, merge_size, temporal_patch_size, cfg).to_dict()
        for paths in row.get("videos", [])
    ]


def plan_streams(frames: list[np.ndarray], plan: dict | SlowFastPlan, fps: float) -> list[tuple[np.ndarray, dict]]:
    """(frames (n, h, w, 3) uint8, metadata) for the slow stream, then the fast one (left out when empty):
    each resized to its plan size, with its own frame indices into the whole video (so timestamps stay those
    of the source) and `do_sample_frames: False` (STACK.md: without it vLLM and HF disagree on timestamps)."""
    from PIL import Image

    plan = plan if isinstance(plan, SlowFastPlan) else SlowFastPlan.from_dict(plan)
    if len(frames) != len(plan.slow):
        raise ValueError(f"frames: {len(frames)} frames, but the plan covers {len(plan.slow)}")
    items = []
    for idx, (h, w) in ((plan.slow_indices, plan.slow_size), (plan.fast_indices, plan.fast_size)):
        if not idx:
            continue
        resized = [np.asarray(Image.fromarray(frames[i]).resize((w, h), Image.Resampling.BICUBIC)) for i in idx]
        meta = {"fps": float(fps), "duration": len(frames) / fps, "total_num_frames": len(frames),
                "frames_indices": list(idx), "video_backend": "opencv", "do_sample_frames": False}
        items.append((np.stack(resized), meta))
    return items

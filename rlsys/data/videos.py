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

import logging
from pathlib import Path
from typing import Any

import numpy as np

from rlsys.data.schema import DataError
from rlsys.data.video.slowfast import SlowFastConfig, SlowFastPlan, plan_slowfast

log = logging.getLogger(__name__)

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


# ----------------------------------------------------------------------------- video items (rollout <-> learner)
# A *video item* is one video input of a prompt (one video placeholder), as a plain JSON dict that travels with
# requests, rollout results and learner batches: {"frames": [paths of the frames sent, in order], "indices":
# [their index in the source video], "total_frames": n, "fps": f, "size": [h, w] or None}. `load_video_item`
# turns it into what vLLM and the HF video processor take, so both sides read the same pixels and metadata.
VIDEO_ITEM_KEYS = ("frames", "indices", "total_frames", "fps", "size")


def video_items(row: dict, plans: list[dict] | None = None) -> list[dict]:
    """The video items of a resolved row (`resolve_videos`), in prompt order. Without `plans` one item per video
    (every frame; the processor resizes). With SlowFast plans (`plan_row`, one per video) each video gives its
    slow stream, then its fast stream (left out when empty), each at its plan size, as `plan_streams` builds."""
    videos = row.get("videos") or []
    if not videos:
        return []
    fps = float(row.get("fps") or 0)
    if not fps > 0:
        raise ValueError(f"row {row.get('id')!r}: videos need a positive 'fps', got {row.get('fps')!r}")
    if plans is not None and len(plans) != len(videos):
        raise ValueError(f"row {row.get('id')!r}: {len(plans)} SlowFast plans for {len(videos)} videos")
    items = []
    for i, paths in enumerate(videos):
        paths = [str(p) for p in paths]
        if plans is None:
            items.append({"frames": paths, "indices": list(range(len(paths))), "total_frames": len(paths),
                          "fps": fps, "size": None})
            continue
        plan = plans[i] if isinstance(plans[i], SlowFastPlan) else SlowFastPlan.from_dict(plans[i])
        if len(plan.slow) != len(paths):
            raise ValueError(f"row {row.get('id')!r}: videos[{i}] has {len(paths)} frames, its plan covers "
                             f"{len(plan.slow)}")
        for idx, size in ((plan.slow_indices, plan.slow_size), (plan.fast_indices, plan.fast_size)):
            if idx:
                # The Qwen-VL video processors refuse a clip shorter than one temporal patch ("t:1 must be larger
                # than temporal_factor:2"); they pad longer clips by repeating the last frame, so padding a short
                # stream the same way here costs the tokens the plan counted (ceil(n / t) groups) and no more.
                idx = idx + [idx[-1]] * (plan.temporal_patch_size - len(idx))
                items.append({"frames": [paths[j] for j in idx], "indices": list(idx), "total_frames": len(paths),
                              "fps": fps, "size": [int(size[0]), int(size[1])]})
    return items


def check_video_item(item: Any, where: str = "video item") -> dict:
    """`item` if it is a well-formed video item, else ValueError naming `where` and what is wrong."""
    if not isinstance(item, dict) or set(item) != set(VIDEO_ITEM_KEYS):
        keys = sorted(item) if isinstance(item, dict) else type(item).__name__
        raise ValueError(f"{where}: a video item is a dict with keys {list(VIDEO_ITEM_KEYS)}, got {keys}")
    frames, indices = item["frames"], item["indices"]
    if not isinstance(frames, list) or not frames or len(indices) != len(frames):
        raise ValueError(f"{where}: needs a non-empty 'frames' list and one index per frame")
    if not all(0 <= int(i) < int(item["total_frames"]) for i in indices) or list(indices) != sorted(indices):
        raise ValueError(f"{where}: 'indices' must be increasing and within [0, total_frames)")
    if not float(item["fps"]) > 0:
        raise ValueError(f"{where}: 'fps' must be positive, got {item['fps']!r}")
    return item


def load_video_item(item: dict) -> tuple[np.ndarray, dict]:
    """(frames (n, h, w, 3) uint8, metadata) of a video item, the form vLLM's Qwen-VL models take: frames resized
    to the item's size (bicubic, as `plan_streams`), metadata with the source's fps, duration, frame count and
    the sent frames' indices (so timestamps are the source's) and `do_sample_frames: False` (STACK.md: without
    it vLLM and HF disagree on timestamps). A missing or unreadable frame raises ValueError naming it."""
    from PIL import Image

    check_video_item(item)
    try:
        frames = load_frames(item["frames"])
    except (OSError, ValueError) as exc:
        raise ValueError(f"video frame cannot be read: {exc}") from exc
    if item["size"] is not None:
        h, w = (int(s) for s in item["size"])
        frames = [np.asarray(Image.fromarray(f).resize((w, h), Image.Resampling.BICUBIC)) for f in frames]
    meta = {"fps": float(item["fps"]), "duration": int(item["total_frames"]) / float(item["fps"]),
            "total_num_frames": int(item["total_frames"]), "frames_indices": [int(i) for i in item["indices"]],
            "video_backend": "opencv", "do_sample_frames": False}
    return np.stack(frames), meta


def hf_video_metadata(meta: dict) -> dict:
    """`load_video_item`'s metadata as transformers' `VideoMetadata` takes it (no `do_sample_frames` key: the
    HF call passes `do_sample_frames=False` itself)."""
    return {k: v for k, v in meta.items() if k != "do_sample_frames"}


# How a video row's frames reach the model (`data.video_sampling`): every frame as one item per video, or the
# SlowFast plan's slow and fast streams (`data.slowfast`).
VIDEO_SAMPLING = ("uniform", "slowfast")


def processor_patching(model_dir: str) -> tuple[int, int, int]:
    """(patch_size, merge_size, temporal_patch_size) of the video processor saved in `model_dir`."""
    from transformers import AutoProcessor

    video = getattr(AutoProcessor.from_pretrained(model_dir), "video_processor", None)
    if video is None:
        raise ValueError(f"{model_dir}: its processor has no video processor, so it cannot take video rows")
    return int(video.patch_size), int(video.merge_size), int(getattr(video, "temporal_patch_size", 1) or 1)


class RowVideoItems:
    """Row -> its video items under one sampling mode; SlowFast plans are made once per row id (they depend only
    on the row's frames and the settings) and kept in `plans` (row id -> one `SlowFastPlan.to_dict()` per video)
    so a run can log or store them; the items themselves carry each stream's frames, indices and size."""

    def __init__(self, sampling: str = "uniform", slowfast: SlowFastConfig | Any = None,
                 patching: tuple[int, int, int] | None = None) -> None:
        if sampling not in VIDEO_SAMPLING:
            raise ValueError(f"data.video_sampling: {sampling!r} is not one of {list(VIDEO_SAMPLING)}")
        if sampling == "slowfast" and patching is None:
            raise ValueError("data.video_sampling=slowfast needs the processor's patch, merge and temporal sizes")
        self.sampling = sampling
        self.slowfast = slowfast if isinstance(slowfast, SlowFastConfig) or slowfast is None else SlowFastConfig(
            **{k: slowfast[k] for k in SlowFastConfig.__dataclass_fields__ if k in slowfast})
        self.patching = patching
        self.plans: dict[str, list[dict]] = {}

    @classmethod
    def from_config(cls, data_cfg: Any, model_dir: str) -> RowVideoItems:
        """From the run config's data section (`video_sampling`, `slowfast`) and the model directory."""
        sampling = str(getattr(data_cfg, "video_sampling", "uniform"))
        patching = processor_patching(model_dir) if sampling == "slowfast" else None
        return cls(sampling, getattr(data_cfg, "slowfast", None), patching)

    def __call__(self, row: dict) -> list[dict]:
        if self.sampling == "uniform" or not row.get("videos"):
            return video_items(row)
        key = str(row.get("id"))
        if key not in self.plans:
            assert self.patching is not None
            self.plans[key] = plan_row(row, *self.patching, self.slowfast)
            for i, plan in enumerate(self.plans[key]):
                log.info("slowfast row %s video %d: %d slow frames at %s, %d fast at %s, %d of %d tokens", key, i,
                         sum(plan["slow"]), plan["slow_size"], len(plan["slow"]) - sum(plan["slow"]),
                         plan["fast_size"], plan["total_tokens"], plan["token_budget"])
        return video_items(row, self.plans[key])

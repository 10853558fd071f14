"""The video suite: every split and frame from one `VideoSuiteSpec`, built once per spec and cached.

`build_video_suite(out_dir, spec)` writes (name -> file, kind in brackets):
  video_train, video_eval    video task rows [rl] (tasks.py)
  video_sft_train            task prompt (15% with one hint) -> worked solution, own train stream [sft]
plus `videos/<row id>/frame_000.png, ...` (rows name the folders relative to their file) and `manifest.json`
(spec, generator version, counts, sizes, frame count, content hash over rows and frame bytes). Its cache key
(`video_fingerprint`) hashes this subpackage and the visual code it draws with, never the text suite's.
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from rlsys.data.tasks.video.scene import clips_of, frame_pngs
from rlsys.data.tasks.video.tasks import TASKS, VIDEO_DIR, task_rows, video_dirs
from rlsys.data.tasks.visual.suite import visual_fingerprint

# Bump whenever generated content changes without a code change here (the fingerprint covers the code).
GENERATOR_VERSION = "1"
MANIFEST = "manifest.json"
FRAME_NAME = "frame_{:03d}.png"
KINDS = {"video_train": "rl", "video_eval": "rl", "video_sft_train": "sft"}


@dataclass
class VideoSuiteSpec:
    """Sizes, seed, frame size and frame count of the generated video suite (all counts are rows)."""

    # One seed for every video generator (the held-out split does not depend on it: see tasks.split_of).
    seed: int = 1234
    # Task types to build (names in rlsys.data.tasks.video.tasks.TASKS); empty = all of them.
    tasks: list[str] = field(default_factory=list)
    # Rows per task type in video_train (RL prompts).
    n_train_per_task: int = 16
    # Rows per task type in video_eval (held-out problems).
    n_eval_per_task: int = 4
    # Rows per task type in video_sft_train (own train stream).
    n_sft_per_task: int = 16
    # Side of the square frames in pixels (a multiple of 32 fits Qwen3-VL's 16-pixel patches merged 2 x 2).
    frame_size: int = 96
    # Frames per video (video_frame_order clips have 4-5 frames whatever this is).
    n_frames: int = 10

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name.startswith("n_") and (not isinstance(value, int) or value < 0):
                raise ValueError(f"VideoSuiteSpec.{f.name} must be a non-negative int, got {value!r}")
        self.tasks = list(self.tasks)
        unknown = [t for t in self.tasks if t not in TASKS]
        if unknown:
            raise ValueError(f"VideoSuiteSpec.tasks: unknown task types {unknown}; known: {list(TASKS)}")
        if not isinstance(self.frame_size, int) or self.frame_size < 64:
            raise ValueError(f"VideoSuiteSpec.frame_size must be an int >= 64, got {self.frame_size!r}")
        if self.n_frames < 6:
            raise ValueError(f"VideoSuiteSpec.n_frames must be >= 6, got {self.n_frames!r}")

    @property
    def task_names(self) -> list[str]:
        return [t for t in TASKS if t in self.tasks] if self.tasks else list(TASKS)

    @classmethod
    def from_config(cls, cfg: Any) -> VideoSuiteSpec:
        """From any object or mapping with (a subset of) these fields, e.g. a Hydra config node."""
        get = cfg.get if isinstance(cfg, dict) else lambda k, d: getattr(cfg, k, d)
        out = {f.name: get(f.name, f.default) for f in fields(cls) if f.default is not MISSING}
        out["tasks"] = list(get("tasks", None) or [])
        return cls(**out)


# The name the run config will use for this section (not wired into rlsys/config/schema.py yet).
VideoSuiteConfig = VideoSuiteSpec


def generate_video_suite(spec: VideoSuiteSpec) -> tuple[dict[str, list[dict]], list[dict]]:
    """(split name -> rows, the base rows of the SFT split); frames are drawn from the rows' scenes."""
    args = (spec.seed, spec.frame_size, spec.n_frames)
    train, evals, sft_base = [], [], []
    for task in spec.task_names:
        train += task_rows(task, spec.n_train_per_task, "train", *args)
        evals += task_rows(task, spec.n_eval_per_task, "eval", *args)
        sft_base += task_rows(task, spec.n_sft_per_task, "train", *args, stream="sft")
    rows = {
        "video_train": train,
        "video_eval": evals,
        "video_sft_train": sft_rows(sft_base, random.Random(f"video-sft|{spec.seed}")),
    }
    return rows, sft_base


def sft_rows(base: list[dict], rng: random.Random) -> list[dict]:
    """Task prompt -> worked solution; the hints travel with the row for the SFT stage (`data.sft_hint_share`)."""
    out = []
    for r in base:
        keep = ("data_source", "task", "tier", "answer", "videos", "fps", "scene", "query", "hints")
        out.append({"id": "sft-" + r["id"], "prompt": r["prompt"], "response": r["solution"]}
                   | {k: r[k] for k in keep})
    rng.shuffle(out)
    return out


def frame_files(rows: list[dict]) -> dict[str, bytes]:
    """Relative frame path -> PNG bytes, over every video of `rows`."""
    files: dict[str, bytes] = {}
    for r in rows:
        for folder, clip in zip(video_dirs(r["id"], r["scene"]), clips_of(r["scene"])):
            for i, blob in enumerate(frame_pngs(clip)):
                files[f"{folder}/{FRAME_NAME.format(i)}"] = blob
    return files


def content_hash(rows: dict[str, list[dict]], frames: dict[str, bytes]) -> str:
    h = hashlib.sha256()
    for name in sorted(rows):
        h.update(name.encode() + b"\x00")
        for r in rows[name]:
            h.update(json.dumps(r, sort_keys=True, ensure_ascii=False).encode() + b"\n")
    for path in sorted(frames):
        h.update(path.encode() + b"\x00" + hashlib.sha256(frames[path]).digest())
    return h.hexdigest()


def _reusable(out: Path, spec: VideoSuiteSpec) -> dict[str, str] | None:
    path = out / MANIFEST
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text())
    except ValueError:
        return None
    if manifest.get("spec") != asdict(spec) or manifest.get("generator_version") != GENERATOR_VERSION:
        return None
    files = {name: out / rel for name, rel in manifest.get("files", {}).items()}
    sizes = manifest.get("sizes", {})
    if not files or any(not p.is_file() or p.stat().st_size != sizes.get(n) for n, p in files.items()):
        return None
    if sum(1 for _ in (out / VIDEO_DIR).glob("*/*.png")) != manifest.get("n_frames"):
        return None
    return {name: str(p) for name, p in files.items()}


def build_video_suite(out_dir: str, cfg: VideoSuiteSpec | Any) -> dict[str, str]:
    """Write the video suite under `out_dir` (reusing it if the manifest matches); returns name -> path."""
    from rlsys.data.loading import write_rows

    spec = cfg if isinstance(cfg, VideoSuiteSpec) else VideoSuiteSpec.from_config(cfg)
    out = Path(out_dir)
    reused = _reusable(out, spec)
    if reused is not None:
        return reused
    # A rebuild in place (another spec) starts clean: no manifest until done, no frames of the old spec.
    (out / MANIFEST).unlink(missing_ok=True)
    shutil.rmtree(out / VIDEO_DIR, ignore_errors=True)
    rows, sft_base = generate_video_suite(spec)
    frames = frame_files(rows["video_train"] + rows["video_eval"] + sft_base)
    for rel, blob in frames.items():
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_bytes(blob)
    files = {name: write_rows(str(out / f"{name}.jsonl"), items) for name, items in rows.items()}
    manifest = {
        "generator_version": GENERATOR_VERSION,
        "spec": asdict(spec),
        "files": {name: Path(p).name for name, p in files.items()},
        "kinds": {name: KINDS[name] for name in files},
        "counts": {name: len(items) for name, items in rows.items()},
        "sizes": {name: Path(p).stat().st_size for name, p in files.items()},
        "n_frames": len(frames),
        "content_hash": content_hash(rows, frames),
    }
    # The manifest goes last: its presence marks a complete build.
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return files


# ----------------------------------------------------------------------------- cache key and cached build


def video_sources() -> list[Path]:
    """The code that writes the video suite beyond the visual code it draws with (in `visual_fingerprint`)."""
    return sorted(Path(__file__).parent.glob("*.py"))


def video_fingerprint() -> str:
    """Hash of `video_sources()` and of `visual_fingerprint()` (the renderer, task base and Pillow build)."""
    digest = hashlib.sha256(visual_fingerprint().encode() + b"\0")
    for path in video_sources():
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def video_identity(spec: VideoSuiteSpec) -> dict[str, Any]:
    """What identifies the video suite's content in cache keys: its spec and its generator code."""
    return asdict(spec) | {"generator": video_fingerprint()}


def ensure_video_suite(artifacts_dir: str, cfg: VideoSuiteSpec | Any) -> dict[str, str]:
    """Build (or reuse) the video suite for this spec under `<artifacts_dir>/data_video/<key>/`;
    returns split name -> file path."""
    from rlsys.runtime.artifacts import cached_build

    spec = cfg if isinstance(cfg, VideoSuiteSpec) else VideoSuiteSpec.from_config(cfg)
    out = cached_build(
        artifacts_dir, "data_video", video_identity(spec), lambda tmp: build_video_suite(str(tmp), spec)
    )
    # Already built: this only reads the manifest and returns the final paths.
    return build_video_suite(str(out), spec)

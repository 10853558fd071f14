"""The visual suite: every split and image from one `VisualSuiteSpec`, built once per spec and cached.

`build_visual_suite(out_dir, spec)` writes (name -> file, kind in brackets):
  vl_train, vl_eval            visual task rows, tiers 1-3 [rl] (tasks.py)
  vl_sft_train                 task prompt (15% with one hint) -> worked solution, own train stream [sft]
  vl_caption_train             caption request -> caption, one per vl_sft_train scene [sft]
  vl_caption_eval              the same for the vl_eval scenes [sft]
  vl_caption_qa_train          QA <image, caption, eos, question, answer> over the vl_sft_train scenes [sft]
  vl_caption_rqa_train         reverse QA <image, question, answer, eos, caption>, same scenes [sft]
  vl_caption_if_train          caption requests with constraints, same scenes [ifeval]
  vl_trap_train, vl_trap_eval  counts of something not in the picture; answer 0 [rl, or sft by `response`]
plus `images/<scene id>.png` (rows name them relative to their file) and `manifest.json` (spec, generator
version, counts, sizes, content hash over rows and image bytes). Nothing here is part of the text suite:
its cache key (`rlsys.data.embedded.generator_fingerprint`) hashes only rlsys/data/tasks/*.py.
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from rlsys.data.tasks.visual.captions import caption_row, if_caption_row, qa_row, trap_row
from rlsys.data.tasks.visual.render import png_bytes
from rlsys.data.tasks.visual.tasks import TASKS, task_rows

# Bump whenever generated content changes without a code change here (the fingerprint covers the code).
GENERATOR_VERSION = "1"
MANIFEST = "manifest.json"
IMAGE_DIR = "images"
KINDS = {
    "vl_train": "rl",
    "vl_eval": "rl",
    "vl_sft_train": "sft",
    "vl_caption_train": "sft",
    "vl_caption_eval": "sft",
    "vl_caption_qa_train": "sft",
    "vl_caption_rqa_train": "sft",
    "vl_caption_if_train": "ifeval",
    "vl_trap_train": "rl",
    "vl_trap_eval": "rl",
}


@dataclass
class VisualSuiteSpec:
    """Sizes, seed and image size of the generated visual suite (all counts are rows)."""

    # One seed for every visual generator (the held-out split does not depend on it: see tasks.split_of).
    seed: int = 1234
    # Task types to build (names in rlsys.data.tasks.visual.tasks.TASKS); empty = all of them.
    tasks: list[str] = field(default_factory=list)
    # Rows per task type in vl_train (RL prompts).
    n_train_per_task: int = 80
    # Rows per task type in vl_eval (held-out problems).
    n_eval_per_task: int = 20
    # Rows per task type in vl_sft_train (own train stream); caption / QA / reverse-QA / IF splits: one per scene.
    n_sft_per_task: int = 160
    # Trap questions in vl_trap_train (own shape scenes, answer 0).
    n_trap_train: int = 160
    # Trap questions in vl_trap_eval.
    n_trap_eval: int = 40
    # Side of the square images in pixels (a multiple of 32 fits Qwen-VL's 16-pixel patches merged 2 x 2).
    image_size: int = 224

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name.startswith("n_") and (not isinstance(value, int) or value < 0):
                raise ValueError(f"VisualSuiteSpec.{f.name} must be a non-negative int, got {value!r}")
        self.tasks = list(self.tasks)
        unknown = [t for t in self.tasks if t not in TASKS]
        if unknown:
            raise ValueError(f"VisualSuiteSpec.tasks: unknown task types {unknown}; known: {list(TASKS)}")
        if not isinstance(self.image_size, int) or self.image_size < 64:
            raise ValueError(f"VisualSuiteSpec.image_size must be an int >= 64, got {self.image_size!r}")

    @property
    def task_names(self) -> list[str]:
        return [t for t in TASKS if t in self.tasks] if self.tasks else list(TASKS)

    @classmethod
    def from_config(cls, cfg: Any) -> VisualSuiteSpec:
        """From any object or mapping with (a subset of) these fields, e.g. a Hydra config node."""
        get = cfg.get if isinstance(cfg, dict) else lambda k, d: getattr(cfg, k, d)
        out = {f.name: get(f.name, f.default) for f in fields(cls) if f.default is not MISSING}
        out["tasks"] = list(get("tasks", None) or [])
        return cls(**out)


def generate_visual_suite(spec: VisualSuiteSpec) -> dict[str, list[dict]]:
    """All rows of the visual suite in memory (name -> rows); images are rendered from their scenes."""
    seed, size = spec.seed, spec.image_size
    train, evals, sft_base = [], [], []
    for task in spec.task_names:
        train += task_rows(task, spec.n_train_per_task, "train", seed, size)
        evals += task_rows(task, spec.n_eval_per_task, "eval", seed, size)
        sft_base += task_rows(task, spec.n_sft_per_task, "train", seed, size, stream="sft")
    rng = random.Random(f"visual-captions|{seed}")
    rows = {
        "vl_train": train,
        "vl_eval": evals,
        "vl_sft_train": sft_rows(sft_base, random.Random(f"visual-sft|{seed}")),
        "vl_caption_train": [caption_row(r, rng, "cap-" + r["id"]) for r in sft_base],
        "vl_caption_eval": [caption_row(r, rng, "cap-" + r["id"]) for r in evals],
        "vl_caption_qa_train": [qa_row(r, rng, "capqa-" + r["id"]) for r in sft_base],
        "vl_caption_rqa_train": [qa_row(r, rng, "caprqa-" + r["id"], reverse=True) for r in sft_base],
        "vl_caption_if_train": [if_caption_row(r, rng, "capif-" + r["id"]) for r in sft_base],
        "vl_trap_train": trap_rows(spec.n_trap_train, "train", seed, size),
        "vl_trap_eval": trap_rows(spec.n_trap_eval, "eval", seed, size),
    }
    return rows


def sft_rows(base: list[dict], rng: random.Random) -> list[dict]:
    """Task prompt -> worked solution; the hints travel with the row for the SFT stage (`data.sft_hint_share`)."""
    out = []
    for r in base:
        out.append(
            {
                "id": "sft-" + r["id"],
                "data_source": r["data_source"],
                "task": r["task"],
                "tier": r["tier"],
                "prompt": r["prompt"],
                "response": r["solution"],
                "hints": r["hints"],
                "answer": r["answer"],
                "images": r["images"],
                "scene": r["scene"],
                "query": r["query"],
            }
        )
    rng.shuffle(out)
    return out


def trap_rows(n: int, split: str, seed: int, size: int) -> list[dict]:
    rng = random.Random(f"visual-trap|{seed}|{split}|{size}")
    return [trap_row(rng, size, f"vl-trap-{split}-{i:06d}") for i in range(n)]


def scenes_of(rows: dict[str, list[dict]]) -> dict[str, dict]:
    """Image path (relative) -> scene, over every row; a path shared by several rows has one scene."""
    scenes: dict[str, dict] = {}
    for items in rows.values():
        for r in items:
            for path in r.get("images", []):
                scenes.setdefault(path, r["scene"])
    return scenes


def content_hash(rows: dict[str, list[dict]], images: dict[str, bytes]) -> str:
    h = hashlib.sha256()
    for name in sorted(rows):
        h.update(name.encode() + b"\x00")
        for r in rows[name]:
            h.update(json.dumps(r, sort_keys=True, ensure_ascii=False).encode() + b"\n")
    for path in sorted(images):
        h.update(path.encode() + b"\x00" + hashlib.sha256(images[path]).digest())
    return h.hexdigest()


def _reusable(out: Path, spec: VisualSuiteSpec) -> dict[str, str] | None:
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
    image_dir = out / IMAGE_DIR
    if not image_dir.is_dir() or sum(1 for _ in image_dir.glob("*.png")) != manifest.get("n_images"):
        return None
    return {name: str(p) for name, p in files.items()}


def build_visual_suite(out_dir: str, cfg: VisualSuiteSpec | Any) -> dict[str, str]:
    """Write the visual suite under `out_dir` (reusing it if the manifest matches); returns name -> path."""
    from rlsys.data.loading import write_rows

    spec = cfg if isinstance(cfg, VisualSuiteSpec) else VisualSuiteSpec.from_config(cfg)
    out = Path(out_dir)
    reused = _reusable(out, spec)
    if reused is not None:
        return reused
    # A rebuild in place (another spec) starts clean: no manifest until done, no images of the old spec.
    (out / MANIFEST).unlink(missing_ok=True)
    shutil.rmtree(out / IMAGE_DIR, ignore_errors=True)
    (out / IMAGE_DIR).mkdir(parents=True)
    rows = generate_visual_suite(spec)
    images = {path: png_bytes(scene) for path, scene in scenes_of(rows).items()}
    for path, blob in images.items():
        (out / path).write_bytes(blob)
    files = {name: write_rows(str(out / f"{name}.jsonl"), items) for name, items in rows.items()}
    manifest = {
        "generator_version": GENERATOR_VERSION,
        "spec": asdict(spec),
        "files": {name: Path(p).name for name, p in files.items()},
        "kinds": {name: KINDS[name] for name in files},
        "counts": {name: len(items) for name, items in rows.items()},
        "sizes": {name: Path(p).stat().st_size for name, p in files.items()},
        "n_images": len(images),
        "content_hash": content_hash(rows, images),
    }
    # The manifest goes last: its presence marks a complete build.
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return files


# ----------------------------------------------------------------------------- cache key and cached build


def visual_sources() -> list[Path]:
    """The code that writes the visual suite: this subpackage and the text-suite module it imports
    (arith.py: the column arithmetic of the solutions)."""
    here = Path(__file__).parent
    return sorted(here.glob("*.py")) + [here.parent / "arith.py"]


def visual_fingerprint() -> str:
    """Hash of `visual_sources()` and of the Pillow / FreeType build that draws the images."""
    import PIL
    from PIL import features

    digest = hashlib.sha256()
    for path in visual_sources():
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    digest.update(f"pillow {PIL.__version__} freetype {features.version('freetype2')}".encode())
    return digest.hexdigest()[:16]


def visual_identity(spec: VisualSuiteSpec) -> dict[str, Any]:
    """What identifies the visual suite's content in cache keys: its spec and its generator code."""
    return asdict(spec) | {"generator": visual_fingerprint()}


def ensure_visual_suite(artifacts_dir: str, cfg: VisualSuiteSpec | Any) -> dict[str, str]:
    """Build (or reuse) the visual suite for this spec under `<artifacts_dir>/data_visual/<key>/`;
    returns split name -> file path."""
    from rlsys.runtime.artifacts import cached_build

    spec = cfg if isinstance(cfg, VisualSuiteSpec) else VisualSuiteSpec.from_config(cfg)
    out = cached_build(
        artifacts_dir, "data_visual", visual_identity(spec), lambda tmp: build_visual_suite(str(tmp), spec)
    )
    # Already built: this only reads the manifest and returns the final paths.
    return build_visual_suite(str(out), spec)

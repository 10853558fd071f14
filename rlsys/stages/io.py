"""Stage data: jsonl files passed between stages and the rows a stage reads.

Data stages (rft_sample, pass_filter, pref_sample, judge_data) write `data.jsonl` into their artifact; a
stage with `data_from: <stage>` reads its rows from there. Otherwise a stage reads the user's files for
its kind, or a split of the embedded task suite (`data.suite`), of the visual suite (`data.visual`: vl_train,
vl_eval, ...; rows with `images`) or of the video suite (`data.video`: video_train, ...; rows with `videos`).
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rlsys.config.validate import ConfigError
from rlsys.stages.context import USER_FILES, StageContext

log = logging.getLogger(__name__)

DATA_FILE = "data.jsonl"
EVAL_FILE = "eval.jsonl"


def write_jsonl(path: str | Path, rows: Sequence[dict]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path


def read_jsonl(path: str | Path) -> list[dict]:
    with Path(path).open() as fh:
        return [json.loads(line) for line in fh if line.strip()]


def input_data_file(ctx: StageContext, name: str = DATA_FILE) -> Path:
    """The data file written by the stage named in `data_from`."""
    src = ctx.stage.data_from
    if not src or src not in ctx.artifacts:
        raise KeyError(f"config key 'stages.{ctx.name}.data_from' = {src!r}: not a built dependency")
    path = Path(ctx.artifacts[src]) / name
    if not path.is_file():
        raise FileNotFoundError(
            f"config key 'stages.{ctx.name}.data_from' = {src!r}: that stage wrote no {name} "
            "(stage kinds that write one: rft_sample, pass_filter, pref_sample, judge_data, sft_pass_filter, cold_start)"
        )
    return path


def pick_rows(n: int, max_rows: int, seed: int) -> list[int]:
    """Indices of up to `max_rows` rows (all when 0), a seeded choice kept in file order."""
    if max_rows <= 0 or max_rows >= n:
        return list(range(n))
    return sorted(random.Random(f"pick|{seed}").sample(range(n), max_rows))


def stage_rows(ctx: StageContext, kind: str, split: str | None = None, select: bool = True) -> list[dict]:
    """The stage's rows: another stage's data file (`data_from`), else the user's files for this
    kind, else the task-suite split (`a+b` joins several splits); then those its `where` selects, unless
    `select` is False (for a caller that extends the rows before selecting)."""
    from rlsys.data.loading import load_rows

    cfg = ctx.cfg
    files_key = USER_FILES.get(ctx.stage.kind)
    user_files = list(cfg.data[files_key]) if files_key and split is None else []
    # A file that gives no row is an error naming it: a stage on no rows would run and train on nothing.
    if split is None and ctx.stage.data_from:
        rows, stats = load_rows([str(input_data_file(ctx))], kind, cfg.data.on_bad_row, require_rows=True)
        ctx.row_origins.add(rows, stats["origins"])
    elif user_files:
        rows, stats = load_rows(user_files, kind, cfg.data.on_bad_row, require_rows=True)
        ctx.row_origins.add(rows, stats["origins"])
    else:
        parts = split_parts(split or ctx.stage.data, f"stages.{ctx.name}.data")
        files = suite_files(cfg, [name for name, _ in parts])
        rows, stats = [], {"skipped": 0}
        for name, limit in parts:
            if name not in files:
                raise KeyError(f"config key 'stages.{ctx.name}.data' = {name!r}: suite splits are "
                               f"{sorted(files)}, visual suite splits {sorted(visual_splits())}")
            part, part_stats = load_rows([files[name]], kind, cfg.data.on_bad_row)
            ctx.row_origins.add(part, part_stats["origins"])
            rows += [part[i] for i in pick_rows(len(part), limit, ctx.stage.seed)]
            stats["skipped"] += part_stats["skipped"]
    if stats["skipped"]:
        log.warning("stage %s: skipped %d bad rows", ctx.name, stats["skipped"])
    return select_rows(rows, ctx.stage.where, f"stages.{ctx.name}.where") if select and ctx.stage.where else rows


def stage_row_parts(ctx: StageContext, kind: str) -> list[tuple[str, list[dict]]]:
    """The rows of each `+`-joined part of `stages.<name>.data` (as written, e.g. "vl_caption_train:8"),
    for a weighted mixture (`mix_weights`); `where` selects over all parts together, as in `stage_rows`."""
    key = f"stages.{ctx.name}.mix_weights"
    files_key = USER_FILES.get(ctx.stage.kind)
    if ctx.stage.data_from or (files_key and list(ctx.cfg.data[files_key])):
        source = f"data_from = {ctx.stage.data_from!r}" if ctx.stage.data_from else f"data.{files_key}"
        raise ConfigError(f"config key '{key}': mixes the '+'-joined splits of stages.{ctx.name}.data, but this "
                          f"stage reads {source}")
    spec = ctx.stage.data
    parts = split_parts(spec, f"stages.{ctx.name}.data")
    files = suite_files(ctx.cfg, [name for name, _ in parts])
    out: list[tuple[str, list[dict]]] = []
    for text, (name, limit) in zip(spec.split("+"), parts):
        if name not in files:
            raise KeyError(f"config key 'stages.{ctx.name}.data' = {name!r}: suite splits are "
                           f"{sorted(files)}, visual suite splits {sorted(visual_splits())}")
        part = _load_part(files[name], kind, ctx)
        out.append((text.strip(), [part[i] for i in pick_rows(len(part), limit, ctx.stage.seed)]))
    if ctx.stage.where:
        kept = {id(r) for r in select_rows([r for _, rows in out for r in rows], ctx.stage.where,
                                           f"stages.{ctx.name}.where")}
        out = [(text, [r for r in rows if id(r) in kept]) for text, rows in out]
    empty = [text for text, rows in out if not rows]
    if empty:
        raise ConfigError(f"config key 'stages.{ctx.name}.data': part {empty[0]!r} has no rows to mix")
    return out


def _load_part(path: str, kind: str, ctx: StageContext) -> list[dict]:
    """One suite split's rows (origins recorded; skipped bad rows logged)."""
    from rlsys.data.loading import load_rows

    rows, stats = load_rows([path], kind, ctx.cfg.data.on_bad_row)
    ctx.row_origins.add(rows, stats["origins"])
    if stats["skipped"]:
        log.warning("stage %s: skipped %d bad rows of %s", ctx.name, stats["skipped"], path)
    return rows


def visual_splits() -> frozenset[str]:
    """Split names of the visual suite (`data.visual`): vl_train, vl_eval, vl_sft_train, ... Their rows carry
    `images` (absolute paths once loaded)."""
    from rlsys.data.tasks.visual.suite import KINDS

    return frozenset(KINDS)


def video_splits() -> frozenset[str]:
    """Split names of the video suite (`data.video`): video_train, video_eval, video_sft_train."""
    from rlsys.data.tasks.video.suite import KINDS

    return frozenset(KINDS)


def suite_files(cfg: Any, names: Sequence[str]) -> dict[str, str]:
    """Split name -> file of the suites these split names need: the text suite (`data.suite`) unless every
    name is a visual or video split, the visual suite (`data.visual`) / video suite (`data.video`) when any name
    is one of theirs; each is built only when needed."""
    from rlsys.data.embedded import ensure_task_suite, ensure_video_suite, ensure_visual_suite

    visual, video = visual_splits(), video_splits()
    files: dict[str, str] = {}
    if any(name in visual for name in names):
        files |= ensure_visual_suite(cfg.artifacts_dir, cfg.data.visual)
    if any(name in video for name in names):
        files |= ensure_video_suite(cfg.artifacts_dir, cfg.data.video)
    if any(name not in visual | video for name in names):
        files |= ensure_task_suite(cfg.artifacts_dir, cfg.data.suite)
    return files


def suite_data_identity(cfg: Any, spec: str) -> dict[str, Any]:
    """What identifies the rows of suite split(s) `spec` (`a+b:N`) in a stage's cache key: the text suite's
    identity and the split; plus the visual suite's identity only when a part is a visual split, so the keys of
    stages on text splits never depend on `data.visual`."""
    from rlsys.data.embedded import suite_identity

    out: dict[str, Any] = {"suite": suite_identity(cfg.data.suite), "split": spec}
    names = [part.partition(":")[0].strip() for part in str(spec).split("+")]
    if any(name in visual_splits() for name in names):
        from rlsys.data.tasks.visual.suite import VisualSuiteSpec, visual_identity

        out["visual"] = visual_identity(VisualSuiteSpec.from_config(cfg.data.visual))
    if any(name in video_splits() for name in names):
        from rlsys.data.tasks.video.suite import VideoSuiteSpec, video_identity

        out["video"] = video_identity(VideoSuiteSpec.from_config(cfg.data.video))
        # How the frames reach the model shapes a stage's inputs as much as the rows do.
        sampling = str(cfg.data.get("video_sampling", "uniform"))
        out["video_sampling"] = {"mode": sampling} | (
            {"slowfast": dict(cfg.data.slowfast)} if sampling == "slowfast" else {})
    return out


def split_parts(spec: str, key: str) -> list[tuple[str, int]]:
    """`a+b:N` -> [("a", 0), ("b", N)]: suite splits joined, `:N` taking a seeded N of that split's rows."""
    parts = []
    for part in spec.split("+"):
        name, _, limit = part.partition(":")
        if limit and not (limit.isdigit() and int(limit) > 0):
            raise ConfigError(f"config key '{key}' = {spec!r}: ':{limit}' must be a positive row count")
        parts.append((name.strip(), int(limit) if limit else 0))
    return parts


def select_rows(rows: list[dict], where: Any, key: str) -> list[dict]:
    """Rows whose every `where` field holds one of its listed values; an empty result is an error."""
    for field_name, allowed in dict(where).items():
        allowed = list(allowed)
        if not any(field_name in r for r in rows):
            raise ConfigError(f"config key '{key}.{field_name}': no row has a field '{field_name}'")
        rows = [r for r in rows if r.get(field_name) in allowed]
        if not rows:
            raise ConfigError(f"config key '{key}.{field_name}' = {allowed}: no row matches")
    return rows

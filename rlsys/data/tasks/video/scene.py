"""Video scene descriptions: the JSON dicts every video row is generated from, and their frames.

A `video` scene: `size` = [w, h], `background`, `fps`, `n_frames`, `objects` = every shape that is ever on
screen ({"shape", "color", "center", "radius"}, drawn as in rlsys.data.tasks.visual; an object's identity is
its index here and no two share colour and shape), `initial` = indices present in frame 0, and `events` =
[{"frame", "type": "appear" | "leave" | "move", "object", "to" (move only)}] sorted by frame. Optional
`shown` = the original frame index of each frame as shown (a shuffled clip). A `clips` scene holds several
`video` scenes in `clips` (one video each). Frames change only at event frames, so most frames are identical
to the one before and a few change a lot: what SlowFast planning separates.
"""

from __future__ import annotations

import random

from rlsys.data.tasks.visual.render import png_bytes
from rlsys.data.tasks.visual.scene import COLORS, GAP, PLURAL, SHAPES, px

DIRECTIONS = ("left", "right", "up", "down")
_STEP = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}


def name(obj: dict) -> str:
    return f"{obj['color']} {obj['shape']}"


def plural(obj: dict) -> str:
    return f"{obj['color']} {PLURAL[obj['shape']]}"


def distinct_kinds(rng: random.Random, n: int, avoid: tuple[tuple[str, str], ...] = ()) -> list[tuple[str, str]]:
    """`n` different (colour, shape) pairs, none in `avoid`."""
    combos = [(c, s) for c in COLORS for s in SHAPES if (c, s) not in avoid]
    return rng.sample(combos, n)


def _free(x: int, y: int, r: int, gap: int, others: list[tuple[int, int, int]]) -> bool:
    return all((x - ox) ** 2 + (y - oy) ** 2 >= (r + orad + gap) ** 2 for ox, oy, orad in others)


def place_objects(
    rng: random.Random, kinds: list[tuple[str, str]], size: int, keep_out: list[tuple[int, int, int]] = (),
    tries: int = 200, restarts: int = 100,
) -> list[dict]:
    """One non-overlapping shape per (colour, shape), clear of the `keep_out` discs (x, y, r). A layout that
    runs out of room starts over; raises after `restarts` layouts (too many shapes for the canvas)."""
    # Larger than the visual suite's shapes, so that an appearance changes a token-sized cell a lot: a quarter
    # of the smallest triangle at the palette's lowest contrast is a mean change > 2/255 over a 32 px cell.
    lo, hi = px(20, size), px(26, size)
    gap = px(GAP, size)
    for _ in range(restarts):
        discs = list(keep_out)
        placed: list[dict] = []
        for color, shape in kinds:
            r = rng.randint(lo, hi)
            margin = r + px(3, size)
            for _ in range(tries):
                x, y = rng.randint(margin, size - margin), rng.randint(margin, size - margin)
                if _free(x, y, r, gap, discs):
                    placed.append({"shape": shape, "color": color, "center": [x, y], "radius": r})
                    discs.append((x, y, r))
                    break
            else:
                break
        if len(placed) == len(kinds):
            return placed
    raise RuntimeError(f"no room for {len(kinds)} shapes on a {size} px canvas")


def video(size: int, background: str, fps: int, n_frames: int, objects: list[dict], initial: list[int],
          events: list[dict]) -> dict:
    return {"kind": "video", "size": [size, size], "background": background, "fps": fps, "n_frames": n_frames,
            "objects": objects, "initial": sorted(initial), "events": sorted(events, key=lambda e: e["frame"])}


def frames_of(scene: dict) -> list[list[dict]]:
    """The objects drawn in each frame, in time order (ignores `shown`)."""
    present = {i: dict(scene["objects"][i]) for i in scene["initial"]}
    by_frame: dict[int, list[dict]] = {}
    for event in scene["events"]:
        by_frame.setdefault(event["frame"], []).append(event)
    frames = []
    for t in range(scene["n_frames"]):
        for event in by_frame.get(t, []):
            j = event["object"]
            if event["type"] == "appear":
                present[j] = dict(scene["objects"][j])
            elif event["type"] == "leave":
                present.pop(j)
            else:
                present[j] = {**present[j], "center": list(event["to"])}
        frames.append([present[j] for j in sorted(present)])
    return frames


def shown_frames(scene: dict) -> list[list[dict]]:
    """The frames as the video shows them (in `shown` order when the clip is shuffled)."""
    frames = frames_of(scene)
    return [frames[i] for i in scene["shown"]] if "shown" in scene else frames


def frame_pngs(scene: dict) -> list[bytes]:
    """PNG bytes of every shown frame of a `video` scene (drawn with the visual suite's renderer)."""
    return [
        png_bytes({"kind": "shapes", "size": scene["size"], "background": scene["background"], "objects": objs})
        for objs in shown_frames(scene)
    ]


def clips_of(scene: dict) -> list[dict]:
    """The `video` scenes of a row: one, or the `clips` of a `clips` scene."""
    return scene["clips"] if scene["kind"] == "clips" else [scene]


def event_frames(rng: random.Random, n_frames: int, k: int, gap: int = 1) -> list[int]:
    """`k` sorted frame indices in [1, n_frames - 1], at least `gap` apart."""
    for _ in range(1000):
        picks = sorted(rng.sample(range(1, n_frames), k))
        if all(b - a >= gap for a, b in zip(picks, picks[1:])):
            return picks
    raise RuntimeError(f"cannot pick {k} event frames {gap} apart in {n_frames} frames")


def path(start: list[int], direction: str, steps: int, stride: int) -> list[list[int]]:
    """Centres after each of `steps` jumps of `stride` pixels in `direction`."""
    dx, dy = _STEP[direction]
    return [[start[0] + dx * stride * k, start[1] + dy * stride * k] for k in range(1, steps + 1)]


def direction_of(a: list[int], b: list[int]) -> str:
    """The direction from centre `a` to centre `b` (the larger of the two displacements)."""
    dx, dy = b[0] - a[0], b[1] - a[1]
    if abs(dx) >= abs(dy):
        return "right" if dx > 0 else "left"
    return "down" if dy > 0 else "up"

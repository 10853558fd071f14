"""Video tasks about motion and whole clips: direction of motion, frame-order recovery, the related clip."""

from __future__ import annotations

import json
import random

from rlsys.data.tasks.video.scene import (
    DIRECTIONS,
    clips_of,
    direction_of,
    distinct_kinds,
    event_frames,
    frames_of,
    name,
    path,
    place_objects,
    video,
)
from rlsys.data.tasks.video.tasks_events import _background, event_video
from rlsys.data.tasks.visual.scene import COLORS, SHAPES, px, where
from rlsys.data.tasks.visual.task_base import VisualTask, _join


class MotionDirection(VisualTask):
    name, tier = "video_motion", 1
    prompts = (
        "In which direction does the {what} move? Answer 1 for left, 2 for right, 3 for up, 4 for down.",
        "Which way does the {what} move in the video: 1 left, 2 right, 3 up or 4 down? Answer with the number.",
    )

    def sample(self, rng: random.Random, size: int, n_frames: int) -> tuple[dict, dict]:
        direction = rng.choice(DIRECTIONS)
        steps = rng.randint(2, min(3, n_frames - 1))
        stride = px(26, size)
        kind = distinct_kinds(rng, 1)[0]
        r = px(22, size)
        lo, hi = r + px(3, size), size - r - px(3, size)
        travel = steps * stride
        along = {"left": (lo + travel, hi), "right": (lo, hi - travel), "up": (lo + travel, hi),
                 "down": (lo, hi - travel)}[direction]
        a, b = rng.randint(*along), rng.randint(lo, hi)
        start = [a, b] if direction in ("left", "right") else [b, a]
        centres = [start, *path(start, direction, steps, stride)]
        mover = {"shape": kind[1], "color": kind[0], "center": start, "radius": r}
        keep_out = [(x, y, r) for x, y in centres]
        others = place_objects(rng, distinct_kinds(rng, rng.randint(1, 2), avoid=(kind,)), size, keep_out)
        frames = event_frames(rng, n_frames, steps)
        events = [{"frame": t, "type": "move", "object": 0, "to": c} for t, c in zip(frames, centres[1:])]
        scene = video(size, _background(rng), 1, n_frames, [mover, *others], list(range(1 + len(others))), events)
        return scene, {"object": 0, "what": name(mover)}

    def key(self, scene: dict, query: dict) -> str:
        moves = [(e["frame"], e["to"]) for e in scene["events"]]
        return f"{self.name}|" + json.dumps([scene["objects"][0], moves, scene["n_frames"]], sort_keys=True)

    def solve(self, scene: dict, query: dict) -> tuple[list[str], int]:
        obj = scene["objects"][query["object"]]
        end = [e for e in scene["events"] if e["object"] == query["object"]][-1]["to"]
        direction = direction_of(obj["center"], end)
        size = scene["size"]
        return [
            f"In frame 1 the {name(obj)} is {where(obj['center'], size)} (x = {obj['center'][0]}, "
            f"y = {obj['center'][1]}).",
            f"In the last frame it is at x = {end[0]}, y = {end[1]}.",
            f"It moved {direction}, which is option {DIRECTIONS.index(direction) + 1}.",
        ], DIRECTIONS.index(direction) + 1

    def concept_hints(self, scene: dict, query: dict) -> tuple[str, str, str]:
        return (
            "The direction of motion is where the shape ends up compared with where it started.",
            f"Find the {query['what']} in the first frame and in the last frame.",
            "Sideways moves change only the left-right position; up and down moves only the height.",
        )


class FrameOrder(VisualTask):
    name, tier = "video_frame_order", 3
    prompts = (
        "The frames of this video are shuffled. Shapes only ever appear, one more in each frame. Write the "
        "frame numbers in their original order as one number (for example 2413).",
        "This clip's frames are out of order; in the original, each frame added one shape. Give the original "
        "order of the frame numbers as a single number, like 3142.",
    )

    def sample(self, rng: random.Random, size: int, n_frames: int) -> tuple[dict, dict]:
        n = rng.randint(4, 5)
        scene = event_video(rng, size, n, 1, ["appear"] * (n - 1), frames=list(range(1, n)))
        shown = list(range(n))
        while shown == sorted(shown):
            rng.shuffle(shown)
        scene["shown"] = shown
        return scene, {}

    def key(self, scene: dict, query: dict) -> str:
        kinds = [name(o) for o in scene["objects"]]
        return f"{self.name}|" + json.dumps([kinds, scene["shown"]])

    def solve(self, scene: dict, query: dict) -> tuple[list[str], int]:
        counts = [len(frames_of(scene)[i]) for i in scene["shown"]]
        order = sorted(range(len(counts)), key=lambda p: counts[p])
        lines = [f"Frame {p + 1} shows {counts[p]} shape{'s' if counts[p] != 1 else ''}." for p in order]
        digits = "".join(str(p + 1) for p in order)
        lines.append(f"Fewest shapes first: the original order is {digits}.")
        return lines, int(digits)

    def concept_hints(self, scene: dict, query: dict) -> tuple[str, str, str]:
        return (
            "Since shapes only appear, later frames always hold more shapes than earlier ones.",
            "Count the shapes in each shown frame.",
            "Sort the frame numbers by their shape counts, fewest first, and write them one after another.",
        )


class RelatedClip(VisualTask):
    name, tier = "video_related", 3
    prompts = (
        "The first video is a reference; videos 2, 3 and 4 are candidates 1, 2 and 3. Which candidate shows "
        "the same shapes (colours and kinds, wherever and whenever they are) as the reference? Answer 1, 2 or 3.",
        "Compare the reference clip (the first video) with the three candidate clips after it. Which candidate "
        "(1, 2 or 3) contains exactly the same shapes as the reference?",
    )

    def _clip(self, rng: random.Random, size: int, n_frames: int, kinds: list[tuple[str, str]]) -> dict:
        objects = place_objects(rng, kinds, size)
        last = rng.randrange(len(kinds))
        order = [j for j in range(len(kinds)) if j != last] + [last]
        # The last shape appears during the clip: each clip has one big change at its own frame.
        events = [{"frame": event_frames(rng, n_frames, 1)[0], "type": "appear", "object": order[-1]}]
        return video(size, _background(rng), 1, n_frames, objects, order[:-1], events)

    def sample(self, rng: random.Random, size: int, n_frames: int) -> tuple[dict, dict]:
        kinds = distinct_kinds(rng, rng.randint(2, 3))
        answer = rng.randint(1, 3)
        clips = [self._clip(rng, size, n_frames, kinds)]
        for c in range(1, 4):
            if c == answer:
                clips.append(self._clip(rng, size, n_frames, rng.sample(kinds, len(kinds))))
                continue
            swap = rng.randrange(len(kinds))
            color, shape = kinds[swap]
            near = [(c2, shape) for c2 in COLORS if c2 != color] + [(color, s2) for s2 in SHAPES if s2 != shape]
            near = [k for k in near if k not in kinds]
            changed = [*kinds[:swap], rng.choice(near), *kinds[swap + 1:]]
            clips.append(self._clip(rng, size, n_frames, rng.sample(changed, len(changed))))
        return {"kind": "clips", "fps": 1, "clips": clips}, {}

    def key(self, scene: dict, query: dict) -> str:
        return f"{self.name}|" + json.dumps([sorted(name(o) for o in c["objects"]) for c in scene["clips"]])

    def solve(self, scene: dict, query: dict) -> tuple[list[str], int]:
        sets = [sorted(name(o) for o in c["objects"]) for c in clips_of(scene)]
        lines = [f"The reference shows the {_join(sets[0])}."]
        answer = 0
        for i, items in enumerate(sets[1:], start=1):
            same = items == sets[0]
            answer = i if same else answer
            lines.append(f"Candidate {i} shows the {_join(items)}: {'the same' if same else 'different'}.")
        lines.append(f"So candidate {answer} is related.")
        return lines, answer

    def concept_hints(self, scene: dict, query: dict) -> tuple[str, str, str]:
        return (
            "Related clips show the same shapes; positions and the moment a shape appears may differ.",
            "List every shape that shows up in the reference, including one that only appears later.",
            "Make the same list for each candidate and keep the one whose list matches exactly.",
        )

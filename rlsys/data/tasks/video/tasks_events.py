"""Video tasks about events in time: count appearances / departures, which event came first, when one happened.

Frames are numbered from 1 in prompts and solutions (frame index 0 is "frame 1"); seconds count from 0 s at
frame 1, so frame index i is at i / fps seconds.
"""

from __future__ import annotations

import json
import random

from rlsys.data.tasks.video.scene import distinct_kinds, event_frames, name, place_objects, video
from rlsys.data.tasks.visual.scene import BACKGROUNDS
from rlsys.data.tasks.visual.task_base import VisualTask

VERB = {"appear": "appears", "leave": "leaves"}
PAST = {"appear": "appeared", "leave": "left"}


def _background(rng: random.Random) -> str:
    return rng.choice(["white", "white", *sorted(BACKGROUNDS)])


def event_video(
    rng: random.Random, size: int, n_frames: int, n_static: int, types: list[str], fps: int = 1,
    frames: list[int] | None = None,
) -> dict:
    """A video with `n_static` shapes there throughout and one appear/leave event per entry of `types`, each
    on its own frame (`frames`, or drawn at random)."""
    kinds = distinct_kinds(rng, n_static + len(types))
    objects = place_objects(rng, kinds, size)
    frames = frames or event_frames(rng, n_frames, len(types))
    initial = list(range(n_static))
    events = []
    for k, (kind, t) in enumerate(zip(types, frames)):
        j = n_static + k
        if kind == "leave":
            initial.append(j)
        events.append({"frame": t, "type": kind, "object": j})
    return video(size, _background(rng), fps, n_frames, objects, initial, events)


def _key(task: str, scene: dict, query: dict) -> str:
    events = [(e["frame"], e["type"], name(scene["objects"][e["object"]])) for e in scene["events"]]
    static = sorted(name(scene["objects"][j]) for j in scene["initial"])
    return f"{task}|" + json.dumps([query, scene["n_frames"], scene["fps"], static, events], sort_keys=True)


def _says(scene: dict, event: dict) -> str:
    return f"In frame {event['frame'] + 1} the {name(scene['objects'][event['object']])} {VERB[event['type']]}."


class CountEvents(VisualTask):
    name, tier = "video_count", 1
    prompts = (
        "How many shapes {verb} during the video?",
        "Watch the video. How many shapes {verb} in it?",
        "Count the shapes that {verb} over the course of the video.",
    )

    def sample(self, rng: random.Random, size: int, n_frames: int) -> tuple[dict, dict]:
        event = rng.choice(("appear", "leave"))
        other = "leave" if event == "appear" else "appear"
        n = rng.randint(1, min(3, n_frames - 2))
        types = [event] * n + [other] * rng.randint(0, 1)
        rng.shuffle(types)
        scene = event_video(rng, size, n_frames, rng.randint(1, 2), types)
        return scene, {"event": event, "verb": event}

    def key(self, scene: dict, query: dict) -> str:
        return _key(self.name, scene, query)

    def solve(self, scene: dict, query: dict) -> tuple[list[str], int]:
        hits = [e for e in scene["events"] if e["type"] == query["event"]]
        lines = [_says(scene, e) for e in hits]
        n = len(hits)
        lines.append(f"So {n} shape{'s' if n != 1 else ''} {query['event'] if n != 1 else VERB[query['event']]} "
                     "during the video.")
        return lines, n

    def concept_hints(self, scene: dict, query: dict) -> tuple[str, str, str]:
        verb = query["event"]
        return (
            f"A shape {VERB[verb]} when it is {'missing from' if verb == 'appear' else 'in'} one frame and "
            f"{'in' if verb == 'appear' else 'missing from'} the next.",
            "Go through the frames in order and compare each frame with the one before it.",
            f"Count only the shapes that {verb}; shapes that stay all along or that "
            f"{'leave' if verb == 'appear' else 'appear'} do not count.",
        )


class EventOrder(VisualTask):
    name, tier = "video_order", 2
    prompts = (
        "Which happened first in the video: (1) {a}, or (2) {b}? Answer 1 or 2.",
        "Two things happen in this video: (1) {a}; (2) {b}. Which came first? Answer with its number.",
    )

    def sample(self, rng: random.Random, size: int, n_frames: int) -> tuple[dict, dict]:
        types = [rng.choice(("appear", "leave")) for _ in range(rng.randint(2, min(3, n_frames - 1)))]
        scene = event_video(rng, size, n_frames, rng.randint(0, 1), types)
        pair = rng.sample(range(len(scene["events"])), 2)
        texts = [self._event_text(scene, scene["events"][i]) for i in pair]
        return scene, {"events": pair, "a": texts[0], "b": texts[1]}

    @staticmethod
    def _event_text(scene: dict, event: dict) -> str:
        return f"the {name(scene['objects'][event['object']])} {PAST[event['type']]}"

    def key(self, scene: dict, query: dict) -> str:
        return _key(self.name, scene, {"events": query["events"]})

    def solve(self, scene: dict, query: dict) -> tuple[list[str], int]:
        a, b = (scene["events"][i] for i in query["events"])
        first = 1 if a["frame"] < b["frame"] else 2
        return [
            _says(scene, a),
            _says(scene, b),
            f"Frame {min(a['frame'], b['frame']) + 1} comes before frame {max(a['frame'], b['frame']) + 1}, "
            f"so ({first}) happened first.",
        ], first

    def concept_hints(self, scene: dict, query: dict) -> tuple[str, str, str]:
        return (
            "Each event happens in one frame: the first frame in which the change is visible.",
            "Find the frame of each of the two events, then compare the frame numbers.",
            "The event with the smaller frame number happened first.",
        )


class TemporalGrounding(VisualTask):
    name, tier = "video_when", 2
    prompts_frame = (
        "In which frame (counting from 1) does the {what} {verb}?",
        "Give the number of the frame (the first frame is 1) in which the {what} {verbs}.",
    )
    prompts_second = (
        "The video runs at {fps} frames per second and starts at 0 s. At which second does the {what} {verb}?",
        "At {fps} frames per second from 0 s, at what second does the {what} {verb}? Answer in whole seconds.",
    )

    def sample(self, rng: random.Random, size: int, n_frames: int) -> tuple[dict, dict]:
        unit = rng.choice(("frame", "second"))
        fps = rng.choice((1, 2)) if unit == "second" else 1
        types = [rng.choice(("appear", "leave")) for _ in range(rng.randint(1, min(3, n_frames // fps - 1)))]
        # In seconds, event frames fall on whole seconds (a multiple of fps), so the answer is an integer.
        frames = sorted(rng.sample(range(fps, n_frames, fps), len(types)))
        scene = event_video(rng, size, n_frames, rng.randint(0, 2), types, fps=fps, frames=frames)
        target = rng.randrange(len(scene["events"]))
        event = scene["events"][target]
        return scene, {"event": target, "unit": unit, "fps": fps, "verb": event["type"], "verbs": VERB[event["type"]],
                       "what": name(scene["objects"][event["object"]])}

    def prompt(self, scene: dict, query: dict, rng: random.Random) -> str:
        options = self.prompts_second if query["unit"] == "second" else self.prompts_frame
        return rng.choice(options).format(**query)

    def key(self, scene: dict, query: dict) -> str:
        return _key(self.name, scene, {"event": query["event"], "unit": query["unit"]})

    def solve(self, scene: dict, query: dict) -> tuple[list[str], int]:
        event = scene["events"][query["event"]]
        lines = [_says(scene, event)]
        if query["unit"] == "frame":
            return lines, event["frame"] + 1
        seconds = event["frame"] // scene["fps"]
        lines.append(f"Frame {event['frame'] + 1} is {event['frame']} frames after frame 1, and "
                     f"{event['frame']} / {scene['fps']} = {seconds}, so it happens at {seconds} s.")
        return lines, seconds

    def concept_hints(self, scene: dict, query: dict) -> tuple[str, str, str]:
        unit = query["unit"]
        return (
            f"The {query['what']} {VERB[scene['events'][query['event']]['type']]} in the first frame where the "
            "change shows.",
            "Step through the frames from the first and stop at the frame where it changes.",
            "The frame number counts from 1." if unit == "frame"
            else "Time in seconds = (frame number - 1) / frames per second.",
        )

"""Held-out evaluation off the critical path (`eval.background`): a dedicated rollout pool, a background thread.

At an evaluation step the loop hands over a snapshot of the learner's weights (object-store refs of that
policy version) and goes on training. The thread loads the snapshot into its own pool, runs the same
evaluation as the inline one, and each result is logged as its own metrics line at the first step after it
finishes, with `eval/policy_version` naming the version it measured. At most one snapshot waits: a newer one replaces it
(`eval/skipped` counts those), so a slow evaluation never queues up work. The before/after evaluations of
the stage stay inline (the held-out table compares exact models). An evaluation in progress at a checkpoint
is not saved: it does not change training, and a resumed run evaluates again at its next evaluation step.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

Generate = Callable[..., Any]


class BackgroundEval:
    """Evaluates submitted weight snapshots one at a time on `pool`, with `run_eval(generate) -> metrics`."""

    def __init__(self, pool: Any, run_eval: Callable[[Generate], dict[str, float]]) -> None:
        self.pool, self.run_eval = pool, run_eval
        self._lock = threading.Lock()
        self._queued: tuple[int, list[Any]] | None = None
        self._done: list[dict[str, float]] = []
        self._skipped = 0
        self._thread: threading.Thread | None = None

    def submit(self, version: int, refs: list[Any]) -> None:
        with self._lock:
            if self._queued is not None:
                self._skipped += 1
            self._queued = (version, refs)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="background-eval", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            with self._lock:
                if self._queued is None:
                    self._thread = None
                    return
                (version, refs), self._queued = self._queued, None
            try:
                self.pool.sync_weights(refs, version)
                out = self.run_eval(self.pool.generate) | {"eval/policy_version": float(version)}
            except Exception as exc:  # counted on the metrics line; training goes on
                log.warning("background evaluation of policy version %d failed: %s", version, exc)
                out = {"eval/failed": 1.0, "eval/policy_version": float(version)}
            with self._lock:
                self._done.append(out)

    def drain(self) -> tuple[list[dict[str, float]], dict[str, float]]:
        """The evaluations finished since the last call (oldest first; each its own metrics line) and the
        step's count of snapshots replaced before they started (`eval/skipped`, absent when none)."""
        with self._lock:
            done, self._done = self._done, []
            skipped, self._skipped = self._skipped, 0
        return done, ({"eval/skipped": float(skipped)} if skipped else {})

    def close(self) -> tuple[list[dict[str, float]], dict[str, float]]:
        """Wait for the evaluation in progress (a queued one still runs) and return what `drain` would."""
        while True:
            with self._lock:
                thread = self._thread
            if thread is None:
                return self.drain()
            thread.join()

    def shutdown(self) -> None:
        """Stop the pool without waiting for an evaluation in progress (its result is dropped)."""
        with self._lock:
            self._queued = None
        self.pool.shutdown()

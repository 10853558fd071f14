"""BackgroundEval with a scripted pool: results carry the version evaluated, newer snapshots replace a
waiting one (counted), every finished result is returned, failures are counted, and close waits for the evaluation in progress."""

from __future__ import annotations

import threading

from rlsys.rl.background_eval import BackgroundEval


class ScriptedPool:
    """Holds the version it was synced to; `generate` blocks until the test releases it."""

    def __init__(self) -> None:
        self.version = -1
        self.synced: list[int] = []
        self.release = threading.Event()
        self.started = threading.Event()
        self.stopped = False

    def sync_weights(self, refs: list, version: int) -> None:
        assert refs == [f"weights-{version}"]
        self.version = version
        self.synced.append(version)

    def generate(self) -> int:
        self.started.set()
        assert self.release.wait(10)
        if self.version == 13:
            raise RuntimeError("engine died")
        return self.version

    def shutdown(self) -> None:
        self.stopped = True


def _evaluator() -> tuple[ScriptedPool, BackgroundEval]:
    pool = ScriptedPool()
    return pool, BackgroundEval(pool, lambda generate: {"eval/acc": generate() / 10})


def test_result_names_the_version_it_measured() -> None:
    pool, ev = _evaluator()
    ev.submit(3, ["weights-3"])
    assert ev.drain() == ([], {})  # still running: the loop does not wait
    pool.release.set()
    assert ev.close() == ([{"eval/acc": 0.3, "eval/policy_version": 3.0}], {})
    assert ev.drain() == ([], {})


def test_newer_snapshot_replaces_the_waiting_one() -> None:
    pool, ev = _evaluator()
    ev.submit(1, ["weights-1"])
    assert pool.started.wait(10)
    ev.submit(2, ["weights-2"])  # waits behind 1
    ev.submit(4, ["weights-4"])  # replaces 2
    pool.release.set()
    finished, skipped = ev.close()
    assert pool.synced == [1, 4]
    # 1 and 4 both ran and are both reported, oldest first; 2, replaced before it started, is counted.
    assert finished == [{"eval/acc": 0.1, "eval/policy_version": 1.0}, {"eval/acc": 0.4, "eval/policy_version": 4.0}]
    assert skipped == {"eval/skipped": 1.0}


def test_failure_is_counted_and_the_next_one_runs() -> None:
    pool, ev = _evaluator()
    pool.release.set()
    ev.submit(13, ["weights-13"])
    assert ev.close() == ([{"eval/failed": 1.0, "eval/policy_version": 13.0}], {})
    ev.submit(5, ["weights-5"])
    assert ev.close() == ([{"eval/acc": 0.5, "eval/policy_version": 5.0}], {})


def test_shutdown_drops_the_queued_snapshot_and_stops_the_pool() -> None:
    pool, ev = _evaluator()
    ev.submit(1, ["weights-1"])
    assert pool.started.wait(10)
    ev.submit(2, ["weights-2"])
    ev.shutdown()
    assert pool.stopped
    pool.release.set()
    ev.close()
    assert pool.synced == [1]

"""Robust scoring: reward functions run in a persistent worker process that can be abandoned.

The parent sends one request per reward function per batch; the worker streams back one result per
sample. Pure-Python hangs are cut short inside the worker by SIGALRM; anything that ignores that (C
code, a reward that swallows every exception) is caught by the parent's own deadline, which kills and
restarts the worker and re-sends only the samples that had no result yet.
"""

from __future__ import annotations

import asyncio
import logging
import math
import multiprocessing as mp
import signal
import sys
import threading
import time
import types
from collections import defaultdict, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection

from rlsys.reward.plugins import SAMPLE, BadRewardOutput, LoadedReward, RewardSpec, combine, normalise_output

logger = logging.getLogger(__name__)

OK, TIMEOUT, NONFINITE, CRASH = "ok", "timeout", "nonfinite", "crash"
# The extra a reward sets to 1 when it gave its configured fallback score instead of a verdict; summed.
FALLBACK = "fallback"
_MAX_ERROR_TEXT = 500
# Worker-side guard for async rewards that block the event loop, on top of each sample's own timeout.
_ASYNC_GUARD_S = 0.25


class RewardError(RuntimeError):
    """A reward failed while `fail_on_error=True`; the message names the function and the sample."""


class _SampleTimeout(BaseException):
    """Raised by SIGALRM in the worker; a BaseException so a reward's `except Exception` cannot eat it."""


@dataclass
class _Outcome:
    kind: str
    score: float = 0.0
    extras: dict = field(default_factory=dict)
    message: str = ""


# ----------------------------------------------------------------------------------------- worker side


def _on_alarm(signum: int, frame: object) -> None:
    raise _SampleTimeout


def _send(conn: Connection, msg: tuple) -> None:
    # An alarm landing mid-write would leave half a message in the pipe; hold it until the write is done.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
    try:
        conn.send(msg)
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGALRM})


def _error(i: int, exc: BaseException, timeout_s: float) -> tuple:
    if isinstance(exc, (_SampleTimeout, asyncio.TimeoutError)):
        return ("res", i, TIMEOUT, f"no result within {timeout_s:g}s")
    # A bad output's kind: `nonfinite` (NaN/inf), `non_numeric` (a bool, str, None, ... as the score).
    kind = exc.kind if isinstance(exc, BadRewardOutput) else type(exc).__name__
    return ("res", i, kind, str(exc)[:_MAX_ERROR_TEXT])


def _result(i: int, out: object, timeout_s: float) -> tuple:
    try:
        return ("res", i, OK, normalise_output(out))
    except BadRewardOutput as exc:
        return _error(i, exc, timeout_s)


def _run_sequential(conn: Connection, fn: LoadedReward, samples: list, timeout_s: float) -> None:
    for i, prompt, completion, fields in samples:
        try:
            signal.setitimer(signal.ITIMER_REAL, timeout_s)
            try:
                out = fn.call_one(prompt, completion, fields)
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            msg = _result(i, out, timeout_s)
        except (_SampleTimeout, Exception, SystemExit) as exc:
            msg = _error(i, exc, timeout_s)
        _send(conn, msg)


def _run_async(conn: Connection, fn: LoadedReward, samples: list, timeout_s: float) -> None:
    async def one(i: int, prompt: str, completion: str, fields: dict) -> None:
        try:
            out = await asyncio.wait_for(fn.call_one(prompt, completion, fields), timeout_s)
            msg = _result(i, out, timeout_s)
        except (_SampleTimeout, Exception, SystemExit) as exc:
            msg = _error(i, exc, timeout_s)
        _send(conn, msg)

    async def run_all() -> None:
        await asyncio.gather(*(one(*sample) for sample in samples))

    signal.setitimer(signal.ITIMER_REAL, timeout_s + _ASYNC_GUARD_S)
    try:
        asyncio.run(run_all())
    except _SampleTimeout:
        pass  # samples left without a result are re-sent one at a time by the parent
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


def _run_batched(conn: Connection, fn: LoadedReward, samples: list, timeout_s: float) -> None:
    budget = timeout_s * len(samples)
    try:
        signal.setitimer(signal.ITIMER_REAL, budget)
        try:
            outs = fn.call_batch([s[1] for s in samples], [s[2] for s in samples], [s[3] for s in samples])
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
    except (_SampleTimeout, Exception, SystemExit) as exc:
        if len(samples) == 1:
            _send(conn, _error(samples[0][0], exc, budget))
        # With several samples nothing is reported: the parent re-sends them one at a time so one bad
        # sample cannot take the whole batch down.
        return
    for sample, out in zip(samples, outs):
        _send(conn, _result(sample[0], out, timeout_s))


def _worker_main(conn: Connection) -> None:
    # Ctrl-C is the parent's to handle; it kills this process when it exits.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    loaded: dict[tuple[int, str, str], LoadedReward] = {}
    while True:
        try:
            request = conn.recv()
        except EOFError:
            return
        if request is None:
            return
        spec, sys_path, samples, timeout_s = request
        # Re-armed per request in case a reward installed its own SIGALRM handler.
        signal.signal(signal.SIGALRM, _on_alarm)
        # Plug-ins outside the package are found through the parent's current sys.path.
        sys.path.extend(p for p in sys_path if p not in sys.path)
        key = (spec.index, spec.name, spec.target)
        try:
            if key not in loaded:
                loaded[key] = LoadedReward(spec)
        except (Exception, SystemExit) as exc:
            conn.send(("load_error", type(exc).__name__, str(exc)[:_MAX_ERROR_TEXT]))
            continue
        conn.send(("loaded",))
        if spec.batched:
            _run_batched(conn, loaded[key], samples, timeout_s)
        elif spec.is_async:
            _run_async(conn, loaded[key], samples, timeout_s)
        else:
            _run_sequential(conn, loaded[key], samples, timeout_s)
        conn.send(("done",))


# ----------------------------------------------------------------------------------------- parent side

_DIED = ("died",)


class RewardManager:
    """Scores batches with the configured reward functions, isolating hangs, crashes and bad outputs.

    `timeout_s` is the budget per sample (a batched function gets `timeout_s * batch size` per call);
    a failed sample gets `on_error_score` for that function, or raises RewardError when
    `fail_on_error`. `load_timeout_s` bounds starting the worker and building a function (model loads).
    """

    def __init__(
        self,
        specs: Sequence[RewardSpec],
        timeout_s: float = 10.0,
        on_error_score: float = 0.0,
        fail_on_error: bool = False,
        load_timeout_s: float = 300.0,
        kill_grace_s: float = 2.0,
    ) -> None:
        if timeout_s <= 0 or load_timeout_s <= 0 or kill_grace_s < 0:
            raise ValueError("timeout_s and load_timeout_s must be > 0 and kill_grace_s >= 0")
        self.specs = list(specs)
        self.timeout_s = timeout_s
        self.on_error_score = on_error_score
        self.fail_on_error = fail_on_error
        self.load_timeout_s = load_timeout_s
        self.kill_grace_s = kill_grace_s
        self._ctx = mp.get_context("spawn")
        self._proc: mp.process.BaseProcess | None = None
        self._conn: Connection | None = None
        self._lock = threading.Lock()
        self._warned_sources: set[object] = set()
        self.restarts = 0

    # -- worker lifecycle

    def _start(self) -> None:
        parent_conn, child_conn = self._ctx.Pipe(duplex=True)
        proc = self._ctx.Process(target=_worker_main, args=(child_conn,), name="reward-worker", daemon=True)
        # A spawned child re-runs the parent's main script unless told otherwise; an unguarded training
        # script (or Ray's worker entry point) would then start again inside the reward worker. The worker
        # needs nothing from __main__, so it is hidden for the moment the child's start-up data is taken.
        main = sys.modules["__main__"]
        sys.modules["__main__"] = types.ModuleType("__main__")
        try:
            proc.start()
        finally:
            sys.modules["__main__"] = main
        child_conn.close()  # so the parent sees EOF when the worker dies
        self._proc, self._conn = proc, parent_conn

    def _kill(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._proc.join(timeout=10)
            self.restarts += 1
        if self._conn is not None:
            self._conn.close()
        self._proc, self._conn = None, None

    def close(self) -> None:
        """Stop the worker; the manager restarts one if used again."""
        if self._proc is not None and self._conn is not None:
            try:
                self._conn.send(None)
                self._proc.join(timeout=2)
            except OSError:
                pass
            if self._proc.is_alive():
                self._proc.kill()
                self._proc.join(timeout=10)
            self._conn.close()
        self._proc, self._conn = None, None

    def __enter__(self) -> RewardManager:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    def _recv(self, timeout: float) -> tuple | None:
        """Next worker message; None when none arrived in time, _DIED when the worker is gone."""
        assert self._conn is not None
        try:
            if not self._conn.poll(timeout):
                return None
            return self._conn.recv()
        except (EOFError, OSError):
            return _DIED

    # -- running one reward function

    def _run_fn(self, spec: RewardSpec, samples: list[dict], indices: list[int]) -> dict[int, _Outcome]:
        results: dict[int, _Outcome] = {}
        queue: deque[list[int]] = deque([indices])
        while queue:
            self._run_request(spec, samples, queue.popleft(), results, queue)
        return results

    def _send(self, spec: RewardSpec, payload: list) -> tuple | None:
        """Send one request (the worker builds the entry first if it has not yet) and return its load
        status: ("loaded",), ("load_error", kind, text), _DIED, or None when loading timed out."""
        if self._proc is None or not self._proc.is_alive():
            self._kill()
            self._start()
        assert self._conn is not None
        try:
            self._conn.send((spec, list(sys.path), payload, self.timeout_s))
            return self._recv(self.load_timeout_s)
        except OSError:
            return _DIED

    def _run_request(
        self,
        spec: RewardSpec,
        samples: list[dict],
        chunk: list[int],
        results: dict[int, _Outcome],
        queue: deque[list[int]],
    ) -> None:
        payload = [(i, samples[i]["prompt"], samples[i]["completion"], _fields(samples[i])) for i in chunk]
        status = self._send(spec, payload)
        if status is None or status == _DIED:
            what = "timed out" if status is None else "died"
            self._kill()
            for i in chunk:
                results[i] = _Outcome(TIMEOUT if status is None else CRASH, message=f"worker {what} loading")
            return
        if status[0] == "load_error":
            for i in chunk:
                results[i] = _Outcome(status[1], message=f"building {spec.target}: {status[2]}")
            return

        wait = (self.timeout_s * len(chunk) if spec.batched else self.timeout_s) + self.kill_grace_s
        while True:
            msg = self._recv(wait)
            if msg is None or msg == _DIED:
                break
            if msg[0] == "done":
                self._retry_or_fail([i for i in chunk if i not in results], chunk, results, queue, TIMEOUT)
                return
            _, i, kind, value = msg
            results[i] = _Outcome(OK, *value) if kind == OK else _Outcome(kind, message=value)

        # The worker hung past its own alarm, or died: abandon it and account for the unreported samples.
        kind = TIMEOUT if msg is None else CRASH
        self._kill()
        missing = [i for i in chunk if i not in results]
        if spec.style == SAMPLE and not spec.is_async and missing:
            # Sequential calls: the first sample without a result is the one that was running.
            results[missing[0]] = _Outcome(kind, message=f"worker {kind} on this sample; restarted")
            if missing[1:]:
                queue.appendleft(missing[1:])
        else:
            self._retry_or_fail(missing, chunk, results, queue, kind)

    @staticmethod
    def _retry_or_fail(
        missing: list[int], chunk: list[int], results: dict[int, _Outcome], queue: deque[list[int]], kind: str
    ) -> None:
        if not missing:
            return
        if len(chunk) == 1:
            results[missing[0]] = _Outcome(kind, message="no result from the worker")
        else:
            # Which sample was at fault is unknown, so each one is retried alone.
            queue.extendleft([i] for i in reversed(missing))

    # -- public API

    def preload(self) -> dict[str, str]:
        """Start the scoring process and build every entry now (a served judge, a reward model), so that
        the first batch does not wait for them. Returns {entry name: problem} for entries that did not
        build; the first batch tries again and reports them per sample, as without a preload."""
        problems: dict[str, str] = {}
        with self._lock:
            for spec in self.specs:
                status = self._send(spec, [])
                if status is None or status == _DIED:
                    self._kill()
                    problems[spec.name] = "timed out loading" if status is None else "worker died loading"
                elif status[0] == "load_error":
                    problems[spec.name] = f"{status[1]}: {status[2]}"
                elif self._recv(self.timeout_s + self.kill_grace_s) != ("done",):
                    self._kill()
                    problems[spec.name] = "no answer to an empty request"
        return problems

    def score_batch(self, samples: list[dict]) -> tuple[list[float], list[dict], dict]:
        """Score `samples` (dicts with `prompt`, `completion` and row fields such as `data_source`).

        Returns the combined score per sample, per-sample extras (`<fn>`, `<fn>/<extra>`, `<fn>/error`)
        and batch metrics (`reward/mean`, `reward/<fn>/mean`, means of numeric extras, error counts, and
        `reward/<fn>/fallback`: the number of samples whose extra `fallback` was 1).
        """
        with self._lock:
            return self._score_batch(samples)

    def _score_batch(self, samples: list[dict]) -> tuple[list[float], list[dict], dict]:
        fn_scores: list[dict[str, float]] = [{} for _ in samples]
        extras: list[dict] = [{} for _ in samples]
        metrics: dict[str, float] = {}
        error_counts: dict[str, int] = defaultdict(int)
        restarts_before = self.restarts
        for spec in self.specs:
            indices = [i for i, s in enumerate(samples) if spec.applies_to(s.get("data_source"))]
            if not indices:
                continue
            start = time.perf_counter()
            outcomes = self._run_fn(spec, samples, indices)
            metrics[f"reward/{spec.name}/time_s"] = time.perf_counter() - start
            self._collect(spec, samples, indices, outcomes, fn_scores, extras, metrics, error_counts)

        scores: list[float] = []
        unmatched = 0
        for sample, per_fn in zip(samples, fn_scores):
            if not per_fn:
                unmatched += 1
                self._warn_unmatched(sample.get("data_source"))
            scores.append(combine(self.specs, per_fn, sample.get("data_source")))
        metrics["reward/mean"] = sum(scores) / len(scores) if scores else 0.0
        metrics["reward/unmatched"] = float(unmatched)
        for kind, count in error_counts.items():
            metrics[f"reward/errors/{kind}"] = float(count)
        metrics["reward/errors/total"] = float(sum(error_counts.values()))
        # Scoring processes killed and replaced during this batch (a hang past its deadline, a crash).
        metrics["reward/scorer_restarts"] = float(self.restarts - restarts_before)
        return scores, extras, metrics

    def _collect(
        self,
        spec: RewardSpec,
        samples: list[dict],
        indices: list[int],
        outcomes: dict[int, _Outcome],
        fn_scores: list[dict[str, float]],
        extras: list[dict],
        metrics: dict[str, float],
        error_counts: dict[str, int],
    ) -> None:
        numeric: dict[str, list[float]] = defaultdict(list)
        kinds: dict[str, int] = defaultdict(int)
        first_error = ""
        for i in indices:
            outcome = outcomes[i]
            if outcome.kind == OK:
                score = outcome.score
                for key, value in outcome.extras.items():
                    extras[i][f"{spec.name}/{key}"] = value
                    if isinstance(value, float) and math.isfinite(value):
                        numeric[key].append(value)
            else:
                sample_id = samples[i].get("id", i)
                if self.fail_on_error:
                    raise RewardError(
                        f"reward {spec.name!r} ({spec.target}) failed on sample {sample_id!r}: "
                        f"{outcome.kind}: {outcome.message}"
                    )
                score = self.on_error_score
                kinds[outcome.kind] += 1
                first_error = first_error or f"sample {sample_id!r}: {outcome.kind}: {outcome.message}"
                extras[i][f"{spec.name}/error"] = outcome.kind
            extras[i][spec.name] = score
            fn_scores[i][spec.name] = score
        used = [fn_scores[i][spec.name] for i in indices]
        metrics[f"reward/{spec.name}/mean"] = sum(used) / len(used)
        metrics[f"reward/{spec.name}/errors"] = float(sum(kinds.values()))
        for key, values in numeric.items():
            # `fallback` (1 when the reward scored its own fallback: a judge that timed out) is a count.
            metrics[f"reward/{spec.name}/{key}"] = sum(values) if key == FALLBACK else sum(values) / len(values)
        for kind, count in kinds.items():
            error_counts[kind] += count
        if kinds:
            logger.warning("reward %r: %s errors in %d samples (first: %s)", spec.name, dict(kinds),
                           len(indices), first_error)

    def _warn_unmatched(self, data_source: object) -> None:
        if self.fail_on_error:
            raise RewardError(f"no reward function applies to data_source {data_source!r}")
        if data_source not in self._warned_sources:
            self._warned_sources.add(data_source)
            logger.warning("no reward function applies to data_source %r; those samples score 0", data_source)


def _fields(sample: dict) -> dict:
    return {k: v for k, v in sample.items() if k not in ("prompt", "completion")}

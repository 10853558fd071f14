"""Scaling a running job by hand: a named Ray actor of the run holds the rollout size asked for.

The run starts `ScaleControl` (named from the run dir, in the run's Ray namespace) and writes `scale.json` in
the run dir with the cluster's address, the namespace and the actor's name. `python -m rlsys.scale` (or
`rlsys.scale.scale_run`), on any machine that reaches the cluster, joins it and records a request there. The
pool asks the actor for news at most every `POLL_S` seconds without blocking (`ControlPoller`, one call in
flight at a time) and applies a new request through `scale_to`; it reports its size back on each poll so the
CLI can show it. Nothing here reads files on the pool's side: it works whichever node the CLI runs on.

The actor is not detached: it lives as long as the run's driver, and a later RL stage of the same run finds it
(and the size asked for) again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

# Ray is imported where used: `python -m rlsys.scale` must set the run's authentication mode before Ray is imported.
log = logging.getLogger(__name__)

SCALE_FILE = "scale.json"
# Seconds between two polls of the control actor: a request waits at most this long (plus the time until the
# pool next steps, i.e. its next rollout) to be seen.
POLL_S = 1.0
# Environment variables that tell a Ray driver how to authenticate to the cluster.
AUTH_ENV = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN_PATH")


def control_name(run_dir: str | Path) -> str:
    """The control actor's name for a run dir (its resolved path, hashed: Ray names must be short)."""
    digest = hashlib.sha1(str(Path(run_dir).resolve()).encode()).hexdigest()[:16]
    return f"rlsys-scale-{digest}"


class ScaleControl:
    """Holds the newest request (`serial` counts them) and the pool's last report."""

    def __init__(self, run_dir: str) -> None:
        self.run_dir = run_dir
        self.serial = 0
        # Actors asked for; None hands the size back to the autoscaler (or leaves it as it is).
        self.rollout: int | None = None
        self.who = ""
        self.pool: dict[str, Any] = {}

    def request(self, rollout: int | None, who: str) -> dict[str, Any]:
        if rollout is not None and (isinstance(rollout, bool) or not isinstance(rollout, int) or rollout < 1):
            raise ValueError(f"--rollout must be a whole number >= 1, got {rollout!r}")
        self.serial += 1
        self.rollout, self.who = rollout, who
        return self.status()

    def poll(self, report: dict[str, Any]) -> tuple[int, int | None, str]:
        """The pool's call: keeps its report, returns the newest request."""
        self.pool = dict(report)
        return self.serial, self.rollout, self.who

    def status(self) -> dict[str, Any]:
        return {"run_dir": self.run_dir, "serial": self.serial, "rollout": self.rollout, "requested_by": self.who,
                "pool": dict(self.pool)}


def start_scale_control(run_dir: str | Path) -> Any:
    """Start (or find, for a later stage of the same run) the run's control actor and write `scale.json`."""
    import ray

    run_dir = Path(run_dir)
    name = control_name(run_dir)
    context = ray.get_runtime_context()
    namespace = context.namespace
    # No CPU: it must never keep a rollout actor from starting.
    handle = ray.remote(ScaleControl).options(name=name, namespace=namespace, num_cpus=0, get_if_exists=True,
                                              max_concurrency=4).remote(str(run_dir.resolve()))
    run_dir.mkdir(parents=True, exist_ok=True)
    info = {"address": context.gcs_address, "namespace": namespace, "actor": name, "pid": os.getpid(),
            "written_at": time.time(),
            # How a driver authenticates to this cluster (Ray turns token authentication on by itself when
            # ~/.ray/auth_token exists): the mode and the token's path, never the token.
            "auth": {k: os.environ[k] for k in AUTH_ENV if os.environ.get(k)}}
    tmp = run_dir / f".{SCALE_FILE}.tmp"
    tmp.write_text(json.dumps(info, indent=2))
    tmp.replace(run_dir / SCALE_FILE)
    log.info("scale this run by hand: python -m rlsys.scale %s --rollout N (%s)", run_dir, run_dir / SCALE_FILE)
    return handle


class ControlPoller:
    """The pool's side: one `poll` call in flight at a time, checked with a zero-timeout `ray.wait`."""

    def __init__(self, handle: Any, every_s: float = POLL_S) -> None:
        self.handle = handle
        self.every_s = every_s
        # The newest request serial the pool has applied.
        self.applied = 0
        self._ref: Any = None
        self._next = 0.0

    def poll(self, report: dict[str, Any]) -> tuple[int, int | None, str] | None:
        """A new request (serial, actors or None, who) when one arrived since the last; never blocks."""
        import ray
        from ray.exceptions import RayError

        if self.handle is None:
            return None
        now = time.monotonic()
        if self._ref is None:
            if now >= self._next:
                self._ref = self.handle.poll.remote(report)
            return None
        if not ray.wait([self._ref], timeout=0)[0]:
            return None
        ref, self._ref, self._next = self._ref, None, now + self.every_s
        try:
            serial, rollout, who = ray.get(ref)
        except RayError as exc:
            # Scaling by hand stops working; the run itself must not stop for it.
            log.warning("scale control actor lost (%s): scaling by hand is off for the rest of this run", exc)
            self.handle = None
            return None
        if serial <= self.applied:
            return None
        self.applied = serial
        return serial, rollout, who

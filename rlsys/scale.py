"""Resize the rollout pool of a running job: `python -m rlsys.scale runs/<exp>/<time> --rollout 3`.

The run wrote `scale.json` in its run dir (the Ray cluster's address, namespace and the name of its scale
control actor, rlsys/rollout/control.py); this joins that cluster as a short-lived driver, records the request
with the actor and leaves. The pool applies it at its next poll (within a second while it generates; a run
busy training applies it when its next rollout starts). `--auto` hands the size back to the autoscaler;
no size just prints the pool's last report. From Python: `scale_run(run_dir, rollout=3)`.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

from rlsys.rollout.control import SCALE_FILE


class ScaleError(RuntimeError):
    """The run cannot be reached or the request is invalid; the message says which and why."""


def read_scale_file(run_dir: str | Path) -> dict[str, Any]:
    path = Path(run_dir) / SCALE_FILE
    if not path.is_file():
        raise ScaleError(f"{path} not found: {run_dir} is not a run dir, or its RL stage has not started yet")
    try:
        info = json.loads(path.read_text())
        return {k: info[k] for k in ("address", "namespace", "actor")} | {"auth": dict(info.get("auth") or {})}
    except (ValueError, KeyError) as exc:
        raise ScaleError(f"{path}: unreadable ({exc.__class__.__name__}: {exc})") from None


def scale_run(run_dir: str | Path, rollout: int | None = None, *, auto: bool = False, wait_s: float = 0.0,
              who: str | None = None) -> dict[str, Any]:
    """Ask the running job in `run_dir` for `rollout` actors (or, `auto`, hand the size back to its autoscaler);
    with neither, only read its status. `wait_s` > 0 waits that long for the pool to apply the request.
    Returns the control actor's status: the request (`serial`, `rollout`, `requested_by`) and the pool's last
    report (`pool`: size, target, ready actors, the request serial it `applied`)."""
    if rollout is not None and auto:
        raise ScaleError("give --rollout N or --auto, not both")
    if rollout is not None and (isinstance(rollout, bool) or not isinstance(rollout, int) or rollout < 1):
        raise ScaleError(f"--rollout must be a whole number >= 1, got {rollout!r}")
    info = read_scale_file(run_dir)
    loaded = sys.modules.get("ray")
    joined = loaded is None or not loaded.is_initialized()
    if joined:
        # The run's authentication mode (and token path, which must exist on this machine too; set ones win),
        # before Ray is imported: it reads them once, at import.
        for key, value in info["auth"].items():
            os.environ.setdefault(key, value)
    import ray

    if joined:
        try:
            ray.init(address=info["address"], namespace=info["namespace"], log_to_driver=False,
                     logging_level="WARNING")
        except Exception as exc:  # connection errors come in many Ray types
            raise ScaleError(f"cannot reach the Ray cluster of {run_dir} at {info['address']} "
                             f"({exc.__class__.__name__}: {exc}); has the run ended? (With token authentication, "
                             f"{', '.join(info['auth']) or 'RAY_AUTH_MODE'} must be set before Ray is imported.)") from None
    try:
        try:
            control = ray.get_actor(info["actor"], namespace=info["namespace"])
        except ValueError:
            raise ScaleError(f"no scale control actor {info['actor']!r} on {info['address']}: "
                             f"the run in {run_dir} has ended") from None
        who = who or f"{getpass.getuser()}@{socket.gethostname()} pid {os.getpid()}"
        try:
            if rollout is None and not auto:
                return ray.get(control.status.remote(), timeout=60)
            status = ray.get(control.request.remote(rollout, who), timeout=60)
        except ray.exceptions.RayError as exc:
            raise ScaleError(f"the run in {run_dir} ended ({exc.__class__.__name__})") from None
        deadline = time.monotonic() + wait_s
        while status["pool"].get("applied", 0) < status["serial"] and time.monotonic() < deadline:
            time.sleep(0.5)
            try:
                status = ray.get(control.status.remote(), timeout=60)
            except ray.exceptions.RayError as exc:
                raise ScaleError(f"the run in {run_dir} ended before applying the request ({exc.__class__.__name__})") from None
        return status
    finally:
        if joined:
            ray.shutdown()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rlsys.scale", description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", help="the running job's run dir, runs/<exp>/<time> (holds scale.json)")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--rollout", type=int, help="rollout actors wanted (pins the size; the autoscaler pauses)")
    group.add_argument("--auto", action="store_true", help="hand the size back to the autoscaler")
    parser.add_argument("--wait", type=float, default=0.0, metavar="S",
                        help="seconds to wait for the pool to apply the request (default: do not wait)")
    args = parser.parse_args(argv)
    try:
        status = scale_run(args.run_dir, args.rollout, auto=args.auto, wait_s=args.wait)
    except ScaleError as exc:
        print(f"rlsys.scale: {exc}", file=sys.stderr)
        return 2
    pool = status.get("pool", {})
    applied = pool.get("applied", 0) >= status["serial"]
    print(json.dumps(status, indent=2))
    if (args.rollout is not None or args.auto) and not applied:
        print(f"request {status['serial']} recorded; the pool applies it at its next poll", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

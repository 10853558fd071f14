"""Per-core busy share of the machine between two calls (from the OS counters, via psutil).

On a shared machine this counts every process, not only the run's: read it next to the run's own
phase times (`time/*`), not instead of them.
"""

from __future__ import annotations

from typing import Any


def _busy_and_total(times: Any) -> tuple[float, float]:
    total = sum(times)
    idle = times.idle + getattr(times, "iowait", 0.0)
    return total - idle, total


class CoreBusy:
    """`cpu/core<i>_busy`: the share of each core's time spent busy since the last `sample()`."""

    def __init__(self) -> None:
        import psutil

        self._psutil = psutil
        self._last = [_busy_and_total(t) for t in psutil.cpu_times(percpu=True)]

    def sample(self) -> dict[str, float]:
        now = [_busy_and_total(t) for t in self._psutil.cpu_times(percpu=True)]
        out = {}
        for i, ((busy, total), (busy0, total0)) in enumerate(zip(now, self._last)):
            span = total - total0
            share = (busy - busy0) / span if span > 0 else 0.0
            # busy = total - idle is a difference of large floats, and the kernel's idle counter can
            # step back a tick: an idle core then reads as -1e-11, which is not a share.
            out[f"cpu/core{i}_busy"] = min(max(share, 0.0), 1.0)
        self._last = now
        return out

import time

from rlsys.tracking.cpu import CoreBusy


def test_core_busy_sees_a_spinning_core():
    meter = CoreBusy()
    end = time.perf_counter() + 0.5
    while time.perf_counter() < end:
        pass
    shares = meter.sample()
    assert shares and all(0.0 <= v <= 1.0 for v in shares.values())
    # One core's worth of spinning for the whole interval (the thread may move between cores; other
    # processes only add load).
    assert sum(shares.values()) > 0.8


def test_an_idle_core_whose_counters_round_below_zero_reads_zero():
    from collections import namedtuple

    Times = namedtuple("Times", "user system idle iowait")

    class FakePsutil:
        # busy = total - idle comes out 1e-10 lower than at the last sample: an idle core, float noise
        @staticmethod
        def cpu_times(percpu: bool) -> list:
            return [Times(1e6, 1e5, 3e6 + 0.3, 0.0)]

    meter = CoreBusy()
    meter._psutil = FakePsutil
    meter._last = [(1e6 + 1e5 + 1e-10, 1e6 + 1e5 + 3e6 + 0.1)]
    assert meter.sample() == {"cpu/core0_busy": 0.0}

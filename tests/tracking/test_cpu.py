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

"""The pacer with a fake clock: no real waiting."""

import threading

import pytest

from gimport.pacer import Pacer


class FakeClock:
    def __init__(self):
        self.now = 1000.0
        self.lock = threading.Lock()

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        with self.lock:
            self.now += seconds


def make(upm, **kw):
    clock = FakeClock()
    return Pacer(upm, clock=clock, sleep=clock.sleep, rand=lambda: 0.5, **kw), clock


def test_unlimited_never_waits():
    pacer, clock = make(None)
    for _ in range(1000):
        assert pacer.acquire(25) == 0
    assert clock.now == 1000.0
    assert pacer.units_spent == 25000


@pytest.mark.parametrize("upm", [6000, 15000, 250])
def test_rate_converges_to_quota_with_headroom(upm):
    pacer, clock = make(upm, headroom=0.98)
    start = clock.now
    calls = 2000
    for _ in range(calls):
        pacer.acquire(25)
    minutes = (clock.now - start) / 60
    rate = calls * 25 / minutes
    assert 0.96 * upm <= rate <= upm  # close to the ceiling, never over it


def test_burst_is_bounded():
    pacer, clock = make(6000, burst_seconds=0.5)
    # 100 units/s * 0.98 * 0.5 s = 49 units of burst: only one 25-unit call goes without waiting... plus one
    waits = [pacer.acquire(25) for _ in range(4)]
    assert waits[0] == 0
    assert sum(1 for w in waits if w == 0) <= 2
    assert all(w > 0 for w in waits[2:])


def test_server_wait_pauses_everyone_and_slows_down():
    pacer, clock = make(6000)
    before = pacer.rate_per_minute
    pacer.note_rate_limited(server_wait=10)
    assert pacer.rate_per_minute < before
    t0 = clock.now
    pacer.acquire(1)
    assert clock.now - t0 >= 10


def test_rate_recovers_after_quiet_period():
    pacer, clock = make(6000, recovery_seconds=30)
    full = pacer.rate_per_minute
    pacer.note_rate_limited()
    assert pacer.rate_per_minute < full
    for _ in range(100):
        clock.sleep(31)
        pacer.acquire(1)
    assert pacer.rate_per_minute == pytest.approx(full)


def test_rate_never_drops_below_floor():
    pacer, _ = make(6000, floor=0.1)
    for _ in range(100):
        pacer.note_rate_limited()
    assert pacer.rate_per_minute == pytest.approx(6000 * 0.98 * 0.1)


def test_backoff_is_exponential_capped_and_honours_server_wait():
    pacer, _ = make(6000, max_delay=64)
    assert [pacer.backoff_delay(n) for n in (1, 2, 3, 4)] == [1.5, 2.5, 4.5, 8.5]
    assert pacer.backoff_delay(20) == 64
    assert pacer.backoff_delay(1, server_wait=30) == 30
    assert pacer.backoff_delay(1, server_wait=10_000) == 900  # a silly server wait is capped at 15 min


def test_threads_share_the_budget():
    pacer, clock = make(6000)
    start = clock.now

    def work():
        for _ in range(50):
            pacer.acquire(25)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert pacer.units_spent == 8 * 50 * 25
    # 10,000 units at 98 units/s cannot take less than ~100 s of (fake) time
    assert clock.now - start >= (10_000 - 49) / 98 - 1

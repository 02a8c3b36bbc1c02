"""The pacer with a fake clock: no real waiting (its concurrency limit: test_concurrency.py)."""

import itertools
import threading
from contextlib import ExitStack

import pytest

from gimport.pacing.rate import RatePacer


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
    return RatePacer(upm, clock=clock, sleep=clock.sleep, rand=lambda: 0.5, **kw), clock


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
    pacer, _clock = make(6000)
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
    """Every cut needs a refusal of a call sent after the previous cut, so a burst of 429s at once does not
    drive the rate to the floor (it once took only a hundred of them)."""
    pacer, _ = make(6000, floor=0.1, recovery_seconds=1e9)  # no recovery between the cuts
    for _ in range(100):
        pacer.acquire(25)
        pacer.note_rate_limited()
    assert pacer.rate_per_minute == pytest.approx(6000 * 0.98 * 0.1)


def test_first_call_goes_at_once_and_every_next_one_waits_its_turn():
    pacer, clock = make(6000)  # 98 units/s: one import every 25/98 s, no burst
    assert pacer.acquire(25) == 0
    for _ in range(5):
        assert pacer.acquire(25) == pytest.approx(25 / 98)
    clock.sleep(60)  # a quiet minute earns no burst either
    assert pacer.acquire(25) == 0
    assert pacer.acquire(25) == pytest.approx(25 / 98)


def test_many_429s_at_once_are_one_congestion_event():
    """One congestion event, one cut: each 429 used to cut the rate by 15% (four at once: to 52%)."""
    pacer, _clock = make(12000, light_decrease=0.95, decrease=0.85)
    full = pacer.rate_per_minute
    barrier = threading.Barrier(8)

    def call_refused():
        pacer.acquire(25)
        barrier.wait()  # all eight are in flight before the first refusal arrives
        pacer.note_rate_limited(0.05)

    threads = [threading.Thread(target=call_refused) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert pacer.rate_limited == 8
    assert pacer.rate_per_minute == pytest.approx(full * 0.95)  # one light cut
    pacer.acquire(25)  # sent after the cut, refused too: a new event, and the congestion persists
    pacer.note_rate_limited()
    assert pacer.rate_per_minute == pytest.approx(full * 0.95 * 0.85, rel=0.01)


def test_back_to_the_configured_rate_within_ten_seconds_of_quiet():
    pacer, clock = make(12000, light_decrease=0.95, recovery_seconds=10)
    full = pacer.rate_per_minute
    pacer.acquire(25)
    pacer.note_rate_limited()  # refused at the configured rate: an isolated event, a light cut
    assert pacer.rate_per_minute == pytest.approx(full * 0.95)
    clock.sleep(5)
    assert full * 0.95 < pacer.rate_per_minute < full
    clock.sleep(5)
    assert pacer.rate_per_minute == pytest.approx(full)
    pacer.acquire(25)
    pacer.note_rate_limited(server_wait=20)  # the climb back starts when the server's wait is over
    assert pacer.rate_per_minute == pytest.approx(full * 0.95)
    clock.sleep(20)
    assert pacer.rate_per_minute == pytest.approx(full * 0.95)
    clock.sleep(10)
    assert pacer.rate_per_minute == pytest.approx(full)


def test_persisting_congestion_climbs_back_to_the_rate_last_refused_then_probes():
    pacer, clock = make(12000, light_decrease=0.95, decrease=0.85, recovery_seconds=10, probe=0.005)
    full = pacer.rate_per_minute
    for _ in range(3):  # three cuts, each from a call sent after the one before: the quota is lower
        pacer.acquire(25)
        refused = pacer.rate_per_minute
        pacer.note_rate_limited()
    assert refused == pytest.approx(full * 0.95 * 0.85, rel=0.01)
    assert pacer.rate_per_minute == pytest.approx(refused * 0.85)
    clock.sleep(10)
    assert pacer.rate_per_minute == pytest.approx(refused)  # not the configured rate, refused there
    clock.sleep(10)
    assert pacer.rate_per_minute == pytest.approx(refused + full * 0.005 * 10)  # 0.5% of it a second
    clock.sleep(60)
    assert pacer.rate_per_minute == pytest.approx(full)


def test_a_pause_that_comes_while_callers_wait_holds_them_and_they_resume_one_by_one():
    pacer, clock = make(12000)  # 196 units/s
    done = threading.Event()
    calls = {"n": 0}

    def sleep(seconds):
        calls["n"] += 1
        if calls["n"] == 1:  # while the second caller waits for its turn, the server says "wait 5 s"
            t = threading.Thread(target=pacer.note_rate_limited, args=(5.0,))
            t.start()
            t.join()
            done.set()
        clock.sleep(seconds)

    t0 = clock.now
    pacer.acquire(25, sleep=sleep)
    pacer.acquire(25, sleep=sleep)
    assert done.is_set()
    assert clock.now - t0 >= 5  # it did not go at its old turn
    cut = pacer.rate_per_minute / 60
    starts = []
    for _ in range(3):
        pacer.acquire(25, sleep=sleep)
        starts.append(clock.now)
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert all(g == pytest.approx(25 / cut, rel=0.05) for g in gaps)  # spaced, not a burst after the pause


def test_a_stop_aware_sleep_cut_short_returns_at_once():
    pacer, _clock = make(6000)
    pacer.note_rate_limited(server_wait=120)
    slept = []
    pacer.acquire(25, sleep=slept.append)  # returns at once, as an Event.wait does on a stop request
    assert len(slept) == 1
    assert slept[0] >= 119


def test_too_many_concurrent_lowers_the_concurrency_not_the_rate():
    pacer, _clock = make(None, max_concurrent=40)  # unlimited rate: the limit is the upper bound
    full = pacer.rate_per_minute
    assert pacer.concurrency_limit == 40
    with ExitStack() as stack:
        for _ in range(8):
            stack.enter_context(pacer.slot())(25)
        pacer.note_rate_limited(concurrent=True)
    assert pacer.rate_per_minute == full
    assert pacer.rate_limited == 1
    assert pacer.concurrency_limit == 7  # just under the 8 that were refused


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

"""The limit on calls in flight, on a fake clock: it follows rate x latency, learns the server's limit on
calls at once, and the import pool never holds more than the byte budget."""

import threading
from contextlib import ExitStack

from gimport.engine.inflight import pool_size
from gimport.pacing.concurrency import CallLimit


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def simulate(lim, clock, *, calls_per_second, latency, seconds, server_limit=None, cost=25):
    """Calls leave at the pacer's pace (one every 1/calls_per_second s) whenever the limit has room, each answered
    after `latency` s; a call that finds `server_limit` already in flight is refused at once (and told). Returns
    (calls answered, calls refused, the largest limit seen)."""
    step = 1.0 / calls_per_second
    flights: list[tuple[float, ExitStack]] = []  # (answer due, its slot)
    answered = refused = 0
    top = 0
    end = clock.now + seconds
    while clock.now < end:
        for due, stack in [f for f in flights if f[0] <= clock.now]:
            flights.remove((due, stack))
            stack.close()
            answered += 1
        top = max(top, lim.limit)
        if lim.in_use < lim.limit:
            stack = ExitStack()
            sent = stack.enter_context(lim.slot())
            sent(cost)
            if server_limit is not None and len(flights) >= server_limit:
                stack.close()
                lim.note_too_many_concurrent()
                refused += 1
            else:
                flights.append((clock.now + latency, stack))
        clock.now += step
    for due, stack in flights:  # the rest are answered in time too
        clock.now = max(clock.now, due)
        stack.close()
        answered += 1
    return answered, refused, top


def test_it_rises_to_what_the_quota_needs_at_the_latency():
    clock = FakeClock()
    lim = CallLimit(upper=64, rate=lambda: 15_000 / 60, clock=clock)  # 10 imports/s
    assert lim.limit == 2  # nothing seen yet: a spare pair only
    answered, refused, _ = simulate(lim, clock, calls_per_second=10, latency=1.2, seconds=60)
    assert refused == 0
    assert answered >= 0.95 * 10 * (60 - 1.2)  # the quota's pace, held from the start
    assert 10 * 1.2 <= lim.limit <= 10 * 1.2 * 1.25 + 3  # rate x latency, with headroom, not the upper bound
    assert abs(lim.latency - 1.2) < 0.1  # answers are seen at the simulation's 0.1 s steps


def test_it_falls_when_the_latency_falls_and_follows_the_upper_bound():
    clock = FakeClock()
    lim = CallLimit(upper=64, rate=lambda: 250.0, clock=clock)
    simulate(lim, clock, calls_per_second=10, latency=3.0, seconds=30)
    high = lim.limit
    simulate(lim, clock, calls_per_second=10, latency=0.3, seconds=30)
    assert high >= 30 > 10 >= lim.limit  # 10/s x 0.3 s = 3 in flight, plus headroom
    capped = CallLimit(upper=8, rate=lambda: 250.0, clock=clock)
    _, _, top = simulate(capped, clock, calls_per_second=10, latency=3.0, seconds=30)
    assert top == capped.limit == 8  # [gmail] workers is the upper bound
    assert CallLimit(upper=40, rate=lambda: None, clock=clock).limit == 40  # no quota: the upper bound


def test_it_falls_on_too_many_concurrent_and_stays_down():
    clock = FakeClock()
    lim = CallLimit(upper=64, rate=lambda: 250.0, probe_seconds=60, clock=clock)
    answered, refused, _ = simulate(lim, clock, calls_per_second=10, latency=3.0, seconds=300, server_limit=10)
    # just under the 11th that was refused, not a quarter below; 11 for a while when a probe is on
    assert lim.ceiling in (10, 11)
    assert lim.limit == lim.ceiling
    assert refused <= 1 + 300 // 60  # the first, then one probe a minute at most
    assert refused <= 0.01 * (answered + refused)
    assert answered >= 0.97 * 10 / 3.0 * 300  # the server's limit / latency, held


def test_a_refusal_under_the_learned_ceiling_follows_it_down_once_per_event():
    clock = FakeClock()
    lim = CallLimit(upper=40, probe_seconds=60, clock=clock)
    with ExitStack() as stack:
        for _ in range(9):
            stack.enter_context(lim.slot())(25)
        lim.note_too_many_concurrent()
    assert lim.ceiling == 8
    barrier = threading.Barrier(4)

    def refused() -> None:
        with lim.slot() as sent:
            sent(25)
            barrier.wait()  # four in flight together, under the ceiling of 8: something else shares it
        lim.note_too_many_concurrent()

    threads = [threading.Thread(target=refused) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert lim.ceiling == 3  # just under the four, once for the four
    assert lim.refusals == 5
    clock.now += 60
    assert lim.ceiling == 4  # one more a minute
    clock.now += 60 * 40
    assert lim.ceiling is None  # back at the upper bound: it no longer binds


def test_a_full_limit_blocks_until_a_slot_is_released():
    clock = FakeClock()
    lim = CallLimit(upper=2, clock=clock)
    first, second = lim.slot(), lim.slot()
    first.__enter__()
    second.__enter__()
    entered = threading.Event()

    def another() -> None:
        with lim.slot():
            entered.set()

    t = threading.Thread(target=another)
    t.start()
    assert not entered.wait(0.2)  # a bound for something that must not happen, not a wait for it
    first.__exit__(None, None, None)
    assert entered.wait(10)
    t.join(10)
    second.__exit__(None, None, None)
    assert lim.in_use == 0


def test_the_pool_never_holds_more_than_the_byte_budget():
    budget = 24 * 1024 * 1024
    assert pool_size(limit=30, upper=40, budget=budget, mean_bytes=20_000) == 30  # small messages: the need
    assert pool_size(limit=30, upper=20, budget=budget, mean_bytes=20_000) == 20  # the upper bound
    big = 5 * 1024 * 1024
    assert pool_size(limit=30, upper=40, budget=budget, mean_bytes=big) == 5  # large ones count by bytes
    assert (pool_size(30, 40, budget, big) - 1) * big <= budget  # one more than fits: one always fits
    assert pool_size(limit=30, upper=40, budget=budget, mean_bytes=100 * 1024 * 1024) == 1


def test_a_slot_given_before_a_cut_waits_to_leave_until_the_calls_in_flight_are_under_it():
    clock = FakeClock()
    lim = CallLimit(upper=40, clock=clock)
    with ExitStack() as flying:
        for _ in range(10):
            flying.enter_context(lim.slot())(25)
        late = lim.slot()
        sent_late = late.__enter__()  # given under the old limit, not yet sent
        with lim.slot() as sent:
            sent(25)  # the 11th: refused
        lim.note_too_many_concurrent()
        assert lim.limit == 10
        left = threading.Event()

        def leave() -> None:
            sent_late(25)
            left.set()

        t = threading.Thread(target=leave)
        t.start()
        assert not left.wait(0.2)  # a bound for something that must not happen, not a wait for it
        flying.close()  # the ten are answered
        assert left.wait(10)
        t.join(10)
        late.__exit__(None, None, None)
    assert lim.in_use == 0


def test_a_call_that_hangs_holds_one_place_and_does_not_scale_the_limit():
    clock = FakeClock()
    lim = CallLimit(upper=64, rate=lambda: 250.0, clock=clock)  # 10 calls/s
    simulate(lim, clock, calls_per_second=10, latency=0.3, seconds=10)
    usual = lim.limit
    hung = ExitStack()
    hung.enter_context(lim.slot())(25)  # never answered during the rest
    answered, refused, top = simulate(lim, clock, calls_per_second=10, latency=0.3, seconds=30)
    assert refused == 0
    assert answered >= 0.95 * 10 * 30  # the pace is held around it
    # one place more for it (answers seen at 0.1 s steps: 0.3 to 0.4 s), not 10/s x its 30 s of age (the
    # upper bound's worth of threads, as when the oldest call's age stood for the latency)
    assert usual + 1 <= top <= 10 * 0.4 * 1.25 + 2 + 1
    hung.close()


def test_a_server_slowing_down_for_every_call_is_followed_at_once():
    clock = FakeClock()
    lim = CallLimit(upper=64, rate=lambda: 250.0, clock=clock)
    simulate(lim, clock, calls_per_second=10, latency=0.3, seconds=20)
    answered, refused, top = simulate(lim, clock, calls_per_second=10, latency=3.0, seconds=30)
    assert refused == 0
    assert answered >= 0.9 * 10 * 30  # every call late: each holds a place until the mean has caught up
    assert 10 * 3.0 <= top <= 64


def test_calls_let_go_together_by_a_burst_of_answers_leave_at_the_pacers_spacing():
    """Calls whose turns came while the calls in flight were at the limit do not leave in a bunch when several
    answers come at once (a server counting its quota over a second refuses the bunch: the latency table's
    3 s row at a limit of 10 got 3 such refusals): each leaves its own cost's worth of time after the last."""
    clock = FakeClock()
    rate: list[float | None] = [None]
    lim = CallLimit(upper=40, rate=lambda: rate[0], clock=clock)
    with lim.slot() as sent:  # one answer: the latency is 3 s
        sent(25)
        clock.now += 3
    rate[0] = 100.0  # 25 units a call: one every 0.25 s, 17 in flight at 3 s
    with ExitStack() as flying:
        answers = []
        for _ in range(10):
            stack = ExitStack()
            stack.enter_context(lim.slot())(25)
            answers.append(stack)
            flying.callback(stack.close)
        waiting = [lim.slot() for _ in range(2)]
        sends = [w.__enter__() for w in waiting]  # turns given before the cut, not sent yet
        with lim.slot() as sent:
            sent(25)  # the 11th: refused
        lim.note_too_many_concurrent()
        assert lim.limit == 10
        left = [threading.Event(), threading.Event()]
        first = threading.Event()
        threads = [threading.Thread(target=lambda i=i: (sends[i](25), left[i].set(), first.set())) for i in range(2)]
        for t in threads:
            t.start()
        answers[0].close()
        answers[1].close()  # two answers at once: two places free
        assert not any(e.wait(0.3) for e in left)  # a bound for something that must not happen
        clock.now += 0.25
        assert first.wait(10)
        assert sum(e.is_set() for e in left) == 1  # one, not both: the other waits its 0.25 s
        clock.now += 0.25
        assert all(e.wait(10) for e in left)
        for t in threads:
            t.join(10)
        for w in waiting:
            w.__exit__(None, None, None)
    assert lim.in_use == 0

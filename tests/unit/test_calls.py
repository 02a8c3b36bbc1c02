"""The one call path (gimport.calls.Caller), on a fake clock: retry, give up, stop, silence."""

from __future__ import annotations

import contextlib
import threading

import pytest

from gimport.calls import Caller, RetryPolicy, StopRequested
from gimport.errors import GmailError, Interrupted, MessageRejected, RetryableError


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


class FakePacer:
    def __init__(self) -> None:
        self.charged: list[float] = []
        self.limited: list[float | None] = []

    def acquire(self, units=1, *, sleep=None):
        self.charged.append(units)
        return 0.0

    def note_rate_limited(self, server_wait=None, *, concurrent=False):
        self.limited.append(server_wait)

    @contextlib.contextmanager
    def slot(self):
        yield lambda cost: None

    concurrency_limit = 8

    def backoff_delay(self, attempt, server_wait=None):
        return max(float(attempt), server_wait or 0.0)

    rate_per_minute = None
    rate_limited = 0


def failing(errors: list[BaseException], result: str = "ok"):
    """An op that raises the given errors in turn, then returns `result`."""
    calls = []

    def op():
        calls.append(1)
        if errors:
            raise errors.pop(0)
        return result

    return op, calls


def caller(policy=None, pacer=None, **kw):
    clock = Clock()
    return Caller(pacer, policy or RetryPolicy(), sleep=clock.sleep, clock=clock, **kw), clock


def test_retries_then_succeeds_charging_each_attempt():
    pacer = FakePacer()
    c, clock = caller(pacer=pacer)
    op, calls = failing([RetryableError("5xx"), RetryableError("5xx")])
    attempts = []
    assert c.call(op, cost=25, on_attempt=attempts.append) == "ok"
    assert len(calls) == 3
    assert attempts == [1, 2, 3]
    assert pacer.charged == [25, 25, 25]  # a retry is a new call for the quota
    assert clock.slept == [1.0, 2.0]


def test_gives_up_after_the_policy_attempts_with_the_last_error():
    c, _ = caller(RetryPolicy(attempts=3))
    op, calls = failing([RetryableError(f"e{i}") for i in range(10)])
    with pytest.raises(RetryableError, match="e2"):
        c.call(op)
    assert len(calls) == 3


def test_rate_limits_are_counted_apart_and_told_to_the_pacer():
    pacer = FakePacer()
    c, clock = caller(RetryPolicy(attempts=2, rate_limited_attempts=5), pacer=pacer)
    op, calls = failing([RetryableError("429", rate_limited=True, wait=7.0)] * 4)
    assert c.call(op, cost=1) == "ok"
    assert len(calls) == 5
    assert pacer.limited == [7.0] * 4
    assert min(clock.slept) >= 7.0  # never shorter than the server asked


def test_what_is_not_retryable_is_raised_at_once_as_classified():
    c, _ = caller()
    op, calls = failing([ValueError("400")])
    with pytest.raises(MessageRejected, match="400"):
        c.call(op, classify=lambda exc: MessageRejected(str(exc)))
    assert len(calls) == 1


def test_unreachable_fails_fast_only_when_the_policy_says_so():
    c, _ = caller(RetryPolicy(fail_fast_unreachable=True))
    op, calls = failing([RetryableError("refused", unreachable=True)] * 3)
    with pytest.raises(RetryableError):
        c.call(op)
    assert len(calls) == 1
    c2, _ = caller(RetryPolicy(fail_fast_unreachable=False))
    op2, calls2 = failing([RetryableError("refused", unreachable=True)] * 3)
    assert c2.call(op2) == "ok"
    assert len(calls2) == 4


def test_silence_across_calls_stops_the_account_after_give_up_after():
    c, clock = caller(
        RetryPolicy(attempts=3, give_up_after=100.0), unreachable=lambda text: GmailError(f"gone: {text}")
    )
    gave_up = 0

    def messages_until_the_account_stops() -> None:
        nonlocal gave_up
        for _ in range(200):  # each message gives up after 3 attempts; the account goes on until 100 s of silence
            op, _ = failing([RetryableError("timed out", no_answer=True)] * 99)
            try:
                c.call(op)
            except RetryableError:
                gave_up += 1

    with pytest.raises(GmailError, match="gone"):
        messages_until_the_account_stops()
    assert gave_up >= 2
    assert clock.now >= 100.0


def test_an_answer_resets_the_silence():
    c, clock = caller(RetryPolicy(attempts=50, give_up_after=10.0), unreachable=lambda t: GmailError(t))
    op, _ = failing([RetryableError("reset", no_answer=True)] * 3)
    assert c.call(op) == "ok"  # 1 + 2 + 3 s of silence, then an answer
    clock.now += 1000
    op, _ = failing([RetryableError("reset", no_answer=True)] * 3)
    assert c.call(op) == "ok"  # the clock moved, but the silence started again at the answer


def test_nothing_but_too_many_concurrent_is_silence_too():
    """While our own calls hang, the server refuses every other call as "too many at once": no answer
    either, so the account stops after give_up_after instead of retrying those refusals for ever."""
    c, clock = caller(RetryPolicy(give_up_after=10.0), unreachable=lambda t: GmailError(f"gone: {t}"))
    op, calls = failing([RetryableError("too many", rate_limited=True, concurrent=True)] * 40)
    with pytest.raises(GmailError, match="gone"):
        c.call(op)
    assert 10.0 <= clock.now < 10.0 + 2.0  # checked again when the silence reached it
    assert len(calls) < 10
    ok, _ = failing([RetryableError("too many", rate_limited=True, concurrent=True)] * 3)
    c2, _clock2 = caller(RetryPolicy(give_up_after=10.0), unreachable=lambda t: GmailError(t))
    assert c2.call(ok) == "ok"  # refusals that end in an answer within the bound are just retried


def test_a_call_that_hangs_counts_its_silence_from_when_it_left():
    """A call that hangs 30 s until its timeout, with give_up_after 10 s: the account stops at that
    first failure, not 10 s of retries later; and a backoff never waits past give_up_after."""
    c, clock = caller(RetryPolicy(attempts=50, give_up_after=10.0), unreachable=lambda t: GmailError(f"gone: {t}"))

    def hang():
        clock.now += 30.0
        raise RetryableError("timed out", no_answer=True)

    with pytest.raises(GmailError, match="30 s without an answer"):
        c.call(hang)
    assert clock.slept == []

    c, clock = caller(RetryPolicy(attempts=50, give_up_after=10.0), unreachable=lambda t: GmailError(t))
    c._backoff = lambda attempt, wait=None: 60.0  # a long server-given wait
    op, _ = failing([RetryableError("refused", no_answer=True, unreachable=True)] * 5)
    with pytest.raises(GmailError):
        c.call(op)
    assert clock.now < 10.0 + 1.0  # it looked again when the silence reached 10 s, not after 60


def test_refusals_do_not_restart_the_give_up_clock():
    """Calls hang until their timeout (30 s), then every retry is refused ("too many concurrent requests": the hung
    calls still hold their slots). The refusals are no answer: the account stops when the silence that began with
    the hung call reaches give_up_after (100 s), not 40 refusals per call later."""
    c, clock = caller(RetryPolicy(attempts=50, give_up_after=100.0), unreachable=lambda t: GmailError(f"gone: {t}"))
    attempts = []

    def hung_then_refused():
        attempts.append(clock.now)
        if len(attempts) == 1:
            clock.now += 30.0
            raise RetryableError("timed out", no_answer=True)
        raise RetryableError("Too many concurrent requests", rate_limited=True, concurrent=True)

    with pytest.raises(GmailError, match="other than refusals"):
        c.call(hung_then_refused)
    assert 100.0 <= clock.now <= 101.0
    assert len(attempts) > 3  # the refusals were retried meanwhile


def test_refusals_alone_start_no_silence():
    """Only refusals (a quota that says "slow down" for a long time) never stop the account for silence: that is
    the per-call limit's business."""
    c, _ = caller(RetryPolicy(rate_limited_attempts=5, give_up_after=1.0), unreachable=lambda t: GmailError(t))
    op, _ = failing([RetryableError("429", rate_limited=True, wait=60.0)] * 4)
    assert c.call(op) == "ok"


def test_time_left_ends_an_attempt_when_the_silence_reaches_give_up_after():
    """An attempt leaving while another has been waiting 70 s for its answer may wait 30 s more, not its full
    timeout: no call outlasts the moment the account gives up. Without silence, the full timeout."""
    c, clock = caller(RetryPolicy(give_up_after=100.0), unreachable=lambda t: GmailError(t))
    assert c.time_left(120.0) == 120.0
    seen = []

    def hanging():
        clock.now += 70.0
        seen.append(c.time_left(120.0))  # as a second thread's attempt would see it now
        clock.now += 40.0
        seen.append(c.time_left(120.0))
        return "late"

    assert c.call(hanging) == "late"
    assert seen == [30.0, 1.0]  # never under 1 s
    assert c.time_left(120.0) == 120.0  # the answer ended the silence
    no_give_up, _ = caller(RetryPolicy(give_up_after=None))
    assert no_give_up.time_left(120.0) == 120.0


def test_a_stop_before_sending_raises_without_an_attempt():
    stop = threading.Event()
    stop.set()
    c, _ = caller(stop=stop)
    op, calls = failing([])
    attempts = []
    with pytest.raises(StopRequested) as info:
        c.call(op, on_attempt=attempts.append)
    assert calls == []
    assert attempts == []
    assert info.value.last_error is None
    assert info.value.__cause__ is None


def test_a_stop_while_waiting_to_retry_carries_the_last_error():
    stop = threading.Event()
    clock = Clock()

    def sleep(seconds):
        clock.sleep(seconds)
        stop.set()  # the stop arrives during the backoff wait

    c = Caller(None, RetryPolicy(), stop=stop, sleep=sleep, clock=clock)
    op, calls = failing([RetryableError("5xx", ambiguous=True)] * 5)
    with pytest.raises(StopRequested) as info:
        c.call(op)
    assert len(calls) == 1
    assert info.value.last_error is not None
    assert info.value.last_error.ambiguous
    assert info.value.__cause__ is info.value.last_error  # a traceback shows what it was waiting to retry
    assert isinstance(info.value, Interrupted)  # what the engine and the CLI catch

"""The one call path: every remote call gimport makes goes through Caller.call (rclone's pacer.Call).

A backend wraps each call of its library as `caller.call(op, cost=..., classify=should_retry)`: the
pacer is charged `cost` before each attempt, the backend's `classify` turns the library's exception
into gimport's (gimport.errors), and only RetryableError is tried again, after the pacer's jittered
backoff (never shorter than the server's wait). Knows nothing of Gmail or IMAP.

Giving up:
- after `policy.attempts` server or network errors, or `policy.rate_limited_attempts` "slow down"
  answers: the last RetryableError is raised (the caller decides what is lost: a message, a call);
- at once, when nothing answers at all and the policy says so (`fail_fast_unreachable`);
- when the other side has not answered for `policy.give_up_after` seconds in a row, across all calls
  and threads of this Caller: `Unreachable` (a GmailError or SourceError, by the backend's choice),
  which stops the account cleanly, everything resumable. A "too many concurrent requests" refusal is no
  answer here: a server whose calls hang and whose free slots refuse the retries must not keep a run
  going for ever. A "slow down" neither starts a silence nor ends one (a long quota pause is the per-call
  limit's business). The silence begins when the oldest unanswered attempt left (calls still in flight
  included), and `time_left` tells the transport how long an attempt may wait for its answer so that
  none outlasts the moment the silence reaches give_up_after;
- when a stop was requested: StopRequested, an Interrupted (before anything is sent, or while waiting
  to retry; the last error, if any, is in `__cause__` and in `last_error`).
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import TypeVar, cast

from gimport.contract import Pacer
from gimport.errors import GimportError, Interrupted, RetryableError
from gimport.i18n import _

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 6  # server errors and connection problems, per call
    rate_limited_attempts: int = 40  # "slow down" answers, per call (they say nothing about the call)
    fail_fast_unreachable: bool = False  # give up at the first "nothing answered" (a setup check)
    give_up_after: float | None = 600.0  # seconds without any answer, across calls: stop the account


class StopRequested(Interrupted):
    """A stop was requested while a call waited; `last_error` is the error it was waiting to retry."""

    def __init__(self, message: str, last_error: RetryableError | None = None) -> None:
        super().__init__(message)
        self.last_error = last_error


def _never(_: BaseException) -> BaseException:
    return _


class Caller:
    """Paced, retried calls for one account (thread-safe). `pacer` may be None (no quota: IMAP, OAuth)."""

    def __init__(
        self,
        pacer: Pacer | None,
        policy: RetryPolicy | None = None,
        *,
        stop: threading.Event | None = None,
        unreachable: Callable[[str], GimportError] | None = None,
        sleep: Callable[[float], object] | None = None,
        backoff: Callable[[int, float | None], float] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.pacer = pacer
        self.policy = policy or RetryPolicy()
        self.stop = stop or threading.Event()
        self._unreachable = unreachable
        self._sleep = sleep or self.stop.wait
        self._backoff = backoff or (pacer.backoff_delay if pacer is not None else default_backoff)
        self._clock = clock
        self._lock = threading.Lock()
        self._silent_since: float | None = None  # first unanswered call since the last answer
        self._last_answer = float("-inf")
        self._in_flight: dict[int, float] = {}  # attempt -> when it left
        self._attempt_ids = itertools.count()

    def _answered(self) -> None:
        now = self._clock()
        with self._lock:
            self._silent_since = None
            self._last_answer = now

    def _silent_for(self, since: float | None) -> float | None:
        """Seconds without an answer (None: no silence); the silence began when the unanswered attempt left
        (`since`; None for a refusal, which starts no silence but does not end one), not when it failed: a
        call that hangs until its timeout counts from its start."""
        now = self._clock()
        with self._lock:
            if since is not None:
                since = max(since, self._last_answer)  # silence begins no earlier than the last answer
                if self._silent_since is None or since < self._silent_since:
                    self._silent_since = since
            began = self._silence_began()
            return None if began is None else now - began

    def _silence_began(self) -> float | None:
        """When the current silence began (under the lock): the first failed unanswered attempt, or the oldest
        attempt still waiting for its answer, since the last answer; None when there is none."""
        waiting = min(self._in_flight.values(), default=None)
        if waiting is not None:
            waiting = max(waiting, self._last_answer)
        if self._silent_since is None or (waiting is not None and waiting < self._silent_since):
            return waiting
        return self._silent_since

    def time_left(self, cap: float) -> float:
        """How long an attempt leaving now may wait for its answer: `cap`, cut to end when the current silence
        reaches give_up_after (never under 1 s). For the transport's timeout."""
        limit = self.policy.give_up_after
        if limit is None or self._unreachable is None:
            return cap
        with self._lock:
            began = self._silence_began()
        if began is None:
            return cap
        return min(cap, max(1.0, began + limit - self._clock()))

    def call(
        self,
        op: Callable[[], T],
        *,
        cost: float = 0,
        classify: Callable[[BaseException], BaseException] = _never,
        on_attempt: Callable[[int], None] | None = None,
        on_retry: Callable[[RetryableError], None] | None = None,
        policy: RetryPolicy | None = None,
    ) -> T:
        """Run `op` until it succeeds or the policy gives up (see the module docstring).

        `on_attempt(n)` runs right before attempt n leaves (after pacing): e.g. record "sending".
        `on_retry(err)` runs for each RetryableError before the wait. Raises what `classify` returns for
        errors that are not retryable, the last RetryableError, Unreachable, or StopRequested.
        """
        policy = policy or self.policy
        errors = limited = attempt = 0
        last: RetryableError | None = None
        while True:
            attempt += 1
            result, failure, started = self._attempt(op, cost, last, attempt, on_attempt)
            if failure is None:
                self._answered()
                return cast(T, result)
            err = classify(failure)
            if not isinstance(err, RetryableError):
                if err is failure:
                    raise err
                raise err from failure
            last = err
            if on_retry is not None:
                on_retry(last)
            silent = self._silence(last, started, policy)
            if last.rate_limited:
                limited += 1
                if self.pacer is not None:
                    # from the thread that made the call: the pacer tells one congestion event from many
                    self.pacer.note_rate_limited(last.wait, concurrent=last.concurrent)
            else:
                errors += 1
            if errors >= policy.attempts or limited >= policy.rate_limited_attempts:
                raise last
            delay = self._backoff(max(errors, limited, 1), last.wait)
            if silent is not None and policy.give_up_after is not None and self._unreachable:
                # never wait past the moment the silence reaches give_up_after: check again then
                delay = min(delay, max(0.0, policy.give_up_after - silent) + 0.05)
            self._sleep(delay)

    def _silence(self, last: RetryableError, started: float, policy: RetryPolicy) -> float | None:
        """Seconds without an answer after the failed attempt `last` (None: it was an answer, if only an error,
        or no silence has begun). "Too many at once" is no answer either: while our own calls hang, the server
        refuses every other call that way, and that must not hold off giving up. A "slow down" neither starts
        nor ends a silence. Raises `last` (unreachable, and the policy fails fast) or Unreachable (silent for
        give_up_after)."""
        if not (last.no_answer or last.rate_limited):
            self._answered()
            return None
        silent = self._silent_for(started if last.no_answer or last.concurrent else None)
        if last.unreachable and policy.fail_fast_unreachable:
            raise last
        if silent is not None and policy.give_up_after is not None and silent >= policy.give_up_after:
            self._give_up(last, silent)
        return silent

    def _give_up(self, last: RetryableError, silent: float) -> None:
        """Raise Unreachable (when this Caller has one): `silent` seconds without an answer."""
        if self._unreachable is None:
            return
        if last.no_answer:
            text = _("{error} ({seconds:.0f} s without an answer)").format(error=last, seconds=silent)
        else:
            text = _("{seconds:.0f} s without an answer other than refusals; the last: {error}").format(
                error=last, seconds=silent
            )
        raise self._unreachable(text) from last

    def _take_turn(self, cost: float, last: RetryableError | None) -> None:
        """Wait for the pacer's turn; raises StopRequested (from `last`) when a stop was requested."""
        if self.stop.is_set():
            raise StopRequested(_("stopped on request"), last) from last
        if self.pacer is not None and cost:
            self.pacer.acquire(cost, sleep=self._sleep)
            if self.stop.is_set():
                raise StopRequested(_("stopped on request"), last) from last

    def _attempt(
        self,
        op: Callable[[], T],
        cost: float,
        last: RetryableError | None,
        n: int,
        on_attempt: Callable[[int], None] | None,
    ) -> tuple[T | None, Exception | None, float]:
        """Attempt `n`: (the result, or the exception for the backend to classify, and when it left). The slot is
        taken before the pacer's turn: a call holding one leaves at its turn, never in a burst when slots free
        up; the retry waits hold none."""
        with self._slot() as sent:
            self._take_turn(cost, last)
            if on_attempt is not None:
                on_attempt(n)
            started = self._clock()
            sent(cost)
            ident = next(self._attempt_ids)
            with self._lock:
                self._in_flight[ident] = started
            try:
                return op(), None, started
            except Exception as exc:  # noqa: BLE001 - handed back to be classified by the backend
                return None, exc, started
            finally:
                with self._lock:
                    del self._in_flight[ident]

    def _slot(self) -> AbstractContextManager[Callable[[float], None]]:
        """A place in the pacer's concurrency limit ("too many at once" lowers it); none without a pacer."""
        return nullcontext(_sent) if self.pacer is None else self.pacer.slot()


def _sent(_cost: float) -> None:
    """Without a pacer nothing measures the calls."""


def default_backoff(attempt: int, server_wait: float | None = None) -> float:
    """Without a pacer: min(2**(attempt-1), 30) seconds, never less than the server asked for."""
    delay = float(min(2 ** max(0, attempt - 1), 30))
    return max(delay, server_wait or 0.0)

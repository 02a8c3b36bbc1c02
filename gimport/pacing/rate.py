"""A rate limiter with backoff, and a concurrency limiter, that know nothing of Gmail.

Callers charge each call its cost in units with acquire(); the pacer spaces calls so that at most
`units_per_minute` (times `headroom`) are spent per minute, with no burst beyond one call: however the
server measures its quota (a token bucket, a short or a long sliding window), evenly spaced calls under the
rate fit. When the server says "slow down" the pacer cuts its rate once per congestion event and climbs back
(to the configured rate within `recovery_seconds` of quiet after an isolated refusal; see RatePacer); a
server-given wait holds every caller until then. How many calls may be in flight follows the rate and the
latency, and "too many calls at once" lowers it instead of the rate (gimport.pacing.concurrency). Jittered exponential backoff delays honour a server-given wait. Clock, sleep and
randomness are injectable for tests.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Protocol

from gimport.contract import Pacer
from gimport.pacing.concurrency import CallLimit


class RatePacer:
    """Thread-safe even spacing of calls, adaptive to "slow down" answers.

    Calls are spaced by cost/rate: one call may go at once, each next one waits its own cost after the
    previous one (no burst). A "slow down" answer (note_rate_limited) cuts the rate, once per congestion
    event: answers to calls that were given their turn before the cut (they were in flight, or already
    scheduled at the old rate) do not cut again. The cut is to `light_decrease` of the rate when the rate had
    climbed back from any earlier cut, else to `decrease` (never below `floor` of the configured rate).
    Without further cuts the rate climbs back linearly in `recovery_seconds` (counted from the end of the
    server's wait) to the rate that was refused, capped at the configured rate, and from there on by
    `probe` of the configured rate per second up to the configured rate. So an isolated refusal at the
    configured rate (jitter at the edge of the quota) costs a light dip and the configured rate is back in
    `recovery_seconds`, while a configured rate above what the server allows settles near the allowed rate
    instead of being hit again every few seconds. A server-given wait holds every caller, the ones already
    waiting included, until then. Also owns the CallLimit (`concurrency`, slot()): at most `max_concurrent`
    calls in flight, as many as the rate needs at the latency seen, fewer after "too many at once".

    note_rate_limited() is matched to the calling thread's last acquire(): call it from the thread that
    made the refused call.
    """

    def __init__(
        self,
        units_per_minute: float | None,
        *,
        headroom: float = 0.98,
        light_decrease: float = 0.95,
        decrease: float = 0.85,
        floor: float = 0.1,
        recovery_seconds: float = 10.0,
        probe: float = 0.005,
        max_delay: float = 64.0,
        max_concurrent: int = 8,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], object] = time.sleep,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self._configured: float | None = None if units_per_minute is None else units_per_minute * headroom / 60.0
        self._light, self._decrease, self._floor = light_decrease, decrease, floor
        self._recovery, self._probe = recovery_seconds, probe
        self.max_delay = max_delay
        self._clock, self._sleep, self._rand = clock, sleep, rand
        self._lock = threading.Lock()
        self._local = threading.local()
        now = clock()
        self._last = float("-inf")  # when the last call was given its turn
        self._paused_until = 0.0
        self._cut_rate: float | None = None  # the rate right after the last cut (None: back to configured)
        self._cut_at = now  # when the climb back from it starts
        self._ceiling = 0.0  # the rate last refused, capped at the configured rate: the climb's first goal
        self._generation = 0  # one per cut: which congestion event a call belongs to
        self._epoch = 0  # one per cut or longer pause: the schedule waiting callers hold is void
        self.concurrency = CallLimit(upper=max_concurrent, rate=self._units_per_second, clock=clock)
        self.units_spent = 0.0
        self.rate_limited = 0

    def _rate(self, now: float) -> float | None:
        """Units per second now (under the lock)."""
        if self._configured is None or self._cut_rate is None:
            return self._configured
        elapsed = max(0.0, now - self._cut_at)
        if elapsed < self._recovery:
            return self._cut_rate + (self._ceiling - self._cut_rate) * elapsed / self._recovery
        probed = self._ceiling + self._configured * self._probe * (elapsed - self._recovery)
        if probed >= self._configured:
            self._cut_rate = None
            return self._configured
        return probed

    def _units_per_second(self) -> float | None:
        with self._lock:
            return self._rate(self._clock())

    @property
    def rate_per_minute(self) -> float | None:
        rate = self._units_per_second()
        return None if rate is None else rate * 60.0

    @property
    def concurrency_limit(self) -> int:
        return self.concurrency.limit

    def _reserve(self, units: float, now: float) -> tuple[float, int]:
        """Give the caller its turn (under the lock): (seconds to wait for it, epoch)."""
        rate = self._rate(now)
        if rate is None:
            start = max(now, self._paused_until)
        else:
            # a call waits its own cost after the previous one: a small call just before a dear one then
            # cannot share a window with a full rate's worth of dear ones after it
            start = max(now, self._last + units / rate, self._paused_until)
            self._last = start
        self._local.generation = self._generation
        return start - now, self._epoch

    def acquire(self, units: float = 1, *, sleep: Callable[[float], object] | None = None) -> float:
        """Block until `units` may be spent; returns the seconds waited. `sleep` replaces the pacer's
        own for this call (e.g. an Event.wait that a stop request cuts short)."""
        sleep = sleep or self._sleep
        waited = 0.0
        with self._lock:
            self.units_spent += units
            wait, epoch = self._reserve(units, self._clock())
        while wait > 0:
            sleep(wait)  # a stop-aware sleep may return early: then the caller is stopping anyway
            waited += wait
            with self._lock:
                if self._epoch == epoch:
                    break
                # a cut or a server-given pause came while waiting: the turn was given at the old pace
                wait, epoch = self._reserve(units, self._clock())
        return waited

    def note_rate_limited(self, server_wait: float | None = None, *, concurrent: bool = False) -> None:
        """The server refused this thread's last call: "slow down" (cut the rate, once per congestion
        event, and hold everyone for `server_wait` seconds), or with `concurrent` "too many calls at once"
        (lower the concurrency, not the rate)."""
        if concurrent:
            with self._lock:
                self.rate_limited += 1
            self.concurrency.note_too_many_concurrent()
            return
        with self._lock:
            now = self._clock()
            self.rate_limited += 1
            void = False
            if server_wait and now + server_wait > self._paused_until:
                self._paused_until = now + server_wait
                void = True
            rate = self._rate(now)
            configured = self._configured
            if (
                rate is not None
                and configured is not None
                and getattr(self._local, "generation", self._generation) == self._generation
            ):
                # an isolated event (the rate had climbed back) may be jitter at the edge of the quota: a light
                # cut; one during the climb means the rate is well over what the server allows
                isolated = self._cut_rate is None or now - self._cut_at >= self._recovery
                cut = self._light if isolated else self._decrease
                self._ceiling = min(rate, configured)
                self._cut_rate = max(configured * self._floor, rate * cut)
                self._cut_at = max(now, self._paused_until)  # the climb back starts when the pause ends
                self._generation += 1
                void = True
            if void:
                self._epoch += 1
                self._last = min(self._last, now)  # turns given for later are void: they are taken anew

    def slot(self) -> AbstractContextManager[Callable[[float], None]]:
        """Hold a place in the concurrency limit for one call (see CallLimit.slot)."""
        return self.concurrency.slot()

    def backoff_delay(self, attempt: int, server_wait: float | None = None) -> float:
        """Delay before retry number `attempt` (1-based): min(2**(attempt-1) + jitter, max_delay),
        and never less than what the server asked for."""
        delay = min(2.0 ** max(0, attempt - 1) + self._rand(), self.max_delay)
        if server_wait is not None:
            delay = max(delay, min(server_wait, 15 * 60.0))
        return delay

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            self._sleep(seconds)


class SharedBudget(Protocol):
    """A budget several accounts' pacers charge together (a RatePacer, or a pacing.daily.DailyBudget)."""

    def acquire(self, units: float = 1, *, sleep: Callable[[float], object] | None = None) -> float: ...


class ChainedPacer:
    """Charges every call to several budgets: its own pacer (one account's quota) and shared ones (for
    example one budget for many accounts together, shared by many ChainedPacers across threads).

    acquire() waits for each budget in turn, so no budget is ever exceeded. "Slow down" signals, server
    waits, the concurrency limit and backoff concern the own pacer only: a refusal names one account's
    quota, and the shared budget is kept below its limit by pacing alone. Offers the RatePacer interface the
    engine uses.
    """

    def __init__(self, own: RatePacer, *shared: SharedBudget) -> None:
        self.own, self.shared = own, shared
        self.max_delay = own.max_delay

    def acquire(self, units: float = 1, *, sleep: Callable[[float], object] | None = None) -> float:
        waited = self.own.acquire(units, sleep=sleep)
        for pacer in self.shared:
            waited += pacer.acquire(units, sleep=sleep)
        return waited

    def note_rate_limited(self, server_wait: float | None = None, *, concurrent: bool = False) -> None:
        self.own.note_rate_limited(server_wait, concurrent=concurrent)

    def slot(self) -> AbstractContextManager[Callable[[float], None]]:
        return self.own.slot()

    @property
    def concurrency_limit(self) -> int:
        return self.own.concurrency_limit

    def backoff_delay(self, attempt: int, server_wait: float | None = None) -> float:
        return self.own.backoff_delay(attempt, server_wait)

    def sleep(self, seconds: float) -> None:
        self.own.sleep(seconds)

    @property
    def rate_per_minute(self) -> float | None:
        return self.own.rate_per_minute

    @property
    def rate_limited(self) -> int:
        return self.own.rate_limited


# mypy proves here that both pacers offer what the call path needs (gimport.contract.Pacer)
_rate_fits_the_contract: type[Pacer] = RatePacer
_chain_fits_the_contract: type[Pacer] = ChainedPacer

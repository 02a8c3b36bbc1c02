"""A rate limiter with backoff that knows nothing of Gmail.

Callers charge each call its cost in units with acquire(); the pacer spreads calls so that at most
`units_per_minute` are spent per minute (a token bucket with a small burst), lets every caller wait
together after the server said "slow down" with a wait (note_rate_limited), and computes jittered
exponential backoff delays that honour a server-given wait. Clock, sleep and randomness are injectable for tests.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable


class Pacer:
    """Thread-safe token bucket plus a shared pause.

    Adaptive: each rate-limit signal (note_rate_limited) lowers the rate by `decrease` (never below
    `floor` of the configured rate); each quiet `recovery_seconds` raises it back by 5% steps. This
    keeps a run close to the quota even when the configured quota is higher than the real one.
    """

    def __init__(
        self,
        units_per_minute: float | None,
        *,
        burst_seconds: float = 0.5,
        headroom: float = 0.98,
        decrease: float = 0.85,
        floor: float = 0.1,
        recovery_seconds: float = 30.0,
        max_delay: float = 64.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self._configured = None if units_per_minute is None else units_per_minute * headroom / 60.0
        self._rate = self._configured  # units per second, None = unlimited
        self._burst_seconds = burst_seconds
        self._decrease, self._floor = decrease, floor
        self._recovery = recovery_seconds
        self.max_delay = max_delay
        self._clock, self._sleep, self._rand = clock, sleep, rand
        self._lock = threading.Lock()
        now = clock()
        self._tokens = self._capacity(0)
        self._stamp = now
        self._paused_until = 0.0
        self._last_limited = now
        self.units_spent = 0
        self.rate_limited = 0

    @property
    def rate_per_minute(self) -> float | None:
        return None if self._rate is None else self._rate * 60.0

    def _capacity(self, units: float) -> float:
        if self._rate is None:
            return float("inf")
        # a call must always fit, however small the rate
        return max(self._rate * self._burst_seconds, units)

    def _reserve(self, units: float) -> float:
        """Take `units` now; returns how long the caller must wait before using them (under the lock)."""
        now = self._clock()
        wait = max(0.0, self._paused_until - now)
        if self._rate is None:
            self.units_spent += units
            return wait
        if self._rate < self._configured and now - self._last_limited >= self._recovery:
            self._rate = min(self._configured, self._rate * 1.05)
            self._last_limited = now
        self._tokens = min(self._capacity(units), self._tokens + (now - self._stamp) * self._rate)
        self._stamp = now
        self._tokens -= units  # may go negative: the debt is the wait
        if self._tokens < 0:
            wait = max(wait, -self._tokens / self._rate)
        self.units_spent += units
        return wait

    def acquire(self, units: float = 1, *, sleep: Callable[[float], object] | None = None) -> float:
        """Block until `units` may be spent; returns the seconds waited. `sleep` replaces the pacer's
        own for this call (e.g. an Event.wait that a stop request cuts short)."""
        with self._lock:
            wait = self._reserve(units)
        if wait > 0:
            (sleep or self._sleep)(wait)
        return wait

    def note_rate_limited(self, server_wait: float | None = None) -> None:
        """The server refused a call for rate: slow down for everybody."""
        with self._lock:
            now = self._clock()
            self.rate_limited += 1
            self._last_limited = now
            if self._rate is not None:
                self._rate = max(self._configured * self._floor, self._rate * self._decrease)
                self._tokens = min(self._tokens, 0.0)
            if server_wait:
                self._paused_until = max(self._paused_until, now + server_wait)

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


class ChainedPacer:
    """Charges every call to several budgets: its own pacer (one account's quota) and shared ones (for
    example one budget for many accounts together, shared by many ChainedPacers across threads).

    acquire() waits for each budget in turn, so no budget is ever exceeded. "Slow down" signals, server
    waits and backoff concern the own pacer only: a refusal names one account's quota, and the shared
    budget is kept below its limit by pacing alone. Offers the Pacer interface the engine uses.
    """

    def __init__(self, own: Pacer, *shared: Pacer) -> None:
        self.own, self.shared = own, shared
        self.max_delay = own.max_delay

    def acquire(self, units: float = 1, *, sleep: Callable[[float], object] | None = None) -> float:
        waited = self.own.acquire(units, sleep=sleep)
        for pacer in self.shared:
            waited += pacer.acquire(units, sleep=sleep)
        return waited

    def note_rate_limited(self, server_wait: float | None = None) -> None:
        self.own.note_rate_limited(server_wait)

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

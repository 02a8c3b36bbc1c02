"""A daily budget, in the style of gimport.pacing.rate: knows nothing of Gmail.

Gmail counts a project's units per quota day, which runs from midnight to midnight US Pacific time (Google
documents its daily quotas that way). DailyBudget lets `units_per_day` be spent per such day; a caller that
would go over waits, in acquire(), until the day turns. Chained behind the per-user and per-minute pacers
(gimport.pacing.rate.ChainedPacer), it sits on the one call path, so nothing else needs to know about it.
Clock (wall time: the day is a calendar day), sleep and time zone are injectable for tests.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable
from zoneinfo import ZoneInfo

PACIFIC = ZoneInfo("America/Los_Angeles")
MAX_NAP = 300.0  # seconds: wake now and then, so a clock that jumps (a suspended VM) is noticed


def quota_day(t: float, tz: dt.tzinfo = PACIFIC) -> str:
    """The quota day (ISO date in `tz`) of the Unix time `t`."""
    return dt.datetime.fromtimestamp(t, tz).date().isoformat()


def next_day_start(t: float, tz: dt.tzinfo = PACIFIC) -> float:
    """The Unix time of the next midnight in `tz` after `t` (23 or 25 hours away on DST days)."""
    day = dt.datetime.fromtimestamp(t, tz).date() + dt.timedelta(days=1)
    return dt.datetime.combine(day, dt.time(0), tz).timestamp()


class DailyBudget:
    """Thread-safe: at most `units_per_day` units per quota day (None or 0: no limit, acquire never waits).

    `spent` and `day` restore what an earlier process of the same day used (see snapshot()). A single call
    larger than the whole budget is let through on a fresh day (it could never pass otherwise).
    `on_pause(until)` is called once when callers start waiting (until: Unix time of the turn of the day),
    `on_resume()` once when the new day lets them go on. `persist(day, spent)` is called after charges, at
    most every `persist_every` seconds, and by flush(). `share(day, units)` does the same for a budget that
    several processes spend together: it adds the units charged here since the last share to their common
    record and returns what all of them spent that day, which this budget then counts as spent."""

    def __init__(
        self,
        units_per_day: float | None,
        *,
        spent: float = 0.0,
        day: str | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], object] = time.sleep,
        tz: dt.tzinfo = PACIFIC,
        on_pause: Callable[[float], None] | None = None,
        on_resume: Callable[[], None] | None = None,
        persist: Callable[[str, float], None] | None = None,
        share: Callable[[str, float], float] | None = None,
        persist_every: float = 10.0,
    ) -> None:
        self.limit = units_per_day or None
        self._clock, self._sleep, self._tz = clock, sleep, tz
        self._on_pause, self._on_resume = on_pause, on_resume
        self._persist, self._persist_every = persist, persist_every
        self._share = share
        self._lock = threading.Lock()
        now = clock()
        self.day = quota_day(now, tz)
        self.spent = float(spent) if day == self.day else 0.0
        self._shared = self.spent  # of `spent`, what the common record already holds
        self.paused_until: float | None = None  # set while callers wait for the next day
        self.waited = 0.0
        self._persisted_at = now

    def _roll(self, now: float) -> None:
        today = quota_day(now, self._tz)
        if today != self.day:
            self.day, self.spent, self._shared = today, 0.0, 0.0

    def _try(self, units: float) -> float | None:
        """Charge `units` now and return None, or return the time the caller must wait until (locked)."""
        now = self._clock()
        self._roll(now)
        if self.limit is None or self.spent + units <= self.limit or self.spent == 0:
            self.spent += units
            return None
        return next_day_start(now, self._tz)

    def acquire(self, units: float = 1, *, sleep: Callable[[float], object] | None = None) -> float:
        """Charge `units` to today's budget, waiting for the next quota day when today's is spent. Returns
        the seconds waited. `sleep` replaces the budget's own (an Event.wait a stop request cuts short:
        when it returns True the wait ends and acquire returns without charging; the caller sees its stop)."""
        sleep = sleep or self._sleep
        waited = 0.0
        while True:
            with self._lock:
                until = self._try(units)
                resumed = until is None and self.paused_until is not None
                if resumed:
                    self.paused_until = None
                starts_pause = until is not None and self.paused_until is None
                if starts_pause:
                    self.paused_until = until
                now = self._clock()
            if until is None:
                if resumed and self._on_resume is not None:
                    self._on_resume()
                self._maybe_persist(now)
                return waited
            if starts_pause and self._on_pause is not None:
                self._on_pause(until)
            nap = min(MAX_NAP, max(0.0, until - now) + 0.5)  # half a second past midnight: safely the next day
            stopped = sleep(nap)
            waited += nap
            with self._lock:
                self.waited += nap
            if stopped is True:
                return waited

    def _maybe_persist(self, now: float) -> None:
        if (self._persist or self._share) is not None and now - self._persisted_at >= self._persist_every:
            self.flush()

    def snapshot(self) -> tuple[str, float]:
        """(quota day, units spent that day)."""
        with self._lock:
            self._roll(self._clock())
            return self.day, self.spent

    def flush(self) -> None:
        """Hand the current snapshot to `persist` and the units charged since to `share` (if any)."""
        if self._share is not None:
            with self._lock:
                self._roll(self._clock())
                day, spent, shared = self.day, self.spent, self._shared
            self._persisted_at = self._clock()
            total = self._share(day, spent - shared)
            with self._lock:
                if self.day == day:  # what the others spent meanwhile; charges made here since stay counted
                    self.spent += total - spent
                    self._shared = total
        if self._persist is not None:
            day, spent = self.snapshot()
            self._persisted_at = self._clock()
            self._persist(day, spent)

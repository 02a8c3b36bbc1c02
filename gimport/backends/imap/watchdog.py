"""Deadlines for IMAP operations, all watched by one thread: a threading.Timer per operation starts and
ends a thread each time, which costs more CPU than a short FETCH when a hundred users run at once."""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable


class Watchdog:
    """Calls `fn` when its deadline passes unless cancelled first. Thread-safe; its thread (a daemon) starts
    with the first deadline and stays."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int]] = []
        self._armed: dict[int, Callable[[], None]] = {}
        self._ids = itertools.count()
        self._thread: threading.Thread | None = None

    def arm(self, seconds: float, fn: Callable[[], None]) -> int:
        """Run `fn` (in the watchdog's thread) in `seconds` unless cancel(the returned id) comes first."""
        with self._cond:
            ident = next(self._ids)
            self._armed[ident] = fn
            heapq.heappush(self._heap, (self._clock() + seconds, ident))
            if self._thread is None:
                self._thread = threading.Thread(target=self._watch, name="imap-deadlines", daemon=True)
                self._thread.start()
            elif self._heap[0][1] == ident:
                self._cond.notify()  # the new deadline is the nearest
            return ident

    def cancel(self, ident: int) -> None:
        with self._cond:
            self._armed.pop(ident, None)  # its heap entry is dropped when it comes up

    def _watch(self) -> None:
        while True:
            with self._cond:
                while self._heap and self._heap[0][1] not in self._armed:
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._cond.wait()
                    continue
                when, ident = self._heap[0]
                wait = when - self._clock()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                heapq.heappop(self._heap)
                fn = self._armed.pop(ident)
            fn()  # outside the lock: it may take a while (closing a socket)


WATCHDOG = Watchdog()

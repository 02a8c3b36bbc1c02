"""A bound on the bytes of fetched messages waiting for import (between the engine's reader and workers), the
size of the import pool it allows, and the count of possible copies that outlives a killed run."""

from __future__ import annotations

import threading

from gimport.contract import State

UNREPORTED = "unreported_resends:"  # + source account: possible copies counted by runs that printed no summary


class PossibleCopies:
    """The calls that may have stored a message that was then sent again (a call in flight when an earlier run
    stopped, a call retried after an ambiguous answer), kept in the state once the message's outcome is
    recorded (until then its row counts them: the calls it has left in flight): a run killed before its
    summary leaves them to the next run's summary, so that none goes uncounted and none twice. `earlier`:
    those of runs that printed no summary."""

    def __init__(self, state: State, account: str) -> None:
        self.state, self._key = state, UNREPORTED + account
        self.earlier = int(state.get_meta(self._key) or 0)
        self._now = 0
        self._lock = threading.Lock()

    def add(self, n: int = 1) -> None:
        if not n:
            return
        with self._lock:
            self._now += n
            self.state.set_meta(self._key, str(self.earlier + self._now))

    def reported(self) -> None:
        """The run's summary says them all: start again from zero."""
        with self._lock:
            if self.earlier or self._now:
                self.state.set_meta(self._key, "0")


class InFlightBytes:
    """Bounds the bytes held between fetching and importing; one item always fits, however large."""

    def __init__(self, limit: int, stop: threading.Event) -> None:
        self.limit, self.used = limit, 0
        self._cond = threading.Condition()
        self._stop = stop

    def acquire(self, n: int, *, held: int = 0) -> bool:
        """Take `n` more bytes, waiting for room. `held`: what the caller holds already (it counts as in use,
        but is not waited for: one item always fits, however large)."""
        with self._cond:
            while self.used - held > 0 and self.used + n > self.limit:
                if self._stop.is_set():
                    return False
                self._cond.wait(0.2)
            self.used += n
            return True

    def release(self, n: int) -> None:
        with self._cond:
            self.used -= n
            self._cond.notify_all()

    def wait_empty(self) -> None:
        """Until everything handed out is released (or a stop)."""
        with self._cond:
            while self.used > 0 and not self._stop.is_set():
                self._cond.wait(0.2)


def pool_size(limit: int, upper: int, budget: int, mean_bytes: int) -> int:
    """Import threads wanted: as many as the calls the pacer lets in flight (`limit`), never more than `upper`
    ([gmail] workers) nor than the byte budget holds messages of the mean size (plus one: one message always
    fits). Each thread holds one message of the budget, so large messages count by their bytes."""
    by_bytes = budget // max(1, mean_bytes) + 1
    return max(1, min(limit, upper, by_bytes))

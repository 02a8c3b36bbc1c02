"""`gimport admin run --follow`: after the first pass over every user, rescan every user again and again,
each round spread over `poll` seconds, until a stop (the orchestrator's SIGTERM, Ctrl-C).

Each round is an admin run (gimport.admin.run.AdminRun) like the first: the same engine, state files, locks
and budgets, `[admin] parallel_users` users at a time -- so at most that many IMAP connections, and no
IDLE per user (a campus would need one connection per person for it) -- with the users' starts spread
evenly over the poll interval (AdminRun's `spread`), so the old server sees a steady trickle of short scans
rather than a burst every `poll` seconds. A round that ends early waits for the interval's end.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from gimport.admin.report import UserRow
from gimport.admin.reporter import AdminReporter
from gimport.admin.run import AdminRun
from gimport.admin.summary import AdminSummary
from gimport.admin.users import UserEntry

log = logging.getLogger("gimport.admin")


class RoundReporter:
    """The reporter of the rounds after the first: the messages and warnings go on to the run's reporter
    (its --stats lines continue), the per-user progress of a round does not (it would count users again)."""

    def __init__(self, sink: AdminReporter) -> None:
        self.sink = sink

    def user_started(self, number: int, total: int, entry: UserEntry) -> None:
        pass

    def user_finished(self, done: int, total: int, row: UserRow) -> None:
        pass

    def transfer_added(self, messages: int, size: int) -> None:
        self.sink.transfer_added(messages, size)

    def message_finished(self, outcome: str, size: int) -> None:
        self.sink.message_finished(outcome, size)

    def user_warning(self, gmail: str, text: str) -> None:
        self.sink.user_warning(gmail, text)

    def warning(self, text: str) -> None:
        self.sink.warning(text)

    def paused(self, until: str | None) -> None:
        self.sink.paused(until)


class AdminFollow:
    """Rounds of admin runs (see the module docstring). `make_run(spread, reporter)` builds one round's
    AdminRun; request_stop() and rate_limited() are safe from any thread."""

    def __init__(
        self,
        make_run: Callable[[float, AdminReporter | None], AdminRun],
        poll: float,
        reporter: AdminReporter,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._make_run, self.poll, self.reporter, self._clock = make_run, poll, reporter, clock
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._current: AdminRun | None = None
        self._limited_before = 0  # "slow down" answers of the rounds that ended
        self.rounds = 0
        self.imported = 0  # messages imported by the rounds after the first

    def request_stop(self) -> None:
        with self._lock:
            self._stop.set()
            current = self._current
        if current is not None:
            current.request_stop()

    def rate_limited(self) -> int:
        with self._lock:
            return self._limited_before + (self._current.rate_limited() if self._current is not None else 0)

    def _round(self, spread: float) -> AdminSummary:
        runner = self._make_run(spread, self.reporter if not spread else RoundReporter(self.reporter))
        with self._lock:
            if self._stop.is_set():
                runner.request_stop()
            self._current = runner
        try:
            return runner.run()
        finally:
            with self._lock:
                self._current = None
                self._limited_before += runner.rate_limited()

    def run(self) -> AdminSummary:
        """The first pass, then rounds until a stop; returns the last round's summary (interrupted)."""
        summary = self._round(0.0)
        if summary.fatal is not None:
            return summary
        log.info("admin follow: every user again every %g s", self.poll)
        while not self._stop.is_set():
            began = self._clock()
            summary = self._round(self.poll)
            self.rounds += 1
            if summary.fatal is not None:
                return summary
            if summary.imported_now:
                self.imported += summary.imported_now
                log.info("admin follow: round %d: %d new message(s) imported", self.rounds, summary.imported_now)
            self._stop.wait(max(0.0, began + self.poll - self._clock()))
        summary.interrupted = True
        return summary

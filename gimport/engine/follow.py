"""`gimport run --follow`: after the first pass, keep importing what reaches the old server until a stop.

The follow drives the one Migration (gimport.engine.migration) pass after pass, so every pass has the
run's state, pacing and guarantees: run() first, then run_again() -- of every folder (listed anew) every
`poll` seconds, and of INBOX alone as soon as the server tells of new mail there (IMAP IDLE, when the
source can wait: the Watcher part). Between passes it waits in slices of at most `slice` seconds, so
that a jump of the wall clock against the monotonic one (a laptop's suspend) is noticed soon: the
connection is then likely dead, and every folder is scanned at once. A pass or a wait that the source's
own reconnects could not save (the server restarting, the network gone) is tried again through the one
call path (gimport.calls) with its backoff, for as long as the follow lasts; an error that no wait
mends (a refused login or token, a full disk) ends it as it ends a run.

It ends on a stop request (SIGTERM, Ctrl-C: the summary says interrupted) or at `until` (wall-clock
time), after one last pass of every folder: its summary tells whether everything seen is in Gmail.
What it did is kept in the state (meta FOLLOW_KEY, JSON) for `gimport status`, also from another shell.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from gimport.calls import Caller, RetryPolicy, StopRequested
from gimport.contract import Reporter, State
from gimport.engine.migration import Migration
from gimport.engine.results import RunSummary
from gimport.errors import GimportError, GmailError, Interrupted, RetryableError, SourceError
from gimport.i18n import english

log = logging.getLogger("gimport")

FOLLOW_KEY = "follow"  # meta: what the follow did, JSON (see Follow._record)
JUMP = 30.0  # seconds the wall clock may move apart from the monotonic one before it counts as a jump


@runtime_checkable
class Watcher(Protocol):
    """Optional part of a source: waiting for new mail in one folder (IMAP IDLE)."""

    def can_idle(self) -> bool: ...
    def idle(self, folder: str, seconds: float) -> bool:
        """Wait up to `seconds` for new mail in `folder`: True when the server told of some."""


@dataclass(frozen=True)
class FollowOptions:
    poll: float = 300.0  # seconds between scans of every folder
    until: float | None = None  # wall-clock time (epoch seconds) to end at; None: until a stop
    slice: float = 60.0  # the longest single wait (IDLE or sleep)


def parse_until(text: str, now: dt.datetime) -> dt.datetime:
    """`--until`: an ISO date and time (`2026-03-31T18:00`, with or without a zone) or a time of day `HH:MM`
    (the next one after `now`). Local time when no zone is given (`now`'s zone). Raises ValueError."""
    text = text.strip()
    if len(text) <= 5 and ":" in text:
        hour, _sep, minute = text.partition(":")
        at = now.replace(hour=int(hour), minute=int(minute), second=0, microsecond=0)
        return at if at > now else at + dt.timedelta(days=1)
    at = dt.datetime.fromisoformat(text)
    return at if at.tzinfo is not None else at.replace(tzinfo=now.tzinfo)


def transient(err: GimportError) -> bool:
    """An error a wait may mend: the server or Gmail not answering (never a refused login, a spent quota,
    a refused account, a config or state problem)."""
    return type(err) in (SourceError, GmailError)


class Once:
    """A Reporter that passes each warning on once: the follow's passes scan the same folders again and again."""

    def __init__(self, reporter: Reporter) -> None:
        self.reporter = reporter
        self._said: set[str] = set()

    def phase(self, text: str) -> None:
        self.reporter.phase(text)

    def transfer_started(self, messages: int, size: int) -> None:
        self.reporter.transfer_started(messages, size)

    def message_finished(self, folder: str, outcome: str, size: int) -> None:
        self.reporter.message_finished(folder, outcome, size)

    def warning(self, text: str) -> None:
        if str(text) not in self._said:
            self._said.add(str(text))
            self.reporter.warning(text)


class _PassFailed(Exception):
    def __init__(self, summary: RunSummary) -> None:
        super().__init__(str(summary.fatal))
        self.summary = summary


class Follow:
    """Follow one mailbox (see the module docstring). request_stop() is safe from any thread."""

    def __init__(
        self,
        migration: Migration,
        state: State,
        options: FollowOptions,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        sleep: Callable[[float], object] | None = None,
    ) -> None:
        """`clock` (monotonic), `wall` (time.time) and `sleep` (the waits between scans without IDLE and before
        a retry; default: until a stop) are for tests."""
        self.migration, self.state, self.options = migration, state, options
        self._clock, self._wall = clock, wall
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        # a failed pass or wait is tried again for as long as the follow lasts, after the call path's backoff
        policy = RetryPolicy(attempts=1 << 62, give_up_after=None)
        self._caller = Caller(None, policy, stop=self._stopping, sleep=sleep)
        self._pause = sleep or self._stopping.wait
        self.imported = 0  # messages imported by the passes after the first
        self.last: tuple[float, str] | None = None  # (when, folder) of the latest of them
        self._since = wall()
        self._idle = False
        self.following = False  # the first pass is over: new mail is being watched for
        self._marks = (clock(), wall())  # the clocks at the latest wake, for noticing a jump

    def request_stop(self) -> None:
        with self._lock:
            self._stopping.set()
        self.migration.request_stop()

    def run(self) -> RunSummary:
        """The first pass, then the follow; returns the summary of the last pass (interrupted on a stop)."""
        summary = self._pass(None, first=True)
        if summary.fatal is None and not self._stopping.is_set():
            summary = self._follow(summary)
        if self.following:
            self._record(ended=True)
        if self._stopping.is_set():
            summary.interrupted = True
        return summary

    def _follow(self, summary: RunSummary) -> RunSummary:
        inbox = next((name for name in self.migration.importing if name.upper() == "INBOX"), None)
        source = self.migration.source
        try:
            self._idle = inbox is not None and isinstance(source, Watcher) and self._retried(source.can_idle) is True
        except GimportError as err:
            log.warning("following: cannot tell whether the server offers IDLE (%s): no IDLE", english(err))
        self.migration.reporter = Once(self.migration.reporter)  # each pass would say the same warnings again
        log.info(
            "following: every folder every %g s%s%s",
            self.options.poll,
            f", IDLE on {inbox}" if self._idle else " (no IDLE)",
            f", until {dt.datetime.fromtimestamp(self.options.until).isoformat()}" if self.options.until else "",
        )
        self.following = True
        self._record()
        next_poll = self._clock() + self.options.poll
        while not self._stopping.is_set() and summary.fatal is None:
            if self.options.until is not None and self._wall() >= self.options.until:
                log.info("following: --until reached: a last scan of every folder")
                return self._pass(None)
            news = self._wait(inbox, next_poll)
            if self._stopping.is_set():
                break
            jumped = self._jumped()
            if jumped or self._clock() >= next_poll:
                summary = self._pass(None)
                next_poll = self._clock() + self.options.poll
            elif news and inbox is not None:
                summary = self._pass(inbox)
        return summary

    def _watch(self, source: Watcher, inbox: str, seconds: float) -> bool:
        """IDLE on `inbox` (retried while the server is away); a folder the server will not watch turns IDLE
        off, and the poll goes on."""
        try:
            return self._retried(lambda: source.idle(inbox, seconds)) is True
        except GimportError as err:
            log.warning(
                "following: IDLE on %s failed (%s): scanning every %g s only", inbox, english(err), self.options.poll
            )
            self._idle = False
            return False

    def _wait(self, inbox: str | None, next_poll: float) -> bool:
        """Wait until the next scan is due, `until`, or a slice ends; True when the server told of new mail."""
        seconds = min(self.options.slice, max(0.0, next_poll - self._clock()))
        if self.options.until is not None:
            seconds = min(seconds, max(0.0, self.options.until - self._wall()))
        source = self.migration.source
        if seconds <= 0:
            return False
        if not (self._idle and inbox is not None and isinstance(source, Watcher)):
            self._pause(seconds)
            return False
        return self._watch(source, inbox, seconds)

    def _jumped(self) -> bool:
        """Whether the wall clock moved apart from the monotonic one since the last wake (a suspend)."""
        now = (self._clock(), self._wall())
        (m0, w0), self._marks = self._marks, now
        jump = (now[1] - w0) - (now[0] - m0)
        if abs(jump) > JUMP:
            log.warning("following: the clock jumped by %+.0f s (a suspend?): scanning every folder", jump)
            return True
        return False

    def _retried(self, op: Callable[[], Any]) -> Any:
        """op() until it works, through the call path (its backoff) while what fails it is transient. A stop
        returns None; any other error is raised."""

        def classify(exc: BaseException) -> BaseException:
            if isinstance(exc, GimportError) and transient(exc) and not self._stopping.is_set():
                return RetryableError(str(exc), no_answer=True)
            return exc

        try:
            return self._caller.call(op, classify=classify, on_retry=self._note_retry)
        except (StopRequested, Interrupted):
            return None

    def _note_retry(self, err: RetryableError) -> None:
        log.warning("following: %s; trying again", english(err))
        self.migration.reporter.warning(str(err))

    def _pass(self, folder: str | None, *, first: bool = False) -> RunSummary:
        """One pass (the first: run(); then run_again(folder)), tried again while it fails transiently."""
        attempts = [0]

        def attempt() -> RunSummary:
            attempts[0] += 1
            with self._lock:
                if attempts[0] > 1 and not self._stopping.is_set():
                    self.migration.resume()
            summary = self.migration.run() if first and attempts[0] == 1 else self.migration.run_again(folder)
            if summary.fatal is not None and transient(summary.fatal) and not self._stopping.is_set():
                raise _PassFailed(summary)
            return summary

        def classify(exc: BaseException) -> BaseException:
            if isinstance(exc, _PassFailed):
                return RetryableError(str(exc.summary.fatal), no_answer=True)
            return exc

        try:
            summary: RunSummary = self._caller.call(attempt, classify=classify, on_retry=self._note_retry)
        except StopRequested:
            summary = self.migration.summary
        if not first:
            self._count(summary)
        return summary

    def _count(self, summary: RunSummary) -> None:
        new = [f for f in summary.folders if f.imported]
        if new:
            n = sum(f.imported for f in new)
            self.imported += n
            self.last = (self._wall(), new[-1].folder)
            log.info("following: %d new message(s) imported (%s)", n, ", ".join(f.folder for f in new))
        self._record()

    def record(self, *, ended: bool = False) -> dict[str, Any]:
        """What the follow did so far (JSON-serializable): the state keeps it (meta FOLLOW_KEY)."""
        return {
            "pid": os.getpid(),
            "since": round(self._since, 1),
            "poll": self.options.poll,
            "idle": self._idle,
            "until": self.options.until,
            "imported": self.imported,
            "last": None if self.last is None else round(self.last[0], 1),
            "last_folder": None if self.last is None else self.last[1],
            "checked": round(self._wall(), 1),
            "ended": round(self._wall(), 1) if ended else None,
        }

    def _record(self, *, ended: bool = False) -> None:
        try:
            self.state.set_meta(FOLLOW_KEY, json.dumps(self.record(ended=ended), ensure_ascii=False))
        except GimportError as err:  # the record is for status: it must not stop the follow
            log.warning("could not record the follow: %s", english(err))

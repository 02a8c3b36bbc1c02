"""Worker processes for `admin run`: the users of a shard spread over several Python interpreters.

One interpreter runs every user of an admin run in threads: hundreds of import calls in flight, each a
thread that gives up and takes back the one lock of the interpreter (the GIL) at every socket read and
every state write. Past some fifty users at a time the handing over of that lock costs more than the work
(scripts/bench --admin: a third of the CPU in futex calls), and the users fall behind their pacers. So an
admin run with many users at a time starts `processes` children (multiprocessing, "spawn": nothing of the
parent's threads is inherited), gives each every n-th user of the shard, a share of `parallel_users`, of
the memory budget and of the shard's per-minute project budget, and renders what they report as one run.

What the processes share needs no new mechanism: each user's state file and lock are the user's own, and the
project's daily budget is one record under a file lock (gimport.admin.daily) that every shard already
shares. A stop (Ctrl-C, SIGTERM, the parent's request) reaches each child, which stops as a single run does;
a child that dies leaves its users as their state files say (the parent reports them, and counts a bug).

The child's own code (logging, the service account, signals) is the CLI's: `target` is given by it.
"""

from __future__ import annotations

import contextlib
import logging
import math
import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any, cast

from gimport.admin.report import COMPLETE, NOT_RUN, RUNNING, USER_FAILED, UserRow, outcome_counts, read_row
from gimport.admin.reporter import AdminReporter
from gimport.admin.shards import Shard
from gimport.admin.summary import AdminSummary
from gimport.admin.users import UserEntry
from gimport.config.settings import Settings
from gimport.errors import GimportError, Unexpected
from gimport.i18n import _

log = logging.getLogger("gimport.admin")

# users at a time one interpreter keeps at their pacer's rate (scripts/bench --admin: 50 did, 100 did not)
USERS_PER_PROCESS = 25
FLUSH_EVERY = 0.2  # seconds between a child's reports of messages done (one message each would be 400 a second)
STOP = "stop"


def usable_cores() -> int:
    """The cores this process may run on (a Slurm task's or a container's CPU set), not the machine's."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def process_count(configured: int, parallel: int, users: int, cores: int | None = None) -> int:
    """How many worker processes an admin run uses: [admin] processes (or --processes) when above 0, else one
    per USERS_PER_PROCESS users at a time and at most one per usable core; never more than the users at a
    time (a process with no user would only cost a start)."""
    at_once = max(1, min(parallel, users))
    if configured > 0:
        return max(1, min(configured, at_once))
    cores = usable_cores() if cores is None else cores
    return max(1, min(cores, math.ceil(at_once / USERS_PER_PROCESS)))


def split(users: Sequence[UserEntry], count: int) -> list[list[UserEntry]]:
    """Every count-th user to each process, in the users' order (big and small mailboxes mix)."""
    return [list(users[k::count]) for k in range(count)]


@dataclass(frozen=True)
class WorkerSpec:
    """What a child needs to run its part (pickled to it)."""

    settings: Settings
    users: list[UserEntry]
    shard: Shard
    everybody: list[str]
    log_file: Path
    verbose: bool
    part: tuple[int, int]  # (this child's index, the number of children)


@dataclass
class WorkerResult:
    """What a child sends back at its end: its AdminSummary's data."""

    rows: list[UserRow]
    interrupted: bool
    fatal: GimportError | None
    imported_now: int
    bytes_now: int
    bugs: int
    rate_limited: int


class PipeReporter:
    """A child's AdminReporter: sends what happens to the parent. Messages done are counted and sent every
    FLUSH_EVERY seconds (with the child's count of "slow down" answers); the rest is sent at once."""

    def __init__(self, conn: Connection, *, every: float = FLUSH_EVERY) -> None:
        self._conn = conn
        self._lock = threading.Lock()
        self._added = [0, 0]  # messages, bytes
        self._done: list[tuple[str, int]] = []
        self.rate_limited: Callable[[], int] = lambda: 0
        self._stop = threading.Event()
        self._every = every
        self._flusher = threading.Thread(target=self._flush_loop, name="report-flush", daemon=True)
        self._flusher.start()

    def _send(self, message: tuple[Any, ...]) -> None:
        try:
            with self._lock:
                self._conn.send(message)
        except (OSError, ValueError):  # the parent is gone: the run goes on and its files say the rest
            pass

    def flush(self) -> None:
        with self._lock:
            added, done = self._added, self._done
            self._added, self._done = [0, 0], []
        if added[0] or added[1] or done:
            self._send(("messages", added[0], added[1], done, self.rate_limited()))

    def _flush_loop(self) -> None:
        while not self._stop.wait(self._every):
            self.flush()

    def close(self, result: WorkerResult) -> None:
        self._stop.set()
        self._flusher.join()
        self.flush()
        self._send(("done", result))

    # -- AdminReporter ------------------------------------------------------------------------------
    def user_started(self, number: int, total: int, entry: UserEntry) -> None:
        self._send(("started", entry))

    def transfer_added(self, messages: int, size: int) -> None:
        with self._lock:
            self._added[0] += messages
            self._added[1] += size

    def message_finished(self, outcome: str, size: int) -> None:
        with self._lock:
            self._done.append((outcome, size))

    def user_warning(self, gmail: str, text: str) -> None:
        self._send(("user_warning", gmail, text))

    def user_finished(self, done: int, total: int, row: UserRow) -> None:
        self.flush()  # the user's last messages before the user's line
        self._send(("finished", row))

    def warning(self, text: str) -> None:
        self._send(("warning", text))

    def paused(self, until: str | None) -> None:
        self._send(("paused", until))


def listen_for_stop(conn: Connection, stop: Callable[[], None]) -> threading.Thread:
    """In a child: call `stop` when the parent asks, or when the parent is gone (the pipe closed)."""

    def listen() -> None:
        try:
            while conn.recv() != STOP:
                pass
        except (EOFError, OSError):
            pass
        stop()

    thread = threading.Thread(target=listen, name="parent-watch", daemon=True)
    thread.start()
    return thread


class ProcessRun:
    """An admin run over `processes` children; offers what the CLI uses of AdminRun (run, request_stop,
    rate_limited). `target(spec, conn)` is a child's body (gimport.cli.admin_worker.worker_main)."""

    def __init__(
        self,
        settings: Settings,
        users: list[UserEntry],
        *,
        processes: int,
        target: Callable[[WorkerSpec, Connection], None],
        shard: Shard,
        reporter: AdminReporter,
        everybody: list[str],
        log_file: Path,
        verbose: bool = False,
    ) -> None:
        self.settings, self.users, self.shard = settings, users, shard
        self.reporter, self._target = reporter, target
        self.processes = max(1, min(processes, len(users)))
        self._everybody, self._log_file, self._verbose = everybody, log_file, verbose
        self._stop = threading.Event()
        self._stop_sent = False
        self._limited: dict[int, int] = {}
        self._finished: dict[str, UserRow] = {}  # the rows the children reported, by lower-cased address
        self.summary = AdminSummary(shard)
        self.exit_codes: list[int | None] = []

    def rate_limited(self) -> int:
        return sum(self._limited.values())

    def request_stop(self) -> None:
        """Thread- and signal-safe: the dispatch loop passes the stop on to the children."""
        self.summary.interrupted = True
        self._stop.set()

    def run(self) -> AdminSummary:
        ctx = multiprocessing.get_context("spawn")
        groups = split(self.users, self.processes)
        log.info(
            "admin run: %d user(s) of shard %s in %d worker processes (%s users each)",
            len(self.users),
            self.shard,
            self.processes,
            "/".join(str(len(g)) for g in groups),
        )
        children: list[tuple[Any, Connection]] = []
        for k, group in enumerate(groups):
            mine, theirs = ctx.Pipe()
            spec = WorkerSpec(
                self.settings, group, self.shard, self._everybody, self._log_file, self._verbose, (k, self.processes)
            )
            process = ctx.Process(target=self._target, args=(spec, theirs), name=f"gimport-worker-{k}")
            process.start()
            theirs.close()
            children.append((process, mine))
        results: dict[int, WorkerResult] = {}
        try:
            self._dispatch([conn for _p, conn in children], results)
        finally:
            for process, conn in children:
                process.join()
                conn.close()
            self.exit_codes = [process.exitcode for process, _c in children]
        return self._summary(groups, results)

    def _dispatch(self, conns: list[Connection], results: dict[int, WorkerResult]) -> None:
        """Render what the children say until every one has closed its end. Short waits: the calling (main)
        thread stays responsive to signals, and a stop is passed on within a fraction of a second."""
        index = {id(conn): k for k, conn in enumerate(conns)}
        open_: list[Any] = list(conns)
        counts = [0, 0]  # users started, finished
        shown: set[str] = set()
        while open_:
            if self._stop.is_set() and not self._stop_sent:
                self._stop_sent = True
                for conn in open_:
                    with contextlib.suppress(OSError):
                        conn.send(STOP)
            for ready in wait(open_, timeout=0.25):
                conn = cast(Connection, ready)  # only Connections are waited on
                try:
                    message: tuple[Any, ...] = conn.recv()
                except (EOFError, OSError):
                    open_.remove(conn)
                    continue
                self._handle(index[id(conn)], message, counts, shown, results)

    def _handle(
        self, k: int, message: tuple[Any, ...], counts: list[int], shown: set[str], results: dict[int, WorkerResult]
    ) -> None:
        """One report of child `k` (see PipeReporter), passed on to the run's reporter."""
        kind, total = message[0], len(self.users)
        if kind == "messages":
            _, added, size, done, limited = message
            if added or size:
                self.reporter.transfer_added(added, size)
            for outcome, bytes_ in done:
                self.reporter.message_finished(outcome, bytes_)
            self._limited[k] = limited
        elif kind == "started":
            counts[0] += 1
            self.reporter.user_started(counts[0], total, message[1])
        elif kind == "finished":
            counts[1] += 1
            self._finished[message[1].gmail.lower()] = message[1]
            self.reporter.user_finished(counts[1], total, message[1])
        elif kind == "user_warning":
            self.reporter.user_warning(message[1], message[2])
        elif kind == "warning" and message[1] not in shown:  # every child says a shared pause: once is enough
            shown.add(message[1])
            self.reporter.warning(message[1])
        elif kind == "paused":
            self.reporter.paused(message[1])
        elif kind == "done":
            results[k] = message[1]
            self._limited[k] = message[1].rate_limited

    def _summary(self, groups: list[list[UserEntry]], results: dict[int, WorkerResult]) -> AdminSummary:
        s = self.summary
        rows: dict[str, UserRow] = {}
        for k, group in enumerate(groups):
            result = results.get(k)
            if result is None:  # the child died (killed, out of memory): its users are as their files say
                code = self.exit_codes[k] if k < len(self.exit_codes) else None
                log.error("worker process %d ended without a result (exit code %s)", k, code)
                s.bugs += 1
                s.fatal = s.fatal or Unexpected(
                    _(
                        "worker process {k} ended unexpectedly (exit code {code}); its users are as their state"
                        " files say"
                    ).format(k=k, code=code)
                )
                for entry in group:
                    reported = self._finished.get(entry.gmail.lower())
                    if reported is not None:  # finished before the child died: as it said
                        rows[entry.gmail.lower()] = reported
                        continue
                    row = read_row(self.settings.admin.state_dir, entry.gmail, entry.source_user)
                    if row.outcome == RUNNING:
                        row.outcome, row.error = (
                            USER_FAILED,
                            f"the worker process ended unexpectedly (exit code {code})",
                        )
                    elif row.outcome != COMPLETE and not self._stop.is_set():
                        row.outcome, row.error = NOT_RUN, "the worker process ended before this user was started"
                    rows[entry.gmail.lower()] = row
                continue
            s.interrupted = s.interrupted or result.interrupted
            s.fatal = s.fatal or result.fatal
            s.imported_now += result.imported_now
            s.bytes_now += result.bytes_now
            s.bugs += result.bugs
            for row in result.rows:
                rows[row.gmail.lower()] = row
        s.rows = [
            rows.get(u.gmail.lower()) or read_row(self.settings.admin.state_dir, u.gmail, u.source_user)
            for u in self.users
        ]
        s.finished = time.monotonic()
        log.info("admin run finished in %.1f s: %s", s.duration, outcome_counts(s.rows))
        return s


def result_of(summary: AdminSummary, rate_limited: int) -> WorkerResult:
    return WorkerResult(
        rows=summary.rows,
        interrupted=summary.interrupted,
        fatal=summary.fatal,
        imported_now=summary.imported_now,
        bytes_now=summary.bytes_now,
        bugs=summary.bugs,
        rate_limited=rate_limited,
    )

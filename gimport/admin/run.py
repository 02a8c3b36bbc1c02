"""`gimport admin run`: one gimport.engine.migration.Migration per user, `parallel_users` at a time (the one fan-out
pool, gimport.admin.fanout). Returns data (gimport.admin.summary.AdminSummary); never prints.

Each migration is charged to its own pacer (the per-user quota) and to the budgets all of them share
(gimport.admin.shares: [admin] project_units_per_minute divided by the number of shards, and the project's
project_units_per_day, which every shard spends together); a spent daily budget pauses every user until the quota day turns, visibly, and a stop still ends
the pause at once. One user's failure is recorded and
the others go on; only a service account that cannot impersonate anybody stops the run. Each user's
outcome is written to their state file (`admin.*` meta keys) so that `admin status` can rebuild the report.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from gimport import wiring
from gimport.admin.delegation import DelegationJudge, for_one_user
from gimport.admin.fanout import fan_out
from gimport.admin.paths import user_paths
from gimport.admin.report import (
    BUSY,
    COMPLETE,
    INCOMPLETE,
    INTERRUPTED,
    META_DURATION,
    META_ERROR,
    META_FINISHED,
    META_GMAIL,
    META_IMPORTED_NOW,
    META_OUTCOME,
    META_SHARD,
    META_SOURCE,
    META_STARTED,
    NOT_RUN,
    RUNNING,
    USER_FAILED,
    UserRow,
    outcome_counts,
    read_row,
    restore_complete,
    row_from_state,
)
from gimport.admin.reporter import AdminReporter, NullAdminReporter, UserReporter
from gimport.admin.shards import Shard
from gimport.admin.shares import daily_budget, pause_times, project_pacer
from gimport.admin.summary import AdminSummary, incomplete_reason
from gimport.admin.users import SourceLogin, UserEntry, user_settings
from gimport.config.settings import Settings
from gimport.contract import Pacer, StateBackend
from gimport.engine.migration import Migration
from gimport.engine.results import RunSummary
from gimport.engine.transfer import EngineOptions
from gimport.errors import (
    ConfigError,
    DelegationError,
    GimportError,
    GmailRefused,
    Interrupted,
    SourceGrantError,
    StateError,
    Unexpected,
    stops_everything,
)
from gimport.i18n import _, english
from gimport.logs import UserLogRouter

log = logging.getLogger("gimport.admin")

# import threads one interpreter runs well (scripts/bench --admin: 100 users with 40 each fell to a tenth of the
# quota, every thread waiting for the GIL); more users at a time than this allows need worker processes
IMPORT_THREADS_PER_PROCESS = 400

# what a stop that found nothing new puts back as it was
_RESTORED = (META_OUTCOME, META_ERROR, META_STARTED, META_FINISHED, META_DURATION, META_IMPORTED_NOW, META_SHARD)


class AdminRun:
    """Migrate every user in `users` (already filtered to this shard), `parallel_users` at a time.

    `authorize(email)` returns Gmail credentials for a user (ServiceAccount.authorize); every other piece
    comes from gimport.wiring, as in single-user mode. Thread-safe
    request_stop() stops every user soon; users not started yet are left for the next run."""

    def __init__(
        self,
        settings: Settings,
        users: list[UserEntry],
        *,
        authorize: Callable[[str], Any],
        shard: Shard | None = None,
        reporter: AdminReporter | None = None,
        log_router: UserLogRouter | None = None,
        everybody: list[str] | None = None,
        spread: float = 0.0,
        part: tuple[int, int] = (0, 1),
    ) -> None:
        """`spread`: seconds over which the users' starts are spread evenly (admin run --follow's rounds).
        `part`: (i, n) when this is worker process i of n (gimport.admin.processes): a 1/n share of
        parallel_users, of the memory budget and of the shard's per-minute project budget."""
        if settings.admin is None:
            raise ConfigError(_("admin settings missing"))
        self.settings, self.admin = settings, settings.admin
        self.users, self.spread = users, spread
        self.shard = shard or Shard()
        self.reporter = reporter or NullAdminReporter()
        self._authorize = authorize
        # whom to ask whether a refused grant works for anybody: this shard's users, then the other shards'
        mine = [u.gmail for u in users]
        self._delegation = DelegationJudge(authorize, mine + [g for g in everybody or [] if g not in set(mine)])
        self._logins = SourceLogin(self.admin, app_only=settings.source.oauth is not None)
        self._router = log_router
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._active: dict[str, Migration] = {}
        self._pacers: dict[str, Pacer] = {}  # the active users' own pacers: how often Gmail asked them to slow down
        self._limited_done = 0  # the same, of the users finished in this run
        self._rows: dict[str, UserRow] = {}
        self.summary = AdminSummary(self.shard)
        share = max(1, part[1])
        self.project_units_per_minute = self.admin.project_units_per_minute / self.shard.count / share
        self.project_pacer = project_pacer(settings, self.shard, self._stop, share=share)
        self.daily = daily_budget(settings, self.shard, on_pause=self._daily_pause, on_resume=self._daily_resume)
        self.parallel = max(1, min(-(-self.admin.parallel_users // share), len(users)))
        per_user = self.admin.memory_budget_mb * 1024 * 1024 // share // self.parallel
        # import threads per user: [gmail] workers, within an equal share of what one interpreter keeps busy
        self.workers_per_user = min(settings.gmail.workers, max(4, IMPORT_THREADS_PER_PROCESS // self.parallel))
        # an equal share, never more than a single-user run takes, and at least 8 MiB (one message always fits)
        self.engine_memory_budget = min(EngineOptions().memory_budget, max(8 * 1024 * 1024, per_user))

    def rate_limited(self) -> int:
        """How often Gmail asked this run's users to slow down so far (the --stats lines and the bar)."""
        with self._lock:
            return self._limited_done + sum(p.rate_limited for p in self._pacers.values())

    def request_stop(self) -> None:
        with self._lock:
            self.summary.interrupted = True
            self._stop.set()
            active = list(self._active.values())
        for migration in active:
            migration.request_stop()

    def run(self) -> AdminSummary:
        log.info(
            "admin run: %d user(s), shard %s (%s), %d at a time, project budget %.0f units/min",
            len(self.users),
            self.shard,
            english(self.shard.origin),
            self.parallel,
            self.project_units_per_minute,
        )
        s = self.summary
        total = len(self.users)
        done = 0

        began = time.monotonic()

        def one(i: int, entry: UserEntry) -> UserRow:
            nonlocal done
            if self.spread:  # user i starts no earlier than its share of the interval
                self._stop.wait(max(0.0, began + i * self.spread / total - time.monotonic()))
                if self._stop.is_set():  # stopped while waiting: the user's record stays as it was
                    return read_row(self.admin.state_dir, entry.gmail, entry.source_user)
            self.reporter.user_started(i + 1, total, entry)
            row = self._one(entry)
            with self._lock:
                self._rows[entry.gmail.lower()] = row
                done += 1
                finished = done
            self.reporter.user_finished(finished, total, row)
            return row

        def failed(entry: UserEntry, err: Exception) -> UserRow:
            # e.g. the state disk is full: record, go on with the others
            log.error("%s: unexpected error", entry.gmail, exc_info=err)
            row = UserRow(entry.gmail, entry.source_user, USER_FAILED, error=f"unexpected error: {err!r}")
            with self._lock:
                self._rows[entry.gmail.lower()] = row
                self.summary.bugs += 1
            return row

        try:
            fan_out(self.users, self.parallel, one, stop=self._stop, on_error=failed)
        finally:
            self.daily.flush()
        for entry in self.users:  # left when the run stopped early
            if entry.gmail.lower() not in self._rows:
                row = read_row(self.admin.state_dir, entry.gmail, entry.source_user)
                if row.outcome != COMPLETE:  # a user finished by an earlier run stays complete
                    row.outcome, row.error = NOT_RUN, "the run stopped before this user was started"
                self._rows[entry.gmail.lower()] = row
        s.rows = [self._rows[u.gmail.lower()] for u in self.users]
        s.finished = time.monotonic()
        log.info("admin run finished in %.1f s: %s", s.duration, outcome_counts(s.rows))
        return s

    def _daily_pause(self, until: float) -> None:
        pacific, local = pause_times(until)
        units = f"{self.daily.limit:,.0f}"
        log.warning(
            "the project's daily budget of %s units spent (all shards together, seen from shard %s; [admin]"
            " project_units_per_day): pausing until %s US Pacific (%s local time)",
            units,
            self.shard,
            pacific,
            local,
        )
        self.reporter.warning(
            _(
                "the project's daily budget of {units} units is spent (all shards together; [admin]"
                " project_units_per_day): pausing until {pacific} US Pacific ({local} local time); Ctrl-C or SIGTERM"
                " stops cleanly"
            ).format(units=units, pacific=pacific, local=local)
        )
        self.reporter.paused(f"{pacific} US Pacific ({local})")

    def _daily_resume(self) -> None:
        log.info("daily budget: a new quota day has begun, going on")
        self.reporter.warning(_("a new quota day has begun: going on"))
        self.reporter.paused(None)

    def _fatal(self, err: GimportError) -> None:
        with self._lock:
            if self.summary.fatal is None:
                self.summary.fatal = err
                log.error("stopping every user: %s", english(err))
        self.reporter.warning(_("stopping: {err}").format(err=err))
        self._stop.set()
        with self._lock:
            active = list(self._active.values())
        for migration in active:
            migration.request_stop()

    def _one(self, entry: UserEntry) -> UserRow:
        """Migrate one user; never raises (the row says what happened)."""
        paths = user_paths(self.admin.state_dir, entry.gmail)
        thread = threading.current_thread()
        name = thread.name
        thread.name = f"{entry.gmail.lower()}:run"
        lock = wiring.run_lock(paths.state)
        try:
            if not lock.acquire():
                return UserRow(
                    entry.gmail,
                    entry.source_user,
                    BUSY,
                    error=f"another gimport process is migrating this user (lock {paths.lock})",
                )
        except OSError as exc:
            return UserRow(entry.gmail, entry.source_user, USER_FAILED, error=f"cannot lock {paths.lock}: {exc}")
        if self._router is not None:
            self._router.open(entry.gmail.lower(), paths.log)
        try:
            try:
                state = wiring.state(paths.state)
            except StateError as err:
                return UserRow(entry.gmail, entry.source_user, USER_FAILED, error=english(err))
            try:
                return self._migrate(entry, state)
            finally:
                state.close()
        finally:
            if self._router is not None:
                self._router.close(entry.gmail.lower())
            lock.release()
            thread.name = name

    def _migrate(self, entry: UserEntry, state: StateBackend) -> UserRow:
        started = time.time()
        t0 = time.monotonic()
        previous = {k: state.get_meta(k) or "" for k in _RESTORED}
        for key, value in (
            (META_SOURCE, entry.source_user),
            (META_GMAIL, entry.gmail),
            (META_OUTCOME, RUNNING),
            (META_ERROR, ""),
            (META_STARTED, str(started)),
            (META_SHARD, str(self.shard)),
        ):
            state.set_meta(key, value)
        log.info("%s: started (source user %r, %s)", entry.gmail, entry.source_user, entry.login_method)
        summary: RunSummary | None = None
        error: GimportError | None = None
        try:
            summary = self._migration(entry, state)
        except SourceGrantError as err:  # the old server's app credentials: one for every mailbox
            error = err
            self._fatal(err)
        except DelegationError as err:
            # the grant itself, or one address the grant does not cover (another domain)?
            error = err if self._delegation.about_everyone(entry.gmail) else for_one_user(entry.gmail, err)
            if error is err:
                self._fatal(err)
        except GimportError as err:
            error = err
            if stops_everything(err):
                self._fatal(err)
        except Exception as err:  # one user's bug must not stop the others
            log.exception("%s: unexpected error", entry.gmail)
            error = Unexpected.of(err)
        if summary is not None and summary.fatal is not None:
            error = summary.fatal
            if summary.gmail_account is None and isinstance(error, GmailRefused):
                # Gmail answered the very first call for this account with a refusal: the account is not usable
                error = GmailRefused(
                    _(
                        "{error}: check that {gmail} exists, is not suspended and has Gmail enabled"
                        " (Google Admin console > Users)"
                    ).format(error=error, gmail=entry.gmail)
                )
        imported_now = summary.total("imported") if summary is not None else 0
        outcome = self._outcome(summary, error)
        duration = time.monotonic() - t0
        # the state file and the report keep the English (the terminal's language may change between runs)
        text = "" if error is None or isinstance(error, Interrupted) else english(error)
        if outcome == INCOMPLETE and not text:
            text = incomplete_reason(summary)
        for key, value in (
            (META_OUTCOME, outcome),
            (META_ERROR, text),
            (META_FINISHED, str(time.time())),
            (META_DURATION, f"{duration:.3f}"),
            (META_IMPORTED_NOW, str(imported_now)),
        ):
            state.set_meta(key, value)
        with self._lock:
            self.summary.imported_now += imported_now
            self.summary.bytes_now += summary.total("bytes") if summary is not None else 0
        stopped = outcome == INTERRUPTED or (error is not None and stops_everything(error))
        if stopped and not imported_now and restore_complete(state, entry.gmail, entry.source_user, previous):
            return row_from_state(state, entry.gmail, entry.source_user)
        (log.warning if outcome in (USER_FAILED, INCOMPLETE) else log.info)(
            "%s: %s after %.1f s, %d imported%s",
            entry.gmail,
            outcome,
            duration,
            imported_now,
            f": {text}" if text else "",
        )
        return row_from_state(state, entry.gmail, entry.source_user)

    def _outcome(self, summary: RunSummary | None, error: GimportError | None) -> str:
        if (
            isinstance(error, Interrupted)
            or (summary is not None and summary.interrupted)
            or (error is None and summary is None)
        ):
            return INTERRUPTED
        if error is not None:
            if isinstance(error, Unexpected):
                with self._lock:
                    self.summary.bugs += 1
            return USER_FAILED
        return COMPLETE if summary is not None and summary.complete else INCOMPLETE

    def _migration(self, entry: UserEntry, state: StateBackend) -> RunSummary | None:
        if self._stop.is_set():
            return None
        login, password = self._logins.for_user(entry)
        settings = user_settings(self.settings, entry, login)
        credentials = self._authorize(entry.gmail)
        self._delegation.granted()
        if self._stop.is_set():
            return None
        acct = wiring.account(settings, self.project_pacer, self.daily, credentials=credentials)
        source = wiring.source(settings.source, password)
        try:
            self._logins.connect(source, entry)
            options = EngineOptions(
                workers=self.workers_per_user,
                memory_budget=self.engine_memory_budget,
                thread_prefix=f"{entry.gmail.lower()}:",
            )
            migration = acct.migration(
                source=source, state=state, reporter=UserReporter(entry.gmail, self.reporter), options=options
            )
            with self._lock:
                if self._stop.is_set():
                    return None
                self._active[entry.gmail.lower()] = migration
                self._pacers[entry.gmail.lower()] = acct.pacer
            try:
                return migration.run()
            finally:
                with self._lock:
                    self._active.pop(entry.gmail.lower(), None)
                    pacer = self._pacers.pop(entry.gmail.lower(), None)
                    self._limited_done += pacer.rate_limited if pacer is not None else 0
        finally:
            source.close()

"""Outcomes and the report: one state file per user under [admin] state_dir (the format `gimport run` writes,
plus a few `admin.*` meta keys; gimport.admin.paths says where), and the report rebuilt from those files alone
(read_rows: `gimport admin status` needs no network)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from gimport import wiring
from gimport.admin.paths import user_paths
from gimport.contract import Ledger, StateBackend
from gimport.errors import ConfigError, StateError
from gimport.i18n import _, english

if TYPE_CHECKING:
    from gimport.admin.users import UserEntry

log = logging.getLogger("gimport.admin")


# ---------------------------------------------------------------------------------------------- outcomes

COMPLETE = "complete"  # everything selected is in Gmail
INCOMPLETE = "incomplete"  # the run finished; some messages failed or were skipped (recorded)
USER_FAILED = "failed"  # the user could not be migrated: wrong password, no such Gmail account, ...
INTERRUPTED = "interrupted"  # Ctrl-C / SIGTERM, or the process was killed
RUNNING = "running"  # status only: a process holds the user's lock now
BUSY = "busy"  # run only: another process holds the user's lock
NOT_STARTED = "not started"  # no state file yet
NOT_RUN = "not run"  # run only: this run stopped before it reached the user
OUTCOME_ORDER = (USER_FAILED, INCOMPLETE, INTERRUPTED, BUSY, RUNNING, NOT_RUN, NOT_STARTED, COMPLETE)

META_SOURCE, META_GMAIL = "admin.source_user", "admin.gmail_address"
META_OUTCOME, META_ERROR = "admin.outcome", "admin.error"
META_STARTED, META_FINISHED, META_DURATION = "admin.started", "admin.finished", "admin.duration"
META_IMPORTED_NOW, META_SHARD = "admin.imported_last_run", "admin.shard"


@dataclass
class UserRow:
    """One line of the report: the state file's numbers plus the last run's outcome."""

    gmail: str
    source_user: str
    outcome: str
    found: int = 0  # messages on the source when last scanned (every migrated folder)
    selected: int = 0  # of those, chosen by [filters]
    imported: int = 0  # in Gmail, all runs together (duplicates of an imported copy included)
    imported_last_run: int = 0
    failed: int = 0  # the last attempt failed; the next run retries them
    skipped: int = 0  # cannot be imported as they are (empty, over 150 MiB)
    to_do: int = 0  # selected and not yet imported or skipped
    bytes: int = 0  # imported, all runs
    duration: float | None = None  # of the last run, seconds
    finished_at: str = ""  # when the last run ended (UTC, ISO 8601)
    error: str = ""
    gmail_account: str = ""  # the account the state file is bound to (Gmail's primary address)

    @property
    def ok(self) -> bool:
        return self.outcome == COMPLETE


REPORT_COLUMNS = (
    "gmail_address",
    "source_user",
    "outcome",
    "found",
    "selected",
    "imported",
    "imported_last_run",
    "failed",
    "skipped",
    "to_do",
    "bytes",
    "duration_s",
    "last_run_end",
    "error",
)


def row_values(r: UserRow) -> list[str]:
    return [
        r.gmail,
        r.source_user,
        r.outcome,
        str(r.found),
        str(r.selected),
        str(r.imported),
        str(r.imported_last_run),
        str(r.failed),
        str(r.skipped),
        str(r.to_do),
        str(r.bytes),
        "" if r.duration is None else f"{r.duration:.1f}",
        r.finished_at,
        r.error,
    ]


def report_csv(rows: list[UserRow]) -> str:
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(REPORT_COLUMNS)
    for r in rows:
        w.writerow(row_values(r))
    return out.getvalue()


def write_report(path: Path, rows: list[UserRow]) -> None:
    """Write the CSV report atomically (a reader never sees half a file). Raises ConfigError."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(report_csv(rows), encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        raise ConfigError(
            _("cannot write the report {path}: {reason} (set [admin] report_file)").format(
                path=path, reason=exc.strerror
            )
        ) from None


def _iso(ts: float | None) -> str:
    if not ts:
        return ""
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _float(value: str | None) -> float | None:
    try:
        return float(value) if value not in (None, "") else None
    except ValueError:
        return None


def row_from_state(state: Ledger, gmail: str, source_user: str, *, locked_elsewhere: bool = False) -> UserRow:
    """The report line for one user from their state file alone."""
    row = UserRow(gmail=gmail, source_user=source_user, outcome=state.get_meta(META_OUTCOME) or INTERRUPTED)
    for account in state.accounts():
        for c in state.folder_counts(account):
            row.found += c.found
            row.selected += c.selected
            row.imported += c.imported + c.duplicate
            row.failed += c.failed
            row.skipped += c.skipped
            row.to_do += max(0, c.selected - c.imported - c.duplicate - c.skipped)
            row.bytes += c.bytes_imported
    row.error = state.get_meta(META_ERROR) or ""
    row.duration = _float(state.get_meta(META_DURATION))
    row.finished_at = _iso(_float(state.get_meta(META_FINISHED)))
    row.imported_last_run = int(_float(state.get_meta(META_IMPORTED_NOW)) or 0)
    row.gmail_account = state.get_meta("gmail_account") or ""
    if row.outcome == RUNNING:
        # the process that wrote "running" still holds the lock, or it was killed mid-run
        row.outcome = RUNNING if locked_elsewhere else INTERRUPTED
        if row.outcome == INTERRUPTED and not row.error:
            row.error = "the process stopped without finishing (killed?): run again to continue"
    return row


def read_row(state_dir: Path, gmail: str, source_user: str = "") -> UserRow:
    """One user's report line from their state file (opened read-only). Never raises for a missing or
    unreadable file: the line says so."""
    paths = user_paths(state_dir, gmail)
    if not paths.state.exists():
        return UserRow(gmail=gmail, source_user=source_user, outcome=NOT_STARTED)
    try:
        state = wiring.state(paths.state, readonly=True)
    except StateError as err:
        return UserRow(gmail=gmail, source_user=source_user, outcome=USER_FAILED, error=english(err))
    try:
        row = row_from_state(state, gmail, source_user, locked_elsewhere=wiring.run_in_progress(paths.state))
        if not source_user:
            row.source_user = state.get_meta(META_SOURCE) or ""
        return row
    finally:
        state.close()


def read_rows(state_dir: Path, users: list[UserEntry] | None) -> list[UserRow]:
    """The report from the state files alone: every user of `users`, or (None) every state file found."""
    if users is not None:
        return [read_row(state_dir, u.gmail, u.source_user) for u in users]
    rows = []
    for path in sorted(Path(state_dir).glob("*.sqlite")):
        try:
            state = wiring.state(path, readonly=True)
        except StateError as err:
            rows.append(UserRow(gmail=path.stem, source_user="", outcome=USER_FAILED, error=english(err)))
            continue
        try:
            gmail = state.get_meta(META_GMAIL) or state.get_meta("gmail_account") or path.stem
        finally:
            state.close()
        rows.append(read_row(state_dir, gmail))
    return rows


def all_complete(rows: list[UserRow]) -> bool:
    """Success for `admin status`: there are users, and every one of them is complete."""
    return bool(rows) and all(r.ok for r in rows)


def sort_rows(rows: list[UserRow]) -> list[UserRow]:
    rank = {o: i for i, o in enumerate(OUTCOME_ORDER)}
    return sorted(rows, key=lambda r: (rank.get(r.outcome, 0), r.gmail.lower()))


def outcome_counts(rows: list[UserRow]) -> str:
    """'2 failed, 4 complete': the outcomes of `rows`, counted, worst first."""
    counts: dict[str, int] = {}
    for r in rows:
        counts[r.outcome] = counts.get(r.outcome, 0) + 1
    return ", ".join(f"{n} {o}" for o, n in sorted(counts.items(), key=lambda kv: OUTCOME_ORDER.index(kv[0])))


def restore_complete(state: StateBackend, gmail: str, source_user: str, previous: dict[str, str]) -> bool:
    """After a stop that imported nothing: put back the last run's outcome (`previous`: its META_ values) of a
    user it had left complete, when nothing new was found since (all their mail is in Gmail). Whether it did."""
    if previous[META_OUTCOME] != COMPLETE:
        return False
    row = row_from_state(state, gmail, source_user)
    if row.to_do or row.failed:
        return False
    for key, value in previous.items():
        state.set_meta(key, value)
    log.info("%s: stopped before finding anything new; still complete", gmail)
    return True

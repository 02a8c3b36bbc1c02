"""Admin mode: many mailboxes, one service account, the same engine. Returns data; never prints.

- The users file (CSV) says who moves where and how gimport logs in to the old server (read_users).
- Sharding (resolve_shard) picks the users this process takes: --shard I/N, a Kubernetes Indexed Job or a
  Slurm job array; a user belongs to exactly one shard, by a stable hash of the Gmail address.
- AdminRun runs one gimport.engine.Migration per user, `parallel_users` at a time. Each migration is
  charged to its own pacer (the per-user quota) and to one project pacer that all of them share
  ([admin] project_units_per_minute divided by the number of shards). One user's failure is recorded and
  the others go on; only a service account that cannot impersonate anybody stops the run.
- State: one state file per user under [admin] state_dir, the same format `gimport run` writes, plus a few
  `admin.*` meta keys (outcome, error, duration). `gimport admin status` rebuilds the report from these
  files alone (read_rows), with no network.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import hashlib
import io
import logging
import os
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from gimport import wiring
from gimport.accounting import RunSummary
from gimport.backends.state import StateLock, StateStore, lock_path
from gimport.cli.terminal import private_log_handler, read_secret
from gimport.engine import EngineOptions, Migration
from gimport.errors import ConfigError, GimportError, GmailRefused, Interrupted, StateError, stops_everything
from gimport.pacer import Pacer
from gimport.settings import AdminSettings, Settings

log = logging.getLogger("gimport.admin")

# ----------------------------------------------------------------------------------------- the users file

COL_SOURCE, COL_GMAIL, COL_PASSWORD, COL_PASSWORD_FILE = "source_user", "gmail_address", "password", "password_file"
COL_SOURCE_PATH = "source_path"  # a local source ([source] type = "maildir", ...): the user's files
COLUMNS = (COL_SOURCE, COL_GMAIL, COL_PASSWORD, COL_PASSWORD_FILE, COL_SOURCE_PATH)
REQUIRED_COLUMNS = (COL_SOURCE, COL_GMAIL)
_ADDRESS = re.compile(r"[^@\s,;<>]+@[^@\s,;<>]+\.[^@\s,;<>.]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

PASSWORD, PASSWORD_FILE, MASTER = "password", "password_file", "master user"


@dataclass(frozen=True)
class UserEntry:
    """One line of the users file."""

    line: int  # line number in the file (the header is line 1), for messages
    source_user: str
    gmail: str
    password: str | None = field(default=None, repr=False)
    password_file: Path | None = None
    source_path: Path | None = None

    @property
    def login_method(self) -> str:
        return PASSWORD if self.password else PASSWORD_FILE if self.password_file else MASTER


def read_users(path: Path, *, master_available: bool, check_logins: bool = True) -> list[UserEntry]:
    """Parse and check the users file. Raises ConfigError naming the file, the line and what to fix (the
    first problem, and how many more there are).

    Format: UTF-8 CSV (a BOM is fine) with a header row naming the columns source_user, gmail_address
    (required) and password, password_file (optional; at most one per line; a relative password_file is
    relative to the users file). A line with neither logs in as [admin] master_user. Blank lines and lines
    starting with '#' are ignored. Each Gmail address and each source user may appear once.
    check_logins=False (admin status) skips the checks of passwords and password files."""
    path = Path(path)
    try:
        text = path.read_text("utf-8-sig")
    except FileNotFoundError:
        raise ConfigError(f"users file {path} not found (pass --users FILE or set [admin] users_file)") from None
    except UnicodeDecodeError:
        raise ConfigError(f"users file {path} is not UTF-8: save it as 'CSV UTF-8'") from None
    except OSError as exc:
        raise ConfigError(f"cannot read users file {path}: {exc.strerror}") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    problems: list[str] = []
    header: list[str] | None = None
    users: list[UserEntry] = []
    seen_gmail: dict[str, int] = {}
    seen_source: dict[str, int] = {}
    try:
        rows = list(reader)
    except csv.Error as exc:
        raise ConfigError(f"users file {path}: not valid CSV ({exc})") from None
    for row, line in zip(rows, _line_numbers(text), strict=True):
        cells = [c.strip() for c in row]
        if not any(cells) or cells[0].startswith("#"):
            continue
        if header is None:
            header = [c.lower() for c in cells]
            unknown = [c for c in header if c not in COLUMNS]
            if unknown:
                raise ConfigError(
                    f"users file {path} line {line}: unknown column {unknown[0]!r} in the header"
                    f" (columns: {', '.join(COLUMNS)}; {', '.join(REQUIRED_COLUMNS)} are required)"
                )
            missing = [c for c in REQUIRED_COLUMNS if c not in header]
            if missing:
                raise ConfigError(
                    f"users file {path} line {line}: the header row lacks {missing[0]!r} (it must name the"
                    f" columns, e.g. '{','.join(COLUMNS)}')"
                )
            dupes = [c for c in header if header.count(c) > 1]
            if dupes:
                raise ConfigError(f"users file {path} line {line}: column {dupes[0]!r} appears twice in the header")
            continue
        where = f"users file {path} line {line}"
        if len(cells) != len(header):
            problems.append(f"{where}: {len(cells)} field(s), but the header has {len(header)}")
            continue
        values = dict(zip(header, cells, strict=True))
        source, gmail = values[COL_SOURCE], values[COL_GMAIL]
        # a password is taken exactly as written (spaces included); every other cell is trimmed
        password = dict(zip(header, row, strict=True)).get(COL_PASSWORD) or None
        pw_file = values.get(COL_PASSWORD_FILE) or None
        if not source:
            problems.append(f"{where}: {COL_SOURCE} is empty")
            continue
        where = f"{where} ({source})"
        if _CONTROL.search(source):
            problems.append(f"{where}: {COL_SOURCE} contains a control character")
            continue
        if not _ADDRESS.fullmatch(gmail):
            problems.append(f"{where}: {COL_GMAIL} {gmail!r} is not an e-mail address like name@example.edu")
            continue
        if password and pw_file and check_logins:
            problems.append(f"{where}: give {COL_PASSWORD} or {COL_PASSWORD_FILE}, not both")
            continue
        if password and _CONTROL.search(password):
            problems.append(f"{where}: {COL_PASSWORD} contains a control character")
            continue
        resolved = None
        if pw_file:
            resolved = (path.parent / os.path.expanduser(pw_file)).resolve()
            if check_logins and not resolved.is_file():
                problems.append(f"{where}: {COL_PASSWORD_FILE} {resolved} not found")
                continue
        src_path = values.get(COL_SOURCE_PATH) or None
        if src_path:
            src_path = (path.parent / os.path.expanduser(src_path)).resolve()
        if check_logins and not password and not resolved and not src_path and not master_available:
            problems.append(
                f"{where}: no {COL_PASSWORD} or {COL_PASSWORD_FILE}, and no [admin] master_user to log in with"
            )
            continue
        key = gmail.lower()
        if key in seen_gmail:
            problems.append(
                f"{where}: {gmail} is also on line {seen_gmail[key]}: one line per Gmail account (two old"
                " mailboxes into one account: migrate them one after the other with 'gimport run')"
            )
            continue
        if source in seen_source:
            problems.append(f"{where}: source user {source!r} is also on line {seen_source[source]}")
            continue
        seen_gmail[key], seen_source[source] = line, line
        users.append(UserEntry(line, source, gmail, password, resolved, src_path))
    if header is None:
        raise ConfigError(
            f"users file {path} is empty: it needs a header row ({','.join(COLUMNS)}) and a line per user"
        )
    if problems:
        more = f" (and {len(problems) - 1} more problem(s) in the file)" if len(problems) > 1 else ""
        raise ConfigError(problems[0] + more)
    if not users:
        raise ConfigError(f"users file {path} lists no users under its header")
    return users


def _line_numbers(text: str) -> list[int]:
    """The line number on which each CSV record starts (records may span lines inside quotes)."""
    reader = csv.reader(io.StringIO(text, newline=""))
    starts, previous = [], 0
    for _ in reader:
        starts.append(previous + 1)
        previous = reader.line_num
    return starts


def has_inline_passwords(users: list[UserEntry]) -> bool:
    return any(u.password for u in users)


# ------------------------------------------------------------------------------------------------ sharding

SHARD_ENV = "GIMPORT_SHARD"  # "I/N"
SHARD_COUNT_ENV = "GIMPORT_SHARD_COUNT"  # with JOB_COMPLETION_INDEX (Kubernetes exports no count)


@dataclass(frozen=True)
class Shard:
    index: int = 0
    count: int = 1
    origin: str = "no sharding"

    def takes(self, gmail: str) -> bool:
        return shard_of(gmail, self.count) == self.index

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def shard_of(gmail: str, count: int) -> int:
    """The shard (0..count-1) of a Gmail address: sha256 of the lower-cased address, modulo count. Stable
    across runs, machines and Python versions."""
    digest = hashlib.sha256(gmail.strip().lower().encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % count


def parse_shard(text: str, origin: str, count: int | None = None) -> Shard:
    """A Shard from "I/N" (or "I" alone when `count` is given). With `count` (the fixed shard count, [admin]
    shard_count or GIMPORT_SHARD_COUNT) an N that differs is an error. Raises ConfigError."""
    m = re.fullmatch(r"\s*(\d+)\s*(?:/\s*(\d+)\s*)?", text)
    if not m or (m.group(2) is None and count is None):
        raise ConfigError(f"{origin}: {text!r} is not a shard like 0/4 (index/count, the index counted from 0)")
    index = int(m.group(1))
    given = int(m.group(2)) if m.group(2) is not None else count
    if count is not None and given != count:
        raise ConfigError(
            f"{origin}: shard {index}/{given}, but the shard count is fixed at {count} ([admin] shard_count or"
            f" {SHARD_COUNT_ENV}): use {index}/{count}, or change the shard count everywhere at once"
        )
    if given < 1 or index >= given:
        raise ConfigError(f"{origin}: shard {index}/{given}: the index must be 0..{max(given - 1, 0)}")
    return Shard(index, given, origin)


def _env_int(env: Mapping[str, str], name: str) -> int | None:
    value = env.get(name, "").strip()
    if not value:
        return None
    if not re.fullmatch(r"-?\d+", value):
        raise ConfigError(f"the environment variable {name}={value!r} is not a whole number")
    return int(value)


def _fixed_count(env: Mapping[str, str], configured: int | None) -> int | None:
    """The shard count fixed by [admin] shard_count and/or GIMPORT_SHARD_COUNT (they must agree), or None."""
    from_env = _env_int(env, SHARD_COUNT_ENV)
    if from_env is not None and from_env < 1:
        raise ConfigError(f"{SHARD_COUNT_ENV}={from_env}: the shard count must be at least 1")
    if configured and from_env is not None and from_env != configured:
        raise ConfigError(
            f"[admin] shard_count is {configured} but {SHARD_COUNT_ENV} is {from_env}: set them to the same number"
            " (or only one of them)"
        )
    return configured or from_env


def resolve_shard(arg: str | None, env: Mapping[str, str] | None = None, count: int | None = None) -> Shard:
    """This process's shard. `count` is [admin] shard_count (None or 0: not set).

    The shard count N is fixed by `count` or GIMPORT_SHARD_COUNT (both: they must agree). The shard is, in
    this order: --shard I/N (checked against `count` only: the command line overrides the environment);
    GIMPORT_SHARD=I/N (or I with a fixed N); a Kubernetes Indexed Job (JOB_COMPLETION_INDEX / the fixed N); a
    Slurm job array — with a fixed N the index is SLURM_ARRAY_TASK_ID itself, so a resubmitted subset
    (sbatch --array=5) keeps shard 5 of N; without one, N is derived from the array (SLURM_ARRAY_TASK_COUNT,
    _MIN, _MAX, _STEP) and a one-task array other than task 0 (which looks like a resubmission) is refused;
    else 0/1 (every user, the whole project budget; also with a fixed N). An explicit N that differs from the
    fixed one is an error. Raises ConfigError."""
    env = os.environ if env is None else env
    if arg:  # the command line overrides the environment, not the config
        return parse_shard(arg, "--shard", count or None)
    fixed = _fixed_count(env, count)
    if env.get(SHARD_ENV, "").strip():
        return parse_shard(env[SHARD_ENV], SHARD_ENV, fixed)
    k8s_index = _env_int(env, "JOB_COMPLETION_INDEX")
    if k8s_index is not None:
        if fixed is None:
            raise ConfigError(
                f"JOB_COMPLETION_INDEX is set (a Kubernetes Indexed Job) but {SHARD_COUNT_ENV} is not: set it in"
                " the Job's env to the same number as spec.completions (Kubernetes does not export it), or set"
                " [admin] shard_count"
            )
        return parse_shard(f"{k8s_index}/{fixed}", f"Kubernetes Indexed Job, index {k8s_index} of {fixed}")
    task = _env_int(env, "SLURM_ARRAY_TASK_ID")
    if task is not None and fixed is not None:
        if not 0 <= task < fixed:
            raise ConfigError(
                f"Slurm array task {task}, but the shard count is {fixed}: with [admin] shard_count the array"
                f" indices are the shards themselves, 0..{fixed - 1} (sbatch --array=0-{fixed - 1})"
            )
        return parse_shard(f"{task}/{fixed}", f"Slurm array task {task} of {fixed}")
    if task is not None:
        count_env = _env_int(env, "SLURM_ARRAY_TASK_COUNT")
        low = _env_int(env, "SLURM_ARRAY_TASK_MIN")
        step = _env_int(env, "SLURM_ARRAY_TASK_STEP") or 1
        high = _env_int(env, "SLURM_ARRAY_TASK_MAX")
        if count_env is None or low is None:
            raise ConfigError(
                "SLURM_ARRAY_TASK_ID is set but SLURM_ARRAY_TASK_COUNT/SLURM_ARRAY_TASK_MIN are not: pass --shard I/N"
            )
        if count_env == 1 and task != 0:
            raise ConfigError(
                f"Slurm array task {task} is the only task of its array: a resubmission of one task"
                f" (sbatch --array={task}) would otherwise become shard 0/1 and take every user. Set [admin]"
                f" shard_count (or {SHARD_COUNT_ENV}) to the number of shards of the original array"
            )
        regular = (task - low) % step == 0 and (high is None or (high - low) // step + 1 == count_env)
        if not regular or step < 1:
            raise ConfigError(
                f"the Slurm array (tasks {low}..{high}, step {step}, {count_env} tasks) is not a regular range such"
                " as --array=0-7 or --array=1-16:3: set [admin] shard_count, or pass --shard I/N yourself"
            )
        return parse_shard(f"{(task - low) // step}/{count_env}", "Slurm job array (SLURM_ARRAY_TASK_*)")
    return Shard()


# --------------------------------------------------------------------------------------- per-user files


@dataclass(frozen=True)
class UserPaths:
    state: Path
    log: Path
    lock: Path


def user_paths(state_dir: Path, gmail: str) -> UserPaths:
    """Where one user's files live: <state_dir>/<address>.sqlite, .log and .sqlite.lock. The name is the
    lower-cased address when it is plain; otherwise a cleaned one plus a short hash, so two addresses can
    never share a file."""
    name = gmail.strip().lower()
    if not re.fullmatch(r"[a-z0-9][a-z0-9._+@-]*", name) or ".." in name:
        clean = re.sub(r"[^a-z0-9._+@-]", "_", name).strip(".") or "user"
        name = f"{clean}-{hashlib.sha256(name.encode()).hexdigest()[:10]}"
    base = Path(state_dir) / name
    state = base.with_name(name + ".sqlite")
    # the same lock as a plain `gimport run` on that state file takes
    return UserPaths(state, base.with_name(name + ".log"), lock_path(state))


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
    skipped: int = 0  # cannot be imported as they are (empty, over 150 MB)
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
        raise ConfigError(f"cannot write the report {path}: {exc.strerror} (set [admin] report_file)") from None


def sharded_report_path(path: Path, shard: Shard) -> Path:
    """report.csv -> report-shard-2-of-8.csv when sharded, so that shards sharing a volume keep their own."""
    if shard.count == 1:
        return path
    return path.with_name(f"{path.stem}-shard-{shard.index}-of-{shard.count}{path.suffix}")


def _iso(ts: float | None) -> str:
    if not ts:
        return ""
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _float(value: str | None) -> float | None:
    try:
        return float(value) if value not in (None, "") else None
    except ValueError:
        return None


def row_from_state(state: StateStore, gmail: str, source_user: str, *, locked_elsewhere: bool = False) -> UserRow:
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
        state = StateStore.open_readonly(paths.state)
    except StateError as err:
        return UserRow(gmail=gmail, source_user=source_user, outcome=USER_FAILED, error=str(err))
    try:
        row = row_from_state(state, gmail, source_user, locked_elsewhere=StateLock.held(paths.lock))
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
            state = StateStore.open_readonly(path)
        except StateError as err:
            rows.append(UserRow(gmail=path.stem, source_user="", outcome=USER_FAILED, error=str(err)))
            continue
        try:
            gmail = state.get_meta(META_GMAIL) or state.get_meta("gmail_account") or path.stem
        finally:
            state.close()
        rows.append(read_row(state_dir, gmail))
    return rows


def sort_rows(rows: list[UserRow]) -> list[UserRow]:
    rank = {o: i for i, o in enumerate(OUTCOME_ORDER)}
    return sorted(rows, key=lambda r: (rank.get(r.outcome, 0), r.gmail.lower()))


# ----------------------------------------------------------------------------------------------- the run


class AdminReporter(Protocol):
    """What AdminRun tells the outside (gimport.render.admin renders it)."""

    def user_started(self, number: int, total: int, entry: UserEntry) -> None: ...
    def transfer_added(self, messages: int, size: int) -> None: ...
    def message_finished(self, outcome: str, size: int) -> None: ...
    def user_warning(self, gmail: str, text: str) -> None: ...
    def user_finished(self, done: int, total: int, row: UserRow) -> None: ...
    def warning(self, text: str) -> None: ...


class NullAdminReporter:
    def user_started(self, number: int, total: int, entry: UserEntry) -> None:
        pass

    def transfer_added(self, messages: int, size: int) -> None:
        pass

    def message_finished(self, outcome: str, size: int) -> None:
        pass

    def user_warning(self, gmail: str, text: str) -> None:
        pass

    def user_finished(self, done: int, total: int, row: UserRow) -> None:
        pass

    def warning(self, text: str) -> None:
        pass


class _UserReporter:
    """The engine's Reporter for one user, forwarding to the run's AdminReporter."""

    def __init__(self, gmail: str, sink: AdminReporter) -> None:
        self.gmail, self.sink = gmail, sink

    def phase(self, text: str) -> None:
        log.debug("%s: %s", self.gmail, text)

    def transfer_started(self, messages: int, size: int) -> None:
        self.sink.transfer_added(messages, size)

    def message_finished(self, folder: str, outcome: str, size: int) -> None:
        self.sink.message_finished(outcome, size)

    def warning(self, text: str) -> None:
        self.sink.user_warning(self.gmail, text)


@dataclass
class AdminSummary:
    shard: Shard
    rows: list[UserRow] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None
    interrupted: bool = False
    fatal: GimportError | None = None  # stopped every user (the service account cannot impersonate)
    imported_now: int = 0
    bytes_now: int = 0

    @property
    def duration(self) -> float:
        return (self.finished or time.monotonic()) - self.started

    @property
    def complete(self) -> bool:
        return not self.interrupted and self.fatal is None and all(r.ok for r in self.rows)


class SourceLogin:
    """How to log in to the old server for each user: the line's password or password_file, or the
    master user (login name from [admin] master_login, e.g. "alice*admin" for Dovecot)."""

    def __init__(self, admin: AdminSettings) -> None:
        self.admin = admin
        self._master_password: str | None = None
        if admin.master_user and admin.master_password_file:
            self._master_password = read_secret(admin.master_password_file, "[admin] master_password_file")

    def for_user(self, entry: UserEntry) -> tuple[str | None, str]:
        """(login name or None for the user name itself, password). Raises ConfigError."""
        if entry.source_path:
            return None, ""  # local files: no login
        if entry.password:
            return None, entry.password
        if entry.password_file:
            return None, read_secret(entry.password_file, f"users file line {entry.line}: password_file")
        if self._master_password is None:
            raise ConfigError(f"users file line {entry.line}: no password, and no [admin] master_user")
        login = self.admin.master_login.format(user=entry.source_user, master=self.admin.master_user)
        return login, self._master_password

    def describe(self, entry: UserEntry) -> str:
        if entry.password:
            return f"the password on users file line {entry.line}"
        if entry.password_file:
            return f"password_file {entry.password_file}"
        return f"master user {self.admin.master_user!r} (login {self.for_user(entry)[0]!r})"

    def connect(self, source: Any, entry: UserEntry) -> None:
        """source.connect(), with a refused login explained in terms of the users file (LoginRefused)."""
        from gimport.backends.imap import LoginRefused

        try:
            source.connect()
        except LoginRefused:
            raise LoginRefused(
                f"the IMAP server refused the login for {entry.source_user!r} with {self.describe(entry)}:"
                f" fix it in the users file (line {entry.line}) or the config"
            ) from None


def user_settings(settings: Settings, entry: UserEntry, login: str | None) -> Settings:
    """The single-user settings of one user: the same [source] server, mapping and filters, the user's
    own source login, state file and log file."""
    paths = user_paths(settings.admin.state_dir, entry.gmail)
    source = dataclasses.replace(
        settings.source, user=entry.source_user, login=login, path=entry.source_path or settings.source.path
    )
    # [gmail] user stays unset: the token is minted for entry.gmail, and the state file is bound to the
    # account Gmail reports (its primary address), which catches a mix-up on later runs
    gmail = dataclasses.replace(settings.gmail, user=None)
    return dataclasses.replace(settings, source=source, gmail=gmail, state_path=paths.state, log_file=paths.log)


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
    ) -> None:
        if settings.admin is None:
            raise ConfigError("admin settings missing")
        self.settings, self.admin = settings, settings.admin
        self.users = users
        self.shard = shard or Shard()
        self.reporter = reporter or NullAdminReporter()
        self._authorize = authorize
        self._logins = SourceLogin(self.admin)
        self._router = log_router
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._queue: deque[tuple[int, UserEntry]] = deque(enumerate(users, 1))
        self._active: dict[str, Migration] = {}
        self._rows: dict[str, UserRow] = {}
        self._done = 0
        self.summary = AdminSummary(self.shard)
        self.project_units_per_minute = self.admin.project_units_per_minute / self.shard.count
        self.project_pacer = Pacer(self.project_units_per_minute, sleep=self._stop.wait)
        self.parallel = max(1, min(self.admin.parallel_users, len(users)))
        per_user = self.admin.memory_budget_mb * 1024 * 1024 // self.parallel
        # an equal share, never more than a single-user run takes, and at least 8 MB (one message always fits)
        self.engine_memory_budget = min(EngineOptions().memory_budget, max(8 * 1024 * 1024, per_user))

    def request_stop(self) -> None:
        with self._lock:
            self.summary.interrupted = True
            self._stop.set()
            active = list(self._active.values())
        for migration in active:
            migration.request_stop()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def run(self) -> AdminSummary:
        log.info(
            "admin run: %d user(s), shard %s (%s), %d at a time, project budget %.0f units/min",
            len(self.users),
            self.shard,
            self.shard.origin,
            self.parallel,
            self.project_units_per_minute,
        )
        slots = [threading.Thread(target=self._slot, name=f"admin-slot-{i}", daemon=True) for i in range(self.parallel)]
        for t in slots:
            t.start()
        for t in slots:
            while t.is_alive():
                t.join(0.5)  # short joins keep the main thread responsive to signals
        s = self.summary
        for _, entry in self._queue:  # left when the run stopped early
            row = read_row(self.admin.state_dir, entry.gmail, entry.source_user)
            row.outcome, row.error = NOT_RUN, "the run stopped before this user was started"
            self._rows[entry.gmail.lower()] = row
        s.rows = [self._rows[u.gmail.lower()] for u in self.users if u.gmail.lower() in self._rows]
        s.finished = time.monotonic()
        log.info("admin run finished in %.1f s: %s", s.duration, _outcome_counts(s.rows))
        return s

    def _slot(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                if not self._queue:
                    return
                number, entry = self._queue.popleft()
            self.reporter.user_started(number, len(self.users), entry)
            try:
                row = self._one(entry)
            except Exception as err:  # noqa: BLE001 - e.g. the state disk is full: record, go on with others
                log.exception("%s: unexpected error", entry.gmail)
                row = UserRow(entry.gmail, entry.source_user, USER_FAILED, error=f"unexpected error: {err!r}")
            with self._lock:
                self._rows[entry.gmail.lower()] = row
                self._done += 1
                done = self._done
            self.reporter.user_finished(done, len(self.users), row)

    def _fatal(self, err: GimportError) -> None:
        with self._lock:
            if self.summary.fatal is None:
                self.summary.fatal = err
                log.error("stopping every user: %s", err)
        self.reporter.warning(f"stopping: {err}")
        self._stop.set()
        with self._lock:
            active = list(self._active.values())
        for migration in active:
            migration.request_stop()

    def _one(self, entry: UserEntry) -> UserRow:
        """Migrate one user; never raises (the row says what happened)."""
        paths = user_paths(self.admin.state_dir, entry.gmail)
        thread = threading.current_thread()
        thread.name = f"{entry.gmail.lower()}:run"
        lock = StateLock(paths.lock)
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
                state = StateStore(paths.state)
            except StateError as err:
                return UserRow(entry.gmail, entry.source_user, USER_FAILED, error=str(err))
            try:
                return self._migrate(entry, state)
            finally:
                state.close()
        finally:
            if self._router is not None:
                self._router.close(entry.gmail.lower())
            lock.release()
            thread.name = "admin-slot"

    def _migrate(self, entry: UserEntry, state: StateStore) -> UserRow:
        started = time.time()
        t0 = time.monotonic()
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
        except GimportError as err:
            error = err
            if stops_everything(err):
                self._fatal(err)
        except Exception as err:  # noqa: BLE001 - one user's bug must not stop the others
            log.exception("%s: unexpected error", entry.gmail)
            error = GimportError(f"unexpected error: {err!r}")
        if summary is not None and summary.fatal is not None:
            error = summary.fatal
            if summary.gmail_account is None and isinstance(error, GmailRefused):
                # Gmail answered the very first call for this account with a refusal: the account is not usable
                error = GmailRefused(
                    f"{error}: check that {entry.gmail} exists, is not suspended and has Gmail enabled"
                    " (Google Admin console > Users)"
                )
        imported_now = summary.total("imported") if summary is not None else 0
        if (
            isinstance(error, Interrupted)
            or (summary is not None and summary.interrupted)
            or (error is None and summary is None)
        ):
            outcome = INTERRUPTED
        elif error is not None:
            outcome = USER_FAILED
        elif summary.complete:
            outcome = COMPLETE
        else:
            outcome = INCOMPLETE
        duration = time.monotonic() - t0
        text = "" if error is None or isinstance(error, Interrupted) else str(error)
        if outcome == INCOMPLETE and not text:
            text = _incomplete_reason(summary)
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
        (log.warning if outcome in (USER_FAILED, INCOMPLETE) else log.info)(
            "%s: %s after %.1f s, %d imported%s",
            entry.gmail,
            outcome,
            duration,
            imported_now,
            f": {text}" if text else "",
        )
        return row_from_state(state, entry.gmail, entry.source_user)

    def _migration(self, entry: UserEntry, state: StateStore) -> RunSummary | None:
        if self._stop.is_set():
            return None
        login, password = self._logins.for_user(entry)
        settings = user_settings(self.settings, entry, login)
        credentials = self._authorize(entry.gmail)
        if self._stop.is_set():
            return None
        acct = wiring.account(settings, self.project_pacer, credentials=credentials)
        source = wiring.source(settings.source, password)
        try:
            self._logins.connect(source, entry)
            options = EngineOptions(
                workers=settings.gmail.workers,
                memory_budget=self.engine_memory_budget,
                thread_prefix=f"{entry.gmail.lower()}:",
            )
            migration = acct.migration(
                source=source, state=state, reporter=_UserReporter(entry.gmail, self.reporter), options=options
            )
            with self._lock:
                if self._stop.is_set():
                    return None
                self._active[entry.gmail.lower()] = migration
            try:
                return migration.run()
            finally:
                with self._lock:
                    self._active.pop(entry.gmail.lower(), None)
        finally:
            source.close()


def _incomplete_reason(summary: RunSummary | None) -> str:
    if summary is None:
        return ""
    failed, skipped = summary.total("failed"), summary.total("skipped")
    parts = []
    if failed:
        parts.append(f"{failed} message(s) failed (the next run retries them)")
    if skipped:
        parts.append(f"{skipped} message(s) cannot be imported (skipped)")
    reasons = list(dict.fromkeys(r for f in summary.folders for r in f.reasons))
    if reasons:
        parts.append("reasons: " + "; ".join(reasons[:3]))
    parts += [f"{f.folder}: {f.error}" for f in summary.folders if f.error][:2]
    if summary.warnings and not parts:
        parts.append(summary.warnings[0])
    return "; ".join(parts)


def _outcome_counts(rows: list[UserRow]) -> str:
    counts: dict[str, int] = {}
    for r in rows:
        counts[r.outcome] = counts.get(r.outcome, 0) + 1
    return ", ".join(f"{n} {o}" for o, n in sorted(counts.items(), key=lambda kv: OUTCOME_ORDER.index(kv[0])))


def outcome_counts(rows: list[UserRow]) -> str:
    return _outcome_counts(rows)


# ------------------------------------------------------------------------------------------------ logging


class UserLogRouter(logging.Handler):
    """Sends each log record of a user's threads (named "<address>:...") to that user's own log file
    while the user runs; other records are left to the other handlers."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self._files: dict[str, logging.Handler] = {}
        self._formatter = logging.Formatter("%(asctime)s %(levelname)s %(message)s")

    def open(self, key: str, path: Path) -> None:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            os.close(fd)
            handler = logging.FileHandler(path, encoding="utf-8")
        except OSError as exc:
            log.warning("cannot write the user log %s: %s", path, exc.strerror)
            return
        handler.setFormatter(self._formatter)
        self.acquire()
        try:
            self._files[key] = handler
        finally:
            self.release()

    def close(self, key: str | None = None) -> None:  # type: ignore[override]
        if key is None:
            for k in list(self._files):
                self.close(k)
            super().close()
            return
        self.acquire()
        try:
            handler = self._files.pop(key, None)
        finally:
            self.release()
        if handler is not None:
            handler.close()

    def emit(self, record: logging.LogRecord) -> None:
        key = (record.threadName or "").partition(":")[0]
        handler = self._files.get(key)
        if handler is not None:
            handler.handle(record)


class _RunLogFilter(logging.Filter):
    """The run's own log keeps admin lines and every warning/error; message-level lines go to user logs."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.name.startswith("gimport.admin") or record.levelno >= logging.WARNING


@contextmanager
def admin_logging(log_file: Path) -> Iterator[UserLogRouter]:
    """The run's log file ([state] log_file: admin lines, warnings and errors of every user, each line
    naming the user's thread) plus one log file per user next to their state file."""
    logger = logging.getLogger("gimport")
    logger.setLevel(logging.INFO)
    run_handler = private_log_handler(log_file)
    run_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s [%(threadName)s] %(message)s"))
    run_handler.addFilter(_RunLogFilter())
    router = UserLogRouter()
    logger.addHandler(run_handler)
    logger.addHandler(router)
    try:
        yield router
    finally:
        logger.removeHandler(run_handler)
        logger.removeHandler(router)
        run_handler.close()
        router.close()


# --------------------------------------------------------------------------- verify and cleanup, per user


@dataclass
class UserCheck:
    """The outcome of `gimport admin verify` / `cleanup` for one user."""

    gmail: str
    source_user: str
    outcome: str  # verified | NOT VERIFIED | no state | failed ; cleanup: done | would change | ...
    detail: str = ""
    report: Any = None  # gimport.finish.VerifyReport / CleanupPlan


def for_each_user(
    users: list[UserEntry], parallel: int, fn: Callable[[UserEntry], UserCheck], *, stop: threading.Event
) -> list[UserCheck]:
    """fn(user) for every user, `parallel` at a time, in the users' order. A user fn raises for becomes a
    'failed' check. Once `stop` is set, users not started yet are left out."""
    results: dict[int, UserCheck] = {}
    todo = deque(enumerate(users))
    lock = threading.Lock()

    def slot() -> None:
        while not stop.is_set():
            with lock:
                if not todo:
                    return
                i, entry = todo.popleft()
            try:
                results[i] = fn(entry)
            except GimportError as err:
                results[i] = UserCheck(entry.gmail, entry.source_user, "failed", str(err))
            except Exception as err:  # noqa: BLE001
                log.exception("%s: unexpected error", entry.gmail)
                results[i] = UserCheck(entry.gmail, entry.source_user, "failed", f"unexpected error: {err!r}")

    threads = [threading.Thread(target=slot, daemon=True) for _ in range(max(1, min(parallel, len(users))))]
    for t in threads:
        t.start()
    for t in threads:
        while t.is_alive():
            t.join(0.5)
    return [results[i] for i in sorted(results)]


__all__ = [
    "AdminRun",
    "AdminSummary",
    "Shard",
    "UserEntry",
    "UserRow",
    "read_users",
    "resolve_shard",
    "shard_of",
    "read_rows",
    "write_report",
]

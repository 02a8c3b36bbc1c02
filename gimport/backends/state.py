"""The state file: what was found, what was imported, what failed and why.

The only module that imports sqlite3. WAL journal, one short transaction per change, so a process
killed at any instant loses nothing that was committed: a message is marked 'sending' *before* its
import call leaves and 'imported' as soon as Gmail answers. On the next run, messages still marked
'sending' are the ones that were in flight at the interruption; they are sent again and counted.

Durability: WAL with synchronous=NORMAL survives a killed process (SIGKILL, Ctrl-C, an orderly reboot).
Only an operating-system crash or power loss could drop the last transactions, and then those messages
are simply sent again (Gmail merges a re-import of the same Message-ID).
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from gimport.contract import (
    DONE_STATUSES,
    DUPLICATE,
    FAILED,
    IMPORTED,
    PENDING,
    SENDING,
    SKIPPED,
    ContentMatch,
    FolderCounts,
    KnownContent,
    MessageKey,
    MessageRecord,
)
from gimport.errors import StateError
from gimport.settings import lock_path

__all__ = [
    "DONE_STATUSES",
    "DUPLICATE",
    "FAILED",
    "IMPORTED",
    "PENDING",
    "SENDING",
    "SKIPPED",
    "FolderCounts",
    "MessageKey",
    "MessageRecord",
    "StateStore",
    "StateLock",
    "lock_path",
]

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS folders (
    account TEXT NOT NULL, folder TEXT NOT NULL, uidvalidity INTEGER,
    found INTEGER NOT NULL DEFAULT 0, selected INTEGER NOT NULL DEFAULT 0,
    labels TEXT NOT NULL DEFAULT '', last_listed REAL,
    PRIMARY KEY (account, folder));
CREATE TABLE IF NOT EXISTS messages (
    account TEXT NOT NULL, folder TEXT NOT NULL, uidvalidity INTEGER NOT NULL, uid INTEGER NOT NULL,
    message_id TEXT, size INTEGER, sha256 TEXT, status TEXT NOT NULL, gmail_id TEXT, labels TEXT,
    attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT, resent INTEGER NOT NULL DEFAULT 0, updated REAL,
    PRIMARY KEY (account, folder, uidvalidity, uid));
CREATE INDEX IF NOT EXISTS messages_hash ON messages (account, folder, sha256);
CREATE INDEX IF NOT EXISTS messages_status ON messages (account, status);
"""


class StateStore:
    """Thread-safe access to the state file (one connection, one lock)."""

    def __init__(self, path: Path, *, readonly: bool = False) -> None:
        self.path = Path(path)
        self.readonly = readonly
        if readonly:
            self._open_readonly()
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # private from the first byte: folder names and Message-IDs are nobody else's business on a
            # shared server (SQLite gives the -wal and -shm files the same mode)
            os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
            self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None, timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
            self._add_identity_column()
        except sqlite3.DatabaseError as exc:
            raise StateError(f"cannot use state file {self.path}: {exc} (move it away to start over)") from None
        except OSError as exc:
            raise StateError(f"cannot create state file {self.path}: {exc.strerror}") from None
        self._lock = threading.Lock()
        version = self.get_meta("schema_version")
        if version is None:
            self.set_meta("schema_version", str(SCHEMA_VERSION))
        elif int(version) > SCHEMA_VERSION:
            raise StateError(f"state file {self.path} was written by a newer gimport; upgrade gimport")

    def _add_identity_column(self) -> None:
        # added for the content check of folders whose UIDVALIDITY changes (issue 17); older files get it here
        columns = {r[1] for r in self._db.execute("PRAGMA table_info(messages)")}
        if "identity" not in columns:
            self._db.execute("ALTER TABLE messages ADD COLUMN identity TEXT")

    def _has_identity(self) -> bool:
        columns = {r[1] for r in self._db.execute("PRAGMA table_info(messages)")}
        return "identity" in columns

    @classmethod
    def open_readonly(cls, path: Path) -> StateStore:
        """Open an existing state file for reading only (gimport verify): no schema, no meta, no writes;
        any write raises. SQLite may still create the -wal/-shm side files of a WAL database it reads.
        Raises StateError when the file is missing, not a state file, or from a newer gimport."""
        if not Path(path).exists():
            raise StateError(f"no state file at {path}: nothing has been run yet with this config")
        return cls(path, readonly=True)

    def _open_readonly(self) -> None:
        try:
            self._db = sqlite3.connect(
                self.path.resolve().as_uri() + "?mode=ro",
                uri=True,
                check_same_thread=False,
                isolation_level=None,
                timeout=30,
            )
            self._lock = threading.Lock()
            version = self.get_meta("schema_version")
        except sqlite3.DatabaseError as exc:
            raise StateError(f"cannot read state file {self.path}: {exc}") from None
        if version is not None and int(version) > SCHEMA_VERSION:
            raise StateError(f"state file {self.path} was written by a newer gimport; upgrade gimport")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # -- meta ---------------------------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        with self._tx() as db:
            db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, value))

    def bind_destination(self, gmail_account: str) -> None:
        """Remember which Gmail account this state describes; refuse to mix two."""
        known = self.get_meta("gmail_account")
        if known is None:
            self.set_meta("gmail_account", gmail_account)
        elif known.lower() != gmail_account.lower():
            raise StateError(
                f"state file {self.path} records a migration into {known}, but the token is for"
                f" {gmail_account}: use the matching token, or a fresh [state] path for the new account"
            )

    # -- folders ------------------------------------------------------------------------------------
    def record_folder(
        self, account: str, folder: str, uidvalidity: int | None, found: int, selected: int, labels: str
    ) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO folders(account, folder, uidvalidity, found, selected, labels, last_listed)"
                " VALUES (?,?,?,?,?,?,?) ON CONFLICT(account, folder) DO UPDATE SET uidvalidity=excluded.uidvalidity,"
                " found=excluded.found, selected=excluded.selected, labels=excluded.labels,"
                " last_listed=excluded.last_listed",
                (account, folder, uidvalidity, found, selected, labels, time.time()),
            )

    def set_folder_errors(self, account: str, errors: dict[str, str]) -> None:
        """The folders the server could not serve at this run, with why (replaces the last run's list)."""
        prefix = f"folder_error\t{account}\t"
        with self._tx() as db:
            db.execute("DELETE FROM meta WHERE substr(key, 1, ?) = ?", (len(prefix), prefix))
            db.executemany(
                "INSERT INTO meta(key, value) VALUES (?, ?)", [(prefix + path, err) for path, err in errors.items()]
            )

    def folder_errors(self, account: str) -> dict[str, str]:
        """Folder path -> why the server could not serve it at the last run."""
        prefix = f"folder_error\t{account}\t"
        with self._lock:
            rows = self._db.execute(
                "SELECT key, value FROM meta WHERE substr(key, 1, ?) = ?", (len(prefix), prefix)
            ).fetchall()
        return {k[len(prefix) :]: v for k, v in rows}

    # -- messages -----------------------------------------------------------------------------------
    def done_uids(
        self, account: str, folder: str, uidvalidity: int, statuses: tuple[str, ...] = (IMPORTED, DUPLICATE, SKIPPED)
    ) -> set[int]:
        """UIDs of this folder generation with one of `statuses` (by default: those that need no more work)."""
        marks = ",".join("?" * len(statuses))
        with self._lock:
            rows = self._db.execute(
                f"SELECT uid FROM messages WHERE account=? AND folder=? AND uidvalidity=? AND status IN ({marks})",
                (account, folder, uidvalidity, *statuses),
            ).fetchall()
        return {r[0] for r in rows}

    def add_pending(self, account: str, folder: str, uidvalidity: int, items: Iterable[tuple[int, int]]) -> None:
        """Record (uid, size) pairs found on the source; existing rows are left as they are."""
        now = time.time()
        with self._tx() as db:
            db.executemany(
                "INSERT OR IGNORE INTO messages(account, folder, uidvalidity, uid, size, status, updated)"
                " VALUES (?,?,?,?,?,?,?)",
                [(account, folder, uidvalidity, uid, size, PENDING, now) for uid, size in items],
            )

    def find_imported_copy(self, account: str, folder: str, sha256: str) -> str | None:
        """The Gmail id of a message with the same content already imported from this folder, if any."""
        with self._lock:
            row = self._db.execute(
                "SELECT gmail_id FROM messages WHERE account=? AND folder=? AND sha256=? AND status=? LIMIT 1",
                (account, folder, sha256, IMPORTED),
            ).fetchone()
        return row[0] if row else None

    def known_content(self, account: str, folder: str, uidvalidity: int) -> KnownContent:
        """What the folder's other generations (UIDVALIDITY values) imported: identities and content hashes."""
        with self._lock:
            identity = "identity" if self._has_identity() else "NULL"
            rows = self._db.execute(
                f"SELECT {identity}, sha256, gmail_id FROM messages WHERE account=? AND folder=? AND uidvalidity!=?"
                " AND status=? AND sha256 IS NOT NULL AND gmail_id IS NOT NULL",
                (account, folder, uidvalidity, IMPORTED),
            ).fetchall()
        by_identity: dict[str, set[str]] = {}
        by_hash: dict[str, str] = {}
        for ident, sha, gmail_id in rows:
            by_hash.setdefault(sha, gmail_id)
            if ident:
                by_identity.setdefault(ident, set()).add(sha)
        return KnownContent({k: frozenset(v) for k, v in by_identity.items()}, by_hash)

    def generations(self, account: str, folder: str) -> int:
        """How many UIDVALIDITY values of the folder have messages recorded."""
        with self._lock:
            return self._db.execute(
                "SELECT count(DISTINCT uidvalidity) FROM messages WHERE account=? AND folder=?", (account, folder)
            ).fetchone()[0]

    def add_done_by_content(
        self, account: str, folder: str, uidvalidity: int, matches: dict[int, ContentMatch]
    ) -> None:
        """Record messages found to be in Gmail by their content (another generation imported them)."""
        now = time.time()
        with self._tx() as db:
            db.executemany(
                "INSERT INTO messages(account, folder, uidvalidity, uid, size, sha256, identity, status, gmail_id,"
                " updated) VALUES (?,?,?,?,?,?,?,?,?,?) ON CONFLICT(account, folder, uidvalidity, uid) DO UPDATE"
                " SET size=excluded.size, sha256=excluded.sha256, identity=excluded.identity,"
                " status=excluded.status, gmail_id=excluded.gmail_id, last_error=NULL, updated=excluded.updated",
                [
                    (account, folder, uidvalidity, uid, m.size, m.sha256, m.identity, DUPLICATE, m.gmail_id, now)
                    for uid, m in matches.items()
                ],
            )

    def mark_sending(
        self, key: MessageKey, message_id: str | None, sha256: str, labels: str, identity: str | None = None
    ) -> bool:
        """Mark a message in flight, just before its import call. Returns True if it was already
        'sending' before (it was in flight when an earlier run was interrupted: this is a re-send).
        `identity`: its cheap identity (gimport.contract.content_identity), for later UIDVALIDITYs."""
        with self._tx() as db:
            row = db.execute(
                "SELECT status FROM messages WHERE account=? AND folder=? AND uidvalidity=? AND uid=?",
                (key.account, key.folder, key.uidvalidity, key.uid),
            ).fetchone()
            resend = bool(row and row[0] == SENDING)
            db.execute(
                "INSERT INTO messages(account, folder, uidvalidity, uid, message_id, sha256, status, labels,"
                " attempts, resent, updated, identity) VALUES (?,?,?,?,?,?,?,?,1,?,?,?)"
                " ON CONFLICT(account, folder, uidvalidity, uid) DO UPDATE SET message_id=excluded.message_id,"
                " sha256=excluded.sha256, status=excluded.status, labels=excluded.labels, identity=excluded.identity,"
                " attempts=attempts+1, resent=resent+excluded.resent, updated=excluded.updated",
                (
                    key.account,
                    key.folder,
                    key.uidvalidity,
                    key.uid,
                    message_id,
                    sha256,
                    SENDING,
                    labels,
                    int(resend),
                    time.time(),
                    identity,
                ),
            )
        return resend

    def _set(self, key: MessageKey, **cols: object) -> None:
        cols["updated"] = time.time()
        assignments = ", ".join(f"{c}=?" for c in cols)
        with self._tx() as db:
            db.execute(
                f"UPDATE messages SET {assignments} WHERE account=? AND folder=? AND uidvalidity=? AND uid=?",
                (*cols.values(), key.account, key.folder, key.uidvalidity, key.uid),
            )

    def mark_imported(self, key: MessageKey, gmail_id: str, size: int) -> None:
        self._set(key, status=IMPORTED, gmail_id=gmail_id, size=size, last_error=None)

    def mark_duplicate(self, key: MessageKey, gmail_id: str, sha256: str, message_id: str | None) -> None:
        self._set(key, status=DUPLICATE, gmail_id=gmail_id, sha256=sha256, message_id=message_id, last_error=None)

    def mark_failed(self, key: MessageKey, reason: str) -> None:
        self._set(key, status=FAILED, last_error=reason[:500])

    def note_error(self, key: MessageKey, reason: str) -> None:
        """Record why the last attempt failed, leaving the status as it is."""
        self._set(key, last_error=reason[:500])

    def mark_skipped(self, key: MessageKey, reason: str) -> None:
        self._set(key, status=SKIPPED, last_error=reason[:500])

    def count_in_flight(self, account: str) -> int:
        with self._lock:
            return self._db.execute(
                "SELECT count(*) FROM messages WHERE account=? AND status=?", (account, SENDING)
            ).fetchone()[0]

    # -- reports ------------------------------------------------------------------------------------
    def accounts(self) -> list[str]:
        with self._lock:
            return [r[0] for r in self._db.execute("SELECT DISTINCT account FROM folders ORDER BY account")]

    def folder_counts(self, account: str) -> list[FolderCounts]:
        """Per-folder numbers for the current generation (UIDVALIDITY) of each folder."""
        with self._lock:
            rows = self._db.execute(
                """
                SELECT f.folder, f.found, f.selected, f.labels,
                  count(CASE WHEN m.status='imported' THEN 1 END),
                  count(CASE WHEN m.status='duplicate' THEN 1 END),
                  count(CASE WHEN m.status='failed' THEN 1 END),
                  count(CASE WHEN m.status='skipped' THEN 1 END),
                  count(CASE WHEN m.status='sending' THEN 1 END),
                  count(CASE WHEN m.status='pending' THEN 1 END),
                  coalesce(sum(CASE WHEN m.status='imported' THEN m.size END), 0),
                  coalesce(sum(m.resent), 0)
                FROM folders f LEFT JOIN messages m
                  ON m.account=f.account AND m.folder=f.folder AND m.uidvalidity=f.uidvalidity
                WHERE f.account=? GROUP BY f.folder ORDER BY f.folder
                """,
                (account,),
            ).fetchall()
        return [FolderCounts(*r) for r in rows]

    def recorded_folders(self, account: str) -> dict[str, int | None]:
        """Folder path -> the UIDVALIDITY the last run saw, for every folder recorded for `account`."""
        with self._lock:
            rows = self._db.execute("SELECT folder, uidvalidity FROM folders WHERE account=?", (account,)).fetchall()
        return dict(rows)

    def folder_messages(self, account: str, folder: str, uidvalidity: int) -> dict[int, MessageRecord]:
        """Every message recorded for one generation (UIDVALIDITY) of a folder, by UID."""
        with self._lock:
            rows = self._db.execute(
                "SELECT uid, status, message_id, gmail_id, coalesce(last_error, '') FROM messages"
                " WHERE account=? AND folder=? AND uidvalidity=?",
                (account, folder, uidvalidity),
            ).fetchall()
        return {r[0]: MessageRecord(*r) for r in rows}

    def problems(self, account: str, limit: int = 50) -> list[tuple[str, int, str, str]]:
        """(folder, uid, status, reason) of messages failed or skipped, newest first."""
        with self._lock:
            return self._db.execute(
                "SELECT folder, uid, status, coalesce(last_error, '') FROM messages m WHERE account=?"
                " AND status IN (?, ?) AND uidvalidity=(SELECT uidvalidity FROM folders f"
                " WHERE f.account=m.account AND f.folder=m.folder) ORDER BY updated DESC LIMIT ?",
                (account, FAILED, SKIPPED, limit),
            ).fetchall()


class StateLock:
    """An exclusive lock (flock) on a state file's lock file: two processes never import the same mailbox at
    once (two `gimport run` in two screens, an overlapping admin shard). The lock goes with the process,
    killed or not; the file holds the holder's pid and host, for the error message."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._fd: int | None = None

    def acquire(self) -> bool:
        """True when this process now holds the lock; False when another one does."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()} {os.uname().nodename}\n".encode())
        self._fd = fd
        return True

    def holder(self) -> str:
        """ "pid N on HOST" of the process that wrote the lock file, as far as it can be read."""
        try:
            pid, host = self.path.read_text().split()[:2]
            return f"pid {pid} on {host}"
        except (OSError, ValueError):
            return "another process"

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    @staticmethod
    def held(path: Path) -> bool:
        """Whether another process holds the lock now."""
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return True
        finally:
            os.close(fd)
        return False

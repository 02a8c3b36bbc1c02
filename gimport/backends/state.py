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

import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from gimport.backends.statefile import (  # noqa: F401 - StateLock etc. are part of this module's API
    HOLDER_KEY,
    StateLock,
    file_identity,
    lock_error,
    lost_state_hint,
    open_error,
    register,
    release_fd,
    side_files,
    sqlite_error,
    unregister,
)
from gimport.contract import (
    DONE_STATUSES,
    DUPLICATE,
    FAILED,
    IMPORTED,
    PENDING,
    PROBLEM_STATUSES,
    SENDING,
    SKIPPED,
    ContentMatch,
    FolderCounts,
    KnownContent,
    LedgerRow,
    MessageKey,
    MessageRecord,
)
from gimport.errors import StateError
from gimport.files import PrivateFileError, check_existing_private, lock_path, open_private
from gimport.i18n import _

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

# 1: the first. 2: messages.accepted (when a failed/skipped message was accepted as not in Gmail).
SCHEMA_VERSION = 2

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
    accepted REAL,
    PRIMARY KEY (account, folder, uidvalidity, uid));
CREATE INDEX IF NOT EXISTS messages_hash ON messages (account, folder, sha256);
CREATE INDEX IF NOT EXISTS messages_status ON messages (account, status);
"""


class StateStore:
    """Thread-safe access to the state file (one connection, one lock)."""

    def __init__(self, path: Path, *, readonly: bool = False) -> None:
        """Open (creating when missing) the state file for a run; the caller holds its StateLock.
        Raises StateError: another user's file or a symlink, not a state file, damaged, not writable."""
        self.path = Path(path)
        self.readonly = readonly
        self._lock = threading.Lock()
        self._ident: tuple[int, int] | None = None
        if readonly:
            self._open_readonly()
            return
        try:
            # private from the first byte: folder names and Message-IDs are nobody else's business on a
            # shared server (SQLite gives the -wal and -shm files the same mode); never another user's file
            fd = open_private(self.path, os.O_RDWR | os.O_CREAT)
            ident = file_identity(os.fstat(fd))
            release_fd(fd)
            for side in side_files(self.path):
                check_existing_private(side)
        except PrivateFileError as exc:
            raise StateError(
                _("cannot use the state file {path}: {why}").format(path=self.path, why=exc.strerror), hint=""
            ) from None
        except OSError as exc:
            raise open_error(self.path, exc) from None
        try:
            self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None, timeout=30)
        except sqlite3.Error as exc:
            raise sqlite_error(self.path, exc) from None
        register(ident)
        self._ident = ident
        try:
            with self._reading():
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=NORMAL")
                self._db.executescript(_SCHEMA)
            version = self.get_meta("schema_version")
            if version is not None and int(version) > SCHEMA_VERSION:
                raise StateError(
                    _("state file {path} was written by a newer gimport; upgrade gimport").format(path=self.path)
                )
            self._migrate(int(version) if version is not None else None)
            # who holds the run lock, for the message another run prints (the lock itself is a flock)
            self.set_meta(HOLDER_KEY, f"{os.getpid()} {os.uname().nodename} {time.strftime('%Y-%m-%dT%H:%M:%S')}")
        except BaseException:
            self.close()
            raise

    def _migrate(self, version: int | None) -> None:
        """Bring a state file of an older schema up to SCHEMA_VERSION, in one transaction (a file that
        older gimport versions wrote keeps working; they refuse it afterwards, as a newer one)."""
        with self._tx() as db:
            columns = {r[1] for r in db.execute("PRAGMA table_info(messages)")}
            if "accepted" not in columns:  # schema 1
                db.execute("ALTER TABLE messages ADD COLUMN accepted REAL")
            if "identity" not in columns:  # the content check of folders whose UIDVALIDITY changes (issue 17)
                db.execute("ALTER TABLE messages ADD COLUMN identity TEXT")
            if version != SCHEMA_VERSION:
                db.execute(
                    "INSERT OR REPLACE INTO meta(key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
                )

    def _has_identity(self) -> bool:
        columns = {r[1] for r in self._db.execute("PRAGMA table_info(messages)")}
        return "identity" in columns

    @classmethod
    def open_readonly(cls, path: Path) -> StateStore:
        """Open an existing state file for reading only (gimport verify): no schema, no meta, no writes;
        any write raises. SQLite may still create the -wal/-shm side files of a WAL database it reads.
        Raises StateError when the file is missing, empty, not a state file, or from a newer gimport."""
        if not Path(path).exists():
            raise StateError(_("no state file at {path}: nothing has been run yet with this config").format(path=path))
        return cls(path, readonly=True)

    def _open_readonly(self) -> None:
        try:
            empty = (
                self.path.is_file()
                and self.path.stat().st_size == 0
                and not self.path.resolve().is_relative_to("/proc")
            )
        except OSError as exc:
            raise StateError(
                _("cannot read state file {path}: {strerror}").format(path=self.path, strerror=exc.strerror)
            ) from None
        if empty:
            raise StateError(
                _("the state file {path} is empty (0 bytes): it was truncated, or never written").format(
                    path=self.path
                ),
                hint=lost_state_hint(),
            )
        try:
            self._db = sqlite3.connect(
                self.path.resolve().as_uri() + "?mode=ro",
                uri=True,
                check_same_thread=False,
                isolation_level=None,
                timeout=30,
            )
        except sqlite3.Error as exc:
            raise sqlite_error(self.path, exc) from None
        try:
            # registered like a writable store (see release_fd), but never checked: a reader changes nothing
            self._reader_ident: tuple[int, int] | None = file_identity(os.stat(self.path))
            register(self._reader_ident)
        except OSError:
            self._reader_ident = None
        try:
            version = self.get_meta("schema_version")
            with self._reading():
                columns = {r[1] for r in self._db.execute("PRAGMA table_info(messages)")}
        except StateError:
            self.close()
            raise
        if version is not None and int(version) > SCHEMA_VERSION:
            raise StateError(
                _("state file {path} was written by a newer gimport; upgrade gimport").format(path=self.path)
            )
        if "accepted" not in columns:
            # a schema-1 file, read as it is (no migration: verify writes nothing): nothing in it was
            # accepted. A temporary view (in memory, this connection only) shadows the table by name.
            self._db.execute("CREATE TEMP VIEW messages AS SELECT *, NULL AS accepted FROM main.messages")

    def close(self) -> None:
        with self._lock:
            self._db.close()
        for attr in ("_ident", "_reader_ident"):
            ident = getattr(self, attr, None)
            if ident is not None:
                unregister(ident)
                setattr(self, attr, None)

    def _check_file(self) -> None:
        """Stop a run whose state file was deleted, replaced or emptied under it: its writes would go
        nowhere, and the next run would not know what is in Gmail. Raises StateError."""
        if self._ident is None:
            return
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            what = _("was deleted during the run")
        else:
            if file_identity(st) != self._ident:
                what = _("was replaced by another file during the run")
            elif st.st_size == 0:
                what = _("was emptied (truncated to 0 bytes) during the run")
            else:
                return
        raise StateError(
            _("the state file {path} {what}: stopping").format(path=self.path, what=what), hint=lost_state_hint()
        )

    @contextmanager
    def _reading(self) -> Iterator[None]:
        """The connection's lock, with SQLite's errors turned into one-line StateErrors."""
        with self._lock:
            try:
                yield
            except sqlite3.Error as exc:
                raise sqlite_error(self.path, exc) from None

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._reading():
            self._check_file()
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                try:
                    self._db.execute("ROLLBACK")
                except sqlite3.Error:
                    pass  # SQLite rolled back by itself (a full disk, say): the first error is the one to tell
                raise
            self._db.execute("COMMIT")

    # -- meta ---------------------------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        with self._reading():
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
                _(
                    "state file {path} records a migration into {known}, but the token is for {gmail_account}: use"
                    " the matching token, or a fresh [state] path for the new account"
                ).format(path=self.path, known=known, gmail_account=gmail_account)
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
        self,
        account: str,
        folder: str,
        uidvalidity: int,
        statuses: tuple[str, ...] = (IMPORTED, DUPLICATE, SKIPPED),
        *,
        accepted: bool = True,
    ) -> set[int]:
        """UIDs of this folder generation with one of `statuses` (by default: those that need no more work).
        Accepted messages (gimport accept) need no more work either: with `accepted` they are included
        whatever their status, without it they are left out (also when their status is in `statuses`)."""
        marks = ",".join("?" * len(statuses))
        extra = " OR accepted IS NOT NULL" if accepted else ""
        with self._reading():
            rows = self._db.execute(
                f"SELECT uid FROM messages WHERE account=? AND folder=? AND uidvalidity=?"
                f" AND ((status IN ({marks}) AND accepted IS NULL){extra})",
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
        with self._reading():
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
        with self._reading():
            return self._db.execute(
                "SELECT count(*) FROM messages WHERE account=? AND status=?", (account, SENDING)
            ).fetchone()[0]

    # -- reports ------------------------------------------------------------------------------------
    def accounts(self) -> list[str]:
        with self._reading():
            return [r[0] for r in self._db.execute("SELECT DISTINCT account FROM folders ORDER BY account")]

    def folder_counts(self, account: str) -> list[FolderCounts]:
        """Per-folder numbers for the current generation (UIDVALIDITY) of each folder."""
        with self._reading():
            rows = self._db.execute(
                """
                SELECT f.folder, f.found, f.selected, f.labels,
                  count(CASE WHEN m.status='imported' THEN 1 END),
                  count(CASE WHEN m.status='duplicate' THEN 1 END),
                  count(CASE WHEN m.status='failed' AND m.accepted IS NULL THEN 1 END),
                  count(CASE WHEN m.status='skipped' AND m.accepted IS NULL THEN 1 END),
                  count(CASE WHEN m.status='sending' THEN 1 END),
                  count(CASE WHEN m.status='pending' THEN 1 END),
                  coalesce(sum(CASE WHEN m.status='imported' THEN m.size END), 0),
                  coalesce(sum(m.resent), 0),
                  count(CASE WHEN m.status IN ('failed', 'skipped') AND m.accepted IS NOT NULL THEN 1 END)
                FROM folders f LEFT JOIN messages m
                  ON m.account=f.account AND m.folder=f.folder AND m.uidvalidity=f.uidvalidity
                WHERE f.account=? GROUP BY f.folder ORDER BY f.folder
                """,
                (account,),
            ).fetchall()
        return [FolderCounts(*r) for r in rows]

    def recorded_folders(self, account: str) -> dict[str, int | None]:
        """Folder path -> the UIDVALIDITY the last run saw, for every folder recorded for `account`."""
        with self._reading():
            rows = self._db.execute("SELECT folder, uidvalidity FROM folders WHERE account=?", (account,)).fetchall()
        return dict(rows)

    def folder_messages(self, account: str, folder: str, uidvalidity: int) -> dict[int, MessageRecord]:
        """Every message recorded for one generation (UIDVALIDITY) of a folder, by UID."""
        with self._reading():
            rows = self._db.execute(
                "SELECT uid, status, message_id, gmail_id, coalesce(last_error, ''), accepted, labels"
                " FROM messages WHERE account=? AND folder=? AND uidvalidity=?",
                (account, folder, uidvalidity),
            ).fetchall()
        return {r[0]: MessageRecord(*r) for r in rows}

    def problems(self, account: str, limit: int = 50) -> list[tuple[str, int, str, str]]:
        """(folder, uid, status, reason) of messages failed or skipped and not accepted, newest first."""
        with self._reading():
            return self._db.execute(
                "SELECT folder, uid, status, coalesce(last_error, '') FROM messages m WHERE account=?"
                " AND status IN (?, ?) AND accepted IS NULL AND uidvalidity=(SELECT uidvalidity"
                " FROM folders f WHERE f.account=m.account AND f.folder=m.folder) ORDER BY updated DESC LIMIT ?",
                (account, FAILED, SKIPPED, limit),
            ).fetchall()

    # -- the ledger and acceptances -----------------------------------------------------------------
    def ledger(self, account: str, *, statuses: tuple[str, ...] | None = None) -> list[LedgerRow]:
        """Every message recorded for the current generation (UIDVALIDITY) of each folder of `account`,
        ordered by folder and UID; with `statuses`, only those."""
        where, args = "", [account]
        if statuses is not None:
            where = f" AND m.status IN ({','.join('?' * len(statuses))})"
            args += list(statuses)
        with self._reading():
            rows = self._db.execute(
                "SELECT m.folder, m.uidvalidity, m.uid, m.message_id, m.size, m.status, m.gmail_id,"
                f" coalesce(m.labels, ''), coalesce(m.last_error, ''), m.updated, m.accepted"
                " FROM messages m JOIN folders f ON f.account=m.account AND f.folder=m.folder"
                f" AND f.uidvalidity=m.uidvalidity WHERE m.account=?{where} ORDER BY m.folder, m.uid",
                args,
            ).fetchall()
        return [
            LedgerRow(
                MessageKey(account, folder, uv, uid),
                mid,
                size,
                status,
                gid,
                tuple(x for x in labels.split(",") if x),
                reason,
                updated,
                accepted,
            )
            for folder, uv, uid, mid, size, status, gid, labels, reason, updated, accepted in rows
        ]

    def accept(self, keys: Iterable[MessageKey], when: float) -> list[MessageKey]:
        """Record that these failed or skipped messages are accepted as not in Gmail, at `when` (epoch
        seconds). Keys of messages not failed/skipped, or accepted already, are left out of the answer."""
        done = []
        marks = ",".join("?" * len(PROBLEM_STATUSES))
        with self._tx() as db:
            for key in keys:
                cur = db.execute(
                    f"UPDATE messages SET accepted=? WHERE account=? AND folder=? AND uidvalidity=? AND uid=?"
                    f" AND status IN ({marks}) AND accepted IS NULL",
                    (when, key.account, key.folder, key.uidvalidity, key.uid, *PROBLEM_STATUSES),
                )
                if cur.rowcount:
                    done.append(key)
        return done

    def unaccept(self, key: MessageKey) -> bool:
        """Undo an acceptance: the next run tries the message again. False when it was not accepted."""
        with self._tx() as db:
            cur = db.execute(
                "UPDATE messages SET accepted=NULL WHERE account=? AND folder=? AND uidvalidity=? AND uid=?"
                " AND accepted IS NOT NULL",
                (key.account, key.folder, key.uidvalidity, key.uid),
            )
        return bool(cur.rowcount)

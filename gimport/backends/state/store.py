"""The state file: what was found, what was imported, what failed and why.

StateStore opens the file (creating it, and migrating an older schema) and makes every change; the
queries are StateReader's (gimport.backends.state.read). Only the gimport.backends.state.store* modules
import sqlite3.

WAL journal, one short transaction per change, so a process killed at any instant loses nothing that
was committed: a message is marked 'sending' *before* its import call leaves and 'imported' as soon as
Gmail answers. On the next run, messages still marked 'sending' are the ones that were in flight at the
interruption; they are sent again and counted.

Durability: WAL with synchronous=NORMAL survives a killed process (SIGKILL, Ctrl-C, an orderly reboot).
Only an operating-system crash or power loss could drop the last transactions, and then those messages
are simply sent again (Gmail may then hold them twice: it documents no merging of re-imports).
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path

from gimport.backends.state.disk import (  # noqa: F401 - StateLock etc. are part of this module's API
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
)
from gimport.backends.state.read import SCHEMA_VERSION, StateReader
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
    MessageKey,
    MessageRecord,
    StateBackend,
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
    "StateLock",
    "StateStore",
    "lock_path",
]

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
CREATE INDEX IF NOT EXISTS messages_sha ON messages (account, sha256);
"""


class StateStore(StateReader):
    """Thread-safe access to the state file (one connection, one lock): its queries are StateReader's."""

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
            if (
                "identity" not in columns
            ):  # the content check of folders whose UIDVALIDITY changes (they are matched by content)
                db.execute("ALTER TABLE messages ADD COLUMN identity TEXT")
            if "changes" not in columns:  # schema 2: what gimport changed in a message ("date fixed")
                db.execute("ALTER TABLE messages ADD COLUMN changes TEXT")
            if version != SCHEMA_VERSION:
                db.execute(
                    "INSERT OR REPLACE INTO meta(key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
                )

    @classmethod
    def open_readonly(cls, path: Path) -> StateStore:
        """Open an existing state file for reading only (gimport verify): no schema, no meta, no writes;
        any write raises. SQLite may still create the -wal/-shm side files of a WAL database it reads.
        Raises StateError when the file is missing, empty, not a state file, or from a newer gimport."""
        if not Path(path).exists():
            raise StateError(_("no state file at {path}: nothing has been run yet with this config").format(path=path))
        return cls(path, readonly=True)

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
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._reading():
            self._check_file()
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                # SQLite may have rolled back by itself (a full disk, say): the first error is the one to tell
                with suppress(sqlite3.Error):
                    self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # -- meta ---------------------------------------------------------------------------------------
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

    # -- messages -----------------------------------------------------------------------------------
    def add_pending(self, account: str, folder: str, uidvalidity: int, items: Iterable[tuple[int, int]]) -> None:
        """Record (uid, size) pairs found on the source; existing rows are left as they are."""
        now = time.time()
        with self._tx() as db:
            db.executemany(
                "INSERT OR IGNORE INTO messages(account, folder, uidvalidity, uid, size, status, updated)"
                " VALUES (?,?,?,?,?,?,?)",
                [(account, folder, uidvalidity, uid, size, PENDING, now) for uid, size in items],
            )

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
    ) -> int:
        """Mark a message in flight, just before each import call. Returns how many calls for it were left in
        flight before (0 for the first): each may have been stored, so a re-send now may make a copy (a
        message in flight through several killed runs counts each). `attempts` counts the calls since the
        message was last anything but in flight. `identity`: its cheap identity
        (gimport.mail.selection.content_identity), for later UIDVALIDITYs."""
        with self._tx() as db:
            row = db.execute(
                "SELECT status, attempts FROM messages WHERE account=? AND folder=? AND uidvalidity=? AND uid=?",
                (key.account, key.folder, key.uidvalidity, key.uid),
            ).fetchone()
            earlier = int(row[1] or 1) if row and row[0] == SENDING else 0
            db.execute(
                "INSERT INTO messages(account, folder, uidvalidity, uid, message_id, sha256, status, labels,"
                " attempts, resent, updated, identity) VALUES (?,?,?,?,?,?,?,?,1,?,?,?)"
                " ON CONFLICT(account, folder, uidvalidity, uid) DO UPDATE SET message_id=excluded.message_id,"
                " sha256=excluded.sha256, status=excluded.status, labels=excluded.labels, identity=excluded.identity,"
                " attempts=CASE WHEN status=excluded.status THEN attempts+1 ELSE 1 END,"
                " resent=resent+excluded.resent, updated=excluded.updated",
                (
                    key.account,
                    key.folder,
                    key.uidvalidity,
                    key.uid,
                    message_id,
                    sha256,
                    SENDING,
                    labels,
                    earlier,
                    time.time(),
                    identity,
                ),
            )
        return earlier

    def _set(self, key: MessageKey, **cols: object) -> None:
        cols["updated"] = time.time()
        assignments = ", ".join(f"{c}=?" for c in cols)
        with self._tx() as db:
            db.execute(
                f"UPDATE messages SET {assignments} WHERE account=? AND folder=? AND uidvalidity=? AND uid=?",
                (*cols.values(), key.account, key.folder, key.uidvalidity, key.uid),
            )

    def mark_imported(
        self, key: MessageKey, gmail_id: str, size: int, copies: Sequence[MessageKey] = (), *, changes: str = ""
    ) -> None:
        """Record the message imported as `gmail_id`; with it, in the same transaction, its `copies` in other
        places (gimport.engine.copies) as duplicates of it, with its Gmail id, hash, Message-ID, identity and
        the labels it was sent with: a kill at any instant leaves all of them to send, or none. `changes`: what
        gimport changed in the message before sending it ("date fixed"), for the ledger."""
        if not copies:
            return self._set(
                key, status=IMPORTED, gmail_id=gmail_id, size=size, last_error=None, changes=changes or None
            )
        where = "account=? AND folder=? AND uidvalidity=? AND uid=?"
        now = time.time()
        with self._tx() as db:
            db.execute(
                f"UPDATE messages SET status=?, gmail_id=?, size=?, last_error=NULL, changes=?, updated=? WHERE {where}",
                (IMPORTED, gmail_id, size, changes or None, now, key.account, key.folder, key.uidvalidity, key.uid),
            )
            home = db.execute(
                f"SELECT message_id, sha256, labels, identity FROM messages WHERE {where}",
                (key.account, key.folder, key.uidvalidity, key.uid),
            ).fetchone()
            db.executemany(
                "UPDATE messages SET status=?, gmail_id=?, size=?, message_id=?, sha256=?, labels=?, identity=?,"
                f" changes=?, last_error=NULL, updated=? WHERE {where}",
                [
                    (DUPLICATE, gmail_id, size, *home, changes or None, now, c.account, c.folder, c.uidvalidity, c.uid)
                    for c in copies
                ],
            )
        return None

    def mark_duplicate(self, key: MessageKey, gmail_id: str, sha256: str, message_id: str | None) -> None:
        self._set(key, status=DUPLICATE, gmail_id=gmail_id, sha256=sha256, message_id=message_id, last_error=None)

    def mark_failed(self, key: MessageKey, reason: str) -> None:
        self._set(key, status=FAILED, last_error=reason[:500])

    def note_error(self, key: MessageKey, reason: str) -> None:
        """Record why the last attempt failed, leaving the status as it is."""
        self._set(key, last_error=reason[:500])

    def mark_skipped(self, key: MessageKey, reason: str) -> None:
        self._set(key, status=SKIPPED, last_error=reason[:500])

    # -- the ledger and acceptances -----------------------------------------------------------------
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


# mypy proves here that StateStore offers every part of the contract (as rclone's `var _ fs.Fs = &Fs{}`)
_fits_the_contract: type[StateBackend] = StateStore

"""Reading the state file: every query gimport asks of it, and opening one read-only (gimport verify).

StateReader is the reading half of gimport.backends.state.store.StateStore, which opens, creates and migrates
the file and makes every change. Nothing here writes: no schema, no meta, no message rows (the one
exception is a read-only connection's temporary view that lets a schema-1 file be read as it is, held in
memory by that connection only). Only the gimport.backends.state.store* modules import sqlite3.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from gimport.backends.state.disk import file_identity, lost_state_hint, register, sqlite_error, unregister
from gimport.contract import (
    DUPLICATE,
    FAILED,
    IMPORTED,
    SENDING,
    SKIPPED,
    FolderCounts,
    KnownContent,
    LedgerRow,
    MessageKey,
    MessageRecord,
)
from gimport.errors import StateError
from gimport.files import special_file
from gimport.i18n import _

# The schema this gimport writes and reads: a file of a newer one is refused by the reader and the writer.
# 1: the first. 2: messages.accepted (when a failed/skipped message was accepted as not in Gmail).
SCHEMA_VERSION = 2


class StateReader:
    """The queries of a state file, thread-safe (one connection, one lock). Built only as a StateStore,
    which sets the connection up; every query raises StateError when SQLite fails."""

    path: Path
    _db: sqlite3.Connection
    _lock: threading.Lock

    @contextmanager
    def _reading(self) -> Iterator[None]:
        """The connection's lock, with SQLite's errors turned into one-line StateErrors."""
        with self._lock:
            try:
                yield
            except sqlite3.Error as exc:
                raise sqlite_error(self.path, exc) from None

    def _has_column(self, column: str) -> bool:
        columns = {r[1] for r in self._db.execute("PRAGMA table_info(messages)")}
        return column in columns

    def _open_readonly(self) -> None:
        kind = special_file(self.path)
        if kind is not None:  # SQLite would wait on a FIFO for ever, deaf to Ctrl-C
            raise StateError(
                _("cannot use the state file {path}: {why}").format(
                    path=self.path, why=_("it is {kind}, not a regular file").format(kind=kind)
                ),
                hint="",
            )
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

    # -- meta and folders ---------------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        with self._reading():
            row = self._db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else None

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

    def find_imported_copy(self, account: str, folder: str | None, sha256: str) -> str | None:
        """The Gmail id of a message with the same content already imported from this folder (None: from
        any folder of the account), if any."""
        with self._reading():
            if folder is None:
                row = self._db.execute(
                    "SELECT gmail_id FROM messages WHERE account=? AND sha256=? AND status=? LIMIT 1",
                    (account, sha256, IMPORTED),
                ).fetchone()
            else:
                row = self._db.execute(
                    "SELECT gmail_id FROM messages WHERE account=? AND folder=? AND sha256=? AND status=? LIMIT 1",
                    (account, folder, sha256, IMPORTED),
                ).fetchone()
        return row[0] if row else None

    def known_content(self, account: str, folder: str, uidvalidity: int) -> KnownContent:
        """What the folder's other generations (UIDVALIDITY values) have in Gmail (imported, or a copy of a
        message imported from another folder): identities and content hashes."""
        with self._lock:
            identity = "identity" if self._has_column("identity") else "NULL"
            rows = self._db.execute(
                f"SELECT {identity}, sha256, gmail_id FROM messages WHERE account=? AND folder=? AND uidvalidity!=?"
                " AND status IN (?, ?) AND sha256 IS NOT NULL AND gmail_id IS NOT NULL",
                (account, folder, uidvalidity, IMPORTED, DUPLICATE),
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
            return int(
                self._db.execute(
                    "SELECT count(DISTINCT uidvalidity) FROM messages WHERE account=? AND folder=?", (account, folder)
                ).fetchone()[0]
            )

    def count_in_flight(self, account: str) -> int:
        with self._reading():
            return int(
                self._db.execute(
                    "SELECT count(*) FROM messages WHERE account=? AND status=?", (account, SENDING)
                ).fetchone()[0]
            )

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

    def import_times(self, bucket: int = 60) -> list[tuple[int, int, int]]:
        """(bucket start as Unix time, messages imported, their bytes) per `bucket` seconds, every account and
        generation: when each message was imported is the time its row last changed, which nothing changes
        after the import (an accepted message was never imported)."""
        with self._reading():
            rows = self._db.execute(
                "SELECT CAST(updated / ? AS INTEGER) * ?, count(*), coalesce(sum(size), 0) FROM messages"
                " WHERE status=? AND updated IS NOT NULL GROUP BY 1 ORDER BY 1",
                (bucket, bucket, IMPORTED),
            ).fetchall()
        return [(int(t), int(n), int(b)) for t, n, b in rows]

    # -- the ledger ---------------------------------------------------------------------------------
    def ledger(self, account: str, *, statuses: tuple[str, ...] | None = None) -> list[LedgerRow]:
        """Every message recorded for the current generation (UIDVALIDITY) of each folder of `account`,
        ordered by folder and UID; with `statuses`, only those."""
        where, args = "", [account]
        if statuses is not None:
            where = f" AND m.status IN ({','.join('?' * len(statuses))})"
            args += list(statuses)
        with self._reading():
            # a file no run of this version wrote to yet has no changes column (read-only: not added)
            changes = "coalesce(m.changes, '')" if self._has_column("changes") else "''"
            rows = self._db.execute(
                "SELECT m.folder, m.uidvalidity, m.uid, m.message_id, m.size, m.status, m.gmail_id,"
                f" coalesce(m.labels, ''), coalesce(m.last_error, ''), m.updated, m.accepted, {changes}"
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
                changed,
            )
            for folder, uv, uid, mid, size, status, gid, labels, reason, updated, accepted, changed in rows
        ]

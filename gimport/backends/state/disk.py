"""The state file on disk: the errors SQLite and the file system give, said in one line with what to
do; the descriptors that must not drop SQLite's locks; and the run lock (a BSD flock on the state file
itself, held for the whole run). Used by gimport.backends.state.store and gimport.backends.state.read."""

from __future__ import annotations

import errno
import fcntl
import os
import sqlite3
import threading
from pathlib import Path

from gimport.errors import StateError
from gimport.files import PrivateFileError, open_private
from gimport.i18n import _

HOLDER_KEY = "run.holder"  # "<pid> <host> <started>" of the run holding the lock (information, not the lock)

# SQLite's own error codes (the low byte of sqlite_errorcode)
_SQLITE_PERM, _SQLITE_READONLY, _SQLITE_IOERR, _SQLITE_CORRUPT, _SQLITE_FULL = 3, 8, 10, 11, 13
_SQLITE_CANTOPEN, _SQLITE_NOTADB = 14, 26


def _nearly_full(path: Path) -> bool:
    """Whether the disk of `path` is (about) full: SQLite reports some writes that fail for want of space
    (growing the -shm file) as a disk I/O error, without the errno."""
    try:
        st = os.statvfs(path.parent)
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < 1024 * 1024


def lost_state_hint() -> str:
    """What to do when the state file is lost, emptied or damaged: without it gimport does not know what
    is in Gmail, and a new state file makes the next run stop before importing into labels that already
    hold mail (README: "A lost or damaged state file")."""
    return _(
        "put the file back from a backup if you can; without it the next run stops before importing into"
        " labels that already hold mail, so nothing is sent twice by accident (README: 'A lost or damaged"
        " state file'; 'gimport run --new-state' imports anyway)"
    )


def file_identity(st: os.stat_result) -> tuple[int, int]:
    return (st.st_dev, st.st_ino)


def side_files(path: Path) -> list[Path]:
    return [path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")]


def open_error(path: Path, exc: OSError) -> StateError:
    """The StateError for a state file that cannot be created or opened (a read-only folder, a full disk)."""
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return StateError(
            _("cannot write the state file {path}: {why}").format(path=path, why=exc.strerror),
            hint=_not_writable_hint(path),
        )
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return StateError(_("no space left for the state file {path}").format(path=path), hint=_full_hint())
    return StateError(_("cannot create the state file {path}: {why}").format(path=path, why=exc.strerror))


def lock_error(path: Path, exc: OSError) -> StateError:
    """The StateError for a StateLock.acquire that raised `exc`."""
    if isinstance(exc, PrivateFileError):
        return StateError(_("cannot use the state file {path}: {why}").format(path=path, why=exc.strerror), hint="")
    if exc.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
        return StateError(
            _("cannot lock the state file {path}: {why}").format(path=path, why=exc.strerror),
            hint=_("keep the state file on a local disk (network filesystems may not support locks)"),
        )
    return open_error(path, exc)


def _not_writable_hint(path: Path) -> str:
    return _(
        "make its folder writable (SQLite writes {name}-wal and {name}-shm next to it), then run again; do not"
        " move the state file away: it records what is in Gmail already"
    ).format(name=path.name)


def _full_hint() -> str:
    return _(
        "free some space on that disk (or move the state file and set [state] path), then run the same command again: nothing is lost"
    )


def sqlite_error(path: Path, exc: sqlite3.Error) -> StateError:
    """One line for a person, from what SQLite said about the state file (never a traceback)."""
    code = (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF
    if code == _SQLITE_FULL or (code == _SQLITE_IOERR and _nearly_full(path)):
        return StateError(_("no space left for the state file {path}").format(path=path), hint=_full_hint())
    if code in (_SQLITE_CORRUPT, _SQLITE_NOTADB):
        return StateError(
            _("the state file {path} is damaged or not a gimport state file ({why})").format(path=path, why=exc),
            hint=_(
                "keep a copy of it ('sqlite3 FILE .recover' may rescue most of it); without it gimport does not"
                " know what is in Gmail: see README 'A lost or damaged state file' before starting a new one"
            ),
        )
    if code in (_SQLITE_READONLY, _SQLITE_CANTOPEN, _SQLITE_PERM):
        return StateError(
            _("cannot write the state file {path} ({why})").format(path=path, why=exc), hint=_not_writable_hint(path)
        )
    return StateError(_("cannot use the state file {path}: {why}").format(path=path, why=exc), hint="")


# Descriptors gimport opens on a state file itself (the lock, a lock probe). Closing ANY descriptor of a file
# drops every POSIX lock the process holds on it, SQLite's included; so, as SQLite does with its own, the
# close waits while a StateStore of this process has the file open.
_registry_lock = threading.Lock()
_open_stores: dict[tuple[int, int], int] = {}
_deferred: dict[tuple[int, int], list[int]] = {}


def register(ident: tuple[int, int]) -> None:
    with _registry_lock:
        _open_stores[ident] = _open_stores.get(ident, 0) + 1


def unregister(ident: tuple[int, int]) -> None:
    with _registry_lock:
        left = _open_stores.get(ident, 1) - 1
        if left > 0:
            _open_stores[ident] = left
            return
        _open_stores.pop(ident, None)
        fds = _deferred.pop(ident, [])
    for fd in fds:
        os.close(fd)


def release_fd(fd: int) -> None:
    """Close `fd` (a descriptor of a state file) now, or when the last StateStore on that file closes."""
    ident = file_identity(os.fstat(fd))
    with _registry_lock:
        if _open_stores.get(ident):
            _deferred.setdefault(ident, []).append(fd)
            return
    os.close(fd)


class StateLock:
    """The run lock: a BSD flock, exclusive, on the state file itself, held for the whole run. Two processes
    never import the same mailbox at once (two `gimport run` in two screens, an overlapping admin shard).

    Why this shape: a separate lock file can be deleted while a run holds it (it looks like a stale pid
    file), and the next run would start beside the first; the state file cannot be deleted without
    losing what it protects, and a run notices when it is (StateStore). A BSD flock, not a POSIX fcntl
    lock: SQLite uses fcntl locks on the same file, and closing any descriptor of it would drop those.
    flock does not keep SQLite's readers out (WAL), so `gimport status` reads the state during a run. The
    lock goes with the process, killed or not. Who holds it (pid, host, since) is in the state's meta
    table, for the message. flock is unreliable on some network filesystems (NFS, SMB): keep state files
    on a local disk; admin mode does not depend on it (each user's state file belongs to one shard).

    `path` is the state file (gimport.files.lock_path of it)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._fd: int | None = None

    def acquire(self) -> bool:
        """True when this process now holds the lock; False when another one does. Creates the state file
        (empty, 0600, folders 0700) when missing. Raises OSError when the file cannot be opened or locked
        (PrivateFileError: another user's file, a symlink)."""
        fd = open_private(self.path, os.O_RDWR | os.O_CREAT)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            release_fd(fd)
            return False
        except BaseException:
            release_fd(fd)
            raise
        self._fd = fd
        return True

    def holder(self) -> str:
        """ "pid N on HOST (since T)" of the run that holds the lock, as far as the state file tells."""
        try:
            db = sqlite3.connect(self.path.resolve().as_uri() + "?mode=ro", uri=True, timeout=5)
            try:
                row = db.execute("SELECT value FROM meta WHERE key=?", (HOLDER_KEY,)).fetchone()
            finally:
                db.close()
            pid, host, since = row[0].split()[:3]
            return _("pid {pid} on {host} (since {since})").format(pid=pid, host=host, since=since)
        except (sqlite3.Error, OSError, TypeError, ValueError):
            return _("another process")

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            release_fd(self._fd)
            self._fd = None

    @staticmethod
    def held(path: Path) -> bool:
        """Whether a process (another one, or another StateLock of this one) holds the lock now."""
        try:
            # O_NONBLOCK: a FIFO at the path must not hold the probe
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NOCTTY | os.O_NONBLOCK)
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            fcntl.flock(fd, fcntl.LOCK_UN)  # the close may wait (see release_fd): the probe must not
        except OSError:
            return True
        finally:
            release_fd(fd)
        return False

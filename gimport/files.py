"""Private files and folders on a shared machine: the state file, the log file, the folders holding them.

On a shared server (a 1777 /tmp, a group-writable project folder) another user can create a file where
gimport is about to create one, world-writable or as a symbolic link to something else. gimport then
refuses it rather than writing folder names and Message-IDs into a file someone else owns. Files it
creates are 0600 and folders 0700, whatever the umask. Pure OS calls; raises OSError or PrivateFileError.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from gimport.i18n import _


class PrivateFileError(OSError):
    """The path exists but cannot be used privately (another owner, a symlink, not a regular file).
    `strerror` is a sentence for a person."""


def make_private_dirs(folder: Path) -> None:
    """Create `folder` and its missing parents with mode 0700 (umask or not). Existing folders are left
    as they are. Raises OSError."""
    folder = Path(folder)
    missing = []
    while not folder.exists():
        missing.append(folder)
        if folder.parent == folder:
            break
        folder = folder.parent
    for path in reversed(missing):
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            continue  # created meanwhile by someone else: checked by whoever opens a file in it
        os.chmod(path, 0o700)  # mkdir's mode is masked by the umask (a umask of 0777 leaves 0000)


def open_private(path: Path, flags: int) -> int:
    """Open (creating when `flags` has O_CREAT) a regular file of ours with mode 0600 and return the
    descriptor. Never follows a symbolic link at `path`; refuses a file owned by another user; a file of
    ours readable by others is made 0600. Raises OSError (PrivateFileError for those refusals)."""
    path = Path(path)
    if flags & os.O_CREAT:
        make_private_dirs(path.parent)
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NOCTTY, 0o600)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise PrivateFileError(exc.errno, _("it is a symbolic link: gimport does not follow links there")) from None
        raise
    try:
        check_private(path, os.fstat(fd), fd)
    except BaseException:
        os.close(fd)
        raise
    return fd


def check_private(path: Path, st: os.stat_result, fd: int | None = None) -> None:
    """Refuse (PrivateFileError) a file not owned by this user or not a regular file; make one of ours
    0600 when others may read it (through `fd` when given, else by path, never following a link)."""
    if stat.S_ISLNK(st.st_mode):
        raise PrivateFileError(errno.ELOOP, _("it is a symbolic link: gimport does not follow links there"))
    if not stat.S_ISREG(st.st_mode):
        raise PrivateFileError(errno.EINVAL, _("it is not a regular file"))
    if st.st_uid != os.geteuid():
        raise PrivateFileError(
            errno.EPERM,
            _("it belongs to another user (uid {uid}): remove it, or choose another path").format(uid=st.st_uid),
        )
    if st.st_mode & 0o077:
        if fd is not None:
            os.fchmod(fd, 0o600)
        else:
            os.chmod(path, 0o600, follow_symlinks=False)


def check_existing_private(path: Path) -> None:
    """check_private for a file that may or may not exist (SQLite's -wal and -shm side files, which
    SQLite itself opens). Raises PrivateFileError; a missing file is fine."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    check_private(path, st)

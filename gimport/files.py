"""Private files and folders on a shared machine: the files gimport writes (the state file, the log file,
the folders holding them) and the secret files it reads (passwords, the OAuth token, a service-account key).

On a shared server (a 1777 /tmp, a group-writable project folder) another user can create a file where
gimport is about to create one, world-writable or as a symbolic link to something else. gimport then
refuses it rather than writing folder names and Message-IDs into a file someone else owns. Files it
creates are 0600 and folders 0700, whatever the umask; those are pure OS calls raising OSError or
PrivateFileError. A secret file others can read is refused as ssh refuses a loose key: check_secret and
read_secret raise ConfigError (exit 2), since the fix is the user's.

Anything that is not a regular file (a folder, a FIFO, a socket, a device) is refused before it is opened:
opening a FIFO waits for a writer that never comes, and no fix-it text ever suggests changing the mode of a
folder (`chmod 600 /tmp` would break the machine).
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from gimport.errors import ConfigError
from gimport.i18n import _


class PrivateFileError(OSError):
    """The path exists but cannot be used privately (another owner, a symlink, not a regular file).
    `strerror` is a sentence for a person."""


def kind_of(st: os.stat_result) -> str:
    """What a file that is not a regular file is, for a person: "a folder", "a FIFO (named pipe)", ..."""
    mode = st.st_mode
    if stat.S_ISDIR(mode):
        return _("a folder")
    if stat.S_ISFIFO(mode):
        return _("a FIFO (named pipe)")
    if stat.S_ISSOCK(mode):
        return _("a socket")
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return _("a device")
    return _("not a regular file")


def special_file(path: Path, *, follow: bool = True) -> str | None:
    """What `path` is when it exists and is not a regular file (see kind_of), else None. Never opens it;
    `follow`: look through a symbolic link (secrets may be links: Kubernetes mounts them so)."""
    try:
        st = os.stat(path) if follow else os.lstat(path)
    except OSError:
        return None
    if stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode):
        return None
    return kind_of(st)


def _open_nonblocking(path: Path | str, flags: int, mode: int = 0o600) -> int:
    """os.open that cannot wait for a FIFO's other end (swapped in after a check); the descriptor is
    blocking again once open."""
    fd = os.open(path, flags | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY, mode)
    os.set_blocking(fd, True)
    return fd


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
    kind = special_file(path, follow=False)
    if kind is not None:
        raise PrivateFileError(errno.EINVAL, _("it is {kind}, not a regular file").format(kind=kind))
    try:
        fd = _open_nonblocking(path, flags | os.O_NOFOLLOW)
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
        raise PrivateFileError(errno.EINVAL, _("it is {kind}, not a regular file").format(kind=kind_of(st)))
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


def refuse_special(path: Path, what: str) -> None:
    """ConfigError (exit 2) when `path` (a file gimport is to read, named `what` for the reader) exists and is
    not a regular file: a folder, a FIFO, a socket, a device. Never opens it. A missing file is left to the
    reader to report."""
    kind = special_file(path)
    if kind is not None:
        raise ConfigError(
            _("{what} {path} is {kind}, not a file").format(what=what, path=path, kind=kind),
            hint=_("give the path of the file that holds it"),
        )


def check_secret(path: Path, what: str, *, group_ok: bool = False) -> None:
    """Refuse (ConfigError, exit 2) a secret file that others can read, as ssh does for keys: on a shared
    server it hands the password or the mailbox to everybody. Group-readable is refused too unless
    `group_ok` (admin mode: the Kubernetes Job mounts secrets 0440 with an fsGroup). A missing file is
    left to the reader to report. Anything but a regular file is refused (never a chmod hint for a folder)."""
    refuse_special(path, what)
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return
    loose = mode & (0o004 if group_ok else 0o044)
    if loose:
        text = (
            _("{what} {path} can be read by others (mode {mode:03o})")
            if mode & 0o004
            else _("{what} {path} can be read by its group (mode {mode:03o})")
        )
        raise ConfigError(
            text.format(what=what, path=path, mode=mode & 0o777),
            hint=_("make it private: chmod 600 {path}").format(path=path),
        )


def read_secret(path: Path, what: str, *, group_ok: bool = False) -> str:
    """A password from a file (a trailing newline is not part of it). ConfigError naming `what`, also when
    the file is readable by others (or by its group, unless `group_ok`: see check_secret)."""
    check_secret(path, what, group_ok=group_ok)
    try:
        with open(_open_nonblocking(path, os.O_RDONLY), "rb") as fh:
            if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):  # swapped after the check
                raise OSError(errno.EINVAL, _("not a regular file"))
            text = fh.read().decode("utf-8")
    except OSError as exc:
        raise ConfigError(_("{what} {path}: {strerror}").format(what=what, path=path, strerror=exc.strerror)) from None
    except UnicodeDecodeError:
        raise ConfigError(_("{what} {path} is not UTF-8 text").format(what=what, path=path)) from None
    secret = text.rstrip("\r\n")
    if not secret:
        raise ConfigError(_("{what} {path} is empty").format(what=what, path=path))
    if any(c in secret for c in "\r\n\0"):
        # a line break would end the IMAP command early and let the rest reach the server as a command
        raise ConfigError(
            _("{what} {path} holds a line break or NUL inside the password").format(what=what, path=path),
            hint=_("the file must hold the password alone, on one line"),
        )
    return secret


def lock_path(state_path: Path) -> Path:
    """The file whose flock is the run lock: the state file itself (gimport.backends.state.store.StateLock).
    A separate lock file could be deleted while a run holds it."""
    return Path(state_path)

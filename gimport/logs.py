"""Logging, for both CLIs: the private log file, --verbose on the terminal, the loggers that must stay quiet,
and admin mode's split into one run log plus one log per user.

Both `gimport run` (logging_to) and `gimport admin …` (admin_logging) go through `_session`, so --verbose
and the muting of the secret-bearing loggers are the same in both: these libraries log tokens, auth codes
and request bodies at DEBUG/INFO, and nothing of theirs below WARNING may reach a terminal or a log file.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from gimport.errors import ConfigError
from gimport.i18n import _

# the libraries that log secrets (tokens, auth codes, request bodies) below WARNING
SECRET_LOGGERS = ("oauthlib", "requests_oauthlib", "google.auth", "google_auth_oauthlib", "urllib3", "httplib2")

log = logging.getLogger("gimport.admin")


class PrivateLogHandler(logging.StreamHandler[TextIO]):
    """Appends to an already opened, private log file. When a write fails (a full disk), it says so once
    on stderr and drops the lines after it, instead of logging's traceback for every line; the run goes on
    (the state file, not the log, records what was imported)."""

    def __init__(self, path: Path, stream: TextIO) -> None:
        super().__init__(stream)
        self.path = Path(path)
        self.failed = False

    def emit(self, record: logging.LogRecord) -> None:
        if not self.failed:
            super().emit(record)

    def handleError(self, record: logging.LogRecord) -> None:  # logging's name
        if self.failed:
            return
        self.failed = True
        exc = sys.exc_info()[1]
        why = getattr(exc, "strerror", None) or str(exc)
        with contextlib.suppress(OSError, ValueError):
            sys.stderr.write(
                _("gimport: warning: cannot write the log file {path} ({why}): going on without it\n").format(
                    path=self.path, why=why
                )
            )

    def close(self) -> None:
        self.acquire()
        try:
            with contextlib.suppress(OSError, ValueError):  # reported already, or a closed stream
                self.flush()
            # typeshed types the stream without None; logging's own FileHandler.close sets it to None too
            stream, self.stream = self.stream, None  # type: ignore[assignment]
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        finally:
            self.release()
            logging.Handler.close(self)

    def flush(self) -> None:
        if self.stream is not None and not self.failed:
            try:
                super().flush()
            except OSError:
                self.handleError(None)  # type: ignore[arg-type]


def private_log_handler(path: Path) -> logging.Handler:
    """A handler appending to `path`, created with mode 0600 (folders 0700: one line per message outcome;
    nobody else's business on a shared server); never through a symlink, never another user's file. The
    first line is written at once, so a log that cannot be written (/dev/full, a read-only folder) is a
    ConfigError before anything starts."""
    from gimport.files import open_private

    try:
        if str(path).startswith("/dev/"):  # /dev/null, /dev/stderr: chosen as they are, not a file of ours
            # O_NONBLOCK: a FIFO nobody reads is an error (ENXIO), not a wait for ever
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC | os.O_NOCTTY | os.O_NONBLOCK)
            os.set_blocking(fd, True)
        else:
            fd = open_private(Path(path), os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        stream = open(fd, "a", encoding="utf-8", errors="backslashreplace")  # noqa: SIM115 - the handler owns it
        try:
            stream.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} INFO gimport: log opened (pid {os.getpid()})\n")
            stream.flush()
        except OSError:
            with contextlib.suppress(OSError):
                stream.close()
            raise
    except OSError as exc:
        raise ConfigError(
            _("cannot write the log file {path}: {strerror} (set [state] log_file)").format(
                path=path, strerror=exc.strerror
            )
        ) from None
    return PrivateLogHandler(path, stream)


@contextlib.contextmanager
def _session(handlers: list[logging.Handler], verbose: bool) -> Iterator[None]:
    """Attach `handlers` to the "gimport" logger (INFO), mute SECRET_LOGGERS below WARNING and, with
    `verbose`, show everything of gimport (DEBUG) and INFO of the rest on stderr. Everything is put back
    as it was afterwards (tests run many sessions in one process)."""
    logger = logging.getLogger("gimport")
    root = logging.getLogger()
    saved = {"": root.level, "gimport": logger.level}
    saved.update({name: logging.getLogger(name).level for name in SECRET_LOGGERS})
    for handler in handlers:
        logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)
    for name in SECRET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    console = None
    if verbose:
        console = logging.StreamHandler(sys.stderr)
        console.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        root.addHandler(console)
        root.setLevel(logging.INFO)
    try:
        yield
    finally:
        for handler in handlers:
            logger.removeHandler(handler)
            handler.close()
        if console is not None:
            root.removeHandler(console)
        for name, level in saved.items():
            logging.getLogger(name or None).setLevel(level)


@contextlib.contextmanager
def logging_to(path: Path, verbose: bool) -> Iterator[None]:
    """Single-user: the log file (mode 0600, INFO: one line per message outcome) and, with --verbose, the
    terminal. ConfigError when the file cannot be written."""
    handler = private_log_handler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    with _session([handler], verbose):
        yield


class UserLogRouter(logging.Handler):
    """Sends each log record of a user's threads (named "<address>:...") to that user's own log file
    while the user runs; other records are left to the other handlers."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self._files: dict[str, logging.Handler] = {}
        self._formatter = logging.Formatter("%(asctime)s %(levelname)s %(message)s")

    def open(self, key: str, path: Path) -> None:
        """Route the records of threads named "<key>:..." to `path` (created 0600) until close(key)."""
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

    def close(self, key: str | None = None) -> None:
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

    def handle(self, record: logging.LogRecord) -> bool:
        """As logging.Handler.handle, without holding the router's lock while the user's file is written: each
        user's handler has its own, and one lock for all would make a hundred users write their lines in turn."""
        if not self.filter(record):
            return False
        self.emit(record)
        return True

    def emit(self, record: logging.LogRecord) -> None:
        key = (record.threadName or "").partition(":")[0]
        handler = self._files.get(key)
        if handler is not None:
            handler.handle(record)


class _RunLogFilter(logging.Filter):
    """The run's own log keeps admin lines and every warning/error; message-level lines go to user logs."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.name.startswith("gimport.admin") or record.levelno >= logging.WARNING


@contextlib.contextmanager
def admin_logging(log_file: Path, verbose: bool = False) -> Iterator[UserLogRouter]:
    """Admin mode: the run's log file ([state] log_file: admin lines, warnings and errors of every user,
    each line naming the user's thread) plus one log file per user next to their state file (the router:
    open/close a user's file around their migration); --verbose as in single-user mode. ConfigError when
    the run's log cannot be written."""
    run_handler = private_log_handler(log_file)
    run_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s [%(threadName)s] %(message)s"))
    run_handler.addFilter(_RunLogFilter())
    router = UserLogRouter()
    with _session([run_handler, router], verbose):
        yield router

"""Talking to the person at the terminal: confirmations, secrets from files, Ctrl-C handling, the exit
code of a run. Shared by the single-user and the admin commands."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType
from typing import TYPE_CHECKING

from gimport.errors import EXIT_INTERRUPTED, EXIT_OK, EXIT_SOME_FAILED, ConfigError
from gimport.i18n import _

if TYPE_CHECKING:  # only named in annotations: a command loads them when it needs them
    from gimport.admin.summary import AdminSummary
    from gimport.engine.results import RunSummary


def confirm(question: str, yes: bool) -> bool:
    """True with --yes; else ask on the terminal. No terminal and no --yes: ConfigError (exit 2)."""
    if yes:
        return True
    if not sys.stdin.isatty():
        raise ConfigError(
            _("nothing was changed: no terminal to confirm on; pass --yes to go ahead (--dry-run only looks)")
        )
    try:
        return input(f"{question} [y/N] ").strip().lower() in ("y", "yes")
    except EOFError:
        return False


REPEAT_SIGTERM_GRACE = 3.0  # seconds a stop may still take after a second SIGTERM


class StopOnSignal:
    """While active, the first SIGINT (Ctrl-C) or SIGTERM calls `stop`: calls in flight finish and are
    recorded, nothing is sent twice. A second SIGINT — a person pressing Ctrl-C again — quits at once, calling
    `before_exit` and then os._exit(130); what was in flight is then sent again by the next run (and counted).
    A second SIGTERM gives the stop `grace` seconds more, then quits the same way: orchestrators send SIGTERM
    more than once (Slurm signals every process of a job step and may repeat a kill request; a wrapper script
    may forward one too), and a stop that ends in time is still the clean one; a stop held up by calls that
    hang (a Gmail that does not answer) ends all the same. The state stays consistent either way: every change
    is its own committed transaction, and a message in flight stays recorded as possibly sent.

    Once stopping, SIGTERM stays ignored after the block too: the process is on its way out (report, exit
    code), and a late SIGTERM must not kill it half-way. Installs handlers only in the main thread
    (signal.signal's rule); elsewhere it does nothing."""

    def __init__(
        self,
        stop: Callable[[], None],
        say: Callable[[str], None],
        before_exit: Callable[[], None] = lambda: None,
        *,
        grace: float = REPEAT_SIGTERM_GRACE,
    ) -> None:
        self._stop, self._say, self._before_exit, self._grace = stop, say, before_exit, grace
        self._stopping = False
        self._interrupts = 0  # SIGINTs received
        self._repeat_noted = False
        self._old: dict[int, signal._HANDLER] = {}

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if signum == signal.SIGINT:
            self._interrupts += 1
            if self._interrupts > 1:
                self._quit()
        if self._stopping:
            if signum != signal.SIGINT and not self._repeat_noted:
                self._repeat_noted = True
                logging.getLogger("gimport").info(
                    "SIGTERM again: stopping cleanly if that takes under %g s, else at once", self._grace
                )
                quit_later = threading.Timer(self._grace, self._quit)
                quit_later.daemon = True  # a stop that ends in time exits as it would have
                quit_later.start()
            elif signum == signal.SIGINT:
                self._say(_("already stopping: press Ctrl-C again to quit at once"))
            return
        self._stopping = True
        if signum == signal.SIGINT:
            self._say(_("stopping: letting calls in flight finish (press Ctrl-C again to quit at once)"))
        else:
            self._say(_("stopping (SIGTERM): letting calls in flight finish"))
        self._stop()

    def _quit(self) -> None:
        self._before_exit()
        print(_("gimport: stopped at once; messages in flight will be sent again next time"), file=sys.stderr)
        log = logging.getLogger("gimport")
        log.warning("stopped at once; messages in flight are sent again next time")
        logging.shutdown()
        os._exit(EXIT_INTERRUPTED)

    def __enter__(self) -> StopOnSignal:
        if threading.current_thread() is threading.main_thread():
            self._old = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        return self

    def __exit__(self, *exc: object) -> None:
        for s, h in self._old.items():
            if s == signal.SIGTERM and self._stopping and h in (signal.SIG_DFL, None):
                # stopping already: a repeated SIGTERM that comes after the stop finished (the summary is
                # being printed) is still the same stop, not a kill
                signal.signal(s, signal.SIG_IGN)
            else:
                signal.signal(s, h)


def run_exit_code(summary: RunSummary | AdminSummary) -> int:
    """The exit code of a finished run (single-user or admin summary: interrupted, fatal, complete);
    prints the error that stopped it, if any."""
    if summary.interrupted:
        return EXIT_INTERRUPTED
    if summary.fatal is not None:
        from gimport.render.progress import safe

        print(safe(f"gimport: {summary.fatal}"), file=sys.stderr)
        return summary.fatal.exit_code
    return EXIT_OK if summary.complete else EXIT_SOME_FAILED

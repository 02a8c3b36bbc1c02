"""StopOnSignal: repeated SIGTERMs (an orchestrator) are one clean stop when it ends within the grace, else it
ends then; a second Ctrl-C quits at once.

Real signals, sent by a child process to itself while the handler is installed (the quit-at-once path ends
the process, and a regression must not end pytest)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from gimport.cli.terminal import StopOnSignal


def test_handlers_are_restored():
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    with StopOnSignal(lambda: None, lambda _m: None):
        assert signal.getsignal(signal.SIGTERM) != before[0]
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before


CHILD = textwrap.dedent(
    """
    import os, signal, sys, threading
    from gimport.cli.terminal import StopOnSignal
    stops = []
    with StopOnSignal(lambda: stops.append(1), lambda m: print("say:", m, flush=True),
                      before_exit=lambda: print("before_exit", flush=True), grace=0.5):
        for name in sys.argv[1:]:
            os.kill(os.getpid(), getattr(signal, name))
            signal.pthread_sigmask(signal.SIG_BLOCK, [])
        if os.environ.get("HANG"):  # a stop held up by calls that never answer
            threading.Event().wait(60)
    if os.environ.get("LATE"):  # a SIGTERM after the block, while the process writes its report
        os.kill(os.getpid(), signal.SIGTERM)
        signal.pthread_sigmask(signal.SIG_BLOCK, [])
    print("stops", len(stops), flush=True)
    """
)


def _child(*signals: str, late: bool = False, hang: bool = False) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", CHILD, *signals],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[2],
        env={**os.environ, "LATE": "1" if late else "", "HANG": "1" if hang else ""},
    )


def test_second_ctrl_c_quits_at_once():
    done = _child("SIGINT", "SIGINT")
    assert done.returncode == 130
    assert "before_exit" in done.stdout
    assert "stops" not in done.stdout
    assert "sent again next time" in done.stderr


def test_repeated_sigterm_is_one_clean_stop():
    done = _child("SIGTERM", "SIGTERM", "SIGTERM", "SIGTERM", "SIGTERM")
    assert done.returncode == 0, done.stderr
    assert "stops 1" in done.stdout
    assert "before_exit" not in done.stdout
    assert done.stdout.count("say:") == 1


def test_second_sigterm_ends_a_stop_that_hangs_after_the_grace():
    start = time.monotonic()
    done = _child("SIGTERM", "SIGTERM", hang=True)
    assert done.returncode == 130, done.stderr
    assert time.monotonic() - start < 30  # the child would hang 60 s
    assert "before_exit" in done.stdout
    assert "stops" not in done.stdout
    assert "sent again next time" in done.stderr


def test_sigint_after_sigterm_is_still_the_same_stop():
    # a person's first Ctrl-C during an orchestrator's stop: told how to quit at once, not quitting
    done = _child("SIGTERM", "SIGINT", "SIGTERM")
    assert done.returncode == 0, done.stderr
    assert "stops 1" in done.stdout
    assert done.stdout.count("say:") == 2
    assert "Ctrl-C again" in done.stdout.splitlines()[1]


def test_sigint_then_sigterm_does_not_quit():
    done = _child("SIGINT", "SIGTERM", "SIGTERM")
    assert done.returncode == 0, done.stderr
    assert "stops 1" in done.stdout
    assert "before_exit" not in done.stdout


def test_a_late_sigterm_after_the_stop_does_not_kill_the_process():
    done = _child("SIGTERM", late=True)
    assert done.returncode == 0, done.stderr
    assert "stops 1" in done.stdout


def test_without_a_stop_the_old_handlers_come_back():
    done = _child(late=True)  # no stop was requested: SIGTERM has its default meaning again
    assert done.returncode == -15

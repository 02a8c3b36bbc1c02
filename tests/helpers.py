"""Helpers for the integration tests: run the CLI in-process or as a process, poll with a deadline."""

from __future__ import annotations

import subprocess
import sys
import time

from gimport.cli import main


def run(ws, *args, capsys=None):
    """`gimport --config <ws> ARGS` in-process (default: run). Returns (exit code, captured output)."""
    rc = main(["--config", str(ws.config), *(args or ["run"])])
    out = capsys.readouterr() if capsys else None
    if out is not None:  # shown by pytest when the test fails
        sys.stdout.write(out.out)
        sys.stderr.write(out.err)
    return rc, out


def run_process(ws, *args, **kw):
    """The same as a separate process (for kill and signal tests), output piped."""
    return subprocess.Popen(
        [sys.executable, "-m", "gimport", "--config", str(ws.config), *(args or ["run"])],
        env=ws.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        **kw,
    )


def wait_for(predicate, timeout=30.0):
    """Poll `predicate` until true; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)  # polling a condition, not waiting for time to pass
    raise AssertionError("condition not reached in time")


def record_pacers(monkeypatch) -> list:
    """Every RatePacer the code builds from now on (the wiring makes one per account), to read afterwards
    what it saw: how often Gmail asked it to slow down, its concurrency limit."""
    import gimport.pacing.rate

    pacers: list = []

    class Recorded(gimport.pacing.rate.RatePacer):
        def __init__(self, *a, **kw):
            super().__init__(*a, **kw)
            pacers.append(self)

    monkeypatch.setattr(gimport.pacing.rate, "RatePacer", Recorded)
    return pacers


def empty_gmail(emulator, email: str) -> None:
    """The emulator's Gmail account as new: no messages, no user labels (nor the marker an earlier run left:
    gimport.engine.lost_state), for a test that starts again with a new state file."""
    user = emulator.user(email)
    user.messages.clear()
    for lid in [i for i, lbl in user.labels.items() if lbl.get("type") == "user"]:
        del user.labels[lid]

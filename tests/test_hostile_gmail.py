"""gimport against a Gmail that misbehaves: calls that hang while their slots refuse the retries ("too many
concurrent requests"), signals while that goes on. The Gmail API emulator (tests/rig/gmail_emulator.py)
through the real client library, a local Maildir as the source, the real CLI as a process."""

from __future__ import annotations

import re
import signal
import subprocess
import threading
import time

from gimport.engine.lost_state import MARKER_PREFIX
from tests.helpers import run_process, wait_for
from tests.rig.gmail_emulator import Fault
from tests.rig.localmail import MaildirMessage, message, write_maildir
from tests.rig.workspace import EMAIL, make_local_workspace

N = 30


def _workspace(tmp_path, emulator, *, give_up_after: int | None = None):
    root = tmp_path / "Maildir"
    write_maildir(root, {"INBOX": [MaildirMessage(message(i)) for i in range(N)]})
    ws = make_local_workspace(tmp_path / "ws", kind="maildir", path=root, emulator=emulator, workers=6)
    if give_up_after is not None:
        text = ws.config.read_text().replace("[gmail]\n", f"[gmail]\ngive_up_after = {give_up_after}\n", 1)
        ws.config.write_text(text)
    return ws


def _stderr_lines(proc: subprocess.Popen) -> list[bytes]:
    """stderr as it comes (a thread reads it), to see when a signal has been taken."""
    lines: list[bytes] = []
    threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True).start()
    return lines


def _finish(proc: subprocess.Popen, timeout: float) -> tuple[int | None, str]:
    """The exit code and stderr, or None when the process was still running after `timeout` (then killed)."""
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
        return None, err.decode()
    return proc.returncode, err.decode()


def _hang_after(emulator, answered: int) -> Fault:
    """Imports hang (each holding one of the account's 3 slots) once `answered` have been answered; the retries
    are then refused with "Too many concurrent requests"."""
    emulator.max_concurrent = 3
    return emulator.faults.add(Fault("hang", method="import", count=None, skip=answered))


def _hung_at(hang: Fault) -> float:
    wait_for(lambda: hang.fired >= 1, timeout=60)
    return time.monotonic()


def test_hung_gmail_ends_the_run_within_give_up_after_whatever_the_refusals_say(tmp_path, emulator):
    """Calls hang, the retries are answered "Too many concurrent requests": those refusals are no answer, so the run
    ends with exit 5 within give_up_after (4 s) of the last real answer, not retrying for ever; a later run, once
    Gmail answers again, finishes with every message there and the hung ones counted as possibly sent twice."""
    ws = _workspace(tmp_path, emulator, give_up_after=4)
    hang = _hang_after(emulator, 10)
    proc = run_process(ws)
    hung_at = _hung_at(hang)
    rc, err = _finish(proc, timeout=40)
    ended = time.monotonic()
    assert rc == 5, f"exit {rc} after {ended - hung_at:.0f} s: {err}"
    assert ended - hung_at < 4 + 2, f"stopped {ended - hung_at:.1f} s after Gmail began to hang"
    assert "Traceback" not in err
    assert emulator.stats.concurrency_limited > 0  # the refusals did happen
    hang.release()
    emulator.faults.clear()
    proc = run_process(ws)
    rc, err = _finish(proc, timeout=60)
    assert rc == 0, err
    stored = emulator.user(EMAIL).messages
    assert len({m.raw for m in stored}) == N


def test_second_sigterm_ends_a_hung_run_at_once(tmp_path, emulator):
    """With calls hanging (give_up_after at its default of 600 s), one SIGTERM asks for a clean stop; a second one
    ends the run within seconds, exit 130, the state consistent: the next run sends what is missing, and counts
    as re-sent every message that may now be in Gmail twice."""
    ws = _workspace(tmp_path, emulator)
    hang = _hang_after(emulator, 10)
    proc = run_process(ws)
    lines = _stderr_lines(proc)
    _hung_at(hang)
    wait_for(lambda: emulator.stats.concurrency_limited > 0, timeout=30)
    proc.send_signal(signal.SIGTERM)
    wait_for(lambda: any(b"stopping" in line for line in lines), timeout=30)
    proc.send_signal(signal.SIGTERM)
    second = time.monotonic()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    took = time.monotonic() - second
    err = b"".join(lines).decode()
    assert proc.returncode == 130, f"exit {proc.returncode} after {took:.0f} s: {err}"
    assert took < 5, err
    assert "Traceback" not in err
    hang.release()
    emulator.faults.clear()
    proc = run_process(ws)
    out, err2 = proc.communicate(timeout=60)
    assert proc.returncode == 0, err2.decode()
    stored = emulator.user(EMAIL).messages
    assert len({m.raw for m in stored}) == N
    # released, the hung calls were stored after all: each extra copy is counted as a re-send
    assert len(stored) - N <= _resent(out.decode()), out.decode()


def _resent(summary: str) -> int:
    found = re.search(r"(\d+) import call\(s\) were in flight when an earlier run stopped", summary)
    return int(found.group(1)) if found else 0


def test_no_import_leaves_before_the_marker_label_is_made(tmp_path, emulator):
    """The marker label (what tells a lost state file from a first run) is made while the first messages are read;
    when Gmail hangs on making it, not one import is sent: the run gives up (exit 5) with nothing in Gmail and
    nothing recorded as possibly sent, and the next run, once Gmail answers, imports every message once."""
    ws = _workspace(tmp_path, emulator, give_up_after=3)
    hang = emulator.faults.add(Fault("hang", method="labels.create", count=None, match=MARKER_PREFIX))
    proc = run_process(ws)
    rc, err = _finish(proc, timeout=40)
    assert hang.fired >= 1
    assert rc == 5, err
    assert emulator.stats.requests.get("messages.import", 0) == 0
    assert emulator.user(EMAIL).messages == []
    assert "Traceback" not in err
    hang.release()
    emulator.faults.clear()
    rc, err = _finish(run_process(ws), timeout=60)
    assert rc == 0, err
    stored = emulator.user(EMAIL).messages
    assert len(stored) == len({m.raw for m in stored}) == N
    assert "twice" not in err  # nothing was in flight at the first run

"""Every possible re-send is counted: after ambiguous Gmail errors (a 5xx or a reset after the message was
stored) and kills in the middle of calls, run after run, the copies Gmail holds beyond one per message are
never more than the re-sends the summaries counted. The Gmail emulator (it stores what it was sent, so it
knows the extra copies), a local Maildir, the real CLI as a process, SIGKILL."""

from __future__ import annotations

import re
import signal

from tests.helpers import run_process, wait_for
from tests.rig.gmail_emulator import Fault
from tests.rig.localmail import MaildirMessage, message, write_maildir
from tests.rig.workspace import EMAIL, make_local_workspace

N = 120
KILLS = 12


def counted(summary: str) -> int:
    """The possible re-sends a summary counts: calls in flight when an earlier run stopped, calls retried after
    an answer that may have come after Gmail stored the message, and those of runs killed before their summary."""
    resent = re.search(r"(\d+) [^.]*? in flight when an earlier run stopped", summary)
    retried = re.search(r"(\d+) call\(s\) were retried after an answer that may have come after", summary)
    killed = re.search(r"(\d+) call\(s\) of earlier runs that ended without a summary", summary)
    return sum(int(m.group(1)) for m in (resent, retried, killed) if m)


def test_every_possible_resend_is_counted_through_faults_and_kills(tmp_path, emulator):
    root = tmp_path / "Maildir"
    write_maildir(root, {"INBOX": [MaildirMessage(message(i)) for i in range(N)]})
    ws = make_local_workspace(tmp_path / "ws", kind="maildir", path=root, emulator=emulator, workers=6)
    user = emulator.user(EMAIL)
    total = 0
    for i in range(KILLS):
        emulator.faults.clear()
        # each call takes a while (kills land in the middle of calls, which Gmail then completes), a few are
        # answered 503 or reset after the message was stored
        emulator.faults.add(Fault("5xx_after", method="import", count=2, skip=1 + i % 3))
        emulator.faults.add(Fault("reset_after", method="import", count=1, skip=4 + i % 4))
        emulator.faults.add(Fault("slow", method="import", count=None, delay=0.3))
        calls = user.import_calls
        proc = run_process(ws)
        wait_for(lambda calls=calls, i=i: user.import_calls >= calls + 2 + i % 5, timeout=60)
        if i % 4 == 3:  # now and then a clean stop, whose summary is printed
            proc.send_signal(signal.SIGTERM)
            out, _err = proc.communicate(timeout=60)
            total += counted(out.decode())
        else:
            proc.kill()
            proc.communicate(timeout=60)
    emulator.faults.clear()
    emulator.faults.add(Fault("5xx_after", method="import", count=2, skip=3))
    proc = run_process(ws)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err.decode()
    total += counted(out.decode())
    stored = user.messages
    assert len({m.raw for m in stored}) == N  # every message there
    extra = len(stored) - N
    print(f"{KILLS} stops, {extra} extra copies stored, {total} counted as possibly sent twice")
    assert extra > 0  # the faults did make copies
    assert extra <= total, out.decode()

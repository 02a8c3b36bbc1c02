"""Figures for hostile IMAP servers (prints, asserts nothing): wall time and peak RSS of a
`gimport` process against the fault-injecting IMAP server (tests/rig/fault_imap.py) and the Gmail emulator.

Cases (--case, repeatable; default all):
  search   one folder of --messages (170,000) small messages: `gimport plan`, then `gimport run`
  under    100 messages of 20 MB whose RFC822.SIZE claims 1,000 bytes: `gimport run`
  large    messages of 100, 100, 100 and 140 MB, plus one of 160 MB (skipped unfetched): `gimport run`
  session  --session-messages (10,000) messages in a folder with a new UIDVALIDITY per session: run, run again
           (matched by content), verify (the cost per rerun)
Peak RSS is the child's VmHWM (getrusage's ru_maxrss would carry this big parent's size over execve).
MB = 10^6 bytes. Usage: .venv/bin/python scripts/bench_hostile.py [--case search] [--messages 170000]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.rig.fault_imap import FaultFolder, FaultImapServer, FaultMessage, Faults, Mailbox, many_messages
from tests.rig.gmail_emulator import GmailEmulator
from tests.rig.workspace import EMAIL, make_workspace

_CHILD = (
    "import re, sys\n"
    "from gimport.cli import main\n"
    "rc = main(sys.argv[1:])\n"
    "hwm = re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1)\n"
    "sys.stderr.write('PEAK_RSS_KB=%s\\n' % hwm)\n"
    "sys.exit(rc)\n"
)


def _measure(ws, *args: str) -> tuple[int, float, float]:
    t0 = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, "--config", str(ws.config), *args],
        env=ws.env(),
        capture_output=True,
        check=False,
    )
    wall = time.monotonic() - t0
    m = re.search(r"PEAK_RSS_KB=(\d+)", proc.stderr.decode(errors="replace"))
    return proc.returncode, wall, (int(m.group(1)) * 1024 / 1e6 if m else float("nan"))


def _big(uid: int, size: int) -> FaultMessage:
    head = b"Message-ID: <%d@bench>\r\nSubject: big %d\r\n\r\n" % (uid, uid)
    return FaultMessage(uid, head + bytes([65 + uid % 26]) * (size - len(head)))


def _case(name: str, box: Mailbox, faults: Faults | None, commands: list[tuple[str, ...]], bound: str = "") -> None:
    emu = GmailEmulator(merge_duplicates=False)
    emu.start()
    emu.add_user(EMAIL)
    srv = FaultImapServer(box, faults, lifetime=3600, idle_timeout=600)
    srv.start()
    try:
        ws = make_workspace(Path(tempfile.mkdtemp(prefix="gimport-bench-hostile-")), server=srv, user=srv.user,
                            emulator=emu, email=EMAIL, tls=False)  # fmt: skip
        for cmd in commands:
            rc, wall, peak = _measure(ws, *cmd)
            stored = len(emu.user(EMAIL).messages)
            print(f"{name:7s} gimport {' '.join(cmd):5s}: exit {rc}, {wall:7.1f} s, peak RSS {peak:6.0f} MB,"
                  f" {stored} message(s) in Gmail{bound}", flush=True)  # fmt: skip
    finally:
        srv.stop()
        emu.stop()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--case", action="append", choices=["search", "under", "large", "session"])
    ap.add_argument("--messages", type=int, default=170_000)
    ap.add_argument("--session-messages", type=int, default=10_000)
    args = ap.parse_args()
    cases = args.case or ["search", "under", "large", "session"]
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
    if "search" in cases:
        box = Mailbox([FaultFolder("INBOX", many_messages(args.messages, first_uid=1_000_000), 7)])
        _case(f"search {args.messages}", box, None, [("plan",), ("run",)])
    if "under" in cases:
        msgs = [_big(u, 20_000_000) for u in range(1, 101)]
        bound = f"; bound 200 MB + 2 x {max(len(m.raw) for m in msgs) / 1e6:.0f} MB = 240 MB"
        _case("under", Mailbox([FaultFolder("INBOX", msgs, 7)]), Faults(size="under"), [("run",)], bound)
    if "large" in cases:
        sizes = [100_000_000, 100_000_000, 100_000_000, 140_000_000, 160_000_000]
        msgs = [_big(u, s) for u, s in enumerate(sizes, 1)]
        _case("large", Mailbox([FaultFolder("INBOX", msgs, 7)]), None, [("run",)], "; bound 200 + 2 x 140 = 480 MB")
    if "session" in cases:
        box = Mailbox([FaultFolder("INBOX", many_messages(args.session_messages), 7)])
        faults = Faults(uidvalidity="per_session")
        _case(f"session {args.session_messages}", box, faults, [("run",), ("run",), ("verify",)])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

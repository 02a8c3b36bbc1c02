"""Figures for the test rig's servers (tests/rig/README.md quotes them); prints, asserts nothing.

Cyrus: start and stop times over --runs starts, and the seed rate (MULTIAPPEND as the user) for --messages
messages of about --kb KB. Dovecot: the same seed for comparison (Maildir files written directly).
Usage (as root): .venv/bin/python scripts/bench_rig.py [--runs 5] [--messages 3000] [--kb 2]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.rig.cyrus import Cyrus
from tests.rig.dovecot import Dovecot, SeedMessage


def _messages(n: int, kb: float) -> list[SeedMessage]:
    body = b"x" * 76 + b"\r\n"
    lines = max(1, int(kb * 1000 / len(body)))
    return [
        SeedMessage(b"Subject: m%d\r\nMessage-ID: <%d@bench>\r\n\r\n" % (i, i) + body * lines, flags=("\\Seen",))
        for i in range(n)
    ]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--messages", type=int, default=3000)
    ap.add_argument("--kb", type=float, default=2)
    args = ap.parse_args()
    base = Path(tempfile.mkdtemp(prefix="gimport-bench-rig-"))
    base.chmod(0o755)
    try:
        starts, stops = [], []
        msgs = _messages(args.messages, args.kb)
        for i in range(args.runs):
            cy = Cyrus(base / f"cyrus{i}")
            t = time.monotonic()
            cy.start()
            starts.append(time.monotonic() - t)
            if i == 0:
                cy.add_user("bench", "bench-pw")
                t = time.monotonic()
                cy.seed("bench", "Bulk", msgs)
                el = time.monotonic() - t
                print(
                    f"cyrus seed: {len(msgs)} messages of {len(msgs[0].raw)} B in {el:.2f} s = {len(msgs) / el:.0f}/s"
                )
            t = time.monotonic()
            cy.stop()
            stops.append(time.monotonic() - t)
        print(f"cyrus start: median {statistics.median(starts):.3f} s (min {min(starts):.3f}, max {max(starts):.3f})")
        print(f"cyrus stop:  median {statistics.median(stops):.3f} s (min {min(stops):.3f}, max {max(stops):.3f})")
        with Dovecot(base / "dovecot") as dv:
            dv.add_user("bench", "bench-pw")
            t = time.monotonic()
            dv.seed("bench", "Bulk", msgs)
            el = time.monotonic() - t
            print(f"dovecot seed: {len(msgs)} messages in {el:.2f} s = {len(msgs) / el:.0f}/s")
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

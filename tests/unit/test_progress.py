"""The status lines of unattended runs (gimport.render.bar): what they say, where they go."""

from __future__ import annotations

import io
import logging

from gimport.contract import FAILED, IMPORTED
from gimport.render.admin_progress import AdminProgress
from gimport.render.progress import TqdmReporter


def test_a_status_line_has_the_totals_rate_eta_folder_and_failures(caplog):
    out = io.StringIO()
    slowed = [0]
    rep = TqdmReporter(stream=out, enabled=False, rate_limited=lambda: slowed[0])
    rep.transfer_started(10, 10_000)
    for _ in range(3):
        rep.message_finished("研究室", IMPORTED, 1000)
    rep.message_finished("研究室", FAILED, 1000)
    slowed[0] = 2
    with caplog.at_level(logging.INFO, logger="gimport"):
        rep.emit_stats()
    rep.close()
    line = out.getvalue().splitlines()[-1]
    assert line.startswith("gimport: status: 4/10 messages, 3.9 KiB/9.8 KiB, ")
    assert " msg/s, ETA " in line
    assert "folder 研究室" in line
    assert "1 failed" in line
    assert line.endswith("Gmail asked to slow down (2 times)")
    assert [r.getMessage() for r in caplog.records if "status:" in r.getMessage()] == [line]  # the same, in the log


def test_snapshots_are_what_gimport_status_reads():
    ticks = []
    rep = TqdmReporter(stream=io.StringIO(), enabled=False, on_tick=ticks.append)
    rep.transfer_started(5, 500)  # recorded at once: the totals are known
    rep.message_finished("INBOX", IMPORTED, 100)
    rep.close()  # and once more at the end
    assert [t["total"] for t in ticks] == [5, 5]
    assert ticks[-1]["done"] == 1
    assert ticks[-1]["bytes_done"] == 100
    assert ticks[-1]["folder"] == "INBOX"


def test_admin_progress_status_counts_users_and_messages():
    out = io.StringIO()
    prog = AdminProgress(3, stream=out, enabled=False)
    prog.transfer_added(20, 2000)
    prog.message_finished(IMPORTED, 100)
    prog.message_finished(FAILED, 100)
    prog.emit_stats()
    prog.close()
    line = out.getvalue().splitlines()[-1]
    assert line.startswith("gimport: status: users 0/3 done, 2/20 messages, 100 B, ")
    assert line.endswith("1 failed")

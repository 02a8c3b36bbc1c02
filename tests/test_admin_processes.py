"""`admin run` over worker processes, end to end on the rig (Dovecot, the emulator, `python -m gimport` as a
person or a job script starts it): every user of the shard done exactly once across the processes, one
report and one progress, the children's logs in the run's log; a SIGTERM to the parent stops every child
cleanly, and the next run finishes the job without sending anything twice."""

from __future__ import annotations

import re
import signal
import threading

import pytest

from tests.helpers import wait_for
from tests.test_admin import assert_exactly_once, campus, report_rows, run_process


@pytest.fixture
def emulator(campus_emulator):
    return campus_emulator


def test_users_spread_over_worker_processes_each_exactly_once(tmp_path, dovecot_server, emulator):
    ws, people, boxes = campus(tmp_path, dovecot_server, emulator, [5, 3, 4, 6, 2], "prc", parallel_users=4)
    proc = run_process(ws, emulator.base_url, "run", "--processes", "2")
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, err.decode()
    text = err.decode()
    assert "2 worker processes, about 2 users at a time each" in text
    # one progress for the whole run: users numbered 1..5 across both processes
    assert sorted(int(n) for n in re.findall(r"\[started +(\d+)/5\]", text)) == [1, 2, 3, 4, 5]
    rows = report_rows(ws.report)
    assert {rows[p.gmail]["outcome"] for p in people} == {"complete"}
    assert sum(int(rows[p.gmail]["imported_last_run"]) for p in people) == 20
    assert "20 message(s) imported by this run" in out.decode()
    for p, box in zip(people, boxes, strict=True):
        assert_exactly_once(emulator, p.gmail, box)
    log = ws.log.read_text("utf-8")
    assert "in 2 worker processes (3/2 users each)" in log
    assert len(set(re.findall(r"log opened \(pid (\d+)\)", log))) == 3  # the parent and its two children

    # [admin] processes = 1 (or --processes 1): one process, nothing to do, nothing sent again
    ws.config.write_text(ws.config.read_text().replace("[admin]\n", "[admin]\nprocesses = 1\n"))
    proc = run_process(ws, emulator.base_url, "run")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err.decode()
    assert "worker processes" not in err.decode()
    for p, box in zip(people, boxes, strict=True):
        assert_exactly_once(emulator, p.gmail, box)

    proc = run_process(ws, emulator.base_url, "run", "--processes", "-1")
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert "--processes must be 0" in err.decode()


def test_sigterm_to_the_parent_stops_every_worker_cleanly(tmp_path, dovecot_server, emulator):
    # 1,500 units/min per user: one import a second, so the run is still going when the signal comes
    ws, people, boxes = campus(
        tmp_path, dovecot_server, emulator, [20, 20, 20, 20], "trm", parallel_users=4, quota_units_per_minute=1500
    )
    proc = run_process(ws, emulator.base_url, "run", "--processes", "2")
    lines: list[bytes] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True)
    reader.start()
    wait_for(lambda: sum(1 for p in people if emulator.user(p.gmail).messages) == len(people), timeout=120)
    proc.send_signal(signal.SIGTERM)
    out = proc.stdout.read().decode()
    proc.wait(timeout=60)
    reader.join(10)
    assert proc.returncode == 130, b"".join(lines).decode()
    assert "Interrupted" in out
    rows = report_rows(ws.report)
    assert {rows[p.gmail]["outcome"] for p in people} == {"interrupted"}
    landed = sum(len(emulator.user(p.gmail).messages) for p in people)
    assert landed < 80
    assert landed == sum(int(rows[p.gmail]["imported"]) for p in people)  # every import is recorded
    # the next run finishes the job: nothing sent twice
    proc = run_process(ws, emulator.base_url, "run", "--processes", "2")
    _out, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, err.decode()
    for p, box in zip(people, boxes, strict=True):
        assert_exactly_once(emulator, p.gmail, box)

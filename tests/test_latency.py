"""`gimport run` against an emulator that takes its time (as real Gmail does): the calls in flight follow the
quota's need at that latency, not a fixed number of workers. Real Dovecot, the emulator, the real client."""

from __future__ import annotations

import datetime as dt

import pytest

from tests.helpers import record_pacers, run
from tests.rig.corpus import make_message
from tests.rig.dovecot import SeedMessage
from tests.rig.gmail_emulator import GmailEmulator
from tests.rig.workspace import EMAIL, make_workspace


def import_times(log) -> list[dt.datetime]:
    return [
        dt.datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")
        for line in log.read_text("utf-8").splitlines()
        if " INFO imported folder=" in line
    ]


def test_the_quota_is_held_at_a_latency_that_eight_workers_could_not(tmp_path, imap_user, monkeypatch, capsys):

    n = 100
    imap_user.seed(
        "INBOX",
        [
            SeedMessage(make_message(subject=f"m{i}", body="x" * 2000, sender="a@example.ac.jp", to="b@example.ac.jp"))
            for i in range(n)
        ],
    )
    # 15,000 units/min = 10 imports/s; 1.2 s a call needs 12 in flight: 8 fixed workers made 6.7/s
    emu = GmailEmulator(quota_units_per_minute=15_000, latency=1.2, max_concurrent=25, merge_duplicates=False)
    emu.start()
    pacers = record_pacers(monkeypatch)
    try:
        w = make_workspace(
            tmp_path, server=imap_user.server, user=imap_user.name, emulator=emu, email=EMAIL,
            quota_units_per_minute=15_000,
        )  # fmt: skip
        monkeypatch.setenv("GIMPORT_GMAIL_API_URL", emu.base_url)
        assert run(w, capsys=capsys)[0] == 0
        assert len(emu.user(EMAIL).messages) == n
        stamps = import_times(w.log)
        rate = (len(stamps) - 1) / (stamps[-1] - stamps[0]).total_seconds()
        assert rate >= 8.5  # of 9.8 (the pacer's 98%)
        snap = emu.stats.snapshot()
        assert snap["rate_limited"] == 0  # no burst past the quota, no call over the limit at once
        (pacer,) = pacers
        assert pacer.concurrency.latency == pytest.approx(1.2, abs=0.3)
        assert 12 <= pacer.concurrency.limit <= 40  # the need (10/s x 1.2 s, with headroom), not the upper bound
    finally:
        emu.stop()

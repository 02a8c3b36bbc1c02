"""`gimport admin run --follow`: rounds over every user with at most [admin] parallel_users IMAP connections,
the users' scans spread over the poll interval, new mail of every user arriving, a clean stop on SIGTERM."""

from __future__ import annotations

import collections
import os
import signal
import threading
import time

import pytest

from gimport.backends.imap.watch import WatchingImapSource
from tests.helpers import wait_for
from tests.rig.admin_workspace import Person, make_admin_workspace
from tests.rig.corpus import make_message
from tests.rig.dovecot import SeedMessage
from tests.test_admin import DOMAIN, new_user, report_rows, run

POLL = 6.0  # long enough that a spread round stands apart from back-to-back scans (about 0.5 s a user)


@pytest.fixture
def emulator(campus_emulator):
    """The admin tests' emulator (tests/conftest.py)."""
    return campus_emulator


def test_admin_follow_rescans_every_user_within_the_connection_bound(tmp_path, dovecot_server, emulator, monkeypatch):
    users = [new_user(dovecot_server, 3, prefix="fol") for _ in range(3)]
    people = [Person(name, f"{name}@{DOMAIN}", pw) for name, pw, _ in users]
    for p in people:
        emulator.add_user(p.gmail)
    ws = make_admin_workspace(
        tmp_path, server=dovecot_server, emulator_url=emulator.base_url, people=people, parallel_users=1
    )
    lock = threading.Lock()
    open_now: set[int] = set()
    most = [0]
    logins: list[tuple[float, str]] = []  # (when, user) of every login
    connect, close = WatchingImapSource.connect, WatchingImapSource.close

    def counted_connect(self):
        connect(self)
        with lock:
            open_now.add(id(self))
            most[0] = max(most[0], len(open_now))
            logins.append((time.monotonic(), self.settings.user))

    def counted_close(self):
        with lock:
            open_now.discard(id(self))
        close(self)

    monkeypatch.setattr(WatchingImapSource, "connect", counted_connect)
    monkeypatch.setattr(WatchingImapSource, "close", counted_close)

    def new_mail_arrives() -> None:
        try:
            wait_for(lambda: all(len(emulator.user(p.gmail).messages) == 3 for p in people), timeout=60)
            for name, _pw, _box in users:
                raw = make_message(subject=f"new for {name}", body="new", sender="a@x.jp", to="b@x.jp")
                dovecot_server.seed(name, "INBOX", [SeedMessage(raw)])
            wait_for(lambda: all(len(emulator.user(p.gmail).messages) == 4 for p in people), timeout=3 * POLL + 10)
            # one more whole round: the scans of a round are spread over the interval
            n = len(logins)
            wait_for(lambda: len(logins) >= n + len(users), timeout=2 * POLL + 10)
        finally:
            os.kill(os.getpid(), signal.SIGTERM)

    helper = threading.Thread(target=new_mail_arrives, daemon=True)
    helper.start()
    rc, _ = run(ws, "run", "--follow", "--poll", str(POLL), "--stats", "0")
    helper.join(10)
    assert rc == 130
    for p in people:
        subjects = collections.Counter(m.raw for m in emulator.user(p.gmail).messages)
        assert len(subjects) == 4
        assert set(subjects.values()) == {1}  # each message once
    assert most[0] == 1  # [admin] parallel_users = 1: one IMAP connection at a time, never an IDLE one each
    # after the first pass, each round's logins (one per user, in the users' order) are spread over the poll
    # interval: user i starts no earlier than i * POLL / 3 into the round, so a round spans 2/3 of it at least
    later = [t for t, _ in logins[len(users) :]]
    rounds = [later[i : i + len(users)] for i in range(0, len(later) - len(users) + 1, len(users))]
    assert rounds
    for one in rounds:
        # 4 s apart from first to last when spread; back to back they would be about 1 s apart (a login's own
        # start varies by a few tenths: the margin)
        assert one[-1] - one[0] >= (len(users) - 1) * POLL / len(users) * 0.75, one
    rows = report_rows(ws.report)
    assert set(rows) == {p.gmail for p in people}

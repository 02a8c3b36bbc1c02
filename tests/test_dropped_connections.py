"""A connection the source server drops is a transient fault like any other: tried again through the call
path with backoff, the first connection and the login included, and the message at the end names what
happened (dropped, refused, TLS). The scriptable server of tests/rig/fault_imap.py, the real Dovecot for a
password that is really wrong, the Gmail emulator, the real CLI in-process."""

from __future__ import annotations

import pytest

from gimport.errors import EXIT_SOURCE
from tests.rig.fault_imap import FaultFolder, FaultMessage, Faults, Mailbox
from tests.test_hostile_imap import _box, _served, _server, _stored, _ws, run


def _raw(i: int) -> bytes:
    return b"Message-ID: <d%d@drop.test>\r\nSubject: %d\r\nDate: Thu, 02 Jan 2020 03:04:05 +0000\r\n\r\nb\r\n" % (i, i)


def _big_box(n: int = 120) -> Mailbox:
    """More commands than _box: folders of many small messages."""
    folders = [
        FaultFolder(f"F{k}", [FaultMessage(u, _raw((k + 1) * 1000 + u)) for u in range(1, n // 4 + 1)])
        for k in range(4)
    ]
    return Mailbox([FaultFolder("INBOX", [FaultMessage(1, _raw(1))]), *folders])


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_a_server_that_drops_one_command_in_ten(tmp_path, emulator, monkeypatch, capsys, seed):
    """Each command is lost with probability 1/10, LOGIN and the first connection included: every run
    completes (exit 0), everything arrives once, and nothing is said about passwords or TLS."""
    box = _big_box()
    with _server(box, Faults(drop_rate=0.1, drop_seed=seed)) as srv:
        ws = _ws(tmp_path, srv, emulator, monkeypatch)
        rc, out = run(ws, capsys=capsys)
        print(f"seed {seed}: {srv.dropped} connections dropped in {srv.sessions} sessions, exit {rc}")
        assert srv.dropped >= 3  # the fault was there
        assert rc == 0, out.err
    assert _stored(emulator) == _served(box)  # all of it, once
    for word in ("password", "TLS", "security"):
        assert word not in out.err


def test_a_dropped_login_is_tried_again_not_called_a_bad_password(tmp_path, emulator, monkeypatch, capsys):
    """The server closes the connection at the LOGIN of the first connection (imapclient reports that as a
    failed login): gimport connects again and goes on."""
    box = _box()
    with _server(box, Faults(drop_commands={"LOGIN"}, drop_commands_in_sessions={1})) as srv:
        ws = _ws(tmp_path, srv, emulator, monkeypatch)
        rc, out = run(ws, capsys=capsys)
        assert rc == 0, out.err
        assert len(srv.commands_named("LOGIN")) >= 2
    assert "refused the login" not in out.err
    assert _stored(emulator) == _served(box)


def test_a_login_dropped_every_time_says_so(tmp_path, emulator, monkeypatch, capsys):
    """Every LOGIN dropped: after the tries, one line naming the dropped connection (exit 4), not a wrong
    password nor a TLS hint. The waits between tries are cut short here (their length is the call path's,
    tested in tests/unit/test_calls.py)."""
    monkeypatch.setattr("gimport.calls.default_backoff", lambda attempt, wait=None: 0.01)
    with _server(_box(), Faults(drop_commands={"LOGIN"})) as srv:
        ws = _ws(tmp_path, srv, emulator, monkeypatch)
        rc, out = run(ws, capsys=capsys)
        assert len(srv.commands_named("LOGIN")) == 5  # the first try and 4 more
    last = out.err.strip().splitlines()[-1]
    assert rc == EXIT_SOURCE
    assert "dropped the connection while logging in" in last
    assert "refused the login" not in last
    assert "password" not in last
    assert "security" not in last
    assert "Traceback" not in out.err


def test_a_reconnect_that_fails_does_not_suggest_tls(tmp_path, emulator, monkeypatch, capsys):
    """The server drops the connection in the scan, then drops every LOGIN after it: the run stops (exit 4)
    saying the connection was lost and could not be had again, with no hint about [source] security."""
    monkeypatch.setattr("gimport.calls.default_backoff", lambda attempt, wait=None: 0.01)
    # from the second session on, LOGIN is dropped: a server that went away during the run
    faults = Faults(
        drop_after_commands=6, drop_in_sessions={1}, drop_commands={"LOGIN"}, drop_commands_in_sessions=range(2, 99)
    )
    with _server(_box(), faults) as srv:
        ws = _ws(tmp_path, srv, emulator, monkeypatch)
        rc, out = run(ws, capsys=capsys)
        assert srv.sessions == 6  # the first, and 5 tries to connect again
    last = out.err.strip().splitlines()[-1]
    assert rc == EXIT_SOURCE, out.err
    assert "lost the connection to the IMAP server" in last
    assert "dropped the connection while logging in" in last
    assert "security" not in last
    assert "TLS" not in last


def test_a_wrong_password_is_still_one(ws, imap_user, capsys):
    """Dovecot answers a wrong password with NO: that is said at once (one LOGIN), as before."""
    (ws.dir / "imap-password.txt").write_text("wrong\n")
    rc, out = run(ws, capsys=capsys)
    last = out.err.strip().splitlines()[-1]
    assert rc == EXIT_SOURCE
    assert "refused the login" in last
    assert "check [source] user and the password" in last
    assert "dropped" not in last

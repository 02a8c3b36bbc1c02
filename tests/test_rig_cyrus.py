"""The Cyrus rig, and every Dovecot/Cyrus difference tests/rig/README.md states, measured on both running servers."""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import hashlib
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientAbortError, IMAPClientError, LoginError

from tests.rig import cyrus as rig_cyrus
from tests.rig.corpus import make_message
from tests.rig.cyrus import Cyrus, CyrusError
from tests.rig.dovecot import ImapUser, SeedMessage
from tests.rig.imap_server import ImapServerRig, pid_alive

JST = dt.timezone(dt.timedelta(hours=9))
REPO = Path(__file__).resolve().parents[1]


def _msg(i: int) -> bytes:
    return make_message(subject=f"message {i}", body=f"body {i}\n", sender="a@example.com", to="b@example.com")


def _raw_list(client: IMAPClient) -> list[bytes]:
    typ, data = client._imap.list('""', "*")
    assert typ == "OK"
    return [d for d in data if isinstance(d, bytes)]


def _deadline_poll(pred, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.01)
    return pred()


@pytest.fixture
def own_cyrus() -> Iterator[Cyrus]:
    """A private, not yet started instance ("/" separator, altnamespace), for tests that stop it."""
    workdir = Path(tempfile.mkdtemp(prefix="gimport-cyrus-own-"))
    workdir.chmod(0o755)
    cy = Cyrus(workdir, separator="/", altnamespace=True)
    try:
        yield cy
    finally:
        cy.stop()
        shutil.rmtree(workdir, ignore_errors=True)


# --------------------------------------------------------------------------- the rig itself


def test_protocol_satisfied_by_both(cyrus_server: Cyrus, dovecot_server) -> None:
    assert isinstance(cyrus_server, ImapServerRig)
    assert isinstance(dovecot_server, ImapServerRig)
    assert (cyrus_server.kind, dovecot_server.kind) == ("cyrus", "dovecot")


def test_login_plain_tls_starttls_and_wrong_password(cyrus_user: ImapUser) -> None:
    server = cyrus_user.server
    with cyrus_user.connect() as c:
        assert c.list_folders()
    with cyrus_user.connect(tls=True) as c:
        assert c._imap.sock.version().startswith("TLS")
    c = IMAPClient(server.host, port=server.plain_port, ssl=False, timeout=10)
    c.starttls(server.ssl_context())
    c.login(cyrus_user.name, cyrus_user.password)
    c.logout()
    for user, password in ((cyrus_user.name, cyrus_user.password + "x"), ("nobody-here", "x")):
        c = IMAPClient(server.host, port=server.plain_port, ssl=False, timeout=10)
        with pytest.raises(LoginError):
            c.login(user, password)
        c.shutdown()
    # the certificate is checked: a context without the rig's CA fails
    with pytest.raises(ssl.SSLError):
        IMAPClient("localhost", port=server.tls_port, ssl=True, ssl_context=ssl.create_default_context(), timeout=10)


def test_passwords_never_on_a_command_line(cyrus_server: Cyrus, monkeypatch: pytest.MonkeyPatch) -> None:
    password = "pw-" + os.urandom(6).hex()
    calls = []
    real_run = subprocess.run

    def spy(args, **kw):
        calls.append((list(args), kw.get("input")))
        return real_run(args, **kw)

    monkeypatch.setattr(rig_cyrus.subprocess, "run", spy)
    name = f"pw{os.getpid()}"
    cyrus_server.add_user(name, password)
    assert [a[0] for a, _ in calls] == [rig_cyrus.SASLPASSWD2]
    assert not any(password in arg for args, _ in calls for arg in args)
    assert calls[0][1] == password.encode()  # through the pipe
    assert (cyrus_server.sasldb_path.stat().st_mode & 0o777) == 0o600
    with cyrus_server.connect(name) as c:  # and it is the password Cyrus checks
        assert c.list_folders()


def test_seed_flags_internaldate_japanese_folder_uid_order(cyrus_user: ImapUser) -> None:
    when = dt.datetime(2019, 4, 1, 9, 30, 15, tzinfo=JST)
    msgs = [
        SeedMessage(_msg(0), flags=("\\Seen",), internaldate=when),
        SeedMessage(_msg(1), flags=("\\Flagged", "\\Seen", "$Forwarded")),
        SeedMessage(_msg(2)),
    ]
    cyrus_user.seed("仕事/報告書", msgs)
    name = cyrus_user.folder_name("仕事/報告書")
    assert name == "INBOX.仕事.報告書"
    with cyrus_user.connect(normalise_times=False) as c:
        # on the wire the name is modified UTF-7
        assert any(line.endswith(b"INBOX.&TtVOiw-.&WDFUSmb4-") for line in _raw_list(c))
        c.select_folder(name, readonly=True)
        uids = c.search("ALL")
        data = c.fetch(uids, ["FLAGS", "INTERNALDATE", "BODY.PEEK[]"])
    assert uids == [1, 2, 3]
    assert [data[u][b"BODY[]"] for u in uids] == [m.raw for m in msgs]
    assert [set(data[u][b"FLAGS"]) - {b"\\Recent"} for u in uids] == [
        {b"\\Seen"},
        {b"\\Flagged", b"\\Seen", b"$Forwarded"},
        set(),
    ]
    assert data[1][b"INTERNALDATE"] == when  # the same instant (Cyrus answers in its own zone)


def test_seed_rate_and_large_batches(cyrus_user: ImapUser) -> None:
    """1,200 messages go in more than one MULTIAPPEND (500 per command) and keep their order."""
    msgs = [SeedMessage(_msg(i)) for i in range(1200)]
    cyrus_user.seed("Bulk", msgs)
    assert cyrus_user.server.message_count(cyrus_user.name, "Bulk") == 1200
    with cyrus_user.connect() as c:
        c.select_folder("INBOX.Bulk", readonly=True)
        got = c.fetch([1, 500, 501, 1200], ["BODY.PEEK[HEADER.FIELDS (SUBJECT)]"])
    subjects = [got[u][b"BODY[HEADER.FIELDS (SUBJECT)]"].strip() for u in (1, 500, 501, 1200)]
    assert subjects == [
        b"Subject: message 0",
        b"Subject: message 499",
        b"Subject: message 500",
        b"Subject: message 1199",
    ]


def test_seed_refuses_what_cyrus_refuses(cyrus_user: ImapUser) -> None:
    server = cyrus_user.server
    for raw in (b"Subject: a\r\n\r\nnul \0 here\r\n", b"Subject: a\n\nbare lf\n"):
        assert not server.can_store(raw)
        with pytest.raises(ValueError, match="can_store"):
            cyrus_user.seed("INBOX", [SeedMessage(_msg(1)), SeedMessage(raw)])
    assert server.message_count(cyrus_user.name, "INBOX") == 0  # nothing of a refused call went in
    assert server.can_store(b"Subject: a\r\n\r\nbare \r cr\r\n")


def test_folder_names_and_user_rules(cyrus_user: ImapUser) -> None:
    with pytest.raises(ValueError, match="INBOX"):
        cyrus_user.folder_name("INBOX/x")
    with pytest.raises(ValueError, match=r"contain no '\.'"):
        cyrus_user.folder_name("a.b")
    with pytest.raises(ValueError, match=r"uses '\.'"):
        cyrus_user.server.add_user("slashuser", separator="/")
    assert cyrus_user.folder_name("INBOX") == "INBOX"


def test_delete_folder_reset_uidvalidity_kill_connections(cyrus_user: ImapUser) -> None:
    server: Cyrus = cyrus_user.server  # type: ignore[assignment]
    msgs = [SeedMessage(_msg(i), flags=("\\Seen",) if i % 2 else ()) for i in range(5)]
    cyrus_user.seed("Keep", msgs)
    cyrus_user.seed("Gone/Child", msgs[:1])
    before = cyrus_user.snapshot()
    old = before["INBOX.Keep"]
    with cyrus_user.connect() as c:
        uv = c.folder_status("INBOX.Keep", [b"UIDVALIDITY"])[b"UIDVALIDITY"]
    new = cyrus_user.reset_uidvalidity("Keep")
    assert new != uv
    after = cyrus_user.snapshot()["INBOX.Keep"]
    assert [(e.flags, e.sha256, e.internaldate) for e in after] == [(e.flags, e.sha256, e.internaldate) for e in old]
    with pytest.raises(ValueError, match="subfolders"):
        cyrus_user.delete_folder("Gone")
    cyrus_user.delete_folder("Gone", recursive=True)
    assert not any(name.startswith("INBOX.Gone") for name in cyrus_user.snapshot())

    c = cyrus_user.connect()
    c.select_folder("INBOX", readonly=True)
    assert server.kill_connections(cyrus_user.name) == 1
    with pytest.raises((IMAPClientAbortError, IMAPClientError, OSError)):
        c.noop()
    c.shutdown()


def test_start_stop_restart_keeps_mail_and_ports(own_cyrus: Cyrus) -> None:
    own_cyrus.add_user("early", "pw")  # before start: created at start
    own_cyrus.start()
    pids = own_cyrus.process_ids()
    assert len(pids) >= 3  # supervisor, master, imapd
    cmds = [Path(f"/proc/{p}/cmdline").read_bytes().split(b"\0")[0] for p in pids]
    assert str(rig_cyrus.imapd_path()).encode() in cmds  # the extracted imapd when there is one
    ports = (own_cyrus.plain_port, own_cyrus.tls_port)
    own_cyrus.seed("early", "A/B", [SeedMessage(_msg(1))])
    own_cyrus.stop()
    assert not any(pid_alive(p) for p in pids)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", ports[0]), timeout=1).close()
    own_cyrus.start()
    assert (own_cyrus.plain_port, own_cyrus.tls_port) == ports
    assert own_cyrus.message_count("early", "A/B") == 1


def test_cyrus_dies_with_the_process_that_started_it(tmp_path: Path) -> None:
    """A test run killed with SIGKILL leaves no Cyrus behind (the supervisor sees its stdin close)."""
    workdir = Path(tempfile.mkdtemp(prefix="gimport-cyrus-orphan-"))
    workdir.chmod(0o755)
    script = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(REPO)!r})
        from tests.rig.cyrus import Cyrus
        cy = Cyrus({str(workdir)!r})
        cy.start()
        print(" ".join(map(str, sorted(cy.process_ids()))), flush=True)
        time.sleep(120)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    pids: list[int] = []
    try:
        pids = [int(p) for p in proc.stdout.readline().split()]  # type: ignore[union-attr]
        assert pids
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        assert _deadline_poll(lambda: not any(pid_alive(p) for p in pids)), [p for p in pids if pid_alive(p)]
    finally:
        if proc.poll() is None:
            proc.kill()
        for p in pids:  # a failed test must not leave Cyrus running either
            if pid_alive(p):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(p, signal.SIGKILL)
        shutil.rmtree(workdir, ignore_errors=True)


def test_start_fails_clearly_without_cyrus(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="gimport-cyrus-missing-"))
    workdir.chmod(0o755)
    try:
        monkeypatch.setattr(rig_cyrus, "MASTER", workdir / "no-such-master")
        with pytest.raises(CyrusError, match="scripts/test"):
            Cyrus(workdir).start()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


# --------------------------------------------------------------------------- Dovecot vs Cyrus, as a client sees them
# Each test below measures one line of the table in tests/rig/README.md on both servers.


def test_separator_and_prefix(any_server_user: ImapUser) -> None:
    any_server_user.seed("Work/2024", [SeedMessage(_msg(1))])
    with any_server_user.connect() as c:
        personal = c.namespace().personal
        folders = {name: delim for _flags, delim, name in c.list_folders()}
    if any_server_user.server.kind == "dovecot":
        assert personal == (("", "/"),)
        assert folders["Work/2024"] == b"/"
    else:
        assert personal == (("INBOX.", "."),)
        assert folders["INBOX.Work.2024"] == b"."
        assert "Work.2024" not in folders


def test_cyrus_altnamespace_has_no_prefix(own_cyrus: Cyrus) -> None:
    own_cyrus.start()
    own_cyrus.add_user("alt")
    own_cyrus.seed("alt", "Work/2024", [SeedMessage(_msg(1))])
    own_cyrus.create_folder("alt", "INBOX/child")  # allowed here, unlike the classic namespace
    with own_cyrus.connect("alt") as c:
        assert c.namespace().personal == (("", "/"),)
        names = {name for _f, _d, name in c.list_folders()}
    assert {"INBOX", "Work", "Work/2024", "INBOX/child"} <= names


def test_missing_parent(any_server_user: ImapUser) -> None:
    any_server_user.seed("P/Q", [SeedMessage(_msg(1))])
    parent = any_server_user.folder_name("P")
    with any_server_user.connect() as c:
        flags = {name: {f.lower() for f in fl} for fl, _d, name in c.list_folders()}[parent]
        if any_server_user.server.kind == "dovecot":
            assert b"\\noselect" in flags
            with pytest.raises(IMAPClientError):
                c.select_folder(parent, readonly=True)
        else:
            assert b"\\noselect" not in flags
            assert b"\\haschildren" in flags
            assert c.select_folder(parent, readonly=True)[b"EXISTS"] == 0


def test_binary_capability_and_fetch(any_server_user: ImapUser) -> None:
    payload = bytes(range(1, 256)) * 4 + b"\0"
    b64 = base64.encodebytes(payload).replace(b"\n", b"\r\n")
    raw = (
        b'Subject: bin\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b"\r\n\r\n'
        b"--b\r\nContent-Type: text/plain\r\n\r\nsee attachment\r\n"
        b"--b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        + b64
        + b"--b--\r\n"
    )
    any_server_user.seed("INBOX", [SeedMessage(raw)])
    with any_server_user.connect() as c:
        assert b"BINARY" in c.capabilities()
        c.select_folder("INBOX", readonly=True)
        assert c.fetch([1], ["BODY.PEEK[]"])[1][b"BODY[]"] == raw
        # imaplib, not imapclient: imapclient 3 misreads a literal8 (~{n}) as the string "~{n}"
        typ, data = c._imap.uid("FETCH", "1", "(BINARY.PEEK[2])")
        typ2, whole = c._imap.uid("FETCH", "1", "(BINARY.PEEK[])")
    assert typ == typ2 == "OK"
    prefix, content = data[0]
    assert content == payload
    assert prefix.endswith(b"~{%d}" % len(payload))  # both: a literal8 for decoded content holding a NUL
    # The whole message (what gimport fetches with BINARY.PEEK[]): Cyrus sends the stored bytes as an ordinary
    # literal; Dovecot decodes the base64 part, relabels it "Content-Transfer-Encoding: binary" and sends a
    # literal8 -- not the bytes BODY[] gives.
    head, content = whole[0]
    if any_server_user.server.kind == "cyrus":
        assert content == raw
        assert head.endswith(b" {%d}" % len(raw))
    else:
        assert content != raw
        assert head.endswith(b"~{%d}" % len(content))
        assert b"Content-Transfer-Encoding: binary\r\n\r\n" + payload in content


def test_nul_bytes(any_server_user: ImapUser) -> None:
    raw = b"Subject: nul\r\n\r\nbefore\0after\r\n"
    server = any_server_user.server
    if server.kind == "dovecot":
        assert server.can_store(raw)
        any_server_user.seed("INBOX", [SeedMessage(raw)])
        with any_server_user.connect() as c:
            c.select_folder("INBOX", readonly=True)
            assert c.fetch([1], ["BODY.PEEK[]"])[1][b"BODY[]"] == raw.replace(b"\0", b"\x80")
    else:
        assert not server.can_store(raw)
        # Cyrus itself refuses it: not a rig rule
        with any_server_user.connect() as c, pytest.raises(IMAPClientError, match="NUL"):
            c.append("INBOX", raw)


def test_eight_bit_headers(any_server_user: ImapUser) -> None:
    raw = "Subject: 日本語の件名\r\nFrom: 山田 <a@example.jp>\r\n\r\n本文 8-bit body\r\n".encode()
    any_server_user.seed("INBOX", [SeedMessage(raw)])
    with any_server_user.connect() as c:
        c.select_folder("INBOX", readonly=True)
        served = c.fetch([1], ["BODY.PEEK[]"])[1][b"BODY[]"]
    head, _, body = served.partition(b"\r\n\r\n")
    assert body == "本文 8-bit body\r\n".encode()  # 8-bit bodies are kept by both
    if any_server_user.server.kind == "dovecot":
        assert served == raw
    else:
        assert (
            head == b"Subject: " + b"X" * len("日本語の件名".encode()) + b"\r\nFrom: " + b"X" * 6 + b" <a@example.jp>"
        )


def test_bare_lf(any_server_user: ImapUser) -> None:
    raw = b"Subject: lf\n\nline 1\nline 2\n"
    server = any_server_user.server
    if server.kind == "dovecot":
        any_server_user.seed("INBOX", [SeedMessage(raw)])
        with any_server_user.connect() as c:
            c.select_folder("INBOX", readonly=True)
            data = c.fetch([1], ["BODY.PEEK[]", "RFC822.SIZE"])[1]
        assert data[b"BODY[]"] == raw.replace(b"\n", b"\r\n")  # served with CRLF
        assert data[b"RFC822.SIZE"] == len(raw.replace(b"\n", b"\r\n"))
    else:
        assert not server.can_store(raw)
        with any_server_user.connect() as c:
            c._imap.literal = raw  # imaplib would not convert; imapclient's append would
            typ, data = c._imap._simple_command("APPEND", "INBOX")
        assert typ == "NO"
        assert b"bare newlines" in data[0]


def test_uidvalidity_values(any_server_user: ImapUser) -> None:
    """Both: UIDVALIDITY is about the folder's creation time in seconds. Cyrus gives folders created in the same
    second the same value; Dovecot gives each folder its own."""
    before = int(time.time())
    names = [f"F{i}" for i in range(4)]
    with any_server_user.connect() as c:  # create through IMAP on both, within one or two seconds
        for n in names:
            c.create_folder(any_server_user.folder_name(n))
        values = [c.folder_status(any_server_user.folder_name(n), [b"UIDVALIDITY"])[b"UIDVALIDITY"] for n in names]
    after = int(time.time())
    assert all(before - 1 <= v <= after + 5 for v in values), (before, values, after)
    if any_server_user.server.kind == "dovecot":
        assert len(set(values)) == len(values)
    else:
        assert len(set(values)) < len(values)


def test_special_use(any_server_user: ImapUser) -> None:
    for name in ("Sent", "Drafts", "Junk", "Trash", "送信済み"):
        any_server_user.create_folder(name)
    with any_server_user.connect() as c:
        assert b"SPECIAL-USE" in c.capabilities()
        flags = {name: {f for f in fl if f.lower() not in (b"\\hasnochildren", b"\\haschildren")}
                 for fl, _d, name in c.list_folders()}  # fmt: skip
    f = any_server_user.folder_name
    assert flags[f("Sent")] == {b"\\Sent"}
    assert flags[f("Drafts")] == {b"\\Drafts"}
    assert flags[f("Junk")] == {b"\\Junk"}
    assert flags[f("Trash")] == {b"\\Trash"}
    assert flags[f("送信済み")] == set()
    assert flags["INBOX"] == set()


# --------------------------------------------------------------------------- gimport on both servers


def test_gimport_imports_what_each_server_serves(any_server_user: ImapUser, tmp_path, emulator, monkeypatch, capsys):
    """The parametrisation the integration tests can use: seed what the server accepts, compare Gmail with what
    the server then serves (here Cyrus turns the 8-bit Subject into X's)."""
    from tests.helpers import run
    from tests.rig.workspace import EMAIL, make_workspace

    server = any_server_user.server
    messages = [
        SeedMessage(_msg(1), flags=("\\Seen",)),
        SeedMessage("Subject: 件名\r\nDate: Thu, 02 Jan 2020 03:04:05 +0000\r\n\r\n本文\r\n".encode()),
        SeedMessage(b"Subject: nul\r\nDate: Thu, 02 Jan 2020 03:04:05 +0000\r\n\r\na\0b\r\n"),
    ]
    accepted = [m for m in messages if server.can_store(m.raw)]
    assert len(accepted) == (3 if server.kind == "dovecot" else 2)
    any_server_user.seed("仕事/報告書", accepted)
    served = any_server_user.snapshot()
    ws = make_workspace(tmp_path, server=server, user=any_server_user.name, emulator=emulator, email=EMAIL)
    monkeypatch.setenv("GIMPORT_GMAIL_API_URL", emulator.base_url)
    rc, _ = run(ws, capsys=capsys)
    assert rc == 0
    got = sorted(hashlib.sha256(m.raw).hexdigest() for m in emulator.user(EMAIL).messages)
    if server.kind == "cyrus":  # what Cyrus serves (X's in the header), not what was seeded
        assert got == sorted(e.sha256 for entries in served.values() for e in entries)
        assert hashlib.sha256(accepted[1].raw).hexdigest() not in got
    else:  # Dovecot serves the NUL as 0x80 in BODY[]; gimport restores it through BINARY
        assert got == sorted(hashlib.sha256(m.raw).hexdigest() for m in accepted)

"""The fault-injecting IMAP server (tests/rig/fault_imap.py): it serves well, and each fault does what it says."""

from __future__ import annotations

import datetime as dt
import imaplib
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError, LoginError

from tests.rig.fault_imap import (
    READ_ONLY_COMMANDS,
    FaultFolder,
    FaultImapServer,
    FaultMessage,
    Faults,
    Mailbox,
    many_messages,
)

JST = dt.timezone(dt.timedelta(hours=9))


def _raw(i: int) -> bytes:
    return (
        b"Date: Thu, 02 Jan 2020 03:04:05 +0000\r\nMessage-ID: <m%d@test>\r\nSubject: message %d\r\n\r\nbody %d\r\n"
        % ((i,) * 3)
    )


def _mailbox() -> Mailbox:
    return Mailbox(
        [
            FaultFolder(
                "INBOX",
                [
                    FaultMessage(
                        1, _raw(1), flags=("\\Seen",), internaldate=dt.datetime(2020, 1, 1, 12, tzinfo=dt.UTC)
                    ),
                    FaultMessage(2, _raw(2), flags=("\\Seen", "\\Flagged")),
                    FaultMessage(5, _raw(5), internaldate=dt.datetime(2023, 6, 1, 8, 30, tzinfo=JST)),
                ],
                uidvalidity=77,
            ),
            FaultFolder("仕事/報告", [FaultMessage(3, _raw(3))], uidvalidity=78),
            FaultFolder("Sent", [], uidvalidity=79, attributes=("\\Sent",)),
        ]
    )


@contextmanager
def _serve(faults: Faults | None = None, mailbox: Mailbox | None = None, **kw) -> Iterator[FaultImapServer]:
    srv = FaultImapServer(mailbox or _mailbox(), faults, **kw)
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()
        assert not srv.errors, srv.errors


def _client(
    srv: FaultImapServer, *, login: bool = True, timeout: float = 10, normalise_times: bool = True
) -> IMAPClient:
    c = IMAPClient(srv.host, port=srv.plain_port, ssl=False, timeout=timeout)
    c.normalise_times = normalise_times
    if login:
        c.login(srv.user, srv.password(srv.user))
    return c


class Raw:
    """A byte-level client: to see exactly what the server sends."""

    def __init__(self, srv: FaultImapServer, timeout: float = 10) -> None:
        self.sock = socket.create_connection((srv.host, srv.plain_port), timeout=timeout)
        self.file = self.sock.makefile("rb")
        self.greeting = self.file.readline()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def until(self, tag: bytes) -> bytes:
        """Everything up to and including the tagged line (or EOF)."""
        out = bytearray()
        while True:
            line = self.file.readline()
            out += line
            if not line or line.startswith(tag + b" "):
                return bytes(out)

    def cmd(self, tag: bytes, text: bytes) -> bytes:
        self.send(tag + b" " + text + b"\r\n")
        return self.until(tag)

    def rest(self) -> bytes:
        """Everything until the server closes."""
        return self.file.read()

    def close(self) -> None:
        self.file.close()
        self.sock.close()


def _logged_in(srv: FaultImapServer, folder: bytes | None = b"INBOX") -> Raw:
    r = Raw(srv)
    assert b" OK " in r.cmd(b"a", b"LOGIN alice secret")
    if folder is not None:
        assert b" OK " in r.cmd(b"b", b"EXAMINE " + folder)
    return r


# --------------------------------------------------------------------------- serving well


def test_serves_what_gimport_uses_read_only() -> None:
    with _serve() as srv:
        with _client(srv, normalise_times=False) as c:
            assert b"IMAP4REV1" in c.capabilities()
            folders = c.list_folders()
            assert [(f, d, n) for f, d, n in folders] == [
                ((), b"/", "INBOX"),
                ((), b"/", "仕事/報告"),
                ((b"\\Sent",), b"/", "Sent"),
            ]
            info = c.select_folder("INBOX", readonly=True)
            assert (info[b"EXISTS"], info[b"UIDVALIDITY"], info[b"UIDNEXT"]) == (3, 77, 6)
            assert c.search(["ALL"]) == [1, 2, 5]
            assert c.search(["SINCE", dt.date(2021, 1, 1)]) == [5]
            assert c.search(["BEFORE", dt.date(2021, 1, 1)]) == [1, 2]
            meta = c.fetch([1, 2, 5], ["RFC822.SIZE", "FLAGS", "INTERNALDATE"])
            assert meta[2][b"FLAGS"] == (b"\\Seen", b"\\Flagged")
            assert meta[1][b"RFC822.SIZE"] == len(_raw(1))
            assert meta[5][b"INTERNALDATE"] == dt.datetime(2023, 6, 1, 8, 30, tzinfo=JST)
            bodies = c.fetch([1, 5], ["BODY.PEEK[]", "BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]"])
            assert bodies[5][b"BODY[]"] == _raw(5)
            assert bodies[5][b"BODY[HEADER.FIELDS (MESSAGE-ID)]"] == b"Message-ID: <m5@test>\r\n\r\n"
            typ, data = c._imap.uid("FETCH", "5", "(BINARY.PEEK[])")
            assert typ == "OK"
            assert data[0][1] == _raw(5)
            assert c.folder_status("仕事/報告", ["MESSAGES", "UIDVALIDITY", "UIDNEXT"]) == {
                b"MESSAGES": 1,
                b"UIDVALIDITY": 78,
                b"UIDNEXT": 4,
            }
            c.noop()
        names = srv.command_names()
        assert {"LOGIN", "LIST", "EXAMINE", "UID SEARCH", "UID FETCH", "STATUS", "NOOP", "LOGOUT"} <= names
        assert names <= READ_ONLY_COMMANDS


def test_wrong_password_and_writes_are_refused_and_recorded() -> None:
    with _serve() as srv:
        c = _client(srv, login=False)
        with pytest.raises(LoginError):
            c.login("alice", "wrong")
        c.shutdown()
        r = _logged_in(srv, folder=None)
        assert b"[READ-WRITE]" in r.cmd(b"s", b"SELECT INBOX")  # answered, and recorded for tests to refuse
        assert b"s2 NO" in r.cmd(b"s2", b"UID STORE 1 +FLAGS (\\Deleted)")
        assert b"s3 NO" in r.cmd(b"s3", b"EXPUNGE")
        r.close()
        assert {"SELECT", "UID STORE", "EXPUNGE"} <= srv.command_names()
        assert not srv.command_names() <= READ_ONLY_COMMANDS


def test_crlf_in_a_user_name_is_recorded_as_a_second_command_and_literals_are_not_split() -> None:
    with _serve() as srv:
        r = Raw(srv)
        r.send(b"a LOGIN alice\r\nX1 DELETE INBOX\r\n")
        r.until(b"X1")
        user = b"alice\r\nX2 DELETE INBOX"
        r.send(b"b LOGIN {%d+}\r\n%s secret\r\n" % (len(user), user))
        assert b"b NO" in r.until(b"b")
        r.close()
        assert [c.raw for c in srv.commands_named("DELETE")] == [b"X1 DELETE INBOX"]
        assert srv.commands_named("LOGIN")[1].raw == b"b LOGIN {%d+}\r\n%s secret" % (len(user), user)


def test_synchronising_literal_gets_a_continuation() -> None:
    with _serve() as srv:
        r = Raw(srv)
        r.send(b"a LOGIN {5}\r\n")
        assert r.file.readline().startswith(b"+")
        r.send(b"alice secret\r\n")
        assert b"a OK" in r.until(b"a")
        r.close()


# --------------------------------------------------------------------------- the faults, one by one


def test_search_answer_over_a_million_bytes_on_one_line() -> None:
    folder = FaultFolder("INBOX", many_messages(130_000, first_uid=1_000_000))
    with _serve(mailbox=Mailbox([folder])) as srv:
        r = _logged_in(srv)
        answer = r.cmd(b"c", b"UID SEARCH ALL")
        first = answer.split(b"\r\n", 1)[0]
        assert first.startswith(b"* SEARCH 1000000 1000001")
        assert len(first) > 1_000_000
        r.close()
        with _client(srv) as c:
            c.select_folder("INBOX", readonly=True)
            with pytest.raises(IMAPClientError, match="1000000"):  # imaplib's line limit
                c.search(["ALL"])


def test_fetch_error_then_bye_for_one_uid() -> None:
    with _serve(Faults(fetch_error_uids={2})) as srv:
        r = _logged_in(srv)
        meta = r.cmd(b"c", b"UID FETCH 1:5 (UID RFC822.SIZE)")  # metadata still served
        assert meta.count(b" FETCH (") == 3
        assert b"c OK" in meta
        r.send(b"d UID FETCH 1:5 (BODY.PEEK[])\r\n")
        rest = r.rest()
        assert rest.count(b" FETCH (") == 1  # UID 1, then the failure
        assert b"d NO FETCH failed: Internal error" in rest
        assert rest.rstrip().endswith(b"* BYE Internal error occurred. Refer to server log for more information.")
        r.close()
    with _serve(Faults(fetch_error_uids={5}, fetch_error_bye=False, fetch_error_on="any")) as srv:
        r = _logged_in(srv)
        assert b"c NO FETCH failed" in r.cmd(b"c", b"UID FETCH 5 (FLAGS)")
        assert b"d OK" in r.cmd(b"d", b"NOOP")  # still connected
        r.close()


def test_trickle_inside_a_literal() -> None:
    msg = FaultMessage(1, b"Subject: t\r\n\r\nx\r\n")  # 17 bytes
    faults = Faults(trickle_literal_uids={1}, trickle_interval=0.05)
    with _serve(faults, Mailbox([FaultFolder("INBOX", [msg])])) as srv:
        # every read gets a byte well within the client's 0.5 s timeout, yet the whole takes longer
        with _client(srv, timeout=0.5) as c:
            c.select_folder("INBOX", readonly=True)
            t0 = time.monotonic()
            got = c.fetch([1], ["BODY.PEEK[]"])[1][b"BODY[]"]
            elapsed = time.monotonic() - t0
        assert got == msg.raw
        assert elapsed >= len(msg.raw) * 0.05 * 0.9 > 0.5


def test_trickle_a_list_answer() -> None:
    with _serve() as srv:
        r = _logged_in(srv, folder=None)
        size = len(r.cmd(b"l", b'LIST "" "*"'))
        r.close()
    with _serve(Faults(trickle_list=True, trickle_interval=0.005)) as srv:
        r = _logged_in(srv, folder=None)
        t0 = time.monotonic()
        answer = r.cmd(b"l", b'LIST "" "*"')
        elapsed = time.monotonic() - t0
        r.close()
        with _client(srv, timeout=0.5) as c:
            assert len(c.list_folders()) == 3  # IMAPClient reads it whole, one byte per 5 ms
    assert len(answer) == size > 90
    assert elapsed >= (size - 1) * 0.005  # one byte per interval


def test_fetch_without_body_and_without_uid() -> None:
    with _serve(Faults(omit_body_uids={2})) as srv, _client(srv) as c:
        c.select_folder("INBOX", readonly=True)
        data = c.fetch([1, 2], ["BODY.PEEK[]", "FLAGS"])
        assert b"BODY[]" in data[1]
        assert b"BODY[]" not in data[2]
        assert b"FLAGS" in data[2]
    with _serve(Faults(omit_uid=True)) as srv:
        r = _logged_in(srv)
        answer = r.cmd(b"c", b"UID FETCH 2,5 (FLAGS)")
        assert b"* 2 FETCH (FLAGS (\\Seen \\Flagged))" in answer
        assert b"UID" not in answer
        r.close()
    shifted = Mailbox([FaultFolder("INBOX", [FaultMessage(u, _raw(u)) for u in (2, 3, 4)])])
    with _serve(Faults(omit_uid=True), shifted) as srv, _client(srv) as c:
        c.select_folder("INBOX", readonly=True)
        # IMAPClient keys answers without UID by sequence number: UID 3 gets message 4's bytes (the issue-11 trap)
        assert c.fetch([3, 4], ["BODY.PEEK[]"]) == {3: {b"SEQ": 3, b"BODY[]": _raw(4)}}


def test_repeated_uids_in_search() -> None:
    with _serve(Faults(search_repeat=3)) as srv, _client(srv) as c:
        c.select_folder("INBOX", readonly=True)
        assert c.search(["ALL"]) == [1, 1, 1, 2, 2, 2, 5, 5, 5]


def test_invalid_utf7_name_nil_name_and_8bit_delimiter_and_flags() -> None:
    mailbox = Mailbox(
        [
            FaultFolder(b"&ZZZ", [FaultMessage(1, _raw(1), flags=(b"\xe9t\xe9", "\\Seen"))], uidvalidity=5),
            FaultFolder(b"NIL", [FaultMessage(1, _raw(1))], uidvalidity=6),
        ]
    )
    with _serve(Faults(delimiter=b"\xe9"), mailbox) as srv:
        r = _logged_in(srv, folder=None)
        listing = r.cmd(b"l", b'LIST "" "*"')
        assert b'* LIST () "\xe9" &ZZZ\r\n' in listing
        assert b'* LIST () "\xe9" NIL\r\n' in listing
        assert b"[UIDVALIDITY 5]" in r.cmd(b"e", b"EXAMINE &ZZZ")
        assert b"FLAGS (\xe9t\xe9 \\Seen)" in r.cmd(b"f", b"UID FETCH 1 (FLAGS)")
        assert b"[UIDVALIDITY 6]" in r.cmd(b"g", b'EXAMINE "NIL"')
        r.close()
    with _serve(Faults(delimiter=None)) as srv:
        r = _logged_in(srv, folder=None)
        assert b"* LIST () NIL INBOX" in r.cmd(b"l", b'LIST "" "*"')
        r.close()


@pytest.mark.parametrize(
    ("mode", "examine", "status"),
    [("missing", None, b"* STATUS INBOX (MESSAGES 3)"), ("non_numeric", b"[UIDVALIDITY abc]", b"UIDVALIDITY abc")],
)
def test_uidvalidity_missing_or_not_a_number(mode: str, examine: bytes | None, status: bytes) -> None:
    with _serve(Faults(uidvalidity=mode)) as srv:  # type: ignore[arg-type]
        r = _logged_in(srv, folder=None)
        answer = r.cmd(b"e", b"EXAMINE INBOX")
        assert (b"UIDVALIDITY" not in answer) if examine is None else (examine in answer)
        assert status in r.cmd(b"s", b"STATUS INBOX (MESSAGES UIDVALIDITY)")
        r.close()


@pytest.mark.parametrize(
    ("mode", "expected"),
    [("missing", None), ("non_numeric", b"RFC822.SIZE abc"), ("huge", b"RFC822.SIZE 100000000000000000000")],
)
def test_rfc822_size_faults(mode: str, expected: bytes | None) -> None:
    with _serve(Faults(size=mode, size_uids={2})) as srv:  # type: ignore[arg-type]
        r = _logged_in(srv)
        answer = r.cmd(b"c", b"UID FETCH 1:2 (RFC822.SIZE)")
        one, two = answer.split(b"\r\n")[:2]
        assert one == b"* 1 FETCH (UID 1 RFC822.SIZE %d)" % len(_raw(1))  # only size_uids are affected
        assert (b"RFC822.SIZE" not in two) if expected is None else (expected in two)
        r.close()


def test_under_reported_size() -> None:
    big = FaultMessage(1, b"Subject: big\r\n\r\n" + b"x" * 20_000_000)
    with _serve(Faults(size="under"), Mailbox([FaultFolder("INBOX", [big])])) as srv, _client(srv) as c:
        c.select_folder("INBOX", readonly=True)
        data = c.fetch([1], ["RFC822.SIZE", "BODY.PEEK[]"])[1]
        assert data[b"RFC822.SIZE"] == 1000
        assert len(data[b"BODY[]"]) == len(big.raw) > 20_000_000


def test_literal_announcing_ten_to_the_fifteen_bytes() -> None:
    with _serve(Faults(huge_literal_uids={2})) as srv:
        r = _logged_in(srv)
        r.send(b"c UID FETCH 2 (BODY.PEEK[])\r\n")
        rest = r.rest()
        assert rest.startswith(b"* 2 FETCH (UID 2 BODY[] {1000000000000000}\r\n")
        assert len(rest) - rest.index(b"}\r\n") - 3 == len(_raw(2))  # then a few bytes, then the close
        r.close()


def test_uidvalidity_new_in_every_session_stable_within_it() -> None:
    with _serve(Faults(uidvalidity="per_session")) as srv:
        seen = []
        for _ in range(3):
            with _client(srv) as c:
                first = c.select_folder("INBOX", readonly=True)[b"UIDVALIDITY"]
                uids = c.search(["ALL"])
                assert c.folder_status("INBOX", ["UIDVALIDITY"])[b"UIDVALIDITY"] == first
                assert c.select_folder("INBOX", readonly=True)[b"UIDVALIDITY"] == first
                assert c.search(["ALL"]) == uids == [1, 2, 5]
                seen.append(first)
        assert len(set(seen)) == 3


def test_uidvalidity_changes_at_a_reconnect() -> None:
    """Session 1 is dropped at its 4th command (mid-scan); session 2 sees another UIDVALIDITY."""
    faults = Faults(drop_after_commands=4, drop_in_sessions={1}, uidvalidity_change_from_session=2)
    with _serve(faults) as srv:
        c = _client(srv)  # CAPABILITY? LOGIN
        before = c.select_folder("INBOX", readonly=True)[b"UIDVALIDITY"]
        n = len([x for x in srv.commands if x.session == 1])

        def search_past_the_drop() -> None:
            for _ in range(4 - n + 1):
                c.search(["ALL"])

        with pytest.raises((IMAPClientError, OSError, imaplib.IMAP4.abort)):
            search_past_the_drop()
        c.shutdown()
        with _client(srv) as c2:
            after = c2.select_folder("INBOX", readonly=True)[b"UIDVALIDITY"]
            assert c2.search(["ALL"]) == [1, 2, 5]  # session 2 is not dropped
        assert (before, after) == (77, 1077)


def test_drop_after_n_commands() -> None:
    with _serve(Faults(drop_after_commands=3)) as srv:
        r = Raw(srv)
        assert b"a OK" in r.cmd(b"a", b"NOOP")
        assert b"b OK" in r.cmd(b"b", b"NOOP")
        r.send(b"c NOOP\r\n")
        assert r.rest() == b""  # no answer, closed
        r.close()
        assert [c.tag for c in srv.commands] == ["a", "b", "c"]


def test_preauth_greeting() -> None:
    with _serve(Faults(preauth=True)) as srv:
        r = Raw(srv)
        assert r.greeting.startswith(b"* PREAUTH")
        assert b"l OK" in r.cmd(b"l", b'LIST "" "*"')  # authenticated without LOGIN
        assert b"a BAD" in r.cmd(b"a", b"LOGIN alice secret")
        r.close()
        c = IMAPClient(srv.host, port=srv.plain_port, ssl=False, timeout=5)
        assert c._imap.state == "AUTH"
        with pytest.raises(IMAPClientError):
            c.login("alice", "secret")
        c.shutdown()


# --------------------------------------------------------------------------- bounded


def _fault_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("fault-imap")]


def test_stop_ends_a_trickle_and_every_thread() -> None:
    msg = FaultMessage(1, b"Subject: t\r\n\r\n" + b"x" * 1000)
    srv = FaultImapServer(Mailbox([FaultFolder("INBOX", [msg])]), Faults(trickle_literal_uids={1}, trickle_interval=1))
    srv.start()
    r = _logged_in(srv)
    r.send(b"c UID FETCH 1 (BODY.PEEK[])\r\n")
    assert r.file.readline().startswith(b"* 1 FETCH")  # the trickle has begun
    t0 = time.monotonic()
    srv.stop()
    assert time.monotonic() - t0 < 2
    assert not _fault_threads()
    r.close()


def test_stops_by_itself_after_its_lifetime() -> None:
    srv = FaultImapServer(_mailbox(), lifetime=0.3)
    srv.start()
    deadline = time.monotonic() + 5
    while srv.running and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not srv.running
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((srv.host, srv.plain_port), timeout=1).close()
    srv.stop()  # idempotent
    assert not _fault_threads()
    assert any("lifetime" in e for e in srv.errors)


# --------------------------------------------------------------------------- gimport itself against it


def test_gimport_runs_against_the_well_behaved_server(tmp_path, emulator, monkeypatch, capsys) -> None:
    """Without faults the server is good enough for a whole `gimport run`: everything arrives, byte for byte,
    and only read-only commands were sent."""
    from tests.helpers import run
    from tests.rig.workspace import EMAIL, make_workspace

    mailbox = _mailbox()
    with _serve(mailbox=mailbox) as srv:
        ws = make_workspace(tmp_path, server=srv, user=srv.user, emulator=emulator, email=EMAIL, tls=False)
        monkeypatch.setenv("GIMPORT_GMAIL_API_URL", emulator.base_url)
        rc, _ = run(ws, capsys=capsys)
        assert rc == 0
        assert srv.command_names() <= READ_ONLY_COMMANDS
    served = sorted(m.raw for f in mailbox.folders for m in f.messages)
    assert sorted(m.raw for m in emulator.user(EMAIL).messages) == served

"""The test rig itself: a real Dovecot seeded through Maildir++ files, checked through imapclient; the corpus."""

from __future__ import annotations

import collections
import datetime as dt
import email
import email.policy
import hashlib
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientAbortError, IMAPClientError, LoginError

from tests.rig.corpus import make_message, realistic_mailbox, sample_mailbox
from tests.rig.dovecot import Dovecot, DovecotError, ImapUser, SeedMessage

JST = dt.timezone(dt.timedelta(hours=9))
SPECIAL = {b"\\sent", b"\\junk", b"\\trash", b"\\drafts", b"\\archive", b"\\all", b"\\flagged"}


def _msg(i: int, **kw) -> bytes:
    return make_message(subject=f"message {i}", body=f"body {i}\n", sender="a@example.com", to="b@example.com", **kw)


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _pgid(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[3])
    except OSError:
        return None


def _processes_mentioning(text: str) -> list[int]:
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit() and _alive(int(entry.name)):
            try:
                cmdline = Path(entry.path, "cmdline").read_bytes()
            except OSError:
                continue
            if text.encode() in cmdline:
                found.append(int(entry.name))
    return found


def _folders(client: IMAPClient) -> dict[str, tuple[set[bytes], bytes]]:
    return {name: ({f.lower() for f in flags}, delim) for flags, delim, name in client.list_folders()}


@pytest.fixture(params=["imap_user", "imap_user_dot"])
def any_user(request: pytest.FixtureRequest) -> ImapUser:
    """The test runs once with a "/" user and once with a "." user."""
    return request.getfixturevalue(request.param)


@pytest.fixture
def own_dovecot() -> Iterator[Dovecot]:
    """A private, not yet started instance, for tests that stop or break it."""
    workdir = Path(tempfile.mkdtemp(prefix="gimport-dovecot-own-"))
    workdir.chmod(0o755)
    dv = Dovecot(workdir)
    try:
        yield dv
    finally:
        dv.stop()
        shutil.rmtree(workdir, ignore_errors=True)


# --------------------------------------------------------------------------- connecting


def test_tls_login_verifies_the_generated_certificate(dovecot_server: Dovecot, imap_user: ImapUser) -> None:
    ctx = ssl.create_default_context(cafile=str(dovecot_server.ca_file))
    assert ctx.check_hostname
    assert ctx.verify_mode == ssl.CERT_REQUIRED
    ctx.verify_flags |= ssl.VERIFY_X509_STRICT  # Python 3.13's default; keep the rig's cert acceptable to it
    for host in ("localhost", "127.0.0.1"):  # both are in the certificate's subjectAltName
        with IMAPClient(host, port=dovecot_server.tls_port, ssl=True, ssl_context=ctx) as client:
            assert client.login(imap_user.name, imap_user.password) == b"Logged in"
            assert client.select_folder("INBOX")[b"EXISTS"] == 0
    # The check is real: a client trusting only the usual public CAs refuses the rig's certificate.
    with pytest.raises(ssl.SSLCertVerificationError):
        IMAPClient("localhost", port=dovecot_server.tls_port, ssl=True, ssl_context=ssl.create_default_context())


def test_plain_port_login_and_user_added_after_start(dovecot_server: Dovecot, imap_user: ImapUser) -> None:
    assert dovecot_server.running
    with imap_user.connect():  # an auth lookup right before the new user appears (same second)
        password = dovecot_server.add_user("late_user", separator="/")
    with IMAPClient(dovecot_server.host, port=dovecot_server.plain_port, ssl=False) as client:
        assert client.login("late_user", password) == b"Logged in"
        assert b"SPECIAL-USE" in client.capabilities()


def test_wrong_password_is_a_login_error(dovecot_server: Dovecot, imap_user: ImapUser) -> None:
    with IMAPClient(dovecot_server.host, port=dovecot_server.plain_port, ssl=False) as client:
        with pytest.raises(LoginError, match="AUTHENTICATIONFAILED"):
            client.login(imap_user.name, imap_user.password + "x")
        assert client.login(imap_user.name, imap_user.password) == b"Logged in"


def test_kill_connections_drops_only_that_users_sessions(
    dovecot_server: Dovecot, imap_user: ImapUser, imap_user_dot: ImapUser
) -> None:
    plain, tls, other = imap_user.connect(), imap_user.connect(tls=True), imap_user_dot.connect()
    try:
        plain.select_folder("INBOX")
        assert dovecot_server.kill_connections(imap_user.name) == 2
        for client in (plain, tls):
            with pytest.raises((IMAPClientAbortError, OSError)):
                client.noop()
        other.noop()
        with imap_user.connect() as again:  # a reconnect works
            assert again.select_folder("INBOX")[b"EXISTS"] == 0
    finally:
        for client in (plain, tls, other):
            client.shutdown()


# --------------------------------------------------------------------------- folders


def test_list_nested_folders_with_the_users_separator(any_user: ImapUser) -> None:
    sep = any_user.separator
    any_user.seed("Work/2024/Q1", [SeedMessage(_msg(1))])
    with any_user.connect() as client:
        assert b"\\noselect" in _folders(client)["Work"][0]
        any_user.create_folder("Work")  # created explicitly: selectable; "Work/2024" was not: \Noselect
        folders = _folders(client)
        assert set(folders) == {"INBOX", "Work", f"Work{sep}2024", f"Work{sep}2024{sep}Q1"}
        assert {delim for _, delim in folders.values()} == {sep.encode()}
        assert b"\\noselect" in folders[f"Work{sep}2024"][0]
        assert b"\\noselect" not in folders["Work"][0]
        assert b"\\haschildren" in folders["Work"][0]
        assert client.select_folder(f"Work{sep}2024{sep}Q1")[b"EXISTS"] == 1
        assert client.select_folder("Work")[b"EXISTS"] == 0


def test_japanese_folder_name_round_trip(dovecot_server: Dovecot, any_user: ImapUser) -> None:
    any_user.seed("仕事/報告書", [SeedMessage(_msg(1)), SeedMessage(_msg(2))])
    on_disk = dovecot_server.folder_path(any_user.name, "仕事/報告書")
    assert on_disk.name == ".&TtVOiw-.&WDFUSmb4-"  # modified UTF-7
    assert (on_disk / "maildirfolder").exists()
    assert (on_disk / "cur").is_dir()
    name = f"仕事{any_user.separator}報告書"
    with any_user.connect() as client:
        folders = _folders(client)
        assert name in folders
        assert b"\\noselect" in folders["仕事"][0]
        assert client.folder_status(name, ["MESSAGES"])[b"MESSAGES"] == 2
        assert client.select_folder(name, readonly=True)[b"EXISTS"] == 2


def test_special_use_flags_on_the_well_known_names_only(any_user: ImapUser) -> None:
    names = ["Sent", "Junk", "Trash", "Drafts", "送信済み", "Archive", "Sent Items"]
    for name in names:
        any_user.create_folder(name)
    with any_user.connect() as client:
        folders = _folders(client)
    special = {name: folders[name][0] & SPECIAL for name in names}
    assert special == {
        "Sent": {b"\\sent"},
        "Junk": {b"\\junk"},
        "Trash": {b"\\trash"},
        "Drafts": {b"\\drafts"},
        "送信済み": set(),
        "Archive": set(),
        "Sent Items": set(),
    }


def test_delete_folder_while_sessions_are_open(any_user: ImapUser) -> None:
    sep = any_user.separator
    any_user.seed("Gone", [SeedMessage(_msg(1))])
    any_user.seed("Old", [SeedMessage(_msg(2))])
    any_user.seed("Old/Child", [SeedMessage(_msg(3))])
    lister, reader = any_user.connect(), any_user.connect()
    try:
        assert {"Gone", "Old", f"Old{sep}Child"} <= set(_folders(lister))
        reader.select_folder("Gone", readonly=True)
        with pytest.raises(ValueError, match="subfolders"):
            any_user.delete_folder("Old")
        any_user.delete_folder("Gone")
        any_user.delete_folder("Old", recursive=True)
        assert set(_folders(lister)) == {"INBOX"}  # the open session sees it at its next LIST
        with pytest.raises(IMAPClientError, match="exist"):
            lister.select_folder("Gone")
        with pytest.raises(IMAPClientAbortError):  # Dovecot drops a session whose folder vanished
            reader.fetch([1], ["BODY.PEEK[]"])
    finally:
        lister.shutdown()
        reader.shutdown()
    with pytest.raises(FileNotFoundError):
        any_user.delete_folder("Gone")


def test_reset_uidvalidity_keeps_the_messages(any_user: ImapUser) -> None:
    any_user.seed("Work", [SeedMessage(_msg(i), ("\\Seen",) if i % 2 else ()) for i in range(3)])
    any_user.seed("INBOX", [SeedMessage(_msg(9))])
    before = any_user.snapshot()
    with any_user.connect() as client:
        old = client.folder_status("Work", ["UIDVALIDITY"])[b"UIDVALIDITY"]
        old_inbox = client.folder_status("INBOX", ["UIDVALIDITY"])[b"UIDVALIDITY"]
    new = any_user.reset_uidvalidity("Work")
    assert isinstance(new, int)
    assert new != old
    with any_user.connect() as client:
        assert client.select_folder("Work", readonly=True)[b"UIDVALIDITY"] == new
        assert client.folder_status("INBOX", ["UIDVALIDITY"])[b"UIDVALIDITY"] == old_inbox
    after = any_user.snapshot()

    def content(snap):
        return {f: [(e.flags, e.sha256, e.internaldate) for e in entries] for f, entries in snap.items()}

    assert content(after) == content(before)
    assert len(after["Work"]) == 3


# --------------------------------------------------------------------------- messages


def test_flags_and_internaldate_as_seeded(imap_user: ImapUser) -> None:
    seeded = [
        ((), dt.datetime(2015, 1, 1, 0, 0, 0, tzinfo=dt.UTC)),
        (("\\Seen",), dt.datetime(2019, 6, 30, 23, 59, 59, tzinfo=JST)),
        (("\\Answered", "\\Flagged", "\\Seen"), dt.datetime(2020, 2, 29, 12, 0, 0, tzinfo=dt.UTC)),
        (("\\Draft",), dt.datetime(2021, 3, 14, 1, 59, 26, tzinfo=dt.timezone(dt.timedelta(hours=-5)))),
        (("\\Deleted", "\\Seen"), dt.datetime(2024, 12, 31, 23, 59, 59, tzinfo=dt.UTC)),
        (("$Forwarded", "\\Seen", "$label1"), dt.datetime(2022, 7, 1, 9, 30, 0, tzinfo=JST)),
    ]
    imap_user.seed("INBOX", [SeedMessage(_msg(i), flags, when) for i, (flags, when) in enumerate(seeded)])
    with imap_user.connect(normalise_times=False) as client:
        client.select_folder("INBOX", readonly=True)
        data = client.fetch(client.search("ALL"), ["FLAGS", "INTERNALDATE", "BODY.PEEK[]"])
    assert len(data) == len(seeded)
    for (flags, when), uid in zip(seeded, sorted(data), strict=True):
        got = {f.decode() for f in data[uid][b"FLAGS"]} - {"\\Recent"}
        assert got == set(flags)
        assert data[uid][b"INTERNALDATE"] == when
    assert [data[uid][b"BODY[]"] for uid in sorted(data)] == [_msg(i) for i in range(len(seeded))]


def test_body_peek_is_byte_exact_and_leaves_seen_unset(imap_user: ImapUser) -> None:
    raws = [
        make_message(
            subject="件名テスト",
            body="本文です。\n",
            sender="山田 <y@example.jp>",
            to="b@example.jp",
            charset="shift_jis",
            eight_bit=True,
        ),
        make_message(
            subject="添付",
            body="資料です。\n",
            sender="a@example.jp",
            to="b@example.jp",
            charset="iso-2022-jp",
            attachment_size=150_000,
            attachment_name="資料.pdf",
        ),
    ]
    assert any(b > 0x7F for b in raws[0].partition(b"\r\n\r\n")[0])  # 8-bit bytes in the header
    imap_user.seed("INBOX", [SeedMessage(raw) for raw in raws])
    with imap_user.connect() as client:
        client.select_folder("INBOX")  # read-write, so a non-peek fetch would set \Seen
        uids = client.search("ALL")
        bodies = client.fetch(uids, ["BODY.PEEK[]"])
        assert [bodies[u][b"BODY[]"] for u in uids] == raws
        assert all(b"\\Seen" not in flags for flags in client.get_flags(uids).values())
        client.fetch(uids[:1], ["BODY[]"])  # control: without PEEK the server does set \Seen
        assert b"\\Seen" in client.get_flags(uids[:1])[uids[0]]


def test_seeding_2000_messages_keeps_their_order(imap_user: ImapUser) -> None:
    msgs = [SeedMessage(b"Subject: %d\r\n\r\nbody %d\r\n" % (i, i)) for i in range(2000)]
    imap_user.seed("Bulk", msgs[:1990])
    imap_user.seed("Bulk", msgs[1990:])  # a second call appends after the first
    with imap_user.connect() as client:
        assert client.folder_status("Bulk", ["MESSAGES"])[b"MESSAGES"] == 2000
        client.select_folder("Bulk", readonly=True)
        uids = client.search("ALL")
        assert uids == list(range(1, 2001))
        probe = [1, 2, 1000, 1990, 1991, 2000]
        data = client.fetch(probe, ["BODY.PEEK[]"])
    assert {uid: data[uid][b"BODY[]"] for uid in probe} == {uid: msgs[uid - 1].raw for uid in probe}


def test_snapshot_is_exact_and_read_only(imap_user: ImapUser) -> None:
    when = dt.datetime(2018, 5, 6, 7, 8, 9, tzinfo=JST)
    imap_user.seed("INBOX", [SeedMessage(_msg(1), (), when), SeedMessage(_msg(2), ("\\Flagged",), when)])
    imap_user.seed("仕事/報告書", [SeedMessage(_msg(3), ("\\Seen",), when)])
    snap = imap_user.snapshot()
    assert set(snap) == {"INBOX", "仕事/報告書"}  # the \Noselect parent "仕事" holds nothing
    got = {f: [(e.uid, e.flags, e.sha256, e.internaldate) for e in entries] for f, entries in snap.items()}
    sha = [hashlib.sha256(_msg(i)).hexdigest() for i in (1, 2, 3)]
    assert got == {
        "INBOX": [(1, (), sha[0], when), (2, ("\\Flagged",), sha[1], when)],
        "仕事/報告書": [(1, ("\\Seen",), sha[2], when)],
    }
    assert imap_user.snapshot() == snap  # and taking it set no \Seen


def test_sample_mailbox_round_trip(imap_user_dot: ImapUser) -> None:
    mailbox = sample_mailbox()
    for folder, msgs in mailbox.items():
        imap_user_dot.seed(folder, msgs)
    snap = imap_user_dot.snapshot()
    assert set(snap) == {imap_user_dot.folder_name(f) for f in mailbox}
    for folder, msgs in mailbox.items():
        entries = snap[imap_user_dot.folder_name(folder)]
        # Dovecot serves a NUL byte as 0x80; everything else comes back byte for byte.
        assert [e.sha256 for e in entries] == [hashlib.sha256(m.raw.replace(b"\0", b"\x80")).hexdigest() for m in msgs]
        assert [e.flags for e in entries] == [tuple(sorted(m.flags)) for m in msgs]
        assert [e.internaldate for e in entries] == [m.internaldate.replace(microsecond=0) for m in msgs]


# --------------------------------------------------------------------------- lifecycle


def test_stop_leaves_no_dovecot_process(own_dovecot: Dovecot) -> None:
    own_dovecot.add_user("alice", "secret")
    own_dovecot.start()
    client = own_dovecot.connect("alice", tls=True)  # a live session: an imap and an imap-login process
    try:
        client.select_folder("INBOX")
        pids = own_dovecot.process_ids()
        names = {Path(f"/proc/{p}/cmdline").read_bytes().split(b"\0")[0] for p in pids}
        assert {b"dovecot/imap", b"dovecot/imap-login", b"dovecot/auth", b"dovecot/log"} <= names
        assert _processes_mentioning(str(own_dovecot.config_path)) == [own_dovecot.pid]
        own_dovecot.stop()
        assert [p for p in pids if _alive(p)] == []
        assert _processes_mentioning(str(own_dovecot.config_path)) == []
        assert own_dovecot.pid is None
        assert not own_dovecot.running
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((own_dovecot.host, own_dovecot.plain_port), timeout=5)
    finally:
        client.shutdown()


def test_restart_keeps_ports_and_mail_and_start_failure_shows_the_log(own_dovecot: Dovecot) -> None:
    own_dovecot.add_user("alice", "secret", separator=".")
    own_dovecot.seed("alice", "A/B", [SeedMessage(_msg(1))])
    with own_dovecot:
        ports = own_dovecot.plain_port, own_dovecot.tls_port
    own_dovecot.start()
    assert (own_dovecot.plain_port, own_dovecot.tls_port) == ports
    with own_dovecot.connect("alice", tls=True) as client:
        assert client.select_folder("A.B")[b"EXISTS"] == 1
    own_dovecot.stop()
    # someone else took the port meanwhile
    with (
        socket.create_server((own_dovecot.host, ports[0])),
        pytest.raises(DovecotError, match="Address already in use"),
    ):
        own_dovecot.start()
    assert not own_dovecot.running


def test_a_killed_runner_takes_its_dovecot_along(own_dovecot: Dovecot) -> None:
    # A child Python starts an instance in own_dovecot's workdir and is then killed with SIGKILL, so no
    # finalizer runs: PR_SET_PDEATHSIG must bring the whole Dovecot process group down.
    script = (
        "import sys; from tests.rig.dovecot import Dovecot\n"
        f"dv = Dovecot({str(own_dovecot.workdir / 'child')!r}); dv.start()\n"
        "print(dv.pid, flush=True); sys.stdin.read()\n"
    )
    runner = subprocess.Popen(
        [sys.executable, "-c", script],
        cwd=Path(__file__).parent.parent,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        master = int(runner.stdout.readline())
        group = [p for p in map(int, filter(str.isdigit, os.listdir("/proc"))) if _alive(p) and _pgid(p) == master]
        assert master in group
        assert len(group) >= 4
    finally:
        runner.kill()
        runner.wait()
        runner.stdin.close()
        runner.stdout.close()
    deadline = time.monotonic() + 10
    while (alive := [p for p in group if _alive(p)]) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert alive == []


def test_workdir_must_be_traversable_by_nobody() -> None:
    private = Path(tempfile.mkdtemp(prefix="gimport-private-"))  # mode 0700
    try:
        with pytest.raises(DovecotError, match="not traversable"):
            Dovecot(private / "dv")
    finally:
        shutil.rmtree(private)


def test_seed_rejects_what_maildir_cannot_hold(dovecot_server: Dovecot, imap_user: ImapUser) -> None:
    for bad in ("a.b/c", "a//b", "/a", ""):
        with pytest.raises(ValueError, match="folder"):
            imap_user.seed(bad, [])
    with pytest.raises(ValueError, match="system flag"):
        imap_user.seed("INBOX", [SeedMessage(b"x", ("\\Important",))])
    with pytest.raises(ValueError, match="timezone-aware"):
        SeedMessage(b"x", (), dt.datetime(2020, 1, 1))
    with pytest.raises(KeyError):
        dovecot_server.seed("nosuchuser", "INBOX", [])


# --------------------------------------------------------------------------- corpus (no server)


def test_corpus_is_deterministic() -> None:
    assert sample_mailbox(60, seed=3) == sample_mailbox(60, seed=3)
    assert sample_mailbox(60, seed=3) != sample_mailbox(60, seed=4)
    assert realistic_mailbox(50, seed=1) == realistic_mailbox(50, seed=1)


def test_sample_mailbox_contents() -> None:
    mailbox = sample_mailbox()
    msgs = [m for folder in mailbox.values() for m in folder]
    assert len(msgs) == 300
    assert all(mailbox.values())
    charsets: collections.Counter[str] = collections.Counter()
    cases: collections.defaultdict[str, list[str]] = collections.defaultdict(list)
    for folder, folder_msgs in mailbox.items():
        assert [m.internaldate for m in folder_msgs] == sorted(m.internaldate for m in folder_msgs)
        for m in folder_msgs:
            assert b"\n" not in m.raw.replace(b"\r\n", b"")
            assert b"\r" not in m.raw.replace(b"\r\n", b"")
            assert 2015 <= m.internaldate.year <= 2024
            parsed = email.message_from_bytes(m.raw, policy=email.policy.default)
            charsets[
                (next(parsed.walk()) if not parsed.is_multipart() else parsed.get_body()).get_content_charset()
            ] += 1
            if case := parsed["X-Corpus-Case"]:
                cases[case].append(folder)
    assert 0.15 <= charsets["iso-2022-jp"] / 300 <= 0.35
    assert 0.04 <= charsets["shift_jis"] / 300 <= 0.16
    assert {k: len(v) for k, v in cases.items()} == {
        "attachment": 6,
        "no-date": 1,
        "no-message-id": 1,
        "eight-bit-header": 1,
        "nul-byte": 1,
        "duplicate-id": 2,
    }
    assert sorted(cases["duplicate-id"]) == ["Archive/2021", "Projects/gimport/Design"]
    dup = [m for m in mailbox["Archive/2021"] + mailbox["Projects/gimport/Design"] if b"duplicate-id" in m.raw]
    assert dup[0].raw == dup[1].raw
    assert dup[0].flags != dup[1].flags
    flags = collections.Counter(f for m in msgs for f in m.flags)
    assert flags["\\Seen"] > 200
    assert flags["\\Flagged"] > 0
    assert flags["\\Answered"] > 0
    assert flags["\\Seen"] < 300


def test_make_message_japanese_encodings() -> None:
    jis = make_message(
        subject="会議の議事録",
        body="本日の会議です。\n",
        sender="山田 太郎 <t@example.jp>",
        to="b@example.jp",
        charset="iso-2022-jp",
    )
    assert jis.isascii()
    assert b"Subject: =?ISO-2022-JP?B?" in jis
    assert b"\x1b$B" in jis
    parsed = email.message_from_bytes(jis, policy=email.policy.default)
    assert parsed["Subject"] == "会議の議事録"
    assert parsed["From"].addresses[0].display_name == "山田 太郎"
    assert parsed.get_content().replace("\r\n", "\n") == "本日の会議です。\n"
    sjis = make_message(
        subject="報告",
        body="報告書です。\n",
        sender="a@example.jp",
        to="b@example.jp",
        charset="shift_jis",
        attachment_size=12_345,
        no_date=True,
        message_id=None,
    )
    parsed = email.message_from_bytes(sjis, policy=email.policy.default)
    assert parsed["Date"] is None
    assert parsed["Message-ID"] is None
    assert parsed.get_body()["Content-Transfer-Encoding"] == "8bit"
    assert "報告書です。".encode("shift_jis") in sjis
    assert parsed.get_body().get_content().replace("\r\n", "\n") == "報告書です。\n"
    assert len(next(parsed.iter_attachments()).get_content()) == 12_345


def test_realistic_mailbox_sizes() -> None:
    mailbox = realistic_mailbox(2000, avg_kb=20)
    sizes = sorted(len(m.raw) for folder in mailbox.values() for m in folder)
    assert len(sizes) == 2000
    assert len(mailbox) >= 5
    assert 17 <= sum(sizes) / len(sizes) / 1024 <= 23
    assert 2_000 <= sizes[len(sizes) // 2] <= 10_000  # most are small
    assert 0.03 <= sum(s >= 100_000 for s in sizes) / len(sizes) <= 0.06
    assert sizes[-1] <= 1_100_000

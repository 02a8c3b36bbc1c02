"""Every message lands on its own date: a corpus of odd Date headers through a real Dovecot (running in Tokyo
time, so a Date without a zone must take the +0900 of its INTERNALDATE) and a local mbox, into the Gmail
emulator dating messages the lenient way and the strict way (the worst plausible Gmail: anything but RFC
5322's strict form is dated at the time of the import)."""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import pytest

from tests.helpers import run
from tests.rig.dovecot import Dovecot, SeedMessage
from tests.rig.gmail_emulator import GmailEmulator
from tests.rig.localmail import MaildirMessage, write_maildir, write_mbox
from tests.rig.odd_dates import CORPUS, MOVED, served
from tests.rig.workspace import EMAIL, make_local_workspace, make_workspace

MINUTE_MS = 60_000
ODD = sum(not case.strict for case in CORPUS)  # the messages whose Date gimport rewrites
UNREADABLE = sum(case.instant is None and case.wall is None for case in CORPUS)  # dated by their INTERNALDATE


@pytest.fixture(scope="module")
def tokyo_dovecot():
    """A Dovecot of its own whose clock reads Tokyo time: it reports INTERNALDATE with +0900."""
    if os.geteuid() != 0:
        pytest.fail("the Dovecot rig needs root: run scripts/test as root", pytrace=False)
    workdir = Path(tempfile.mkdtemp(prefix="gimport-dovecot-tokyo-"))
    workdir.chmod(0o755)
    server = Dovecot(workdir)
    before = os.environ.get("TZ")
    os.environ["TZ"] = "JST-9"  # Dovecot hands TZ to its processes; this process never calls tzset
    try:
        server.start()
    finally:
        if before is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = before
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(params=["lenient", "strict"])
def gmail(request, monkeypatch):
    emu = GmailEmulator(merge_duplicates=False, date_mode=request.param)
    emu.start()
    emu.add_user(EMAIL)
    monkeypatch.setenv("GIMPORT_GMAIL_API_URL", emu.base_url)
    yield emu
    emu.stop()


_users = iter(range(1, 1000))


def imap_workspace(tmp_path, server, emu, extra_toml=""):
    name = f"t{next(_users)}"
    server.add_user(name)
    user = server.user(name)
    messages = [case.message(n) for n, case in enumerate(CORPUS)]
    user.seed("INBOX", [SeedMessage(raw, ("\\Seen",), MOVED) for raw in messages])
    ws = make_workspace(tmp_path, server=server, user=name, emulator=emu, email=EMAIL, extra_toml=extra_toml)
    # Dovecot serves a message stored with bare LF line ends with CRLF (the mbox test keeps LF)
    return ws, [raw if b"\r\n" in raw else raw.replace(b"\n", b"\r\n") for raw in messages]


def by_subject(emu):
    out = {}
    for m in emu.user(EMAIL).messages:
        subject = next(line for line in m.raw.splitlines() if line.startswith(b"Subject: odd date "))
        assert subject not in out, f"stored twice: {subject!r}"
        out[subject] = m
    return out


def assert_on_their_dates(emu, messages, internaldate):
    stored = by_subject(emu)
    assert len(stored) == len(CORPUS)
    wrong = []
    for case, raw in zip(CORPUS, messages, strict=True):
        m = stored[b"Subject: odd date " + case.name.encode()]
        # byte-identical to the served message once the added Date is dropped and X-Original- taken away
        assert (m.raw if case.strict else served(m.raw)) == raw, case.name
        want = int(case.expected(internaldate).timestamp() * 1000)
        if abs(m.internal_date_ms - want) > MINUTE_MS:
            wrong.append((case.name, dt.datetime.fromtimestamp(m.internal_date_ms / 1000, dt.UTC)))
    assert not wrong


def test_odd_dates_from_imap_land_on_their_dates(tmp_path, tokyo_dovecot, gmail, capsys):
    ws, messages = imap_workspace(tmp_path, tokyo_dovecot, gmail)
    rc, _out = run(ws, capsys=capsys)
    assert rc == 0
    # a Date without a zone is in the zone of the server's INTERNALDATE: +0900 here
    assert_on_their_dates(gmail, messages, MOVED)
    # the ledger says which messages gimport changed
    report = tmp_path / "ledger.csv"
    assert run(ws, "report", "--csv", str(report), capsys=capsys)[0] == 0
    rows = list(csv.DictReader(report.open(encoding="utf-8")))
    changed = {int(r["uid"]): r["changed"] for r in rows}
    assert changed == {n + 1: "" if case.strict else "date fixed" for n, case in enumerate(CORPUS)}
    # a second run sends nothing: the state knows the served bytes
    calls = gmail.user(EMAIL).import_calls
    assert run(ws, capsys=capsys)[0] == 0
    assert gmail.user(EMAIL).import_calls == calls


def test_fix_dates_false_sends_the_bytes_untouched(tmp_path, tokyo_dovecot, gmail, capsys):
    ws, messages = imap_workspace(tmp_path, tokyo_dovecot, gmail, extra_toml="[import]\nfix_dates = false\n")
    start = time.time()
    rc, _out = run(ws, capsys=capsys)
    assert rc == 0
    stored = by_subject(gmail)
    assert sorted(m.raw for m in stored.values()) == sorted(messages)
    if gmail.date_mode == "strict":
        # what the setting costs under the worst plausible Gmail: every odd date shows the day of the import
        today = [s for s, m in stored.items() if m.internal_date_ms >= start * 1000 - MINUTE_MS]
        assert len(today) == sum(not case.strict for case in CORPUS)


@pytest.mark.parametrize("kind", ["mbox", "maildir"])
def test_odd_dates_from_local_files_land_on_their_dates(tmp_path, gmail, kind, capsys):
    # the last resort for unreadable dates is what the files give as INTERNALDATE (in UTC): an mbox's
    # separator line's date, a Maildir file's modification time
    messages = [case.message(n).replace(b"\r\n", b"\n") for n, case in enumerate(CORPUS)]
    if kind == "mbox":
        separator = b"From old@example.jp " + MOVED.astimezone(dt.UTC).strftime("%a %b %e %H:%M:%S %Y").encode()
        path = write_mbox(tmp_path / "Inbox.mbox", messages, separator=separator)
    else:
        path = tmp_path / "Maildir"
        write_maildir(path, {"INBOX": [MaildirMessage(raw, "S", mtime=MOVED) for raw in messages]})
    ws = make_local_workspace(tmp_path / "ws", kind=kind, path=path, emulator=gmail)
    capsys.readouterr()
    rc, out = run(ws, "plan", "--json", capsys=capsys)
    assert rc == 0
    (folder,) = json.loads(out.out)["folders"]
    assert (folder["dates_to_fix"], folder["dates_unreadable"]) == (ODD, UNREADABLE)
    rc, _out = run(ws, capsys=capsys)
    assert rc == 0
    assert_on_their_dates(gmail, messages, MOVED.astimezone(dt.UTC))


def inbox_plan(ws, capsys):
    """`gimport plan --json`'s INBOX entry, and the whole document."""
    capsys.readouterr()  # what run() echoed of earlier commands
    rc, out = run(ws, "plan", "--json", capsys=capsys)
    assert rc == 0
    plan = json.loads(out.out)
    (inbox,) = [f for f in plan["folders"] if f["folder"] == "INBOX"]
    return inbox, plan


@pytest.mark.parametrize("fix_dates", [True, False])
def test_plan_and_check_count_the_dates(tmp_path, tokyo_dovecot, emulator, monkeypatch, fix_dates, capsys):
    extra = "" if fix_dates else "[import]\nfix_dates = false\n"
    ws, _messages = imap_workspace(tmp_path, tokyo_dovecot, emulator, extra_toml=extra)
    monkeypatch.setenv("GIMPORT_GMAIL_API_URL", emulator.base_url)
    inbox, plan = inbox_plan(ws, capsys)
    assert (inbox["dates_to_fix"], inbox["dates_unreadable"]) == (ODD, UNREADABLE)
    assert plan["fix_dates"] is fix_dates
    rc, out = run(ws, "plan", capsys=capsys)
    assert rc == 0
    text = " ".join(out.out.split())
    if fix_dates:
        assert f"INBOX: {ODD} message(s) get a Date Gmail can read" in text
        assert f"({UNREADABLE} dated by the server's INTERNALDATE" in text
    else:
        assert f"warning: INBOX: {ODD} message(s) have a Date Gmail may not read" in text
    rc, out = run(ws, "check", capsys=capsys)
    assert rc == 0
    assert f"INBOX: {ODD} message(s)" in " ".join(out.out.split())
    # counted before a run; after it, nothing is left to fix
    assert run(ws, capsys=capsys)[0] == 0
    assert inbox_plan(ws, capsys)[0]["dates_to_fix"] == 0

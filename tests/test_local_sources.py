"""Local sources end to end: Maildir++, mbox, Thunderbird and Google Takeout files made here, the real
CLI (plan, run, status, verify), the Gmail emulator (merging off: every re-send is counted) through the
real client library. Every test also checks that the source tree was only read."""

from __future__ import annotations

import datetime as dt
import json
import signal
import sqlite3

import pytest

from tests.helpers import run, run_process, wait_for
from tests.rig.gmail_emulator import Fault
from tests.rig.localmail import (
    MaildirMessage,
    lf,
    maildir_folder_path,
    mbox_entry,
    message,
    takeout_entry,
    takeout_tgz,
    takeout_zip,
    thunderbird_entry,
    tree_snapshot,
    write_maildir,
    write_mbox,
)
from tests.rig.workspace import EMAIL, make_local_workspace


@pytest.fixture
def local(tmp_path, emulator, monkeypatch):
    """make(kind, path, **kw) -> a workspace for that source on the emulator."""
    monkeypatch.setenv("GIMPORT_GMAIL_API_URL", emulator.base_url)

    def make(kind, path, **kw):
        return make_local_workspace(tmp_path / "ws", kind=kind, path=path, emulator=emulator, **kw)

    return make


def stored_by_raw(emu):
    """raw bytes -> [sorted label names] of every stored message (names for user labels, ids for system)."""
    labels = emu.user(EMAIL).labels
    out = {}
    for m in emu.user(EMAIL).messages:
        names = sorted(labels[i]["name"] if labels[i].get("type") == "user" else i for i in m.label_ids)
        out.setdefault(m.raw, []).append(names)
    return out


def done_keys(ws, folder):
    with sqlite3.connect(ws.state) as db:
        (n,) = db.execute(
            "SELECT count(*) FROM messages WHERE folder=? AND status IN ('imported', 'duplicate')", (folder,)
        ).fetchone()
    return n


def only(emu, raw):
    """The labels of the one stored copy of `raw` (fails if it is not stored exactly once)."""
    copies = stored_by_raw(emu).get(raw, [])
    assert len(copies) == 1, (raw[:80], copies)
    return copies[0]


# --------------------------------------------------------------------------------------------- Maildir


def test_maildir_plus_plus_flags_japanese_folders_and_dates(tmp_path, local, emulator, capsys):
    root = tmp_path / "Maildir"
    seen, flagged, new = message(1), message(2), message(3)
    trashed, answered = message(4), message(5)
    nodate = lf(message(6, no_date=True))
    when = dt.datetime(2016, 5, 6, 7, 8, 9, tzinfo=dt.UTC)
    twin = message(7, subject="twin")
    work, report, sent = message(8), message(9), message(10)
    write_maildir(
        root,
        {
            "INBOX": [
                MaildirMessage(seen, "S"),
                MaildirMessage(flagged, "FS"),
                MaildirMessage(new, new=True),
                MaildirMessage(trashed, "ST"),
                MaildirMessage(answered, "RS"),
                MaildirMessage(nodate, "S", mtime=when),
                MaildirMessage(twin, "S"),
                MaildirMessage(twin, "S"),  # the same bytes twice: two messages, two keys
            ],
            "Sent": [MaildirMessage(sent, "S")],
            "仕事": [MaildirMessage(work, "S")],
            "仕事/報告書": [MaildirMessage(report, "")],
        },
    )
    assert (root / ".&TtVOiw-.&WDFUSmb4-").is_dir()  # modified UTF-7 on disk
    before = tree_snapshot(root)
    ws = local("maildir", root)

    rc, out = run(ws, "plan", "--json", capsys=capsys)
    assert rc == 0, out.err
    plan = {f["folder"]: f for f in json.loads(out.out)["folders"]}
    assert plan["仕事/報告書"]["labels"] == ["仕事/報告書"]
    assert plan["INBOX"]["selected"] == 7  # the trashed one is not there

    rc, out = run(ws, capsys=capsys)
    assert rc == 0, out.err
    assert only(emulator, seen) == ["INBOX"]
    assert only(emulator, flagged) == ["INBOX", "STARRED"]
    assert only(emulator, new) == ["INBOX", "UNREAD"]
    assert only(emulator, answered) == ["INBOX"]
    assert trashed not in stored_by_raw(emulator)
    assert only(emulator, sent) == ["SENT"]
    assert only(emulator, work) == ["仕事"]
    assert only(emulator, report) == ["UNREAD", "仕事/報告書"]
    # the Date rule: a message without Date gets one from the file's mtime, in front, nothing else changed
    dated = [raw for raw in stored_by_raw(emulator) if raw.endswith(nodate) and raw != nodate]
    assert dated == [b"Date: Fri, 06 May 2016 07:08:09 +0000\n" + nodate]
    # identical files: two keys, both done (imported twice, or the second recorded as a duplicate when
    # the first was in before it: it depends on the workers' timing, as for two identical IMAP messages)
    assert 1 <= len(stored_by_raw(emulator)[twin]) <= 2
    assert done_keys(ws, "INBOX") == 7
    assert tree_snapshot(root) == before

    # between runs: a mail program marks one read (renaming it) and moves the new one to cur/
    (f_new,) = (root / "new").iterdir()
    f_new.rename(root / "cur" / (f_new.name + ":2,S"))
    (f_report,) = (maildir_folder_path(root, "仕事/報告書") / "cur").iterdir()
    f_report.rename(f_report.with_name(f_report.name + "FS"))
    later = message(11)
    write_maildir(root, {"INBOX": [MaildirMessage(later, "S", name="1700000000.M1P1.later")]})
    calls = emulator.user(EMAIL).import_calls
    rc, out = run(ws, capsys=capsys)
    assert rc == 0, out.err
    assert emulator.user(EMAIL).import_calls == calls + 1  # only the new message
    assert only(emulator, later) == ["INBOX"]

    rc, out = run(ws, "status", capsys=capsys)
    assert rc == 0, out.out
    assert "maildir@local" in out.out
    rc, out = run(ws, "verify", capsys=capsys)
    assert rc == 0, out.out + out.err


# ------------------------------------------------------------------------------------------------ mbox


def test_mbox_folder_of_files_unescapes_and_grows_at_its_end(tmp_path, local, emulator, capsys):
    root = tmp_path / "mail"
    tricky = message(1, body="From here on, a line that starts with From.\n>From quoted\n>>From deeper\nend\n")
    assert b"\nFrom here" in tricky and b"\n>From quoted" in tricky
    plain = [message(n) for n in range(2, 6)]
    write_mbox(root / "inbox", [tricky, *plain[:2]])
    write_mbox(root / "Lists" / "gimport-dev.mbox", plain[2:], variant="mboxo")
    (root / "notes.txt").write_text("not mail")
    before = tree_snapshot(root)
    ws = local("mbox", root)

    rc, out = run(ws, capsys=capsys)
    assert rc == 0, out.err
    assert only(emulator, tricky) == ["INBOX"]  # byte-exact after unescaping; no Status header: read
    assert only(emulator, plain[0]) == ["INBOX"]
    assert only(emulator, plain[2]) == ["Lists/gimport-dev"]
    assert len(emulator.user(EMAIL).messages) == 5
    assert tree_snapshot(root) == before

    # the mbox grows at its end (a mail program appends); a status header is added in place to an old one
    with open(root / "inbox", "ab") as fh:
        fh.write(mbox_entry(message(20)) + mbox_entry(message(21)))
    rc, out = run(ws, capsys=capsys)
    assert rc == 0, out.err
    assert len(emulator.user(EMAIL).messages) == 7
    assert only(emulator, message(20)) == ["INBOX"]


def test_mbox_single_file_with_status_headers(tmp_path, local, emulator, capsys):
    path = tmp_path / "Archive 2019.mbox"
    read, unread, starred = message(1), message(2), message(3)
    path.write_bytes(
        mbox_entry(read, headers=b"Status: RO\n")
        + mbox_entry(unread, headers=b"Status: O\n")
        + mbox_entry(starred, headers=b"Status: RO\nX-Status: F\n")
    )
    ws = local("mbox", path)
    rc, out = run(ws, capsys=capsys)
    assert rc == 0, out.err
    assert only(emulator, b"Status: RO\n" + read) == ["Archive 2019"]
    assert only(emulator, b"Status: O\n" + unread) == ["Archive 2019", "UNREAD"]
    assert only(emulator, b"Status: RO\nX-Status: F\n" + starred) == ["Archive 2019", "STARRED"]

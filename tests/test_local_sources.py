"""Local sources end to end: Maildir++, mbox, Thunderbird and Google Takeout files made here, the real
CLI (plan, run, status, verify), the Gmail emulator (merging off: every re-send is counted) through the
real client library. Every test also checks that the source tree was only read."""

from __future__ import annotations

import datetime as dt
import json
import signal
import sqlite3
import subprocess
import sys
import threading

import pytest

from tests.helpers import run, run_process, wait_for
from tests.rig.gmail_emulator import Fault
from tests.rig.localmail import (
    MaildirMessage,
    big_mbox,
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
                MaildirMessage(answered, "RSab"),  # keywords a and b: dovecot-keywords below
                MaildirMessage(nodate, "S", mtime=when),
                MaildirMessage(twin, "S"),
                MaildirMessage(twin, "S"),  # the same bytes twice: two keys, one message
            ],
            "Sent": [MaildirMessage(sent, "S")],
            "仕事": [MaildirMessage(work, "S")],
            "仕事/報告書": [MaildirMessage(report, "")],
        },
    )
    (root / "dovecot-keywords").write_text("0 $label2\n1 $Forwarded\n")
    assert (root / ".&TtVOiw-.&WDFUSmb4-").is_dir()  # modified UTF-7 on disk
    before = tree_snapshot(root)
    ws = local("maildir", root)

    rc, out = run(ws, "plan", "--json", capsys=capsys)
    assert rc == 0, out.err
    plan = {f["folder"]: f for f in json.loads(out.out)["folders"]}
    assert plan["仕事/報告書"]["labels"] == ["仕事/報告書"]
    assert plan["INBOX"]["selected"] == 7  # the trashed one is not there
    assert plan["INBOX"]["marked_deleted"] == 1
    assert plan["INBOX"]["keyword_labels"] == {"Work": 1}

    rc, out = run(ws, capsys=capsys)
    assert rc == 0, out.err
    assert only(emulator, seen) == ["INBOX"]
    assert only(emulator, flagged) == ["INBOX", "STARRED"]
    assert only(emulator, new) == ["INBOX", "UNREAD"]
    assert only(emulator, answered) == ["INBOX", "Work"]  # $label2 is Thunderbird's "Work"; $Forwarded none
    assert trashed not in stored_by_raw(emulator)
    assert only(emulator, sent) == ["SENT"]
    assert only(emulator, work) == ["仕事"]
    assert only(emulator, report) == ["UNREAD", "仕事/報告書"]
    # the Date rule: a message without Date gets one from the file's mtime, in front, nothing else changed
    dated = [raw for raw in stored_by_raw(emulator) if raw.endswith(nodate) and raw != nodate]
    assert dated == [b"Date: Fri, 06 May 2016 07:08:09 +0000\n" + nodate]
    # identical files: two keys, both done (imported twice, or the second recorded as a duplicate when
    # the first was in before it: it depends on the workers' timing, as for two identical IMAP messages)
    assert len(stored_by_raw(emulator)[twin]) == 1  # copies of one message are one (gimport.engine.copies)
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
    assert b"\nFrom here" in tricky
    assert b"\n>From quoted" in tricky
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
    """Status, X-Status, X-Keywords and X-UID are the mbox server's bookkeeping (Dovecot and UW-IMAP never
    serve them): not imported; their flags are. X-Status "D" (deleted, not yet expunged) is left out."""
    path = tmp_path / "Archive 2019.mbox"
    read, unread, starred, deleted = message(1), message(2), message(3), message(4)
    path.write_bytes(
        mbox_entry(read, headers=b"Status: RO\nX-UID: 7\n")
        + mbox_entry(unread, headers=b"Status: O\nX-Keywords: $Work  \n")
        + mbox_entry(starred, headers=b"Status: RO\nX-Status: F\n")
        + mbox_entry(deleted, headers=b"Status: RO\nX-Status: D\n")
    )
    ws = local("mbox", path)
    rc, out = run(ws, capsys=capsys)
    assert rc == 0, out.err
    assert only(emulator, read) == ["Archive 2019"]
    assert only(emulator, unread) == ["$Work", "Archive 2019", "UNREAD"]  # a keyword is a label
    assert only(emulator, starred) == ["Archive 2019", "STARRED"]
    assert len(emulator.user(EMAIL).messages) == 3


def test_copies_in_several_maildir_folders_are_one_message(tmp_path, local, emulator, capsys):
    """The same bytes in two or three folders (a mail program's "copy to"): one Gmail message with every
    folder's label; TRASH only when every copy is in Trash (gimport.engine.copies, as for IMAP)."""
    root = tmp_path / "Maildir"
    kept, binned, alone = message(1), message(2), message(3)
    write_maildir(
        root,
        {
            "INBOX": [MaildirMessage(kept, "S"), MaildirMessage(alone, "")],
            "Work": [MaildirMessage(kept, "S"), MaildirMessage(binned, "S")],
            "Trash": [MaildirMessage(kept, "S"), MaildirMessage(binned, "S")],
        },
    )
    ws = local("maildir", root)
    rc, out = run(ws, capsys=capsys)
    assert rc == 0, out.err
    assert only(emulator, kept) == ["INBOX", "Work"]
    assert only(emulator, binned) == ["Work"]
    assert only(emulator, alone) == ["INBOX", "UNREAD"]
    assert len(emulator.user(EMAIL).messages) == 3  # 6 copies
    assert done_keys(ws, "Trash") == 2  # each copy recorded, with the one Gmail id
    assert run(ws, "verify", capsys=capsys)[0] == 0


def test_copies_in_two_mbox_files_are_one_message(tmp_path, local, emulator, capsys):
    mail = tmp_path / "mail"
    shared, other = message(10), message(11)
    write_mbox(mail / "inbox", [shared])
    write_mbox(mail / "Lists" / "dev.mbox", [shared, other])
    ws = local("mbox", mail)
    rc, out = run(ws, capsys=capsys)
    assert rc == 0, out.err
    assert only(emulator, shared) == ["INBOX", "Lists/dev"]
    assert only(emulator, other) == ["Lists/dev"]


# ----------------------------------------------------------------------------------------- Thunderbird

READ, REPLIED, MARKED, EXPUNGED = 0x1, 0x2, 0x4, 0x8


def thunderbird_profile(tmp_path):
    """A profile with Local Folders (Inbox with a subfolder, Sent, Trash, an Archives parent that holds
    no mail itself, an empty folder, the .msf summaries and Thunderbird's other files) and an IMAP
    account's cache."""
    profile = tmp_path / "profile.default-release"
    local = profile / "Mail" / "Local Folders"
    msgs = {
        "read": message(1),
        "unread": message(2),
        "flagged": message(3),
        "replied": message(4),
        "expunged": message(5),
        "project": message(6),
        "sent": message(7),
        "y2020": message(8, body="From the archive.\n"),
        "imap": message(9),
    }
    local.mkdir(parents=True)
    inbox = [
        ("read", READ),
        ("unread", 0),
        ("flagged", READ | MARKED),
        ("expunged", READ | EXPUNGED),
        ("replied", READ | REPLIED),
    ]
    (local / "Inbox").write_bytes(b"".join(thunderbird_entry(msgs[k], s) for k, s in inbox))
    (local / "Inbox.sbd").mkdir()
    (local / "Inbox.sbd" / "Projects").write_bytes(
        thunderbird_entry(msgs["project"], READ, "$label1 $label4 $NotJunk &MMYwuTDI-")
    )
    (local / "Sent").write_bytes(thunderbird_entry(msgs["sent"], READ))
    (local / "Archives.sbd").mkdir()
    (local / "Archives.sbd" / "2020").write_bytes(thunderbird_entry(msgs["y2020"], READ))
    (local / "Unsent Messages").write_bytes(b"")
    for name in ("Inbox", "Sent", "Trash", "Unsent Messages", "Inbox.sbd/Projects", "Archives.sbd/2020"):
        (local / (name + ".msf")).write_text('// <!-- <mdb:mork:z v="1.4"/> -->\n')
    (local / "Trash").write_bytes(b"")
    (local / "msgFilterRules.dat").write_text('version="9"\n')
    imap = profile / "ImapMail" / "imap.example.ac.jp"
    imap.mkdir(parents=True)
    (imap / "INBOX").write_bytes(thunderbird_entry(msgs["imap"], 0))
    (profile / "prefs.js").write_text("// prefs\n")
    return profile, local, msgs, inbox


def test_thunderbird_local_folders_flags_expunged_and_compacting(tmp_path, local, emulator, capsys):
    profile, folders, msgs, _inbox = thunderbird_profile(tmp_path)
    before = tree_snapshot(profile)
    ws = local("thunderbird", folders)
    rc, out = run(ws, capsys=capsys)
    assert rc == 0, out.err
    # X-Mozilla-* removed: what Gmail gets is the message as it was received
    assert only(emulator, msgs["read"]) == ["INBOX"]
    assert only(emulator, msgs["unread"]) == ["INBOX", "UNREAD"]
    assert only(emulator, msgs["flagged"]) == ["INBOX", "STARRED"]
    assert only(emulator, msgs["replied"]) == ["INBOX"]
    assert msgs["expunged"] not in stored_by_raw(emulator)
    # the mapping treats INBOX/x as top-level; the tags: Important, To Do, a bookkeeping one, a Japanese one
    assert only(emulator, msgs["project"]) == ["IMPORTANT", "Projects", "To Do", "テスト"]
    assert "1 message(s) marked deleted on the server are left out (Inbox (1))" in out.err + out.out
    assert only(emulator, msgs["sent"]) == ["SENT"]
    assert only(emulator, msgs["y2020"]) == ["Archives/2020"]
    assert len(emulator.user(EMAIL).messages) == 7
    assert not any(b"X-Mozilla" in m.raw for m in emulator.user(EMAIL).messages)
    assert tree_snapshot(profile) == before

    # Thunderbird compacts Inbox (the expunged message goes, every offset moves), marks one read in place
    # and a new one arrives
    compacted = [("unread", READ), ("read", READ), ("flagged", READ | MARKED), ("replied", READ | REPLIED)]
    newer = message(30)
    (folders / "Inbox").write_bytes(
        b"".join(thunderbird_entry(msgs[k], s) for k, s in compacted) + thunderbird_entry(newer, 0)
    )
    calls = emulator.user(EMAIL).import_calls
    rc, out = run(ws, capsys=capsys)
    assert rc == 0, out.err
    assert emulator.user(EMAIL).import_calls == calls + 1
    assert only(emulator, newer) == ["INBOX", "UNREAD"]
    rc, out = run(ws, "verify", capsys=capsys)
    assert rc == 0, out.out + out.err


def test_thunderbird_profile_lists_every_account(tmp_path, local, emulator, capsys):
    profile, _, _msgs, _ = thunderbird_profile(tmp_path)
    ws = local("thunderbird", profile)
    rc, out = run(ws, "plan", "--json", capsys=capsys)
    assert rc == 0, out.err
    plan = {f["folder"]: f for f in json.loads(out.out)["folders"]}
    assert {"Local Folders/Inbox", "Local Folders/Inbox/Projects", "Local Folders/Archives/2020"} <= set(plan)
    assert plan["imap.example.ac.jp/INBOX"]["selected"] == 1
    assert plan["Local Folders/Inbox"]["selected"] == 4
    assert plan["Local Folders/Archives"]["action"] == "noselect"
    assert not any(name.endswith((".msf", ".dat", "prefs.js")) for name in plan)


def test_thunderbird_folders_without_mail_make_no_labels(tmp_path, local, emulator, capsys):
    """Thunderbird keeps empty files for Unsent Messages, Templates, Drafts, parents of subfolders, and
    folders whose messages are all expunged: none of them becomes a label in Gmail."""
    folders = tmp_path / "Local Folders"
    (folders / "Archives.sbd").mkdir(parents=True)
    kept = message(1)
    for name in ("Unsent Messages", "Templates", "Drafts", "Archives", "Archives.sbd/2019"):
        (folders / name).write_bytes(b"")
        (folders / (name + ".msf")).write_text('// <!-- <mdb:mork:z v="1.4"/> -->\n')
    (folders / "Old").write_bytes(thunderbird_entry(message(2), READ | EXPUNGED))
    (folders / "Archives.sbd" / "2020").write_bytes(thunderbird_entry(kept, READ))
    ws = local("thunderbird", folders)
    rc, out = run(ws, "plan", "--json", capsys=capsys)
    assert rc == 0, out.err
    plan = {f["folder"]: f for f in json.loads(out.out)["folders"]}
    assert {n: f["action"] for n, f in plan.items() if f["action"] != "import"} == {
        n: "noselect" for n in ("Unsent Messages", "Templates", "Drafts", "Archives", "Archives/2019", "Old")
    }
    rc, out = run(ws, capsys=capsys)
    assert rc == 0, out.err
    user = [
        lbl["name"]
        for lbl in emulator.user(EMAIL).labels.values()
        if lbl.get("type") == "user" and lbl.get("labelListVisibility") != "labelHide"  # not gimport's marker
    ]
    assert sorted(user) == ["Archives", "Archives/2020"]  # the parent only as the nesting of its subfolder
    assert only(emulator, kept) == ["Archives/2020"]


# --------------------------------------------------------------------------------------------- Takeout

TAKEOUT = {
    # name: (labels as Takeout writes them, the labels Gmail must show)
    "work": (
        ["Inbox", "Important", "Opened", "Category Updates", "Work/Projects"],
        ["CATEGORY_UPDATES", "IMPORTANT", "INBOX", "Work/Projects"],
    ),
    "ja_inbox": (["受信トレイ", "スター付き", "未読", "重要"], ["IMPORTANT", "INBOX", "STARRED", "UNREAD"]),
    "ja_sent": (["送信済みメール", "開封済み"], ["SENT"]),
    "ja_spam": (["迷惑メール", "開封済み"], ["SPAM"]),
    "ja_trash": (["ゴミ箱"], ["TRASH"]),
    "archived": (["Archived", "Opened"], []),
    "ja_report": (["仕事/報告書", "カテゴリ: ソーシャル", "開封済み"], ["CATEGORY_SOCIAL", "仕事/報告書"]),
    "comma": (["Clients, 2024", "Opened"], ["Clients, 2024"]),
    "draft": (["下書き", "Opened"], ["Drafts (imported)"]),
    "project_only": (["Work/Projects", "Unread"], ["UNREAD", "Work/Projects"]),
    "ja_promo": (["カテゴリ プロモーション", "受信トレイ"], ["CATEGORY_PROMOTIONS", "INBOX"]),
}


def takeout_mbox():
    msgs = {name: message(i) for i, name in enumerate(TAKEOUT, 1)}
    chat = message(99, subject="chat")
    data = b"".join(takeout_entry(msgs[n], TAKEOUT[n][0], thread=i) for i, n in enumerate(TAKEOUT, 1))
    data += takeout_entry(chat, ["Chat", "Opened"], thread=99)
    return msgs, chat, data


@pytest.mark.parametrize("form", ["zip", "tgz", "mbox"])
def test_takeout_labels_system_japanese_nested_once_each(tmp_path, local, emulator, capsys, form):
    msgs, chat, data = takeout_mbox()
    export = tmp_path / "export"
    export.mkdir()
    if form == "zip":
        path = takeout_zip(export / "takeout-20261201T000000Z-001.zip", data)
    elif form == "tgz":
        path = takeout_tgz(export / "takeout-20261201T000000Z-001.tgz", data)
    else:
        path = export / "All mail Including Spam and Trash.mbox"
        path.write_bytes(data)
    before = tree_snapshot(export)
    ws = local("takeout", path)
    rc, out = run(ws, capsys=capsys)
    assert rc == 0, out.err
    stored = stored_by_raw(emulator)
    for name in TAKEOUT:
        raw = [r for r in stored if r.endswith(msgs[name])]
        assert len(raw) == 1, name
        assert stored[raw[0]] == [sorted(TAKEOUT[name][1])], name  # once, with all its labels
    assert not any(r.endswith(chat) for r in stored)
    assert len(emulator.user(EMAIL).messages) == len(TAKEOUT)
    assert tree_snapshot(export) == before
    rc, out = run(ws, capsys=capsys)  # again: nothing to do
    assert rc == 0
    assert len(emulator.user(EMAIL).messages) == len(TAKEOUT)
    rc, out = run(ws, "verify", capsys=capsys)
    assert rc == 0, out.out + out.err


def test_takeout_mapping_excludes_renames_and_prefixes(tmp_path, local, emulator, capsys):
    msgs, _, data = takeout_mbox()
    path = tmp_path / "All mail.mbox"
    path.write_bytes(data)
    extra = '[labels]\nprefix = "Old"\nexclude = ["Work/*", "Spam"]\n\n[labels.map]\n"仕事/報告書" = "Reports"\n'
    ws = local("takeout", path, extra_toml=extra)
    rc, out = run(ws, capsys=capsys)
    assert rc == 0, out.err
    stored = stored_by_raw(emulator)

    def labels_of(name):
        found = [v for r, v in stored.items() if r.endswith(msgs[name])]
        return found[0] if found else None

    assert labels_of("work") == [["CATEGORY_UPDATES", "IMPORTANT", "INBOX"]]  # still imported, without Work/*
    assert labels_of("project_only") is None  # its only label is excluded
    assert labels_of("ja_spam") is None
    assert labels_of("ja_report") == [["CATEGORY_SOCIAL", "Old/Reports"]]
    assert labels_of("comma") == [["Old/Clients, 2024"]]


# ------------------------------------------------------------------------------------ kill and resume


def test_killed_then_compacted_then_resumed_imports_each_once(tmp_path, local, emulator):
    """SIGKILL mid-run; Thunderbird then compacts the folder (expunged messages go, offsets move, flags
    change in place); the resumed run imports the rest: none missing, re-sends only of those in flight."""
    folders = tmp_path / "Local Folders"
    folders.mkdir()
    msgs = [message(n) for n in range(300)]
    status = [READ | EXPUNGED if n % 10 == 3 else READ if n % 2 else 0 for n in range(300)]
    (folders / "Inbox").write_bytes(b"".join(thunderbird_entry(m, s) for m, s in zip(msgs, status, strict=True)))
    live = [m for m, s in zip(msgs, status, strict=True) if not s & EXPUNGED]
    ws = local("thunderbird", folders, workers=4)
    emulator.faults.add(Fault("slow", method="import", count=10_000, delay=0.01))
    proc = run_process(ws)
    user = emulator.user(EMAIL)
    wait_for(lambda: user.import_calls >= 60)
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    assert 60 <= len(user.messages) < len(live)
    # compacted: expunged messages removed, every other message marked read, order reversed
    (folders / "Inbox").write_bytes(b"".join(thunderbird_entry(m, READ) for m in reversed(live)))
    proc = run_process(ws)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err.decode()
    stored = stored_by_raw(emulator)
    assert all(m in stored for m in live)  # none missing
    assert not any(m in stored for m, s in zip(msgs, status, strict=True) if s & EXPUNGED)
    extra = len(user.messages) - len(live)
    assert 0 <= extra <= 4  # at most the calls in flight at the kill (4 workers)
    if extra:
        assert b"were in flight when an earlier run stopped" in out


# --------------------------------------------------------------------------------------------- memory

BIG_MBOX_MB = 1024  # 1 GiB: ~20 s for the whole run on the 2-core CI machine


def _peak_rss_kb(proc, peak, done):
    while not done.is_set():
        try:
            with open(f"/proc/{proc.pid}/status") as fh:
                for line in fh:
                    if line.startswith("VmHWM:"):
                        peak[0] = max(peak[0], int(line.split()[1]))
        except OSError:
            return
        done.wait(0.05)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_gigabyte_mbox_is_streamed_within_the_engines_memory_bound(tmp_path, local, emulator):
    path = tmp_path / "big.mbox"
    count = big_mbox(path, BIG_MBOX_MB << 20)
    ws = local("mbox", path)
    proc = subprocess.Popen(
        [sys.executable, "-m", "gimport", "--config", str(ws.config), "run"],
        env=ws.env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    peak, done = [0], threading.Event()
    watcher = threading.Thread(target=_peak_rss_kb, args=(proc, peak, done), daemon=True)
    watcher.start()
    _, err = proc.communicate(timeout=600)
    done.set()
    watcher.join()
    assert proc.returncode == 0, err.decode()
    assert len(emulator.user(EMAIL).messages) == count
    # the engine's bound: 24 MB of fetched messages waiting + one fetch batch (8 MB) + the interpreter and
    # client libraries (~60 MB); far below the file, which is never read whole
    peak_mb = peak[0] / 1024
    assert 0 < peak_mb < 200, peak_mb
    print(f"{BIG_MBOX_MB} MiB mbox, {count} messages: peak RSS {peak_mb:.0f} MiB")


# ------------------------------------------------------------------------------------------ admin mode


def test_admin_mode_reads_each_users_files_from_the_source_path_column(tmp_path, emulator, monkeypatch, capsys):
    from gimport.cli import main
    from tests.rig.admin_workspace import Person, make_admin_workspace

    monkeypatch.setenv("GIMPORT_GMAIL_API_URL", emulator.base_url)
    people = {"alice": "alice@campus.example.ac.jp", "bob": "bob@campus.example.ac.jp"}
    boxes = {}
    for i, (name, gmail) in enumerate(people.items()):
        emulator.add_user(gmail)
        boxes[name] = [message(100 * i + n) for n in range(3)]
        write_maildir(tmp_path / "homes" / name / "Maildir", {"INBOX": [MaildirMessage(m, "S") for m in boxes[name]]})

    class NoServer:
        plain_port = 1

    ws = make_admin_workspace(
        tmp_path / "adm",
        server=NoServer(),
        emulator_url=emulator.base_url,
        people=[Person(n, g, "unused") for n, g in people.items()],
        tls=False,
    )
    text = ws.config.read_text("utf-8").replace(
        'host = "127.0.0.1"\nport = 1\nsecurity = "plain"\n', 'type = "maildir"\n'
    )
    ws.config.write_text(text, encoding="utf-8")
    ws.users_csv.write_text(
        "source_user,gmail_address,source_path\n"
        + "".join(f"{n},{g},../homes/{n}/Maildir\n" for n, g in people.items()),
        encoding="utf-8",
    )
    before = tree_snapshot(tmp_path / "homes")
    rc = main(["--config", str(ws.config), "admin", "run"])
    out = capsys.readouterr()
    assert rc == 0, out.out + out.err
    for name, gmail in people.items():
        assert sorted(m.raw for m in emulator.user(gmail).messages) == sorted(boxes[name])
    assert tree_snapshot(tmp_path / "homes") == before


def test_a_missing_path_is_one_line_naming_it(tmp_path, local, capsys):
    from gimport.errors import SourceError

    ws = local("mbox", tmp_path / "no-such-mail")
    rc, out = run(ws, "plan", capsys=capsys)
    assert rc == SourceError.exit_code
    assert "no-such-mail does not exist" in out.err
    assert "Traceback" not in out.err


def test_takeout_folder_with_one_mbox_per_label_imports_a_shared_message_once(tmp_path, local, emulator, capsys):
    shared, solo = message(1), message(2)
    export = tmp_path / "Takeout" / "Mail"
    export.mkdir(parents=True)
    labels = ["Inbox", "Work", "Opened"]
    (export / "Inbox.mbox").write_bytes(takeout_entry(shared, labels) + takeout_entry(solo, ["Inbox", "Opened"], 2))
    (export / "Work.mbox").write_bytes(takeout_entry(shared, labels))
    ws = local("takeout", tmp_path / "Takeout")
    rc, out = run(ws, capsys=capsys)
    assert rc == 0, out.err
    stored = stored_by_raw(emulator)
    assert [v for r, v in stored.items() if r.endswith(shared)] == [[["INBOX", "Work"]]]
    assert len(emulator.user(EMAIL).messages) == 2


def test_thunderbird_deleted_message_to_trash_with_include_deleted(tmp_path, local, emulator, capsys):
    _profile, folders, msgs, _inbox = thunderbird_profile(tmp_path)
    ws = local("thunderbird", folders, extra_toml="[filters]\ninclude_deleted = true\n")
    rc, out = run(ws, capsys=capsys)
    assert rc == 0, out.err
    assert only(emulator, msgs["expunged"]) == ["INBOX", "TRASH"]
    assert only(emulator, msgs["read"]) == ["INBOX"]

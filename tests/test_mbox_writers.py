"""mbox files written by the real programs, not by this project: Dovecot's own mbox (`doveadm backup`
from the rig's Maildir into mbox: mboxcl2, with its folder-data pseudo-message and its X-UID, Status,
X-Status, X-Keywords and Content-Length headers) and procmail's `formail` (mboxo). The same ~120
messages of the sample corpus plus a few whose bodies hold "From " lines; through the real CLI to the
Gmail emulator: each message byte-exact per its variant's rules, flags kept, the pseudo-message absent,
a rerun sends nothing, the files only read."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.helpers import run
from tests.rig.corpus import sample_mailbox
from tests.rig.dovecot import SeedMessage
from tests.rig.localmail import lf, message, tree_snapshot
from tests.rig.workspace import EMAIL, make_local_workspace

FORMAIL = shutil.which("formail") or "/usr/bin/formail"

# bodies an mbox writer must take care of: a paragraph starting with "From" (even one that reads like a
# From_ line's date), a quoted ">From " line and a deeper one
TRICKY = [
    message(9001, body="Dear all,\n\nFrom the minutes of the meeting:\nnothing new.\n"),
    message(9002, body="Agenda\n\nFrom 10:00 to 12:00 on Tue Dec  1 2026 we meet.\n\nFrom me, thanks.\n"),
    message(9003, body="You wrote:\n>From the archive\n>>From deeper\nok\n"),
]


def corpus() -> dict[str, list[SeedMessage]]:
    """The sample corpus in LF (as mbox files hold it), a folder holding mail and subfolders renamed
    (an mbox folder is a file: it cannot have subfolders), the tricky bodies in INBOX and Archive/2020."""
    box = sample_mailbox(120)
    out = {}
    for folder, msgs in box.items():
        name = folder + " (own)" if any(f.startswith(folder + "/") for f in box) else folder
        out[name] = [SeedMessage(lf(m.raw), m.flags, m.internaldate) for m in msgs]
    out["INBOX"] += [SeedMessage(TRICKY[0], ("\\Seen",)), SeedMessage(TRICKY[1], ("\\Flagged", "$Work"))]
    out["Archive/2020"].append(SeedMessage(TRICKY[2], ()))
    return out


def stored(emulator):
    """raw -> [(sorted label names) per stored copy]."""
    labels = emulator.user(EMAIL).labels
    out: dict[bytes, list[list[str]]] = {}
    for m in emulator.user(EMAIL).messages:
        names = sorted(labels[i]["name"] if labels[i].get("type") == "user" else i for i in m.label_ids)
        out.setdefault(m.raw, []).append(names)
    return out


def check_imported(emulator, box, expected_raw, plan):
    """Every message of `box` stored with the labels of its folder and its flags; nothing else stored."""
    by_raw = stored(emulator)
    want = 0
    for folder, msgs in box.items():
        labels = plan[folder]["labels"]
        for m in msgs:
            raw = expected_raw(m.raw)
            copies = by_raw.get(raw, [])
            if b"X-Corpus-Case: no-date" in raw:  # gimport's Date rule: one Date line in front, from the From_ line
                copies = [c for r, cs in by_raw.items() if r.endswith(raw) and dated(r[: -len(raw)]) for c in cs]
            flags = {f.lower() for f in m.flags}
            wanted = sorted(
                {
                    *labels,
                    *(["UNREAD"] if "\\seen" not in flags else []),
                    *(["STARRED"] if "\\flagged" in flags else []),
                    *(["$Work"] if "$work" in flags else []),  # a custom keyword is a label of its name
                }
            )
            assert wanted in copies, (folder, raw[:200], copies, wanted)
            want += 1
    assert len(emulator.user(EMAIL).messages) == want
    assert not any(b"FOLDER INTERNAL DATA" in raw for raw in by_raw)


def dated(prefix: bytes) -> bool:
    return re.fullmatch(rb"Date: [^\n]+\n", prefix) is not None


def plan_of(ws, capsys):
    rc, out = run(ws, "plan", "--json", capsys=capsys)
    assert rc == 0, out.err
    data = json.loads(out.out)
    return data, {("INBOX" if f["folder"].lower() == "inbox" else f["folder"]): f for f in data["folders"]}


def run_twice_only_reading(ws, root, emulator, capsys):
    before = tree_snapshot(root)
    rc, out = run(ws, capsys=capsys)
    assert rc == 0, out.err
    calls = emulator.user(EMAIL).import_calls
    rc, out = run(ws, capsys=capsys)
    assert rc == 0, out.err
    assert emulator.user(EMAIL).import_calls == calls  # a rerun sends nothing
    assert tree_snapshot(root) == before


@pytest.fixture
def local_ws(tmp_path, emulator, monkeypatch):
    monkeypatch.setenv("GIMPORT_GMAIL_API_URL", emulator.base_url)
    return lambda path: make_local_workspace(tmp_path / "ws", kind="mbox", path=path, emulator=emulator)


def test_dovecots_own_mbox_is_read_as_mboxcl2_without_its_folder_data(
    tmp_path, dovecot_server, imap_user, emulator, local_ws, capsys
):
    box = corpus()
    for folder, msgs in box.items():
        imap_user.seed(folder, msgs)
    # where Dovecot's mail processes (nobody) can write: in the rig's own directory
    export = dovecot_server.workdir / f"mbox-export-{imap_user.name}"
    export.mkdir()
    shutil.chown(export, "nobody", "nogroup")
    mail = export / "mail"
    dovecot_server.doveadm("backup", "-u", imap_user.name, f"mbox:{mail}:INBOX={mail}/inbox")
    inbox = (mail / "inbox").read_bytes()
    assert inbox.startswith(b"From MAILER_DAEMON")  # Dovecot's pseudo-message
    assert b"X-IMAP: " in inbox
    assert b"Content-Length: " in inbox
    assert b"\n\nFrom the minutes of the meeting:\n" in inbox  # mboxcl2: not quoted
    ws = local_ws(mail)

    data, plan = plan_of(ws, capsys)
    assert set(plan) == set(box)  # modified UTF-7 file names decoded
    for folder, msgs in box.items():
        assert plan[folder]["format"] == "mboxcl2", folder
        assert plan[folder]["format_notes"] == [], folder
        assert plan[folder]["messages"] == len(msgs), folder  # the pseudo-message is not counted
    # nothing about the files: the only warnings are the visible rename of the folders Gmail reserves and the
    # corpus's messages without a Message-ID (each counted where it is)
    assert [w for w in data["warnings"] if "visible rename" not in w and "no Message-ID" not in w] == []
    assert sum(f["without_message_id"] for f in plan.values()) == sum(
        b"\nmessage-id:" not in b"\n" + m.raw.split(b"\n\n", 1)[0].lower() for msgs in box.values() for m in msgs
    )

    run_twice_only_reading(ws, export, emulator, capsys)
    # mboxcl2: the message as Dovecot serves it, i.e. without the headers its mbox keeps for itself
    check_imported(emulator, box, lambda raw: raw, plan)
    assert stored(emulator)[TRICKY[1]] == [["$Work", "INBOX", "STARRED", "UNREAD"]]  # split at no "From " line


def formail_mbox(path: Path, msgs: list[SeedMessage]) -> None:
    """An mbox as procmail's formail writes it, one message appended at a time."""
    with open(path, "ab") as fh:
        for m in msgs:
            subprocess.run([FORMAIL], input=m.raw, stdout=fh, check=True, timeout=30)


@pytest.mark.skipif(not os.path.exists(FORMAIL), reason="formail (Debian package procmail) is not installed")
def test_formail_mbox_is_read_as_mboxo(tmp_path, emulator, local_ws, capsys):
    box = {k: v for k, v in corpus().items() if k in ("INBOX", "Archive/2020", "仕事/報告書")}
    root = tmp_path / "mail"
    for folder, msgs in box.items():
        path = root / (folder + ".mbox")
        path.parent.mkdir(parents=True, exist_ok=True)
        formail_mbox(path, msgs)
    inbox = (root / "INBOX.mbox").read_bytes()
    assert b"\n\n>From the minutes of the meeting:\n" in inbox  # formail quotes "From " lines (mboxo)
    assert b"\n>From the archive\n>>From deeper\n" in (root / "Archive" / "2020.mbox").read_bytes()
    ws = local_ws(root)

    data, plan = plan_of(ws, capsys)
    assert set(plan) == set(box)
    assert {plan[f]["format"] for f in box} == {"mboxo or mboxrd"}
    # a ">>From " line means ">From " to an mboxrd writer and itself to an mboxo one: plan says so
    assert [n for n in plan["Archive/2020"]["format_notes"] if "'>>From '" in n]
    assert [w for w in data["warnings"] if w.startswith("Archive/2020: mboxo or mboxrd cannot be told apart")]
    assert plan["INBOX"]["format_notes"] == []

    run_twice_only_reading(ws, root, emulator, capsys)
    # formail writes no flags: no Status header in the file, so every message counts as read
    read = {f: [SeedMessage(m.raw, ("\\Seen",)) for m in msgs] for f, msgs in box.items()}
    check_imported(emulator, read, _formail_read, plan)
    assert TRICKY[0] in stored(emulator)


def _formail_read(raw: bytes) -> bytes:
    """What reading formail's output gives back: formail quotes "From " as ">From " and leaves ">From "
    lines as they are (mboxo); reading takes one ">" off every ">+From " line: exactly mboxo's rule
    except for a ">>From " line, which becomes ">From " (the ambiguity plan names)."""
    return re.sub(rb"(?m)^>(>*From )", rb"\1", re.sub(rb"(?m)^From ", b">From ", raw))

"""A Gmail account as the old server: the scripted IMAP server speaks X-GM-EXT-1 (tests/rig/gmail_imap.py), the
Gmail API emulator stores what gimport imports, the real CLI runs. Each message is imported once, from All Mail,
with every label it has; Spam and Trash land in SPAM and TRASH; a rerun sends nothing."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from imapclient import imap_utf7

from tests.helpers import empty_gmail
from tests.helpers import run as _run_echoing
from tests.rig.fault_imap import READ_ONLY_COMMANDS, FaultImapServer, Faults, Mailbox
from tests.rig.gmail_imap import GMAIL_CAPABILITIES, GmailMessage, gmail_mailbox
from tests.rig.workspace import EMAIL, make_workspace

SEEN, FLAGGED = "\\Seen", "\\Flagged"


def _raw(n: int) -> bytes:
    return b"Date: Thu, 02 Jan 2020 03:04:05 +0000\r\nMessage-ID: <g%d@gmail.test>\r\nSubject: m%d\r\n\r\nbody\r\n" % (
        n,
        n,
    )


MESSAGES = [
    GmailMessage(_raw(1), ("\\Inbox", "Work", "仕事/報告"), (SEEN,)),  # three labels
    # system labels quoted as Gmail sends them ("\\Important"), a user label with a space, starred
    GmailMessage(_raw(2), (b'"\\\\Important"', b'"\\\\Starred"', "My label"), (SEEN, FLAGGED)),
    GmailMessage(_raw(3)),  # archived (All Mail only), unread
    GmailMessage(_raw(4), ("\\Sent",), (SEEN,)),
    GmailMessage(_raw(5), ("\\Draft",), (SEEN,)),
    GmailMessage(_raw(6), (), (SEEN,), where="spam"),
    GmailMessage(_raw(7), ("Work",), (SEEN,), where="trash"),
]


@contextmanager
def _server(mailbox: Mailbox, capabilities: tuple[str, ...] = GMAIL_CAPABILITIES) -> Iterator[FaultImapServer]:
    srv = FaultImapServer(mailbox, Faults(capabilities=capabilities))
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()
        assert not srv.errors, srv.errors


def _ws(tmp_path, srv, emulator, monkeypatch):
    monkeypatch.setenv("GIMPORT_GMAIL_API_URL", emulator.base_url)
    return make_workspace(tmp_path, server=srv, user=srv.user, emulator=emulator, email=EMAIL, tls=False)


def run(ws, *args, capsys):
    capsys.readouterr()
    return _run_echoing(ws, *args, capsys=capsys)


def _labels_of(emulator) -> dict[bytes, set[str]]:
    """Each stored message's subject -> its label names (system ids as they are)."""
    user = emulator.user(EMAIL)
    names = {lid: lab["name"] for lid, lab in user.labels.items()}
    out: dict[bytes, set[str]] = {}
    for m in user.messages:
        subject = m.raw.split(b"Subject: ")[1].split(b"\r\n")[0]
        assert subject not in out, f"{subject!r} stored twice"
        out[subject] = {names[lid] for lid in m.label_ids}
    return out


def _examined(srv: FaultImapServer, session_from: int = 1) -> set[str]:
    return {
        imap_utf7.decode(c.raw.split(b" ", 2)[2].strip(b'"'))
        for c in srv.commands
        if c.name == "EXAMINE" and c.session >= session_from
    }


def test_a_gmail_source_is_read_from_all_mail_with_its_labels(tmp_path, emulator, monkeypatch, capsys):
    with _server(gmail_mailbox(MESSAGES)) as srv:
        ws = _ws(tmp_path, srv, emulator, monkeypatch)
        rc, out = run(ws, "plan", "--json", capsys=capsys)
        assert rc == 0, out.err
        plan = {f["folder"]: f for f in json.loads(out.out)["folders"]}
        assert plan["[Gmail]/All Mail"]["action"] == "import"
        assert plan["[Gmail]/All Mail"]["labels"] == []
        assert (plan["[Gmail]/Spam"]["action"], plan["[Gmail]/Spam"]["labels"]) == ("import", ["SPAM"])
        assert (plan["[Gmail]/Trash"]["action"], plan["[Gmail]/Trash"]["labels"]) == ("import", ["TRASH"])
        labels = {name: (f["action"], f["labels"], f["messages"]) for name, f in plan.items()}
        assert labels["INBOX"] == ("label", ["INBOX"], 1)
        assert labels["Work"] == ("label", ["Work"], 1)
        assert labels["仕事/報告"] == ("label", ["仕事/報告"], 1)
        assert labels["[Gmail]/Sent Mail"] == ("label", ["SENT"], 1)
        assert labels["[Gmail]/Important"] == ("label", ["IMPORTANT"], 1)
        assert labels["[Gmail]/Starred"] == ("label", ["STARRED"], 1)
        assert labels["[Gmail]/Drafts"] == ("label", ["Drafts (imported)"], 1)
        assert json.loads(out.out)["totals"]["to_import"] == len(MESSAGES)  # each message once
        rc, out = run(ws, "plan", capsys=capsys)
        assert "its messages are imported once, from [Gmail]/All Mail" in out.out

        first = srv.sessions + 1
        rc, out = run(ws, capsys=capsys)
        assert rc == 0, out.err
        assert _examined(srv, first) == {"[Gmail]/All Mail", "[Gmail]/Spam", "[Gmail]/Trash"}  # labels not read
        stored = _labels_of(emulator)
        assert stored == {
            b"m1": {"INBOX", "Work", "仕事/報告"},
            b"m2": {"IMPORTANT", "STARRED", "My label"},
            b"m3": {"UNREAD"},
            b"m4": {"SENT"},
            b"m5": {"Drafts (imported)"},
            b"m6": {"SPAM"},
            b"m7": {"TRASH", "Work"},
        }
        calls = emulator.user(EMAIL).import_calls
        assert calls == len(MESSAGES)

        rc, out = run(ws, capsys=capsys)  # a rerun sends nothing
        assert rc == 0, out.err
        assert emulator.user(EMAIL).import_calls == calls
        assert "Everything selected is in Gmail." in out.out
        rc, out = run(ws, "verify", capsys=capsys)
        assert rc == 0, out.out + out.err
        assert srv.command_names() <= READ_ONLY_COMMANDS
    assert len(emulator.user(EMAIL).messages) == len(MESSAGES)


def test_labels_excluded_or_mapped_are_those_messages_get(tmp_path, emulator, monkeypatch, capsys):
    """[labels] exclude leaves a label off (the message still comes, with its other labels); [labels.map] renames
    one; [labels] prefix applies to user labels."""
    with _server(gmail_mailbox(MESSAGES[:2])) as srv:
        ws = _ws(tmp_path, srv, emulator, monkeypatch)
        text = ws.config.read_text()
        ws.config.write_text(
            text.replace("[labels]\n", "")
            + '\n[labels]\nexclude = ["Work"]\nprefix = "old"\n[labels.map]\n"My label" = "Mine"\n'
        )
        rc, out = run(ws, capsys=capsys)
        assert rc == 0, out.err
        assert _labels_of(emulator) == {
            b"m1": {"INBOX", "old/仕事/報告"},
            b"m2": {"IMPORTANT", "STARRED", "old/Mine"},
        }


def test_japanese_names_and_hidden_all_mail(tmp_path, emulator, monkeypatch, capsys):
    """The system folders are found by their flags, whatever their names; without an \\All folder (All Mail hidden
    from IMAP) the folders are read one by one and a message in several of them is still imported once."""
    names = {"All Mail": "すべてのメール", "Spam": "迷惑メール", "Trash": "ゴミ箱", "Sent Mail": "送信済みメール"}
    box = gmail_mailbox(MESSAGES[:4], names=names)
    with _server(box) as srv:
        ws = _ws(tmp_path, srv, emulator, monkeypatch)
        rc, out = run(ws, capsys=capsys)
        assert rc == 0, out.err
        assert _examined(srv) == {"[Gmail]/すべてのメール", "[Gmail]/迷惑メール", "[Gmail]/ゴミ箱"}
        assert _labels_of(emulator)[b"m4"] == {"SENT"}
        assert _labels_of(emulator)[b"m1"] == {"INBOX", "Work", "仕事/報告"}
    empty_gmail(emulator, EMAIL)  # a new account for a new state file
    box.folders = [f for f in box.folders if "\\All" not in f.attributes]
    with _server(box) as srv:
        ws = _ws(tmp_path / "hidden", srv, emulator, monkeypatch)
        rc, out = run(ws, capsys=capsys)
        assert rc == 0, out.err
        stored = _labels_of(emulator)  # fails on a message stored twice
        assert stored[b"m1"] == {"INBOX", "Work", "仕事/報告"}  # three folders, one import (the copies)
        assert b"m3" not in stored  # archived: in All Mail only, which is not listed


@pytest.mark.parametrize("capabilities", [tuple(c for c in GMAIL_CAPABILITIES if c != "X-GM-EXT-1")])
def test_without_x_gm_ext_1_the_folders_are_folders(tmp_path, emulator, monkeypatch, capsys, capabilities):
    """A server that does not announce X-GM-EXT-1 is read folder by folder, whatever its folders are called."""
    with _server(gmail_mailbox(MESSAGES[:1]), capabilities) as srv:
        ws = _ws(tmp_path, srv, emulator, monkeypatch)
        rc, out = run(ws, "plan", "--json", capsys=capsys)
        assert rc == 0, out.err
        plan = {f["folder"]: f["action"] for f in json.loads(out.out)["folders"]}
        assert plan["Work"] == "import"
        assert plan["[Gmail]/All Mail"] == "exclude"  # the virtual \All folder, as on any server
        assert not any(c.name == "UID FETCH" and b"X-GM-LABELS" in c.raw for c in srv.commands)


def test_labels_changed_between_runs_send_nothing_again(tmp_path, emulator, monkeypatch, capsys):
    """A message's key is its All Mail UID, not its labels: archiving it or labelling it between runs (as the
    owner of a live account does) sends nothing again; a new message in All Mail is imported, once."""
    box = gmail_mailbox(MESSAGES[:3])
    with _server(box) as srv:
        ws = _ws(tmp_path, srv, emulator, monkeypatch)
        rc, out = run(ws, capsys=capsys)
        assert rc == 0, out.err
        all_mail = next(f for f in box.folders if "\\All" in f.attributes)
        first = all_mail.messages[0]
        all_mail.messages[0] = dataclasses.replace(first, labels=("Work", "\\Starred"))  # archived, relabelled
        inbox = next(f for f in box.folders if f.name == "INBOX")
        inbox.messages.clear()
        inbox.__post_init__()
        new = dataclasses.replace(first, uid=all_mail.uidnext, raw=_raw(9), labels=("\\Inbox",), gm_msgid=9)
        all_mail.messages.append(new)
        all_mail.__post_init__()
        calls = emulator.user(EMAIL).import_calls
        rc, out = run(ws, capsys=capsys)
        assert rc == 0, out.err
        assert emulator.user(EMAIL).import_calls == calls + 1
        assert _labels_of(emulator)[b"m9"] == {"INBOX"}

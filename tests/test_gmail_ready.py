"""What real Gmail refuses or would get wrong, end to end: a real Dovecot, the Gmail emulator, the real client.

- folder names Gmail refuses (the emulator refuses names gimport's own list does not know) land under a
  visible rename, the run goes on and exits 0, the state remembers the rename, `plan` shows it;
- messages flagged \\Deleted are left out (counted by plan, check, status), or with [filters]
  include_deleted imported with TRASH;
- IMAP keywords (Thunderbird's tags, custom ones) become labels.
"""

from __future__ import annotations

import json

import pytest

from gimport.mail.mapping import RESERVED_NAMES
from tests.helpers import run
from tests.rig.corpus import make_message
from tests.rig.dovecot import SeedMessage
from tests.rig.gmail_emulator import LOCALIZED_RESERVED_NAMES
from tests.rig.workspace import EMAIL


def add_config(ws, text):
    ws.config.write_text(ws.config.read_text("utf-8") + text, encoding="utf-8")


def plan_json(ws, capsys):
    capsys.readouterr()  # tests.helpers.run writes what it captured back: drop the earlier commands' output
    rc, out = run(ws, "plan", "--json", capsys=capsys)
    assert rc == 0, out.err
    return json.loads(out.out)


def msg(n, flags=("\\Seen",)):
    raw = make_message(subject=f"m{n}", body=f"body {n}\n", sender="a@example.org", to="b@example.org")
    return SeedMessage(raw, flags=flags)


def stored_labels(emulator):
    """subject -> sorted label names (user labels by name, system ones by id) of each stored message."""
    user = emulator.user(EMAIL)
    out = {}
    for m in user.messages:
        subject = next(
            line.split(b":", 1)[1].strip().decode()
            for line in m.raw.split(b"\r\n")
            if line.lower().startswith(b"subject:")
        )
        assert subject not in out, f"{subject} stored twice"
        out[subject] = sorted(
            user.labels[i]["name"] if user.labels[i].get("type") == "user" else i for i in m.label_ids
        )
    return out


REFUSED = ["Ongelezen", "Gearchiveerd/2019", "Enviados", "Gesendet", "Snoozed"]


def test_the_refused_names_are_not_on_gimports_list():
    """The emulator's refusals prove the rule, not the list: gimport must not know these names in advance."""
    for folder in REFUSED:
        top = folder.split("/")[0].casefold()
        assert top in LOCALIZED_RESERVED_NAMES
        assert top not in RESERVED_NAMES


def test_folders_named_after_refused_labels_land_renamed(ws, emulator, imap_user, capsys):
    for i, folder in enumerate(REFUSED):
        imap_user.seed(folder, [msg(i)])
    imap_user.seed("Work", [msg(9)])
    rc, out = run(ws, capsys=capsys)
    assert rc == 0, out.out + out.err
    assert stored_labels(emulator) == {
        "m0": ["Ongelezen (imported)"],
        "m1": ["Gearchiveerd (imported)/2019"],
        "m2": ["Enviados (imported)"],
        "m3": ["Gesendet (imported)"],
        "m4": ["Snoozed (imported)"],
        "m9": ["Work"],
    }
    assert "Gmail refuses 5 label name(s)" in out.out + out.err
    assert "'Gearchiveerd' -> 'Gearchiveerd (imported)'" in out.out + out.err

    # the state remembers: a rerun asks Gmail for no refused name again, and plan shows the renames
    creates = emulator.stats.requests["labels.create"]
    imap_user.seed("Ongelezen", [msg(5)])
    rc, out = run(ws, capsys=capsys)
    assert rc == 0, out.out
    assert stored_labels(emulator)["m5"] == ["Ongelezen (imported)"]
    assert emulator.stats.requests["labels.create"] == creates
    folders = {f["folder"]: f for f in plan_json(ws, capsys)["folders"]}
    assert folders["Gearchiveerd/2019"]["renamed_labels"] == {"Gearchiveerd": "Gearchiveerd (imported)"}
    assert folders["Ongelezen"]["renamed_labels"] == {"Ongelezen": "Ongelezen (imported)"}
    assert folders["Work"]["renamed_labels"] == {}
    rc, out = run(ws, "plan", capsys=capsys)
    assert "'Snoozed' -> 'Snoozed (imported)'" in out.out


def test_a_name_refused_under_both_names_stops_with_the_way_out(ws, emulator, imap_user, capsys, monkeypatch):
    import tests.rig.gmail_emulator as rig

    monkeypatch.setattr(rig, "LOCALIZED_RESERVED_NAMES", rig.LOCALIZED_RESERVED_NAMES | {"weird (imported)"})
    monkeypatch.setattr(rig, "RESERVED_LABEL_NAMES", rig.RESERVED_LABEL_NAMES | {"weird"})
    imap_user.seed("Weird", [msg(1)])
    rc, out = run(ws, capsys=capsys)
    assert rc != 0
    assert "[labels.map]" in out.err + out.out
    assert emulator.user(EMAIL).messages == []


@pytest.fixture
def deleted_box(imap_user):
    imap_user.seed("INBOX", [msg(1), msg(2, ("\\Seen", "\\Deleted")), msg(3, ("\\Deleted",))])
    imap_user.seed("Work", [msg(4), msg(5, ("\\Deleted", "\\Seen"))])
    return imap_user


def test_deleted_messages_are_left_out_and_counted(ws, emulator, deleted_box, capsys):
    data = plan_json(ws, capsys)
    folders = {f["folder"]: f for f in data["folders"]}
    assert folders["INBOX"]["marked_deleted"] == 2
    assert folders["INBOX"]["filtered_out"] == 0  # counted apart, not as filtered
    assert folders["INBOX"]["to_import"] == 1
    assert folders["Work"]["marked_deleted"] == 1
    assert data["totals"]["to_import"] == 2
    assert any("3 message(s) marked deleted on the server will be left out" in w for w in data["warnings"])

    rc, out = run(ws, "check", capsys=capsys)
    assert rc == 0, out.out + out.err
    assert "3 message(s) marked deleted on the server will be left out" in out.out

    rc, out = run(ws, capsys=capsys)
    assert rc == 0, out.out
    assert sorted(stored_labels(emulator)) == ["m1", "m4"]
    assert "3 message(s) marked deleted on the server are left out" in out.out + out.err

    rc, out = run(ws, "status", capsys=capsys)
    assert rc == 0, out.out
    tail = out.out.split("Marked deleted on the server", 1)[1]
    assert "INBOX: 2" in tail
    assert "Work: 1" in tail

    rc, out = run(ws, "verify", capsys=capsys)
    assert rc == 0, out.out


def test_include_deleted_imports_them_to_trash(ws, emulator, deleted_box, capsys):
    add_config(ws, "\n[filters]\ninclude_deleted = true\n")
    rc, out = run(ws, capsys=capsys)
    assert rc == 0, out.out
    assert stored_labels(emulator) == {
        "m1": ["INBOX"],
        "m2": ["INBOX", "TRASH"],
        "m3": ["INBOX", "TRASH", "UNREAD"],
        "m4": ["Work"],
        "m5": ["TRASH", "Work"],
    }
    rc, out = run(ws, "verify", capsys=capsys)
    assert rc == 0, out.out


def test_keywords_become_labels(ws, emulator, imap_user, capsys):
    imap_user.seed(
        "INBOX",
        [
            msg(1, ("\\Seen", "$label1")),
            msg(2, ("\\Seen", "$label2", "$label4")),
            msg(3, ("\\Seen", "$label3", "$label5", "$Forwarded", "$MDNSent")),
            msg(4, ("\\Seen", "$Junk")),
            msg(5, ("\\Seen", "NonJunk", "$NotJunk", "$SubmitPending", "$Submitted")),
            msg(6, ("\\Seen", "&MMYwuTDI-", "Projekt_X")),  # a Japanese tag as Thunderbird writes it
            msg(7, ("\\Seen", "client-a", "drop-me")),
        ],
    )
    add_config(ws, '\n[labels.keywords]\n"client-a" = "Clients/A"\n"drop-me" = ""\n')
    inbox = next(f for f in plan_json(ws, capsys)["folders"] if f["folder"] == "INBOX")
    assert inbox["keyword_labels"] == {
        "IMPORTANT": 1,
        "Work": 1,
        "Personal": 1,
        "To Do": 1,
        "Later": 1,
        "SPAM": 1,
        "テスト": 1,
        "Projekt_X": 1,
        "Clients/A": 1,
    }
    rc, out = run(ws, capsys=capsys)
    assert rc == 0, out.out
    assert stored_labels(emulator) == {
        "m1": ["IMPORTANT", "INBOX"],
        "m2": ["INBOX", "To Do", "Work"],
        "m3": ["INBOX", "Later", "Personal"],
        "m4": ["INBOX", "SPAM"],
        "m5": ["INBOX"],
        "m6": ["INBOX", "Projekt_X", "テスト"],
        "m7": ["Clients/A", "INBOX"],
    }


def test_check_tells_folder_by_folder_what_gmail_gets_otherwise(ws, emulator, imap_user, capsys):
    """`check` (and `check --json`, and `plan --json`) name, per folder, the dates a run fixes, the messages
    marked deleted, the tags that become labels and the messages without a Message-ID; a folder Gmail gets
    as it is has no line."""

    def raw(n, **kw):
        return make_message(subject=f"m{n}", body=f"body {n}\n", sender="a@example.org", to="b@example.org", **kw)

    imap_user.seed(
        "INBOX",
        [
            SeedMessage(raw(1, message_id=None), flags=("\\Seen",)),
            SeedMessage(raw(2, date="Tue, 3 Mar 98 10:00:00 JST"), flags=("\\Seen",)),
            SeedMessage(raw(3), flags=("\\Seen", "$label2")),
            SeedMessage(raw(4), flags=("\\Seen", "\\Deleted")),
        ],
    )
    imap_user.seed("Work", [msg(5), msg(6)])
    imap_user.seed("Old", [SeedMessage(raw(7, message_id=None), flags=("\\Seen",)), msg(8)])

    inbox = next(f for f in plan_json(ws, capsys)["folders"] if f["folder"] == "INBOX")
    assert inbox["without_message_id"] == 1
    assert inbox["dates_to_fix"] == 1
    assert inbox["keyword_labels"] == {"Work": 1}
    assert inbox["marked_deleted"] == 1

    capsys.readouterr()
    rc, out = run(ws, "check", capsys=capsys)
    assert rc == 0, out.out + out.err
    lines = [line.strip() for line in out.out.splitlines()]
    inbox_line = next(line for line in lines if line.startswith("INBOX:"))
    for point in (
        "1 Date(s) fixed",
        "1 marked deleted (left out)",
        "tags as labels: Work (1)",
        "1 without a Message-ID",
    ):
        assert point in inbox_line
    assert next(line for line in lines if line.startswith("Old:")) == "Old: 1 without a Message-ID"
    assert not any(line.startswith("Work:") for line in lines)  # lands as it is
    assert "2 message(s) to import have no Message-ID (INBOX (1), Old (1))" in " ".join(out.out.split())

    capsys.readouterr()
    rc, out = run(ws, "check", "--json", capsys=capsys)
    assert rc == 0, out.err
    doc = json.loads(out.out)  # nothing but the document on stdout
    assert doc["source"]["login"] is True
    assert doc["gmail"]["address"] == EMAIL
    assert doc["run_in_progress"] is None
    folders = {f["folder"]: f for f in doc["plan"]["folders"]}
    assert folders["Old"]["without_message_id"] == 1
    assert folders["Work"]["without_message_id"] == 0
    assert doc["plan"]["totals"]["to_import"] == 7
    assert emulator.user(EMAIL).messages == []  # check changes nothing

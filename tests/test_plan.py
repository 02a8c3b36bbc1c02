"""`gimport plan` and the [labels]/[filters] config against the real Dovecot; Gmail must not be contacted."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from tests.helpers import run
from tests.rig.corpus import make_message
from tests.rig.dovecot import SeedMessage
from tests.rig.workspace import EMAIL

UTC = dt.UTC


def msg(subject, when=dt.datetime(2020, 5, 1, tzinfo=UTC), size=0, flags=("\\Seen",)):
    raw = make_message(
        subject=subject,
        body="本文です",
        sender="a@example.ac.jp",
        to="b@example.ac.jp",
        date=when,
        attachment_size=size,
    )
    return SeedMessage(raw, flags, when)


@pytest.fixture
def uni_mailbox(imap_user):
    """A typical university account: Japanese folders, an archive, junk."""
    imap_user.seed("INBOX", [msg("in1"), msg("in2", dt.datetime(2014, 3, 1, tzinfo=UTC)), msg("in3", size=300_000)])
    imap_user.seed("送信済み", [msg("s1")])
    imap_user.seed("迷惑メール", [msg("j1")])
    imap_user.seed("研究室/ゼミ", [msg("z1"), msg("z2", dt.datetime(2024, 6, 1, tzinfo=UTC))])
    imap_user.seed("Archive/2020", [msg("a1")])
    imap_user.seed("Notes", [msg("n1")])
    return imap_user


def add_config(ws, text):
    ws.config.write_text(ws.config.read_text("utf-8") + text, encoding="utf-8")


CONFIG = """
[labels]
prefix = "ECCS/"
exclude = ["迷惑メール", "Notes"]
[labels.map]
"Archive/2020" = "Old/2020"
"Notes" = "Kept"
"研究室/ゼミ" = ["Seminar", "STARRED"]
"Nowhere" = "X"
[filters]
since = 2015-01-01
before = 2024-04-01
max_size_mb = 0.2
"""


def test_plan_changes_nothing_and_contacts_only_the_source(ws, emulator, uni_mailbox, capsys):
    before = uni_mailbox.snapshot()
    add_config(ws, CONFIG)
    emulator.stop()  # any Gmail call would fail
    rc, out = run(ws, "plan", capsys=capsys)
    assert rc == 0, out.err
    assert uni_mailbox.snapshot() == before
    assert not ws.state.exists()
    lines = {line.split()[0]: line for line in out.out.splitlines() if line and not line.startswith(" ")}
    assert "ECCS/Seminar, STARRED" in lines["研究室/ゼミ"]
    assert "filtered out 1" in lines["研究室/ゼミ"]
    assert "ECCS/Old/2020" in lines["Archive/2020"]
    assert "skip: excluded by '迷惑メール'" in lines["迷惑メール"]
    assert "skip: excluded by 'Notes'" in lines["Notes"]
    assert "filtered out 2" in lines["INBOX"]  # one too old, one too large
    assert "warning: [labels.map] 'Nowhere' names no folder" in out.out
    assert "exclude wins" in out.out
    assert "To import: 4 message(s)" in out.out  # in1, s1, z1, a1


def test_plan_json(ws, emulator, uni_mailbox, capsys):
    add_config(ws, CONFIG)
    rc, out = run(ws, "plan", "--json", capsys=capsys)
    assert rc == 0
    data = json.loads(out.out)
    folders = {f["folder"]: f for f in data["folders"]}
    assert folders["送信済み"]["labels"] == ["SENT"]
    assert folders["迷惑メール"]["action"] == "exclude"
    assert folders["INBOX"]["selected"] == 1
    assert folders["INBOX"]["filtered_out"] == 2
    assert data["totals"]["to_import"] == 4
    assert "ECCS/Seminar" in data["labels_needed"]
    assert "ECCS" in data["labels_needed"]
    assert data["unused_map_entries"] == ["Nowhere"]
    units = 4 * 25 + len(data["labels_needed"]) * 5
    assert data["estimated_seconds"] == round(units / data["quota_units_per_minute"] * 60, 1)


def test_run_follows_mapping_and_filters(ws, emulator, uni_mailbox, capsys):
    add_config(ws, CONFIG)
    rc, out = run(ws, capsys=capsys)
    assert rc == 0, out.out
    user = emulator.user(EMAIL)
    labels = user.labels
    got = sorted(
        (
            m.raw.split(b"Subject: ")[1].split(b"\r\n")[0].decode(),
            sorted(labels[i]["name"] if labels[i]["type"] == "user" else i for i in m.label_ids),
        )
        for m in user.messages
    )
    assert got == [
        ("a1", ["ECCS/Old/2020"]),
        ("in1", ["INBOX"]),
        ("s1", ["SENT"]),
        ("z1", ["ECCS/Seminar", "STARRED"]),
    ]
    # plan after the run: everything selected is done
    rc, out = run(ws, "plan", capsys=capsys)
    assert "To import: 0 message(s)" in out.out
    assert "already imported" in out.out


def test_changed_mapping_applies_to_new_messages_only(ws, emulator, uni_mailbox, capsys):
    assert run(ws, capsys=capsys)[0] == 0
    user = emulator.user(EMAIL)
    n = len(user.messages)
    add_config(ws, '[labels.map]\n"Archive/2020" = "Old/2020"\n')
    uni_mailbox.seed("Archive/2020", [msg("a2")])
    assert run(ws, capsys=capsys)[0] == 0
    assert len(user.messages) == n + 1
    names = {
        m.raw.split(b"Subject: ")[1].split(b"\r\n")[0]: [user.labels[i]["name"] for i in m.label_ids]
        for m in user.messages
        if b"Subject: a" in m.raw
    }
    assert names == {b"a1": ["Archive (imported)/2020"], b"a2": ["Old/2020"]}


def test_bad_config_is_one_line_exit_2(ws, uni_mailbox, capsys):
    add_config(ws, '[labels.map]\n"Drafts" = "DRAFT"\n')
    rc, out = run(ws, "plan", capsys=capsys)
    assert rc == 2
    assert out.err.strip().count("\n") == 0
    assert "[labels.map] 'Drafts' = 'DRAFT'" in out.err

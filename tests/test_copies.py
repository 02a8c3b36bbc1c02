"""One message in several folders is one message in Gmail: real Dovecot, the emulator in its mode that never
merges re-imports (it stores every import it gets, as the worst plausible Gmail), the real client."""

from __future__ import annotations

import collections
import datetime as dt
import json
import signal
import sqlite3

import pytest

from gimport.backends.google.oauth import scopes_for
from gimport.backends.state.store import StateStore
from gimport.cli import main
from gimport.contract import DUPLICATE, IMPORTED
from gimport.errors import StateError
from tests.helpers import run, run_process, wait_for
from tests.rig.corpus import make_message
from tests.rig.dovecot import SeedMessage
from tests.rig.gmail_emulator import Fault
from tests.rig.workspace import EMAIL, make_workspace

WHEN = dt.datetime(2021, 5, 3, 9, 30, tzinfo=dt.UTC)


def raw(n: int, *, message_id: str | None = None, body: str | None = None) -> bytes:
    return make_message(
        subject=f"copy case {n}",
        body=body or f"body {n}\r\n",
        sender="a@example.jp",
        to="b@example.jp",
        message_id=message_id if message_id is not None else f"<c{n}@test.invalid>",
    )


def seed(data: bytes, *, seen: bool = True, minute: int = 0) -> SeedMessage:
    return SeedMessage(data, ("\\Seen",) if seen else (), WHEN + dt.timedelta(minutes=minute))


# Each case: its folders (with whether that copy was read) and the labels Gmail must show, written out by
# hand from the rule (README: INBOX if any copy is there; TRASH and SPAM only when every copy is; UNREAD only
# when no copy was read; every other label from every copy).
NO_ID = make_message(
    subject="no id", body="no message-id\r\n", sender="a@example.jp", to="b@example.jp", message_id=None
)
CASES = [
    # (raw, [(folder, seen)], expected label names)
    (raw(1), [("INBOX", True), ("Work", True)], ["INBOX", "Work"]),
    (raw(2), [("INBOX", False), ("Work", True), ("Trash", True)], ["INBOX", "Work"]),
    (raw(3), [("Work", False), ("Projects", False), ("Trash", False)], ["Projects", "UNREAD", "Work"]),
    (raw(4), [("Trash", True), ("ゴミ箱", True)], ["TRASH"]),
    (raw(5), [("INBOX", True), ("Junk", True)], ["INBOX"]),
    (NO_ID, [("INBOX", True), ("Projects", True)], ["INBOX", "Projects"]),
    (raw(7), [("Work", True)], ["Work"]),
    (raw(8), [("INBOX", False)], ["INBOX", "UNREAD"]),
]
# the same Message-ID, size and INTERNALDATE, other bytes: two messages (the content hash tells)
LOOKALIKE = [
    (raw(9, body="first  version\r\n"), [("INBOX", True)], ["INBOX"]),
    (raw(9, body="second version\r\n"), [("Work", True)], ["Work"]),
]


def seed_cases(imap_user, cases, *, same_time: int | None = None) -> None:
    """Each case's copies with one INTERNALDATE (as IMAP COPY leaves it); cases from index `same_time` on
    share one."""
    folders: dict[str, list[SeedMessage]] = collections.defaultdict(list)
    for i, (data, where, _labels) in enumerate(cases):
        minute = i if same_time is None else min(i, same_time)
        for folder, seen in where:
            folders[folder].append(seed(data, seen=seen, minute=minute))
    for folder, messages in folders.items():
        imap_user.seed(folder, messages)


def stored_labels(emu) -> dict[bytes, list[list[str]]]:
    """Each stored message's bytes -> the label names of each stored copy of it."""
    user = emu.user(EMAIL)
    out: dict[bytes, list[list[str]]] = collections.defaultdict(list)
    for m in user.messages:
        names = sorted(user.labels[i]["name"] if user.labels[i].get("type") == "user" else i for i in m.label_ids)
        out[m.raw].append(names)
    return out


def ledger(ws):
    state = StateStore.open_readonly(ws.state)
    try:
        (account,) = state.accounts()
        return state.ledger(account)
    finally:
        state.close()


@pytest.fixture
def exact_ws(tmp_path, imap_user, emulator, monkeypatch):
    assert emulator.merge_duplicates is False  # the mode that stores every import it gets
    w = make_workspace(
        tmp_path, server=imap_user.server, user=imap_user.name, emulator=emulator, email=EMAIL, scopes=scopes_for(True)
    )
    monkeypatch.setenv("GIMPORT_GMAIL_API_URL", emulator.base_url)
    return w


def test_copies_in_two_and_three_folders_are_stored_once_with_every_folders_label(
    exact_ws, emulator, imap_user, capsys
):
    cases = CASES + LOOKALIKE
    seed_cases(imap_user, cases, same_time=len(CASES))
    rc, out = run(exact_ws, capsys=capsys)
    assert rc == 0, out.out
    stored = stored_labels(emulator)
    assert {data: labels for data, labels in stored.items()} == {data: [want] for data, _w, want in cases}
    assert len(emulator.user(EMAIL).messages) == len(cases)  # 10, where a copy per folder would be 17
    # the state knows the one Gmail id behind several folders: one row per copy, one id per message
    rows = ledger(exact_ws)
    assert len(rows) == sum(len(where) for _d, where, _l in cases)
    by_id = collections.defaultdict(list)
    for r in rows:
        by_id[r.gmail_id].append(r)
    assert sorted(len(v) for v in by_id.values()) == sorted(len(where) for _d, where, _l in cases)
    for group in by_id.values():
        assert sorted(r.status for r in group) == sorted([IMPORTED] + [DUPLICATE] * (len(group) - 1))
        assert len({r.labels for r in group}) == 1  # each copy records the labels the message was sent with
    assert rc == 0
    rc, out = run(exact_ws, "verify", capsys=capsys)
    assert rc == 0, out.out
    capsys.readouterr()  # what `run` echoed
    rc = main(["--config", str(exact_ws.config), "verify", "--exact", "--json"])
    out = capsys.readouterr()
    assert rc == 0, out.out
    proof = json.loads(out.out)["exact_check"]
    assert proof["gaps"] == []
    assert proof["checked"] == len(rows)
    assert proof["gmail_messages"] == len(cases)
    # the ledger (report --csv) shows the shared id on every copy's row
    rc = main(["--config", str(exact_ws.config), "report", "--csv", "-"])
    out = capsys.readouterr()
    assert rc == 0
    lines = out.out.splitlines()
    for gid, group in by_id.items():
        assert sum(gid in line for line in lines) == len(group)
    # a second run sends nothing
    calls = emulator.user(EMAIL).import_calls
    assert run(exact_ws, capsys=capsys)[0] == 0
    assert emulator.user(EMAIL).import_calls == calls


def test_a_kill_between_the_copies_then_a_rerun_stores_each_message_once(tmp_path, imap_user, emulator, monkeypatch):
    # 30 messages in INBOX, each copied into Work and (every third) into Trash: the INBOX copy is sent
    cases = [
        (raw(100 + i), [("INBOX", True), ("Work", True)] + ([("Trash", True)] if i % 3 == 0 else []), ["INBOX", "Work"])
        for i in range(30)
    ]
    seed_cases(imap_user, cases)
    w = make_workspace(tmp_path, server=imap_user.server, user=imap_user.name, emulator=emulator, email=EMAIL)
    monkeypatch.setenv("GIMPORT_GMAIL_API_URL", emulator.base_url)
    # the first 10 imports are stored; every one after is refused before Gmail stores it (and retried):
    # the kill leaves 10 messages imported from INBOX, their copies in Work and Trash not sent on their own
    refuse = emulator.faults.add(Fault("5xx_before", method="import", skip=10, count=None))
    proc = run_process(w)
    user = emulator.user(EMAIL)
    try:
        wait_for(lambda: _imported(w) == 10, timeout=60)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        emulator.faults.remove(refuse)
    assert len(user.messages) == 10
    folders = {f"<c{100 + i}@test.invalid>": len(where) for i, (_d, where, _l) in enumerate(cases)}
    rows = ledger(w)
    by_id = collections.defaultdict(list)
    for r in rows:
        by_id[r.gmail_id].append(r)
    imported = [r for r in rows if r.status == IMPORTED]
    assert len(imported) == 10
    for r in imported:  # every copy of an imported message is recorded with it, none left to send
        assert len(by_id[r.gmail_id]) == folders[r.message_id]
        assert {x.status for x in by_id[r.gmail_id]} - {IMPORTED} <= {DUPLICATE}
    proc = run_process(w)
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err.decode()
    stored = stored_labels(emulator)
    assert sorted(stored) == sorted(data for data, _w, _l in cases)
    for data, _w, want in cases:
        assert all(labels == want for labels in stored[data])  # each once, with every folder's label
    # A call the killed run had sent may reach the emulator after the kill, and after the refusals end: Gmail
    # then stores it, and the next run sends it again (it was in flight). That is the one re-send a kill can
    # cause, and the run counts it: every extra copy stored is a counted re-send.
    extra = sum(len(labels) - 1 for labels in stored.values())
    assert extra <= _resent(w)
    assert run(w, "verify")[0] == 0


def _resent(ws) -> int:
    """The re-sends the state file counts (a message sent again after it was in flight at a kill)."""
    db = sqlite3.connect(f"file:{ws.state}?mode=ro", uri=True)
    try:
        return int(db.execute("SELECT COALESCE(SUM(resent), 0) FROM messages").fetchone()[0])
    finally:
        db.close()


def _imported(ws) -> int:
    try:
        return sum(r.status == IMPORTED for r in ledger(ws))
    except (StateError, ValueError):  # the run has not written its state (or a folder) yet
        return 0


@pytest.mark.parametrize("label_copies", [False, True], ids=["insert-only", "label-copies"])
def test_a_copy_filed_at_a_later_run(tmp_path, imap_user, emulator, monkeypatch, capsys, label_copies):
    """After a first run, the user files copies of two imported messages into Work (and one into Trash). With
    the modify scope (gimport auth --label-copies) the copies add their labels to the messages in Gmail (none
    taken away: UNREAD stays, Trash is not added to a message that is also in INBOX); without it they are
    imported as messages of their own (the emulator never merges). Either way the state knows every copy,
    verify --exact finds no gap and a third run sends nothing."""
    w = make_workspace(
        tmp_path,
        server=imap_user.server,
        user=imap_user.name,
        emulator=emulator,
        email=EMAIL,
        scopes=scopes_for(True, label_copies),
    )
    monkeypatch.setenv("GIMPORT_GMAIL_API_URL", emulator.base_url)
    first, second = raw(200), raw(201)
    imap_user.seed("INBOX", [seed(first, seen=False), seed(second, minute=1)])
    assert run(w, capsys=capsys)[0] == 0
    imap_user.seed("Work", [seed(first, minute=2), seed(second, minute=3)])
    imap_user.seed("Trash", [seed(second, minute=4)])
    rc, out = run(w, capsys=capsys)
    assert rc == 0, out.out
    user = emulator.user(EMAIL)
    if label_copies:
        assert stored_labels(emulator) == {first: [["INBOX", "UNREAD", "Work"]], second: [["INBOX", "Work"]]}
        assert len(emulator.modified) == 2  # the Trash copy adds nothing: no call
    else:
        assert stored_labels(emulator) == {
            first: [["INBOX", "UNREAD"], ["Work"]],
            second: [["INBOX"], ["TRASH"], ["Work"]],
        }
        assert emulator.modified == []
    rows = ledger(w)
    assert len(rows) == 5
    statuses = sorted(r.status for r in rows)
    assert statuses == ([DUPLICATE] * 3 + [IMPORTED] * 2 if label_copies else [IMPORTED] * 5)
    capsys.readouterr()
    rc = main(["--config", str(w.config), "verify", "--exact", "--json"])
    out = capsys.readouterr()
    assert rc == 0, out.out
    assert json.loads(out.out)["exact_check"]["gaps"] == []
    calls, modified = user.import_calls, len(emulator.modified)
    assert run(w, capsys=capsys)[0] == 0
    assert (user.import_calls, len(emulator.modified)) == (calls, modified)

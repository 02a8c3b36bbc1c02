"""`gimport verify --exact`: every imported message proven in Gmail by its id and labels, through the real
client against the emulator, which enforces the gmail.metadata scope as Gmail's discovery document says
(and refuses `q` under it)."""

from __future__ import annotations

import json

import pytest
from googleapiclient.errors import HttpError

from gimport.backends.google.oauth import EXACT_VERIFY_SCOPE, SCOPES, scopes_for
from gimport.backends.state.store import StateStore
from gimport.cli import main
from tests.rig.corpus import make_message
from tests.rig.dovecot import SeedMessage
from tests.rig.gmail_client import service_for
from tests.rig.gmail_emulator import GmailEmulator
from tests.rig.workspace import EMAIL, make_workspace

SECRET_SUBJECT = "Confidential exam results"


def msg(n: int, *, subject: str = "hello", seen: bool = True, message_id: str | None = None) -> SeedMessage:
    raw = make_message(
        subject=f"{subject} {n}",
        body=f"body {n}",
        sender="a@example.jp",
        to="b@example.jp",
        message_id=message_id or f"<m{n}@test.invalid>",
    )
    return SeedMessage(raw, ("\\Seen",) if seen else ())


def cli(ws, *args, capsys):
    rc = main(["--config", str(ws.config), *args])
    return rc, capsys.readouterr()


@pytest.fixture
def mailbox(imap_user):
    imap_user.seed("INBOX", [msg(1), msg(2), msg(3, seen=False)])
    imap_user.seed("Work/Reports", [msg(4), msg(5, subject=SECRET_SUBJECT), msg(6)])
    imap_user.seed("受信/日本", [msg(7)])
    return imap_user


@pytest.fixture
def exact_ws(tmp_path, imap_user, emulator, monkeypatch):
    """A workspace whose token also holds the metadata scope (gimport auth --exact-verify)."""
    w = make_workspace(
        tmp_path, server=imap_user.server, user=imap_user.name, emulator=emulator, email=EMAIL, scopes=scopes_for(True)
    )
    monkeypatch.setenv("GIMPORT_GMAIL_API_URL", emulator.base_url)
    return w


def recorded(ws) -> dict[tuple[str, int], object]:
    """(folder, uid) -> the state file's ledger row."""
    state = StateStore.open_readonly(ws.state)
    try:
        (account,) = state.accounts()
        return {(r.key.folder, r.key.uid): r for r in state.ledger(account)}
    finally:
        state.close()


def list_requests(emu) -> int:
    return emu.stats.snapshot()["requests"].get("messages.list", 0)


def test_verify_exact_passes_after_a_full_run_and_says_what_it_cost(exact_ws, emulator, mailbox, capsys):
    assert cli(exact_ws, "run", capsys=capsys)[0] == 0
    rc, out = cli(exact_ws, "verify", "--exact", capsys=capsys)
    assert rc == 0, out.out
    assert "each proven by its Gmail id" in out.out
    assert "Level of proof: exact" in out.out
    calls = list_requests(emulator)
    # INBOX, the two user labels, TRASH: one page each; nothing missing, so the whole mailbox is not listed
    assert calls == 4
    assert f"{calls + 1:,} call(s), {calls * 5 + 1:,} quota units" in out.out
    assert SECRET_SUBJECT not in out.out + out.err
    rc, out = cli(exact_ws, "verify", "--exact", "--json", capsys=capsys)
    data = json.loads(out.out)
    assert rc == 0
    assert data["passed"]
    assert data["proof_level"] == "exact"
    assert data["exact_check"]["checked"] == 7
    assert data["exact_check"]["gaps"] == []
    assert data["exact_check"]["units"] == calls * 5 + 1


def test_verify_exact_names_a_deleted_message_and_a_label_gone(exact_ws, emulator, mailbox, capsys):
    assert cli(exact_ws, "run", capsys=capsys)[0] == 0
    rows = recorded(exact_ws)
    deleted, unlabelled = rows[("Work/Reports", 2)], rows[("INBOX", 1)]
    assert emulator.delete_message(EMAIL, deleted.gmail_id)
    assert emulator.change_labels(EMAIL, unlabelled.gmail_id, remove=["INBOX"])  # archived in Gmail
    rc, out = cli(exact_ws, "verify", "--exact", "--json", capsys=capsys)
    assert rc == 1
    gaps = {g["key"]: g for g in json.loads(out.out)["exact_check"]["gaps"]}
    assert set(gaps) == {str(deleted.key), str(unlabelled.key)}
    assert gaps[str(deleted.key)]["problem"] == "missing"
    assert gaps[str(deleted.key)]["fails"]
    assert gaps[str(deleted.key)]["message_id"] == "<m5@test.invalid>"
    assert gaps[str(unlabelled.key)]["problem"] == "label gone"
    assert not gaps[str(unlabelled.key)]["fails"]
    assert "INBOX" in gaps[str(unlabelled.key)]["detail"]
    rc, out = cli(exact_ws, "verify", "--exact", capsys=capsys)
    assert rc == 1
    text = out.out
    assert f"{deleted.key}  <m5@test.invalid>  missing (FAILS)" in text
    assert f"{unlabelled.key}  <m1@test.invalid>  label gone (listed)" in text
    assert "NOT VERIFIED: 1 message(s) recorded as imported are not as recorded in Gmail." in text
    assert SECRET_SUBJECT not in text + out.err


def test_a_label_gone_fails_only_with_strict_labels_and_flags_are_never_checked(exact_ws, emulator, mailbox, capsys):
    assert cli(exact_ws, "run", capsys=capsys)[0] == 0
    rows = recorded(exact_ws)
    label_id = emulator.label_by_name(EMAIL, "Work/Reports")["id"]
    moved = rows[("Work/Reports", 3)]
    assert emulator.change_labels(EMAIL, moved.gmail_id, remove=[label_id])
    # reading one message and starring another in Gmail: flags, never checked
    emulator.change_labels(EMAIL, rows[("INBOX", 3)].gmail_id, remove=["UNREAD"], add=["STARRED"])
    rc, out = cli(exact_ws, "verify", "--exact", capsys=capsys)
    assert rc == 0, out.out
    assert (
        f"{moved.key}  <m6@test.invalid>  label gone (listed): in Gmail, but no longer labelled Work/Reports" in out.out
    )
    assert "--strict-labels makes it fail" in out.out
    rc, out = cli(exact_ws, "verify", "--exact", "--strict-labels", "--json", capsys=capsys)
    data = json.loads(out.out)
    assert rc == 1
    assert [g["key"] for g in data["exact_check"]["gaps"]] == [str(moved.key)]


def test_a_trashed_message_is_not_proven(exact_ws, emulator, mailbox, capsys):
    assert cli(exact_ws, "run", capsys=capsys)[0] == 0
    trashed = recorded(exact_ws)[("受信/日本", 1)]
    emulator.change_labels(EMAIL, trashed.gmail_id, add=["TRASH"])
    rc, out = cli(exact_ws, "verify", "--exact", "--json", capsys=capsys)
    (gap,) = json.loads(out.out)["exact_check"]["gaps"]
    assert rc == 1
    assert gap["key"] == str(trashed.key)
    assert gap["problem"] == "in Trash"


def test_a_reimport_answered_with_an_earlier_id_is_checked_per_record(tmp_path, imap_user, monkeypatch, capsys):
    """Gmail merges a re-import of a known Message-ID and answers with the earlier message's id (reported,
    not documented): two records, one Gmail id, each checked for its own folder's label. The two differ in
    their bytes (so gimport sends each: gimport.engine.copies imports identical copies once)."""
    imap_user.seed("INBOX", [msg(1, message_id="<same@test.invalid>")])
    imap_user.seed("Projects", [msg(1, subject="edited", message_id="<same@test.invalid>"), msg(2)])
    with GmailEmulator(merge_duplicates=True) as emu:
        emu.add_user(EMAIL)
        ws = make_workspace(
            tmp_path, server=imap_user.server, user=imap_user.name, emulator=emu, email=EMAIL, scopes=scopes_for(True)
        )
        monkeypatch.setenv("GIMPORT_GMAIL_API_URL", emu.base_url)
        assert cli(ws, "run", capsys=capsys)[0] == 0
        rows = recorded(ws)
        inbox, archive = rows[("INBOX", 1)], rows[("Projects", 1)]
        assert inbox.gmail_id == archive.gmail_id
        assert len(emu.user(EMAIL).messages) == 2
        assert cli(ws, "verify", "--exact", capsys=capsys)[0] == 0
        emu.change_labels(EMAIL, inbox.gmail_id, remove=[emu.label_by_name(EMAIL, "Projects")["id"]])
        rc, out = cli(ws, "verify", "--exact", "--strict-labels", "--json", capsys=capsys)
        gaps = json.loads(out.out)["exact_check"]["gaps"]
        assert rc == 1
        assert [(g["key"], g["problem"]) for g in gaps] == [(str(archive.key), "label gone")]


def test_without_the_scope_verify_is_as_before_and_says_how_to_get_the_exact_check(ws, emulator, mailbox, capsys):
    assert cli(ws, "run", capsys=capsys)[0] == 0
    rc, out = cli(ws, "verify", capsys=capsys)
    assert rc == 0
    assert "VERIFIED: all 7 selected message(s) in 3 folder(s) are recorded as imported" in out.out
    assert "Level of proof: label counts" in out.out
    assert "gimport auth --exact-verify" in out.out
    rc, out = cli(ws, "verify", "--exact", capsys=capsys)
    assert rc == 3
    assert "gimport auth --exact-verify" in out.err
    assert "Traceback" not in out.err
    assert list_requests(emulator) == 0


# ------------------------------------------------------------------------------- the emulator's metadata scope


def test_the_emulator_enforces_the_metadata_scope_like_gmail(emulator):
    raw = make_message(subject="s", body="b", sender="a@example.jp", to="b@example.jp")
    full, _ = service_for(emulator, EMAIL)
    ids = []
    for _n in range(5):
        ids.append(
            full.users().messages().import_(userId="me", body={"raw": _b64(raw), "labelIds": ["INBOX"]}).execute()["id"]
        )
    emulator.change_labels(EMAIL, ids[0], add=["TRASH"])
    meta, _ = service_for(emulator, EMAIL, scopes=(EXACT_VERIFY_SCOPE,))
    msgs = meta.users().messages()
    with pytest.raises(HttpError) as err:
        msgs.list(userId="me", q="rfc822msgid:x").execute()
    assert err.value.resp.status == 403
    assert "Metadata scope does not support 'q' parameter" in str(err.value)
    with pytest.raises(HttpError) as err:
        msgs.get(userId="me", id=ids[1], format="raw").execute()
    assert err.value.resp.status == 403
    assert msgs.get(userId="me", id=ids[1], format="minimal").execute()["id"] == ids[1]
    # paging: maxResults, pageToken; Trash left out unless includeSpamTrash
    seen, token = [], None
    while True:
        page = msgs.list(userId="me", labelIds=["INBOX"], maxResults=2, pageToken=token).execute()
        seen += [m["id"] for m in page.get("messages", [])]
        token = page.get("nextPageToken")
        if not token:
            break
    assert sorted(seen) == sorted(ids[1:])
    every = msgs.list(userId="me", labelIds=["INBOX"], includeSpamTrash=True, maxResults=500).execute()
    assert sorted(m["id"] for m in every["messages"]) == sorted(ids)
    # the import scopes alone cannot list
    insert_only, _ = service_for(emulator, EMAIL, scopes=SCOPES)
    with pytest.raises(HttpError) as err:
        insert_only.users().messages().list(userId="me").execute()
    assert err.value.resp.status == 403


def _b64(raw: bytes) -> str:
    import base64

    return base64.urlsafe_b64encode(raw).decode()


def test_a_label_deleted_in_gmail_is_named_for_each_of_its_messages(exact_ws, emulator, mailbox, capsys):
    assert cli(exact_ws, "run", capsys=capsys)[0] == 0
    full, _ = service_for(emulator, EMAIL)
    label_id = emulator.label_by_name(EMAIL, "受信/日本")["id"]
    full.users().labels().delete(userId="me", id=label_id).execute()
    rc, out = cli(exact_ws, "verify", "--exact", "--strict-labels", "--json", capsys=capsys)
    (gap,) = json.loads(out.out)["exact_check"]["gaps"]
    assert rc == 1
    assert gap["problem"] == "label gone"
    assert "no longer exists" in gap["detail"]
    assert gap["key"] == str(recorded(exact_ws)[("受信/日本", 1)].key)
